"""Budgets: UTC periods (ISO weeks), scopes by attribution and regex, spend and forecast."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from exporter.analytics.budgets import evaluate_budgets, period_bounds
from exporter.clock import day_range
from exporter.config import DEFAULT_THRESHOLDS, ConfigErrors, validate
from exporter.records import CostRecord
from exporter.snapshot import Attribution, BudgetStatus

ATTRIBUTIONS = {
    ("openai", "main", "p_search"): Attribution("search", "eng/search", "ana", "prod"),
    ("openai", "main", "p_search_stg"): Attribution("search", "eng/search", "ana", "staging"),
    ("openai", "main", "p_infra"): Attribution("platform", "engineering", "bo", "prod"),
    ("openai", "eu", "p_rnd"): Attribution("research", "eng", "cy", "dev"),
}  # p_other has no attribution: pool unassigned


def costs(first: date, last: date) -> list[CostRecord]:
    """1 unit per project per model per day; gpt-4o costs 10, the mini 1."""
    rows = []
    for d in day_range(first, last + timedelta(days=1)):
        for account, project in (
            ("main", "p_search"), ("main", "p_search_stg"), ("main", "p_infra"),
            ("eu", "p_rnd"), ("main", "p_other"),
        ):  # fmt: skip
            rows.append(CostRecord("openai", account, d, project, "gpt-4o", "tokens", Decimal(10)))
            rows.append(
                CostRecord("openai", account, d, project, "gpt-4o-mini", "tokens", Decimal(1))
            )
    return rows


def budgets(today: date, rows: list[CostRecord], *items: dict[str, Any]) -> dict[str, BudgetStatus]:
    config = validate({"budgets": list(items)})
    return {b.name: b for b in evaluate_budgets(config.budgets, today, rows, ATTRIBUTIONS)}


def test_periods_are_utc_days_iso_weeks_and_months() -> None:
    sunday = date(2026, 3, 1)
    assert period_bounds("day", sunday) == (sunday, date(2026, 3, 2))
    assert period_bounds("week", sunday) == (date(2026, 2, 23), date(2026, 3, 2))  # Mon..Sun
    assert period_bounds("week", date(2026, 3, 2)) == (date(2026, 3, 2), date(2026, 3, 9))
    assert period_bounds("month", sunday) == (date(2026, 3, 1), date(2026, 4, 1))
    assert period_bounds("month", date(2025, 12, 31)) == (date(2025, 12, 1), date(2026, 1, 1))
    assert period_bounds("week", date(2026, 1, 1)) == (date(2025, 12, 29), date(2026, 1, 5))


def test_spend_across_a_month_and_a_week_boundary() -> None:
    rows = costs(date(2026, 2, 1), date(2026, 3, 2))
    scope = {"project": "p_search"}
    on_sunday = budgets(
        date(2026, 3, 1), [r for r in rows if r.day <= date(2026, 3, 1)],
        {"name": "d", "period": "day", "limit": 100, "scope": scope},
        {"name": "w", "period": "week", "limit": 100, "scope": scope},
        {"name": "m", "period": "month", "limit": 100, "scope": scope},
    )  # fmt: skip
    assert on_sunday["d"].spend == 11  # March 1 only
    assert on_sunday["w"].spend == 7 * 11  # Monday Feb 23 .. Sunday March 1
    assert on_sunday["m"].spend == 11  # the month started today
    on_monday = budgets(
        date(2026, 3, 2), rows,
        {"name": "w", "period": "week", "limit": 100, "scope": scope},
        {"name": "m", "period": "month", "limit": 100, "scope": scope},
    )  # fmt: skip
    assert on_monday["w"].spend == 11  # a new ISO week
    assert on_monday["m"].spend == 22
    assert on_monday["w"].start == date(2026, 3, 2) and on_monday["w"].end == date(2026, 3, 9)


def test_scopes_by_team_pool_environment_regex_and_lists() -> None:
    today = date(2026, 3, 18)
    rows = costs(date(2026, 3, 1), today)
    day = {"period": "day", "limit": 50}
    got = budgets(
        today, rows,
        {"name": "team", **day, "scope": {"team": "search"}},
        {"name": "pool-eng", **day, "scope": {"pool": "eng"}},
        {"name": "pool-exact", **day, "scope": {"pool": "eng/search"}},
        {"name": "pool-regex", **day, "scope": {"pool": {"regex": "eng.*"}}},
        {"name": "unassigned", **day, "scope": {"pool": "unassigned"}},
        {"name": "staging", **day, "scope": {"environment": "staging"}},
        {"name": "mini", **day, "scope": {"model": {"regex": "gpt-4o-mini.*"}}},
        {"name": "list", **day, "scope": {"project": ["p_infra", "p_rnd"], "model": "gpt-4o"}},
        {"name": "account", **day, "scope": {"provider": "openai", "account": "eu"}},
        {"name": "all", **day},
    )  # fmt: skip
    spend = {name: b.spend for name, b in got.items()}
    assert spend == {
        "team": 22,  # p_search + p_search_stg
        "pool-eng": 33,  # eng/search (2 projects) + eng; not "engineering"
        "pool-exact": 22,
        "pool-regex": 44,  # the regex is not hierarchical, it simply matches "engineering" too
        "unassigned": 11,
        "staging": 11,
        "mini": 5,
        "list": 20,
        "account": 11,
        "all": 55,
    }
    assert all(b.matched for b in got.values())


def test_a_budget_that_matches_nothing_is_flagged_not_an_error() -> None:
    today = date(2026, 3, 18)
    got = budgets(
        today, costs(date(2026, 3, 1), today),
        {"name": "typo", "period": "month", "limit": 10, "scope": {"team": "serach"}},
    )  # fmt: skip
    b = got["typo"]
    assert not b.matched and b.spend == 0 and b.forecast == 0 and b.utilization == 0


def test_utilization_forecast_and_thresholds() -> None:
    today = date(2026, 3, 18)
    rows = [r for r in costs(date(2026, 2, 1), today) if r.day < today]  # nothing yet today
    got = budgets(
        today, rows,
        {"name": "m", "period": "month", "limit": 1000, "scope": {"project": "p_search"},
         "thresholds": [1.0, 0.9]},
        {"name": "d", "period": "day", "limit": "12.5", "scope": {"project": "p_search"}},
    )  # fmt: skip
    m, d = got["m"], got["d"]
    assert m.spend == 17 * 11 and m.utilization == Decimal("0.187")
    assert m.forecast == 31 * 11  # 17 days spent, today and 13 more at the steady 11
    assert m.thresholds == (Decimal("0.9"), Decimal("1.0"))
    assert d.limit == Decimal("12.5") and d.spend == 0 and d.forecast == 11
    assert d.thresholds == DEFAULT_THRESHOLDS == (Decimal("0.5"), Decimal("0.8"), Decimal("1.0"))


@pytest.mark.parametrize(
    ("budget", "error"),
    [
        ({"name": "b", "period": "year", "limit": 1},
         "budgets[0].period: Input should be 'day', 'week' or 'month'"),
        ({"name": "b", "period": "day", "limit": 0},
         "budgets[0].limit: Input should be greater than 0"),
        ({"name": "b", "period": "day"}, "budgets[0].limit: Field required"),
        ({"name": "b c", "period": "day", "limit": 1},
         "budgets[0].name: must start with a letter or digit and use letters, digits, '_', '.', "
         "':', '-' (it becomes the `budget` label)"),
        ({"name": "b", "period": "day", "limit": 1, "scope": {"teem": "x"}},
         "budgets[0].scope.teem: unknown key"),
        ({"name": "b", "period": "day", "limit": 1, "scope": {"model": {"regex": "gpt-4o["}}},
         "budgets[0].scope.model: invalid regular expression: unterminated character set at "
         "position 6"),
        ({"name": "b", "period": "day", "limit": 1, "thresholds": [0.8, 0.8]},
         "budgets[0].thresholds: thresholds must be distinct"),
        ({"name": "b", "period": "day", "limit": 1, "thresholds": [0]},
         "budgets[0].thresholds: each threshold is a fraction of the limit, > 0 and <= 10"),
        ({"name": "b", "period": "day", "limit": 1, "thresholds": []},
         "budgets[0].thresholds: give at least one threshold, e.g. [0.8, 1.0]"),
    ],
)  # fmt: skip
def test_bad_budgets_are_reported_with_their_yaml_path(budget: dict[str, Any], error: str) -> None:
    with pytest.raises(ConfigErrors) as info:
        validate({"budgets": [budget]})
    assert info.value.errors == [error]


def test_budget_names_must_be_unique() -> None:
    with pytest.raises(ConfigErrors) as info:
        validate({"budgets": [{"name": "b", "period": "day", "limit": 1}] * 2})
    assert info.value.errors == [
        "budgets: budgets[0] and budgets[1] are both named 'b'; budget names must be unique"
    ]


def test_a_limit_written_as_a_yaml_float_is_read_as_written() -> None:
    config = validate({"budgets": [{"name": "b", "period": "day", "limit": 50.1}]})
    assert config.budgets[0].limit == Decimal("50.1")
