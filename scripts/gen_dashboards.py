#!/usr/bin/env python3
"""Generate grafana/dashboards/*.json and the app plugin's copy (what users import).

    python scripts/gen_dashboards.py                  # rewrite the JSON files and plugin.json
    python scripts/gen_dashboards.py --check          # exit 1 if they are stale (CI)
    python scripts/gen_dashboards.py --currency AUD --out DIR   # fixed money unit, into DIR

The committed dashboards are currency-neutral: money panels show plain amounts and name the
accounting currency from the `currency` variable (the metrics' label), so they work for any
`currency` setting. `--currency` is only for users who want Grafana's unit suffix; it takes
an upper-case ISO 4217 code the exporter supports and never writes over the committed files.
grafana/plugin/dashboards/ and grafana/plugin/plugin.json come from the same modules.

Conventions (monitoring mixins, grafana/dashboard-linter): fixed readable uid, `datasource`
variable and no hard-coded datasource uid, `job`/`provider`/`account`/`project`/`model`
variables, a unit and a description on every panel, a headline stat row, UTC, uneditable.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dashboards import budgets, health, models, overview, plugin, savings, unit_economics
from dashboards.lib import NEUTRAL
from generated import write_or_check

OUT = Path(__file__).resolve().parent.parent / "grafana" / "dashboards"
PLUGIN = plugin.DIR

# file name -> build(currency) of its module in scripts/dashboards/
DASHBOARDS: dict[str, Callable[[str], dict[str, Any]]] = {
    "ai-spend-overview.json": overview.build,
    "ai-models-and-tokens.json": models.build,
    "ai-budgets-and-forecasts.json": budgets.build,
    "ai-savings.json": savings.build,
    "ai-exporter-health.json": health.build,
    "ai-unit-economics.json": unit_economics.build,
}


def _json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"


def render_all(currency: str = NEUTRAL) -> dict[str, str]:
    return {name: _json(build(currency)) for name, build in DASHBOARDS.items()}


def committed_files() -> dict[Path, str]:
    """grafana/dashboards/*.json, the plugin's copies and its plugin.json."""
    models = {name: build(NEUTRAL) for name, build in DASHBOARDS.items()}
    files: dict[Path, str] = {}
    for name, model in models.items():
        files[OUT / name] = files[PLUGIN / "dashboards" / name] = _json(model)
    files[PLUGIN / "plugin.json"] = _json(plugin.manifest(models))
    return files


def iso_currency(value: str) -> str:
    """An upper-case ISO 4217 code the exporter can convert to (argparse type)."""
    from exporter.config import currency_code

    if not re.fullmatch(r"[A-Z]{3}", value):
        raise argparse.ArgumentTypeError(
            f"{value!r}: an upper-case ISO 4217 code such as EUR, GBP or AUD"
        )
    try:
        return currency_code(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{value}: {e}") from None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the files are stale")
    parser.add_argument(
        "--currency", type=iso_currency,
        help="fixed money unit (Grafana's `suffix: CODE`) instead of currency-neutral; needs --out",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, help="directory for the --currency dashboards")
    args = parser.parse_args()
    if args.currency is None:
        if args.out is not None:
            parser.error("--out is only for --currency (the neutral dashboards are committed)")
        return write_or_check(committed_files(), check=args.check, generator="gen_dashboards.py")
    if args.out is None or args.check:
        parser.error("--currency needs --out DIR and cannot be combined with --check")
    out = args.out.resolve()
    if out in (OUT.resolve(), (PLUGIN / "dashboards").resolve()):
        parser.error(f"--out {args.out}: the committed dashboards stay currency-neutral")
    files = {out / name: text for name, text in render_all(args.currency).items()}
    return write_or_check(files, check=False, generator="gen_dashboards.py")


if __name__ == "__main__":
    sys.exit(main())
