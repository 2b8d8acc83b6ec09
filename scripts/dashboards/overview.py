"""AI Cost / Spend overview: grafana/dashboards/ai-spend-overview.json."""

from __future__ import annotations

from typing import Any

from .lib import ACC, JOB, SEL, bargauge, dashboard, money, piechart, row, stat, table, timeseries


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
        ],
    )
