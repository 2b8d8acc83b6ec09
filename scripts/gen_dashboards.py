#!/usr/bin/env python3
"""Generate grafana/dashboards/*.json (the committed JSON is what users import).

    python scripts/gen_dashboards.py                  # rewrite the JSON files
    python scripts/gen_dashboards.py --check          # exit 1 if they are stale (CI)
    python scripts/gen_dashboards.py --currency EUR   # money units for another currency

Conventions (monitoring mixins, grafana/dashboard-linter): fixed readable uid, `datasource`
variable and no hard-coded datasource uid, `job`/`provider`/`account`/`project`/`model`
variables, a unit and a description on every panel, a headline stat row, UTC, uneditable.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dashboards import budgets, chargeback, health, models, overview, savings
from generated import write_or_check

OUT = Path(__file__).resolve().parent.parent / "grafana" / "dashboards"

# file name -> build(currency) of its module in scripts/dashboards/
DASHBOARDS: dict[str, Callable[[str], dict[str, Any]]] = {
    "ai-spend-overview.json": overview.build,
    "ai-models-and-tokens.json": models.build,
    "ai-budgets-and-forecasts.json": budgets.build,
    "ai-savings.json": savings.build,
    "ai-exporter-health.json": health.build,
    "ai-chargeback.json": chargeback.build,
}


def render_all(currency: str) -> dict[str, str]:
    return {
        name: json.dumps(build(currency), indent=2, sort_keys=False) + "\n"
        for name, build in DASHBOARDS.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the files are stale")
    parser.add_argument("--currency", default="USD", help="ISO code for money units (USD)")
    args = parser.parse_args()
    files = {OUT / name: text for name, text in render_all(args.currency).items()}
    return write_or_check(files, check=args.check, generator="gen_dashboards.py")


if __name__ == "__main__":
    sys.exit(main())
