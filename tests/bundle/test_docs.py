"""Docs are tested against the code: metrics table, CLI commands and flags."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from exporter.cli import build_parser
from exporter.metrics import CATALOGUE

ROOT = Path(__file__).resolve().parents[2]


def doc_rows() -> dict[str, tuple[str, tuple[str, ...]]]:
    rows = {}
    for line in (ROOT / "docs" / "metrics.md").read_text().splitlines():
        m = re.match(r"^\| `(aicost_\w+)` \| (\w+) \| ([^|]*) \|", line)
        if m:
            labels = tuple(x.strip() for x in m.group(3).split(",") if x.strip())
            rows[m.group(1)] = (m.group(2), labels)
    return rows


def test_metrics_doc_matches_the_catalogue() -> None:
    documented = doc_rows()
    in_code = {m.name: (m.type, m.labels) for m in CATALOGUE}
    assert set(documented) == set(in_code), "metrics missing from docs or from the code"
    for name, (kind, labels) in in_code.items():
        assert documented[name] == (kind, labels), f"{name}: docs say {documented[name]}"


def test_readme_metrics_table_lists_every_metric() -> None:
    readme = (ROOT / "README.md").read_text()
    for m in CATALOGUE:
        assert f"`{m.name}`" in readme, f"README metrics table lacks {m.name}"


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


def test_every_command_and_flag_is_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    for name, sub in _subcommands().items():
        assert f"ai-cost-exporter {name}" in readme, f"README lacks the {name} command"
        assert sub.description, f"{name} has no --help description"
        for action in sub._actions:
            for flag in action.option_strings:
                if flag in ("-h", "--help"):
                    continue
                assert flag in readme, f"README lacks the flag {flag} of {name}"
                assert action.help, f"{name} {flag} has no help text"
