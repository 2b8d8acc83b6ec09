"""The Grafana app plugin's manifest: grafana/plugin/plugin.json (generated with the dashboards).

The plugin bundles every generated dashboard (``includes`` of type dashboard, imported when
the app is enabled) and puts each in the app's navigation (``includes`` of type page with
``addToNav``; the first is the app's landing page). The shape follows Grafana's published
plugin schema (tests/bundle/schemas/plugin.schema.json).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_ID = "aicostexporter-aicost-app"  # <org>-<name>-app, Grafana's app id rule
GRAFANA_DEPENDENCY = ">=10.4.0"
DIR = ROOT / "grafana" / "plugin"


def version() -> str:
    """The plugin's version is the exporter's (pyproject.toml): one release, one number."""
    with (ROOT / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def manifest(dashboards: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """plugin.json for ``dashboards`` (file name -> JSON model), in navigation order."""
    includes: list[dict[str, Any]] = []
    for name, model in dashboards.items():
        includes.append({"type": "dashboard", "name": model["title"], "path": f"dashboards/{name}"})
    for i, model in enumerate(dashboards.values()):
        includes.append(
            {
                "type": "page",
                "name": model["title"].removeprefix("AI Cost / "),
                "path": f"/d/{model['uid']}",
                "role": "Viewer",
                "addToNav": True,
                "defaultNav": i == 0,
            }
        )
    return {
        "$schema": "https://raw.githubusercontent.com/grafana/grafana/main/docs/sources/developers/plugins/plugin.schema.json",
        "type": "app",
        "name": "AI Cost",
        "id": PLUGIN_ID,
        "info": {
            "description": (
                "Dashboards for ai-cost-exporter: AI API spend, tokens, budgets, forecasts and "
                "savings from the providers' billed cost. Needs a Prometheus data source "
                "scraping the exporter."
            ),
            "author": {"name": "ai-cost-exporter"},
            "keywords": ["ai", "llm", "cost", "finops", "openai", "anthropic", "prometheus"],
            "logos": {"small": "img/logo.svg", "large": "img/logo.svg"},
            "version": version(),
            "updated": "%TODAY%",  # scripts/build_plugin writes the build date
        },
        "dependencies": {"grafanaDependency": GRAFANA_DEPENDENCY, "plugins": []},
        "includes": includes,
    }
