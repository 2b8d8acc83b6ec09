#!/usr/bin/env python3
"""Write the shipped rule files with your Grafana's (and runbook's) address in the alert links.

    python scripts/gen_rules.py --grafana-url https://grafana.example.com --out rules/ai-cost
    python scripts/gen_rules.py --grafana-url URL --runbook-url https://wiki.example/rb --out DIR

Every alert in alerting/alerts.yaml carries two absolute links: `dashboard_url` (a Grafana
deep link, `<grafana_url>/d/<uid>/...?var-...`) and `runbook_url`
(`<runbook_url>#<alertname lower-cased>`). The committed files use the defaults below: the
Grafana of deploy/compose.yaml and the project's published docs/runbook.md. `grafana_url`
is the one setting a stack needs (the runbook override is for a copy on your own wiki);
the Helm chart takes the same two values (`links.grafanaUrl`, `links.runbookUrl`). Nothing
but those link prefixes changes; the committed files are never written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
RULE_FILES = ("alerts.yaml", "rules.yaml")
GRAFANA_URL = "http://localhost:3000"
RUNBOOK_URL = "https://github.com/ai-cost-exporter/ai-cost-exporter/blob/main/docs/runbook.md"


def absolute_url(value: str) -> str:
    """An http(s) URL without a trailing slash (argparse type)."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise argparse.ArgumentTypeError(
            f"{value!r}: an absolute http(s) URL without query or fragment, "
            "e.g. https://grafana.example.com"
        )
    return value.rstrip("/")


def relink(text: str, grafana_url: str, runbook_url: str = RUNBOOK_URL) -> str:
    """``text`` of a rule file with the default link prefixes replaced."""
    text = text.replace(f"runbook_url: {RUNBOOK_URL}#", f"runbook_url: {runbook_url}#")
    return text.replace(f"dashboard_url: {GRAFANA_URL}/d/", f"dashboard_url: {grafana_url}/d/")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--grafana-url",
        type=absolute_url,
        required=True,
        help=f"root URL of your Grafana (default in the files: {GRAFANA_URL})",
    )
    parser.add_argument(
        "--runbook-url",
        type=absolute_url,
        default=RUNBOOK_URL,
        help="where docs/runbook.md is published (default: the project's)",
    )
    parser.add_argument("--out", type=Path, required=True, help="directory for the rule files")
    args = parser.parse_args()  # fmt: skip
    if args.out.resolve() == (ROOT / "alerting").resolve():
        parser.error("--out: the committed rule files keep the defaults; pick another directory")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in RULE_FILES:
        text = (ROOT / "alerting" / name).read_text()
        (args.out / name).write_text(relink(text, args.grafana_url, args.runbook_url))
        print(args.out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
