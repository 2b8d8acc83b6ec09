#!/usr/bin/env python3
"""Check the import graph of the ``exporter`` package against its layers.

    python scripts/check_layers.py            # exit 1 on a cycle or an arrow that runs back up
    python scripts/check_layers.py --report   # also print the module count and every arrow

Every import counts: top-level, lazy (inside a function) and ``TYPE_CHECKING`` ones.
The data path runs one way, and so do the imports. ``LAYERS`` lists the layers from the
foundation up: a module may import modules of its own layer's package and of layers
listed before it, never one listed after it. ``FORBIDDEN`` adds the arrows that the order
alone would allow but the design does not (analytics reads records, never providers).
Exactly one module, the composition root ``exporter.app``, wires providers, store, FX and
exposition together (``WIRING``).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "exporter"

# (layer name, module prefixes), from the foundation up.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("base", ("exporter", "exporter.clock", "exporter.records", "exporter.heap")),
    ("snapshot", ("exporter.snapshot",)),
    ("catalogue", ("exporter.fx.ecb", "exporter.pricing")),
    ("config", ("exporter.config",)),
    ("providers", ("exporter.providers",)),
    ("ingest", ("exporter.ingest",)),
    ("store", ("exporter.store",)),
    ("election", ("exporter.election",)),
    ("fx", ("exporter.fx",)),
    ("analytics", ("exporter.analytics",)),
    ("poller", ("exporter.poller",)),
    ("intake", ("exporter.intake",)),
    ("exposition", ("exporter.metrics", "exporter.exposition")),
    ("webconfig", ("exporter.webconfig",)),
    ("server", ("exporter.server", "exporter.server_loop")),
    ("serving", ("exporter.serving",)),
    ("finops", ("exporter.finops",)),
    ("demo", ("exporter.demo",)),
    ("refresh", ("exporter.refresh",)),
    ("app", ("exporter.app",)),
    ("schedule", ("exporter.schedule",)),
    ("cli", ("exporter.report", "exporter.cli", "exporter.__main__")),
)

# Arrows the layer order allows but the design does not: (importer prefix, imported prefix).
FORBIDDEN: tuple[tuple[str, str], ...] = (
    ("exporter.analytics", "exporter.providers"),  # analytics sees records, not APIs
    ("exporter.analytics", "exporter.poller"),
    ("exporter.exposition", "exporter.analytics"),  # the renderer reads the snapshot only
    ("exporter.exposition", "exporter.store"),
    ("exporter.exposition", "exporter.fx"),
    ("exporter.server", "exporter.analytics"),
    ("exporter.server", "exporter.store"),
    ("exporter.fx", "exporter.providers"),
    ("exporter.store", "exporter.config"),  # the store takes a path, not the settings
    ("exporter.demo", "exporter.providers"),  # the fakes speak HTTP, they never share code
    ("exporter.demo", "exporter.store"),
    ("exporter.demo", "exporter.analytics"),
    ("exporter.ingest", "exporter.providers"),  # spans and events are not provider APIs
    ("exporter.server", "exporter.ingest"),  # the server knows the Ingest protocol only
    ("exporter.server", "exporter.intake"),
    ("exporter.serving", "exporter.analytics"),  # the serving process gets bytes, not data
    ("exporter.serving", "exporter.store"),
    ("exporter.serving", "exporter.intake"),
)

# Only the composition root may import all of these (it wires them together).
WIRING: tuple[str, ...] = (
    "exporter.providers",
    "exporter.store",
    "exporter.fx",
    "exporter.exposition",
)
COMPOSITION_ROOT = "exporter.app"


def modules(root: Path = ROOT) -> dict[str, Path]:
    out = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(target: str, known: Iterable[str]) -> str | None:
    names = set(known)
    while target:
        if target in names:
            return target
        target = target.rpartition(".")[0]
    return None


def graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the package modules it imports (anywhere in its body)."""
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                targets = [base, *(f"{base}.{a.name}" for a in node.names)]
            for target in targets:
                resolved = _resolve(target, mods)
                if resolved and resolved != name and not name.startswith(resolved + "."):
                    edges[name].add(resolved)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def _matches(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_of(module: str) -> tuple[int, str]:
    """(order, prefix) of the most specific entry of ``LAYERS`` naming ``module``; entries
    are ordered within a layer too (``metrics`` comes before ``exposition``)."""
    best: tuple[int, str] | None = None
    order = 0
    for _, prefixes in LAYERS:
        for prefix in prefixes:
            if _matches(module, prefix) and (best is None or len(prefix) > len(best[1])):
                best = (order, prefix)
            order += 1
    if best is None:
        raise SystemExit(f"check_layers: {module} is in no layer; add it to LAYERS")
    return best


def _layer_name(order: int) -> str:
    flat = [(name, prefix) for name, prefixes in LAYERS for prefix in prefixes]
    return f"{flat[order][1]} ({flat[order][0]})"


def violations(edges: dict[str, set[str]]) -> list[str]:
    """Arrows that run back up the layers, forbidden arrows, and wiring outside the root."""
    out = []
    for importer, imported in sorted((a, b) for a, bs in edges.items() for b in bs):
        (ia, pa), (ib, _) = layer_of(importer), layer_of(imported)
        if ib > ia or (ib == ia and not _matches(imported, pa)):
            out.append(f"{importer} -> {imported}: runs back up, to {_layer_name(ib)}")
        for src, dst in FORBIDDEN:
            if _matches(importer, src) and _matches(imported, dst):
                out.append(f"{importer} -> {imported}: forbidden ({src} never imports {dst})")
    for module, targets in sorted(edges.items()):
        wired = {w for w in WIRING if any(_matches(t, w) for t in targets)}
        if wired == set(WIRING) and not _matches(module, COMPOSITION_ROOT):
            out.append(f"{module}: wires {', '.join(sorted(wired))}; only {COMPOSITION_ROOT} may")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", action="store_true", help="print the graph summary")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository to check")
    args = parser.parse_args(argv)
    mods = modules(args.root)
    edges = graph(mods)
    found = cycles(edges)
    bad = violations(edges)
    if args.report:
        arrows = sum(len(v) for v in edges.values())
        print(f"{len(mods)} modules, {arrows} import arrows, {len(found)} cycle(s), "
              f"{len(bad)} layer violation(s)")  # fmt: skip
        for module in sorted(edges):
            if edges[module]:
                print(f"  {module} -> {', '.join(sorted(edges[module]))}")
    for component in found:
        print("cycle: " + " <-> ".join(component))
    for line in bad:
        print("layer: " + line)
    return 1 if found or bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
