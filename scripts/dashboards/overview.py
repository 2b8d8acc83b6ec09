"""AI Cost / Spend overview: grafana/dashboards/ai-spend-overview.json."""

from __future__ import annotations

from typing import Any

from .lib import (
    ACC,
    JOB,
    MODEL,
    SEL,
    bargauge,
    dashboard,
    money,
    piechart,
    row,
    stat,
    table,
    timeseries,
)


def build(currency: str) -> dict[str, Any]:
    m = money(currency)
    return dashboard(
        uid="aicost-overview",
        title="AI Cost / Spend overview",
        description="AI API spend by provider, model and project, from the providers' billed cost.",
        rows=[
            row(
                title="Headline",
                panels=[
                    stat(
                        title="Month to date",
                        expr=f"sum(aicost_cost_month_to_date{{{SEL}}})",
                        unit=m,
                        description="Billed cost from the 1st of the UTC month through now, all selected streams.",
                        w=4,
                    ),
                    stat(
                        title="Today",
                        expr=f"sum(aicost_cost_today{{{SEL}}})",
                        unit=m,
                        description="Cost so far in the current UTC day; partial and revised by the provider for days.",
                        w=4,
                    ),
                    stat(
                        title="Yesterday",
                        expr=f"sum(aicost_cost_yesterday{{{SEL}}})",
                        unit=m,
                        description="Cost of the last complete UTC day (may still be revised for ~3 days).",
                        w=4,
                    ),
                    stat(
                        title="Forecast (month end)",
                        expr=f"sum(aicost_cost_forecast_month_end{{{SEL}}})",
                        unit=m,
                        description="Projected cost of the current UTC month: month to date plus a weekday-aware run rate of recent complete days.",
                        w=4,
                    ),
                    stat(
                        title="Month budgets used",
                        expr='max(aicost_budget_utilization_ratio{job=~"$job", period="month"})',
                        unit="percentunit",
                        description="Utilisation of the most used monthly budget (spend / limit).",
                        w=4,
                    ),
                    stat(
                        title="Data complete through",
                        expr=f"min(aicost_data_complete_through_timestamp_seconds{{{ACC}}}) * 1000",
                        unit="dateTimeFromNow",
                        description="Every UTC day before this time was read after it closed (oldest across selected providers).",
                        w=4,
                    ),
                ],
            ),
            row(
                title="Breakdown",
                panels=[
                    bargauge(
                        title="Month to date by provider",
                        expr=f"sum by (provider, account) (aicost_cost_month_to_date{{{SEL}}})",
                        legend="{{provider}}/{{account}}",
                        unit=m,
                        description="Month-to-date billed cost per provider account.",
                        w=8,
                    ),
                    table(
                        title="Month to date by model (ranked)",
                        expr=f'sort_desc(sum by (provider, model) (aicost_cost_month_to_date{{{SEL}, model!=""}}))',
                        unit=m,
                        description='Month-to-date token cost per model, highest first. Tool costs (model="") are excluded.',
                        w=8,
                    ),
                    table(
                        title="Month to date by project",
                        expr=f"sort_desc(sum by (provider, account, project) (aicost_cost_month_to_date{{{SEL}}}) * on (provider, account, project) group_left (project_name) max by (provider, account, project, project_name) (aicost_project_info{{{JOB}}}))",
                        unit=m,
                        description="Month-to-date cost per project/workspace with its name from aicost_project_info.",
                        w=8,
                    ),
                    table(
                        title="Month to date by team",
                        expr='sort_desc(team:aicost_cost_month_to_date:sum{job=~"$job"})',
                        unit=m,
                        description="Month-to-date cost per team (attribution config), via the recording rule team:aicost_cost_month_to_date:sum; an empty team is unattributed.",
                        w=8,
                    ),
                    piechart(
                        title="Cost by type (month to date)",
                        expr=f"sum by (cost_type) (aicost_cost_month_to_date{{{SEL}}})",
                        legend="{{cost_type}}",
                        unit=m,
                        description="Token cost vs agentic tool costs (web search, code execution, file search) this month.",
                        w=8,
                    ),
                ],
            ),
            row(
                title="Trend",
                panels=[
                    timeseries(
                        title="Daily cost by provider",
                        expr=f"sum by (provider) (aicost_cost_yesterday{{{SEL}}})",
                        legend="{{provider}}",
                        unit=m,
                        description="Cost of the previous complete UTC day as Prometheus saw it; each day's value holds for a day.",
                        w=12,
                    ),
                    timeseries(
                        title="Cost today by model",
                        expr=f"sum by (model) (aicost_cost_today{{{SEL}}})",
                        legend="{{model}}",
                        unit=m,
                        description="Running cost of the current UTC day per model; resets at midnight UTC.",
                        w=12,
                    ),
                ],
            ),
            row(
                title="Provider deep-dive: direct APIs and cloud routes",
                panels=[
                    bargauge(
                        title="30-day cost by provider route",
                        expr=f"sum by (provider) (aicost_cost_30d{{{SEL}}})",
                        legend="{{provider}}",
                        unit=m,
                        description="Billed cost of the last 30 complete days per route: the direct APIs (openai, anthropic, xai) and the cloud accounts (bedrock, azure_openai, vertex).",
                        w=6,
                    ),
                    bargauge(
                        title="Effective token rate by provider route",
                        expr=f'sum by (provider) (aicost_model_cost_30d{{{MODEL}, cost_type="tokens"}}) / sum by (provider) (aicost_model_tokens_30d{{{MODEL}}}) * 1000',
                        legend="{{provider}}",
                        unit=m,
                        description="30-day billed token cost per 1K tokens of each route, over all projects (the per-model roll-ups: the project filter does not apply); the same model is cheaper where this is lower (see the cross_provider recommendation).",
                        w=6,
                        gradient=False,
                    ),
                    bargauge(
                        title="Cheaper-route savings",
                        expr=f'sum by (provider, target) (aicost_savings_monthly{{{SEL}, recommendation="cross_provider"}})',
                        legend="{{provider}} -> {{target}}",
                        unit=m,
                        description="Projected monthly saving of moving a model's traffic from a route to the cheaper route serving the same model.",
                        w=6,
                    ),
                    timeseries(
                        title="Data age beyond the expected lag",
                        expr=f"time() - aicost_data_complete_through_timestamp_seconds{{{ACC}}} - aicost_data_expected_lag_seconds{{{ACC}}}",
                        legend="{{provider}}/{{account}}",
                        unit="s",
                        description="Age of the newest complete day less the provider's normal lag (Azure 2 days, Bedrock and Vertex 1 day, direct APIs 0); above 26 h the stale-data alert fires.",
                        w=6,
                    ),
                ],
            ),
        ],
    )
