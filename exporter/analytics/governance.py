"""Guardrails and forecasting in one pass: attribution, budgets, forecasts, baselines.

:func:`compute_governance` is what the snapshot builder (``analytics/build.py``) calls
after every poll; it is a pure function of the stored rows, the config and ``today``.
Amounts are taken to be in the accounting currency already; every money value is labelled
with ``config.currency``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta

from exporter.analytics.anomaly import BASELINE_DAYS, new_streams, stream_baselines
from exporter.analytics.attribution import project_infos
from exporter.analytics.budgets import evaluate_budgets, period_bounds
from exporter.analytics.forecast import RUN_RATE_DAYS, month_end_forecasts
from exporter.analytics.series import daily_by_stream
from exporter.config import Config
from exporter.records import CostRecord, ProjectRecord, Stream, UsageRecord
from exporter.snapshot import Governance


def history_start(today: date) -> date:
    """The oldest day the governance analytics read: the baseline of yesterday (28 days
    before it), the run rate (28 complete days) and the current week and month."""
    return min(
        today - timedelta(days=BASELINE_DAYS + 1),
        today - timedelta(days=RUN_RATE_DAYS),
        period_bounds("week", today)[0],
        period_bounds("month", today)[0],
    )


def compute_governance(
    config: Config,
    today: date,
    costs: Sequence[CostRecord],
    usage: Sequence[UsageRecord] = (),
    projects: Sequence[ProjectRecord] = (),
    first_seen: Mapping[Stream, date] | None = None,
) -> Governance:
    """``costs``/``usage`` from :func:`history_start` through today; ``first_seen``: each
    stream's first day with data in the whole store (only recent ones matter)."""
    infos = project_infos(config.attribution, projects, [*costs, *usage])
    attributions = {(i.provider, i.account, i.project): i.attribution for i in infos}
    series = daily_by_stream(costs)  # once for budgets, forecasts and baselines
    return Governance(
        currency=config.currency,
        project_info=infos,
        budgets=evaluate_budgets(config.budgets, today, costs, attributions, series),
        forecasts=month_end_forecasts(costs, today, series),
        baselines=stream_baselines(costs, today, series),
        new_streams=new_streams(first_seen or {}, today),
    )
