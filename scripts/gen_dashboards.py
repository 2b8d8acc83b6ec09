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
from pathlib import Path

from dashboards import health, models, overview, savings
from dashboards.lib import ACC, SEL, Dashboard, Panel, Row, dashboard_json, money, sorted_table
from generated import write_or_check

OUT = Path(__file__).resolve().parent.parent / "grafana" / "dashboards"


BUD = 'job=~"$job", budget=~"$budget"'


def budgets(cur: str) -> Dashboard:
    m = money(cur)
    return Dashboard(
        uid="aicost-budgets",
        title="AI Cost / Budgets and forecasts",
        description="Budget utilisation, end-of-period forecasts, anomaly scores and the AI cost alerts that are firing.",
        variables=("job", "provider", "account", "project", "model", "budget"),
        rows=[
            Row(
                "Headline",
                [
                    Panel(
                        "Budgets over limit",
                        "stat",
                        [
                            (
                                f"count(aicost_budget_utilization_ratio{{{BUD}}} >= 1) or vector(0)",
                                "",
                            )
                        ],
                        "short",
                        "Budgets whose spend this period reached the limit.",
                        w=6,
                        h=4,
                        instant=True,
                    ),
                    Panel(
                        "Highest utilisation",
                        "stat",
                        [(f"max(aicost_budget_utilization_ratio{{{BUD}}})", "")],
                        "percentunit",
                        "The most used budget: spend / limit for its current period.",
                        w=6,
                        h=4,
                        instant=True,
                    ),
                    Panel(
                        "Forecast to overrun",
                        "stat",
                        [
                            (
                                f"count(aicost_budget_forecast{{{BUD}}} > aicost_budget_limit{{{BUD}}}) or vector(0)",
                                "",
                            )
                        ],
                        "short",
                        "Budgets whose forecast for the end of the period exceeds the limit.",
                        w=6,
                        h=4,
                        instant=True,
                    ),
                    Panel(
                        "Month-end forecast",
                        "stat",
                        [(f"sum(aicost_cost_forecast_month_end{{{SEL}}})", "")],
                        m,
                        "Projected cost of the current UTC month for the selected streams: month to date plus a weekday-aware run rate.",
                        w=6,
                        h=4,
                        instant=True,
                    ),
                ],
            ),
            Row(
                "Budgets",
                [
                    Panel(
                        "Utilisation per budget",
                        "bargauge",
                        [(f"aicost_budget_utilization_ratio{{{BUD}}}", "{{budget}} ({{period}})")],
                        "percentunit",
                        "Spend / limit of each budget's current UTC period (day, ISO week, month).",
                        w=12,
                        instant=True,
                        max=1.2,
                        options={"displayMode": "gradient", "orientation": "horizontal"},
                    ),
                    Panel(
                        "Spend, forecast and limit",
                        "table",
                        [
                            (f"aicost_budget_spend{{{BUD}}}", ""),
                            (f"aicost_budget_forecast{{{BUD}}}", ""),
                            (f"aicost_budget_limit{{{BUD}}}", ""),
                        ],
                        m,
                        "Per budget: spend so far this period (A), projected end-of-period spend (B), limit (C).",
                        w=12,
                        instant=True,
                        transformations=sorted_table({"instance": True}),
                    ),
                    Panel(
                        "Budget spend over time",
                        "timeseries",
                        [
                            (f"aicost_budget_spend{{{BUD}}}", "{{budget}} spend"),
                            (f"aicost_budget_limit{{{BUD}}}", "{{budget}} limit"),
                        ],
                        m,
                        "Spend of each budget's current period against its limit.",
                        w=24,
                    ),
                ],
            ),
            Row(
                "Provider credits, limits and invoices",
                [
                    Panel(
                        "Prepaid credit left",
                        "stat",
                        [(f"aicost_prepaid_balance{{{ACC}}}", "{{provider}}/{{account}}")],
                        m,
                        "Prepaid credit still available at the provider (xAI), converted at the rate of the day it was read.",
                        w=6,
                        h=6,
                        instant=True,
                    ),
                    Panel(
                        "Credit runway (days)",
                        "stat",
                        [
                            (
                                f"aicost_prepaid_balance{{{ACC}}} / on (job, provider, account, currency) (sum by (job, provider, account, currency) (aicost_cost_7d{{{ACC}}}) / 7)",
                                "{{provider}}/{{account}}",
                            )
                        ],
                        "d",
                        "Days the prepaid credit lasts at the average daily spend of the last 7 complete days.",
                        w=6,
                        h=6,
                        instant=True,
                        decimals=1,
                    ),
                    Panel(
                        "Spending limit used (month)",
                        "bargauge",
                        [
                            (
                                f"sum by (job, provider, account, currency) (aicost_cost_month_to_date{{{ACC}}}) / on (job, provider, account, currency) aicost_spending_limit{{{ACC}}}",
                                "{{provider}}/{{account}}",
                            )
                        ],
                        "percentunit",
                        "Month-to-date cost over the spending limit set at the provider; at 100 % the provider rejects requests.",
                        w=6,
                        h=6,
                        instant=True,
                        max=1,
                        options={"displayMode": "gradient", "orientation": "horizontal"},
                    ),
                    Panel(
                        "Invoice preview vs daily data",
                        "table",
                        [
                            (f"aicost_invoice_preview{{{ACC}}}", ""),
                            (f"aicost_invoice_preview_gap{{{ACC}}}", ""),
                        ],
                        m,
                        "The provider's running invoice for the billing period (A) and its gap to the summed daily costs the exporter stored (B); about 0 when the daily data is complete.",
                        w=6,
                        h=6,
                        instant=True,
                        transformations=sorted_table({"instance": True}),
                    ),
                ],
            ),
            Row(
                "Forecasts and anomalies",
                [
                    Panel(
                        "Month-end forecast by project",
                        "table",
                        [
                            (
                                f"sort_desc(sum by (provider, account, project) (aicost_cost_forecast_month_end{{{SEL}}}))",
                                "",
                            )
                        ],
                        m,
                        "Projected cost of the current month per project.",
                        w=8,
                        instant=True,
                        transformations=sorted_table(),
                    ),
                    Panel(
                        "Anomaly score (yesterday)",
                        "table",
                        [(f"sort_desc(aicost_cost_anomaly_score{{{SEL}}})", "")],
                        "short",
                        "Yesterday's cost vs the weekday-aware 28-day baseline as a robust z-score; 3 or more is unusual.",
                        w=8,
                        instant=True,
                        transformations=sorted_table(),
                        decimals=1,
                    ),
                    Panel(
                        "Yesterday vs baseline",
                        "timeseries",
                        [
                            (f"sum(aicost_cost_yesterday{{{SEL}}})", "yesterday"),
                            (f"sum(aicost_cost_daily_baseline{{{SEL}}})", "baseline"),
                        ],
                        m,
                        "Cost of the last complete day against the sum of the streams' robust baselines.",
                        w=8,
                    ),
                    Panel(
                        "New workloads (last 7 days)",
                        "table",
                        [(f"aicost_stream_first_seen_timestamp_seconds{{{SEL}}} * 1000", "")],
                        "dateTimeAsIso",
                        "Streams (project and model) first seen in the last 7 days, with their first day.",
                        w=12,
                        instant=True,
                        transformations=sorted_table(),
                    ),
                    Panel(
                        "Firing AI cost alerts",
                        "table",
                        [('ALERTS{job=~"$job", alertname=~"AICost.*", alertstate="firing"}', "")],
                        "short",
                        "Alerts of the shipped rules that are firing now (Prometheus' ALERTS series).",
                        w=12,
                        instant=True,
                        transformations=sorted_table({"alertstate": True}),
                    ),
                ],
            ),
        ],
    )


DASHBOARDS = {
    "ai-spend-overview.json": overview.build,
    "ai-models-and-tokens.json": models.build,
    "ai-budgets-and-forecasts.json": lambda cur: dashboard_json(budgets(cur)),
    "ai-savings.json": savings.build,
    "ai-exporter-health.json": health.build,
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
