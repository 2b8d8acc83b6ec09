"""AI Cost / Chargeback and history: grafana/dashboards/ai-chargeback.json.

Reads every series through ``last_over_time(X[1d])``, so the daily samples written by
``ai-cost-exporter backfill`` (one per series and day) draw the whole stored history, and
live scrapes continue the same lines.
"""

from __future__ import annotations

from typing import Any

from .lib import ACC, SEL, bargauge, dashboard, money, row, stat, table, timeseries


def last(metric: str, sel: str = SEL) -> str:
    return f"last_over_time({metric}{{{sel}}}[1d])"


def by_label(label: str, metric: str = "aicost_cost_month_to_date") -> str:
    """``metric`` summed by an attribution label of ``aicost_project_info``."""
    info = f"max by (job, provider, account, project, {label}) ({last('aicost_project_info', ACC)})"
    return (
        f"sum by ({label}) (sum by (job, provider, account, project) ({last(metric)})"
        f" * on (job, provider, account, project) group_left ({label}) {info})"
    )


def build(currency: str) -> dict[str, Any]:
    m = money(currency)
    mtd, forecast = last("aicost_cost_month_to_date"), last("aicost_cost_forecast_month_end")
    unassigned = last("aicost_project_info", ACC + ', pool="unassigned"')
    return dashboard(
        uid="aicost-chargeback",
        title="AI Cost / Chargeback and history",
        description="Showback and chargeback by team and pool per month, and the month-end forecast against the actual spend, over the whole stored history (ai-cost-exporter backfill) followed by live scrapes.",
        rows=[
            row(
                title="Headline",
                panels=[
                    stat(
                        title="Month to date",
                        expr=f"sum({mtd})",
                        unit=m,
                        description="Cost of the current UTC month so far for the selected streams.",
                        w=6,
                    ),
                    stat(
                        title="Month-end forecast",
                        expr=f"sum({forecast})",
                        unit=m,
                        description="Projected cost of the current month: month to date plus a weekday-aware run rate.",
                        w=6,
                    ),
                    stat(
                        title="Unassigned share (month)",
                        expr=f"sum(sum by (job, provider, account, project) ({mtd}) * on (job, provider, account, project) group_left max by (job, provider, account, project) ({unassigned})) / sum({mtd}) or vector(0)",
                        unit="percentunit",
                        description="Share of this month's cost in projects no attribution rule gives a pool (chargeback gap).",
                        w=6,
                    ),
                    stat(
                        title="Teams charged (month)",
                        expr=f"count({by_label('team')} > 0)",
                        unit="short",
                        description="Teams (attribution labels) with cost this month; '' counts projects without a team.",
                        w=6,
                    ),
                ],
            ),
            row(
                title="Chargeback",
                panels=[
                    *(
                        timeseries(
                            title=f"Cost by {label} (month to date)",
                            expr=by_label(label),
                            legend=f"{{{{{label}}}}}",
                            unit=m,
                            description=f"Month-to-date cost per {label}: the value on the last day of a month is that month's chargeback. {note}",
                            w=12,
                        )
                        for label, note in (
                            ("team", "Empty team = no rule sets one."),
                            ("pool", "'unassigned' = no rule gives a pool."),
                        )
                    ),
                    table(
                        title="This month by team and pool",
                        expr=f"sort_desc(sum by (team, pool) (sum by (job, provider, account, project) ({mtd}) * on (job, provider, account, project) group_left (team, pool) max by (job, provider, account, project, team, pool) ({last('aicost_project_info', ACC)})))",
                        unit=m,
                        description="Month-to-date cost per team and pool (the chargeback statement of the month so far; `ai-cost-exporter report` prints the same for any stored month).",
                        w=12,
                    ),
                    bargauge(
                        title="Month-end forecast by team",
                        expr=by_label("team", "aicost_cost_forecast_month_end"),
                        legend="{{team}}",
                        unit=m,
                        description="Projected cost of the current month per team.",
                        w=12,
                    ),
                ],
            ),
            row(
                title="Forecast vs actual",
                panels=[
                    timeseries(
                        title="Month-end forecast vs actual",
                        targets=[
                            (f"sum({forecast})", "month-end forecast"),
                            (f"sum({mtd})", "actual (month to date)"),
                        ],
                        unit=m,
                        description="The forecast for the month's end as it stood each day against the month-to-date actual; where the actual ends a month is what the forecast should have said.",
                        w=16,
                    ),
                    timeseries(
                        title="Daily cost by provider",
                        expr=f"sum by (provider) ({last('aicost_cost_yesterday')})",
                        legend="{{provider}}",
                        unit=m,
                        description="Cost of the last complete UTC day, per provider, over the stored history.",
                        w=8,
                    ),
                ],
            ),
        ],
    )
