"""AI Cost / Budgets and forecasts: grafana/dashboards/ai-budgets-and-forecasts.json."""

from __future__ import annotations

from typing import Any

from .lib import ACC, BUD, SEL, bargauge, dashboard, money, row, stat, table, timeseries


def build(currency: str) -> dict[str, Any]:
    m = money(currency)
    return dashboard(
        uid="aicost-budgets",
        title="AI Cost / Budgets and forecasts",
        description="Budget utilisation, end-of-period forecasts, anomaly scores and the AI cost alerts that are firing.",
        variables=("job", "provider", "account", "project", "model", "budget"),
        rows=[
            row(
                title="Headline",
                panels=[
                    stat(
                        title="Budgets over limit",
                        expr=f"count(aicost_budget_utilization_ratio{{{BUD}}} >= 1) or vector(0)",
                        unit="short",
                        description="Budgets whose spend this period reached the limit.",
                        w=6,
                    ),
                    stat(
                        title="Highest utilisation",
                        expr=f"max(aicost_budget_utilization_ratio{{{BUD}}})",
                        unit="percentunit",
                        description="The most used budget: spend / limit for its current period.",
                        w=6,
                    ),
                    stat(
                        title="Forecast to overrun",
                        expr=f"count(aicost_budget_forecast{{{BUD}}} > aicost_budget_limit{{{BUD}}}) or vector(0)",
                        unit="short",
                        description="Budgets whose forecast for the end of the period exceeds the limit.",
                        w=6,
                    ),
                    stat(
                        title="Month-end forecast",
                        expr=f"sum(aicost_cost_forecast_month_end{{{SEL}}})",
                        unit=m,
                        description="Projected cost of the current UTC month for the selected streams: month to date plus a weekday-aware run rate.",
                        w=6,
                    ),
                ],
            ),
            row(
                title="Budgets",
                panels=[
                    bargauge(
                        title="Utilisation per budget",
                        expr=f"aicost_budget_utilization_ratio{{{BUD}}}",
                        legend="{{budget}} ({{period}})",
                        unit="percentunit",
                        description="Spend / limit of each budget's current UTC period (day, ISO week, month).",
                        w=12,
                        max=1.2,
                    ),
                    table(
                        title="Spend, forecast and limit",
                        exprs=[
                            f"aicost_budget_spend{{{BUD}}}",
                            f"aicost_budget_forecast{{{BUD}}}",
                            f"aicost_budget_limit{{{BUD}}}",
                        ],
                        unit=m,
                        description="Per budget: spend so far this period (A), projected end-of-period spend (B), limit (C).",
                        w=12,
                        hide=("instance",),
                    ),
                    timeseries(
                        title="Budget spend over time",
                        targets=[
                            (f"aicost_budget_spend{{{BUD}}}", "{{budget}} spend"),
                            (f"aicost_budget_limit{{{BUD}}}", "{{budget}} limit"),
                        ],
                        unit=m,
                        description="Spend of each budget's current period against its limit.",
                        w=24,
                    ),
                ],
            ),
            row(
                title="Provider credits, limits and invoices",
                panels=[
                    stat(
                        title="Prepaid credit left",
                        expr=f"aicost_prepaid_balance{{{ACC}}}",
                        legend="{{provider}}/{{account}}",
                        unit=m,
                        description="Prepaid credit still available at the provider (xAI), converted at the rate of the day it was read.",
                        w=6,
                        h=6,
                    ),
                    stat(
                        title="Credit runway (days)",
                        expr=f"aicost_prepaid_balance{{{ACC}}} / on (job, provider, account, currency) (sum by (job, provider, account, currency) (aicost_account_cost_7d{{{ACC}}}) / 7)",
                        legend="{{provider}}/{{account}}",
                        unit="d",
                        description="Days the prepaid credit lasts at the average daily spend of the last 7 complete days.",
                        w=6,
                        h=6,
                        decimals=1,
                    ),
                    bargauge(
                        title="Spending limit used (month)",
                        expr=f"sum by (job, provider, account, currency) (aicost_cost_month_to_date{{{ACC}}}) / on (job, provider, account, currency) aicost_spending_limit{{{ACC}}}",
                        legend="{{provider}}/{{account}}",
                        unit="percentunit",
                        description="Month-to-date cost over the spending limit set at the provider; at 100 % the provider rejects requests.",
                        w=6,
                        h=6,
                        max=1,
                    ),
                    table(
                        title="Invoice preview vs daily data",
                        exprs=[
                            f"aicost_invoice_preview{{{ACC}}}",
                            f"aicost_invoice_preview_gap{{{ACC}}}",
                        ],
                        unit=m,
                        description="The provider's running invoice for the billing period (A) and its gap to the summed daily costs the exporter stored (B); about 0 when the daily data is complete.",
                        w=6,
                        h=6,
                        hide=("instance",),
                    ),
                ],
            ),
            row(
                title="Forecasts and anomalies",
                panels=[
                    table(
                        title="Month-end forecast by project",
                        expr=f"sort_desc(sum by (provider, account, project) (aicost_cost_forecast_month_end{{{SEL}}}))",
                        unit=m,
                        description="Projected cost of the current month per project.",
                        w=8,
                    ),
                    table(
                        title="Anomaly score (yesterday)",
                        expr=f"sort_desc(aicost_cost_anomaly_score{{{SEL}}})",
                        unit="short",
                        description="Yesterday's cost vs the weekday-aware 28-day baseline as a robust z-score; 3 or more is unusual.",
                        w=8,
                        decimals=1,
                    ),
                    timeseries(
                        title="Yesterday vs baseline",
                        targets=[
                            (f"sum(aicost_cost_yesterday{{{SEL}}})", "yesterday"),
                            (f"sum(aicost_cost_daily_baseline{{{SEL}}})", "baseline"),
                        ],
                        unit=m,
                        description="Cost of the last complete day against the sum of the streams' robust baselines.",
                        w=8,
                    ),
                    table(
                        title="New workloads (last 7 days)",
                        expr=f"aicost_stream_first_seen_timestamp_seconds{{{SEL}}} * 1000",
                        unit="dateTimeAsIso",
                        description="Streams (project and model) first seen in the last 7 days, with their first day.",
                        w=12,
                    ),
                    table(
                        title="Firing AI cost alerts",
                        expr='ALERTS{job=~"$job", alertname=~"AICost.*", alertstate="firing"}',
                        unit="short",
                        description="Alerts of the shipped rules that are firing now (Prometheus' ALERTS series).",
                        w=12,
                        hide=("alertstate",),
                    ),
                ],
            ),
        ],
    )
