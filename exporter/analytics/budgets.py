"""Budgets: spend, end-of-period forecast and utilisation of each configured budget.

A budget has a ``period`` (``day``, ``week`` or ``month``, in UTC; weeks are ISO weeks,
Monday to Sunday, so a week can straddle two months), a ``limit`` in the accounting
currency and a ``scope``: selectors on the cost row (provider, account, project, model)
and on its project's attribution (team, pool, environment). All given selectors must
match; an exact ``pool`` also matches the pools below it (``eng`` covers ``eng/search``).

* spend = cost in scope from the first day of the current period through today (today is
  partial and revised, like ``aicost_cost_month_to_date``);
* forecast = :func:`~exporter.analytics.forecast.forecast_period` over the scope's daily
  cost, to the end of the period;
* matched = whether the scope matched any cost row in the loaded history (the last 30
  complete days and the month so far). A budget that matches nothing is almost always a
  typo; it is exposed as ``aicost_budget_scope_matched 0`` and logged as a warning.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from decimal import Decimal

from exporter.analytics.attribution import ProjectKey
from exporter.analytics.forecast import forecast_period, month_end
from exporter.analytics.series import DailySeries, daily_by_stream
from exporter.config import BudgetConfig, BudgetScope
from exporter.records import CostRecord, Stream
from exporter.snapshot import UNASSIGNED, Attribution, BudgetStatus


def period_bounds(period: str, today: date) -> tuple[date, date]:
    """``[start, end)`` of the UTC period containing ``today``."""
    if period == "day":
        return today, today + timedelta(days=1)
    if period == "week":
        start = today - timedelta(days=today.weekday())  # ISO: Monday
        return start, start + timedelta(days=7)
    if period == "month":
        return today.replace(day=1), month_end(today)
    raise ValueError(f"unknown budget period {period!r}")


def in_scope(scope: BudgetScope, stream: Stream, attribution: Attribution) -> bool:
    """Whether a stream's cost (provider, account, project, model) counts for a budget."""
    provider, account, project, model = stream
    checks = (
        (scope.provider, provider),
        (scope.account, account),
        (scope.project, project),
        (scope.model, model),
        (scope.team, attribution.team),
        (scope.environment, attribution.environment),
    )
    if not all(sel is None or sel.matches(value) for sel, value in checks):
        return False
    return scope.pool is None or scope.pool.matches(attribution.pool, hierarchical=True)


def evaluate_budgets(
    budgets: Sequence[BudgetConfig],
    today: date,
    costs: Iterable[CostRecord],
    attributions: Mapping[ProjectKey, Attribution],
    series: Mapping[Stream, DailySeries] | None = None,
) -> list[BudgetStatus]:
    """The status of every budget; ``costs`` must cover the last 28 complete days and the
    current period of every budget (see ``governance.history_start``); ``series``: their
    daily totals per stream when already built."""
    series = daily_by_stream(costs) if series is None else series
    out = []
    for budget in budgets:
        daily: dict[date, Decimal] = defaultdict(Decimal)
        matched = False
        for stream, stream_daily in series.items():
            if in_scope(budget.scope, stream, attributions.get(stream[:3], UNASSIGNED)):
                matched = True
                for day, amount in stream_daily.items():
                    daily[day] += amount
        out.append(budget_status(budget, today, daily, matched))
    return out


def budget_status(
    budget: BudgetConfig, today: date, daily: Mapping[date, Decimal], matched: bool
) -> BudgetStatus:
    """The status of one budget from the daily cost of its scope (``daily`` must cover the
    last 28 complete days and the current period)."""
    start, end = period_bounds(budget.period, today)
    spend = sum((v for d, v in daily.items() if start <= d < end), Decimal(0))
    return BudgetStatus(
        name=budget.name,
        period=budget.period,
        start=start,
        end=end,
        limit=budget.limit,
        spend=spend,
        forecast=forecast_period(daily, today, start, end),
        thresholds=budget.thresholds,
        matched=matched,
    )
