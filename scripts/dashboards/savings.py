"""AI Cost / Savings: grafana/dashboards/ai-savings.json."""

from __future__ import annotations

from typing import Any

from .lib import ACC, SEL, bargauge, dashboard, money, piechart, row, stat, table, timeseries


def build(currency: str) -> dict[str, Any]:
    m = money(currency)
    return dashboard(
        uid="aicost-savings",
        title="AI Cost / Savings",
        description="Savings recommendations (batch API, cheaper model, cheaper route), inactive API keys and realised prompt-cache savings.",
        rows=[
            row(
                title="Headline",
                panels=[
                    stat(
                        title="Recommended savings per month",
                        expr=f"sum(aicost_savings_monthly{{{SEL}}}) or vector(0)",
                        unit=m,
                        description="Sum of all published recommendations' projected savings per 30 days. Recommendations can overlap on one stream (batch and downgrade), so treat this as an upper bound.",
                        w=6,
                    ),
                    stat(
                        title="Inactive key exposure per month",
                        expr=f"sum(aicost_inactive_key_exposure_monthly{{{ACC}}}) or vector(0)",
                        unit=m,
                        description="What quiet-but-valid API keys would cost per 30 days if they resumed at their old rate.",
                        w=6,
                    ),
                    stat(
                        title="Prompt-cache savings (30d)",
                        expr=f"sum(aicost_cache_savings_30d{{{SEL}}}) or vector(0)",
                        unit=m,
                        description="Realised over the last 30 complete days: cache-read tokens x (input - cache-read list price).",
                        w=6,
                    ),
                    stat(
                        title="Open recommendations",
                        expr=f"count(aicost_savings_monthly{{{SEL}}}) or vector(0)",
                        unit="short",
                        description="Published (not dismissed) recommendations.",
                        w=6,
                    ),
                ],
            ),
            row(
                title="Recommendations",
                panels=[
                    table(
                        title="Recommendations ranked by monthly saving",
                        expr=f"sort_desc(aicost_savings_monthly{{{SEL}}})",
                        unit=m,
                        description="Each recommendation with its stream and target (cheaper model, cheaper provider route, or batch). Evidence: `ai-cost-exporter recommendations --config FILE`.",
                        w=24,
                        h=10,
                    ),
                    piechart(
                        title="Savings by kind",
                        expr=f"sum by (recommendation) (aicost_savings_monthly{{{SEL}}})",
                        legend="{{recommendation}}",
                        unit=m,
                        description="Projected monthly savings per recommendation kind.",
                        w=8,
                    ),
                    timeseries(
                        title="Recommended savings over time",
                        expr=f"sum by (recommendation) (aicost_savings_monthly{{{SEL}}})",
                        legend="{{recommendation}}",
                        unit=m,
                        description="How the projected monthly savings evolve as teams act on them.",
                        w=16,
                    ),
                ],
            ),
            row(
                title="Keys and caching",
                panels=[
                    table(
                        title="Inactive API keys",
                        expr=f"sort_desc(aicost_inactive_key_exposure_monthly{{{ACC}}})",
                        unit=m,
                        description="Keys with spend in days 31-60 and near zero in the last 30 days: rotate or revoke.",
                        w=12,
                    ),
                    bargauge(
                        title="Prompt-cache savings by model (30d)",
                        expr=f"sum by (provider, model) (aicost_cache_savings_30d{{{SEL}}})",
                        legend="{{provider}} {{model}}",
                        unit=m,
                        description="Realised prompt-cache savings over the last 30 complete days, per model.",
                        w=12,
                    ),
                ],
            ),
        ],
    )
