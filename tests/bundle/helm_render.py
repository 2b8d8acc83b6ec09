"""A small renderer for the Go-template subset the Helm chart uses (no helm binary here).

Neither Debian nor PyPI ships `helm`, so tests render deploy/helm/ai-cost-exporter with
this: actions `{{ pipeline }}` with `{{-`/`-}}` trimming, `if`/`else`/`end`,
`range $k, $v := …`, `define`/`include`, `$var := …`, parentheses, `.Values`/`.Release`/
`.Chart`/`.Files.Get`/`.Files.Glob`, and the functions below with Helm's (sprig's)
argument order (a piped value is the last argument). Anything else raises, so a template
that strays from the subset fails the test instead of rendering wrongly.
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)
_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:\\.|[^"\\])*")|(?P<num>-?\d+)|(?P<op>:=|[()|,])'
    r"|(?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)|(?P<field>(?:\.[A-Za-z0-9_]+)+|\.)"
    r"|(?P<ident>[A-Za-z_][A-Za-z0-9_]*))"
)


class Files:
    def __init__(self, root: Path) -> None:
        self.root = root

    def Get(self, path: str) -> str:
        return (self.root / path).read_text()

    def Glob(self, pattern: str) -> dict[str, str]:
        paths = sorted(
            p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file()
        )
        return {p: self.Get(p) for p in paths if fnmatch.fnmatch(p, pattern)}


def _to_yaml(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=True).rstrip("\n")


def _indent(n: int, text: str) -> str:
    pad = " " * n
    return pad + text.replace("\n", "\n" + pad)


def _printf(fmt: str, *args: Any) -> str:
    if re.search(r"%[^sd%]", fmt):
        raise ValueError(f"printf verb outside %s/%d: {fmt!r}")
    return fmt % args


def truthy(value: Any) -> bool:
    return value not in (None, False, 0, "") and not (isinstance(value, dict | list) and not value)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        raise TypeError(f"printing a {type(value).__name__}: use toYaml")
    return str(value)


@dataclass
class Node:
    kind: str  # text | action | if | range | define
    text: str = ""
    body: list[Node] = field(default_factory=list)
    orelse: list[Node] = field(default_factory=list)


def _lex(source: str) -> list[tuple[str, str]]:
    """[(kind, text)] with kind text|action, trimming applied."""
    out: list[tuple[str, str]] = []
    pos, trim_next = 0, False
    for m in _ACTION.finditer(source):
        text = source[pos : m.start()]
        if trim_next:
            text = text.lstrip()
        if m.group(1):
            text = text.rstrip()
        out.append(("text", text))
        out.append(("action", m.group(2)))
        pos, trim_next = m.end(), bool(m.group(3))
    text = source[pos:]
    out.append(("text", text.lstrip() if trim_next else text))
    return out


def parse(source: str) -> list[Node]:
    root: list[Node] = []
    stack: list[tuple[Node | None, list[Node]]] = [(None, root)]
    for kind, text in _lex(source):
        current = stack[-1][1]
        if kind == "text":
            if text:
                current.append(Node("text", text))
            continue
        word = text.split(None, 1)[0] if text else ""
        if word in ("if", "range", "define"):
            node = Node(word, text[len(word) :].strip())
            current.append(node)
            stack.append((node, node.body))
        elif word == "else":
            node = stack[-1][0]
            assert node is not None and node.kind == "if" and text == "else", text
            stack[-1] = (node, node.orelse)
        elif word == "end":
            stack.pop()
        elif text.startswith("/*"):
            continue
        else:
            current.append(Node("action", text))
    assert len(stack) == 1, "unclosed block"
    return root


class Renderer:
    def __init__(self, chart: Path, values: dict[str, Any], release: str = "aicost") -> None:
        meta = yaml.safe_load((chart / "Chart.yaml").read_text())
        self.root = {
            "Values": values,
            "Release": {"Name": release, "Namespace": "monitoring"},
            "Chart": {"Name": meta["name"], "Version": meta["version"],
                      "AppVersion": meta["appVersion"]},
            "Files": Files(chart),
        }  # fmt: skip
        self.defines: dict[str, list[Node]] = {}
        self.templates: dict[str, list[Node]] = {}
        for path in sorted((chart / "templates").iterdir()):
            nodes = parse(path.read_text())
            for node in nodes:
                if node.kind == "define":
                    self.defines[json.loads(node.text)] = node.body
            self.templates[path.name] = nodes
        self.functions: dict[str, Callable[..., Any]] = {
            "toYaml": _to_yaml,
            "nindent": lambda n, s: "\n" + _indent(n, s),
            "indent": _indent,
            "quote": lambda v: json.dumps(_text(v)),
            "default": lambda d, v=None: v if truthy(v) else d,
            "include": lambda name, ctx: self._run(self.defines[name], ctx, {"$": self.root}),
            "replace": lambda old, new, s: s.replace(old, new),
            "trunc": lambda n, s: s[:n],
            "trimSuffix": lambda suffix, s: s.removesuffix(suffix),
            "printf": _printf,
            "int": lambda v: int(v),
            "base": posixpath.basename,
            # Go's: the first falsy (and) / truthy (or) argument, else the last one
            "and": lambda *a: next((v for v in a if not truthy(v)), a[-1]),
            "or": lambda *a: next((v for v in a if truthy(v)), a[-1]),
            "not": lambda v: not truthy(v),
        }

    def render(self) -> dict[str, str]:
        """Output of every manifest template (not _*.tpl, not NOTES.txt)."""
        return {
            name: self._run(nodes, self.root, {"$": self.root})
            for name, nodes in self.templates.items()
            if not name.startswith("_") and name != "NOTES.txt"
        }

    def manifests(self) -> list[dict[str, Any]]:
        docs = []
        for name, text in self.render().items():
            try:
                docs.extend(d for d in yaml.safe_load_all(text) if d)
            except yaml.YAMLError as e:
                raise AssertionError(f"{name} renders invalid YAML: {e}\n{text}") from e
        return docs

    # evaluation

    def _run(self, nodes: list[Node], dot: Any, scope: dict[str, Any]) -> str:
        out: list[str] = []
        for node in nodes:
            if node.kind == "text":
                out.append(node.text)
            elif node.kind == "define":
                continue
            elif node.kind == "if":
                branch = node.body if truthy(self._pipeline(node.text, dot, scope)) else node.orelse
                out.append(self._run(branch, dot, dict(scope)))
            elif node.kind == "range":
                m = re.fullmatch(r"(\$\w+)\s*,\s*(\$\w+)\s*:=\s*(.*)", node.text, re.S)
                assert m, f"range form not supported: {node.text}"
                items = self._pipeline(m.group(3), dot, scope)
                pairs = sorted(items.items()) if isinstance(items, dict) else enumerate(items)
                for key, value in pairs:
                    inner = {**scope, m.group(1): key, m.group(2): value}
                    out.append(self._run(node.body, value, inner))
            else:
                m = re.fullmatch(r"(\$\w+)\s*:=\s*(.*)", node.text, re.S)
                if m:
                    scope[m.group(1)] = self._pipeline(m.group(2), dot, scope)
                else:
                    out.append(_text(self._pipeline(node.text, dot, scope)))
        return "".join(out)

    def _pipeline(self, text: str, dot: Any, scope: dict[str, Any]) -> Any:
        tokens = self._tokens(text)
        value, rest = self._parse_pipeline(tokens, dot, scope)
        assert not rest, f"trailing tokens in {text!r}: {rest}"
        return value

    @staticmethod
    def _tokens(text: str) -> list[tuple[str, str]]:
        tokens, pos = [], 0
        while pos < len(text.rstrip()):
            m = _TOKEN.match(text, pos)
            assert m and m.end() > pos, f"cannot read {text[pos:]!r}"
            kind = m.lastgroup
            assert kind is not None
            tokens.append((kind, m.group(kind)))
            pos = m.end()
        return tokens

    def _parse_pipeline(
        self, tokens: list[tuple[str, str]], dot: Any, scope: dict[str, Any]
    ) -> tuple[Any, list[tuple[str, str]]]:
        piped: list[Any] = []
        while True:
            operands: list[tuple[str, Any]] = []
            while tokens and tokens[0] not in (("op", "|"), ("op", ")")):
                kind, text = tokens.pop(0)
                if (kind, text) == ("op", "("):
                    value, tokens = self._parse_pipeline(tokens, dot, scope)
                    assert tokens and tokens[0] == ("op", ")"), "unbalanced ("
                    tokens = tokens[1:]
                    operands.append(("value", value))
                elif kind == "ident":
                    operands.append(("ident", text))
                else:
                    operands.append(("value", self._operand(kind, text, dot, scope)))
            piped = [self._command(operands, piped)]
            if tokens and tokens[0] == ("op", "|"):
                tokens = tokens[1:]
                continue
            return piped[0], tokens

    def _command(self, operands: list[tuple[str, Any]], piped: list[Any]) -> Any:
        assert operands, "empty command"
        (kind, head), args = operands[0], [v for _, v in operands[1:]] + piped
        if kind == "ident":
            if head in ("true", "false"):
                return head == "true"
            if head not in self.functions:
                raise NotImplementedError(f"function {head} is outside the supported subset")
            return self.functions[head](*args)
        if callable(head):
            return head(*args)
        assert not args, f"arguments to a value: {head!r}"
        return head

    def _operand(self, kind: str, text: str, dot: Any, scope: dict[str, Any]) -> Any:
        if kind == "str":
            return json.loads(text)
        if kind == "num":
            return int(text)
        if kind == "var":
            name, *path = text.split(".")
            return self._walk(scope[name], path)
        if kind == "field":
            return self._walk(dot, [] if text == "." else text[1:].split("."))
        raise AssertionError(f"unexpected token {text!r}")

    @staticmethod
    def _walk(value: Any, path: list[str]) -> Any:
        for part in path:
            if isinstance(value, dict):
                value = value.get(part)
            elif value is None:
                return None
            else:
                value = getattr(value, part)
        return value
