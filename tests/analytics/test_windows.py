"""Period windows and 30-day ratios."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from exporter.analytics.windows import compute_windows, history_start, windows_for
from exporter.clock import day_range
from exporter.records import CostRecord, UsageRecord

TODAY = date(2026, 3, 2)  # a Monday, 2nd of the month


def test_window_bounds_are_utc_days_and_month_to_date_includes_today() -> None:
    w = {x.name: (x.start, x.end) for x in windows_for(TODAY)}
    assert w == {
        "today": (date(2026, 3, 2), date(2026, 3, 3)),
        "yesterday": (date(2026, 3, 1), date(2026, 3, 2)),
        "7d": (date(2026, 2, 23), date(2026, 3, 2)),
        "30d": (date(2026, 1, 31), date(2026, 3, 2)),
        "month_to_date": (date(2026, 3, 1), date(2026, 3, 3)),
    }
    assert history_start(TODAY) == date(2026, 1, 31)
    assert history_start(date(2026, 3, 31)) == date(2026, 3, 1)


def _day_rows(day: date, n: int) -> tuple[UsageRecord, CostRecord]:
    u = UsageRecord(
        "openai", "a", day, "p", "m", "completions",
        input_tokens=100 * n, cache_read_tokens=50 * n, cache_write_tokens=10 * n,
        output_tokens=40 * n, requests=n,
    )  # fmt: skip
    c = CostRecord("openai", "a", day, "p", "m", "tokens", Decimal("0.01") * n)
    return u, c


def test_totals_per_window_and_ratios() -> None:
    usage, costs = [], []
    for i, day in enumerate(day_range(history_start(TODAY), date(2026, 3, 3)), start=1):
        u, c = _day_rows(day, i)
        usage.append(u)
        costs.append(c)
    tool = CostRecord("openai", "a", TODAY, "p", "", "web_search", Decimal("0.25"))
    t = compute_windows(TODAY, usage, [*costs, tool])
    key = ("openai", "a", "p", "m", "tokens", "USD")
    # day i has cost 0.01*i; days: Jan 31 = 1 ... Mar 2 = 31
    assert t.cost["today"][key] == Decimal("0.31")
    assert t.cost["yesterday"][key] == Decimal("0.30")
    assert t.cost["7d"][key] == sum(Decimal("0.01") * i for i in range(24, 31))
    assert t.cost["30d"][key] == sum(Decimal("0.01") * i for i in range(1, 31))
    assert t.cost["month_to_date"][key] == Decimal("0.61")
    assert t.cost["today"][("openai", "a", "p", "", "web_search", "USD")] == Decimal("0.25")
    assert t.cost["yesterday"][("openai", "a", "p", "", "web_search", "USD")] == 0
    assert t.tokens["7d"][("openai", "a", "p", "m", "cache_read")] == 50 * sum(range(24, 31))
    assert t.tokens["prev_7d"][("openai", "a", "p", "m", "cache_read")] == 50 * sum(range(17, 24))
    assert t.requests["month_to_date"][("openai", "a", "p", "m")] == 61
    s = ("openai", "a", "p", "m")
    assert t.cache_hit_ratio[s] == 50 / 160
    n30 = sum(range(1, 31))
    assert t.cost_per_1k_tokens[(*s, "USD")] == Decimal("0.01") * n30 * 1000 / (200 * n30)
    assert t.cost_per_request[(*s, "USD")] == Decimal("0.01")
    # the tool line has no model: no per-token or per-request rate for it
    assert all(k[3] for k in t.cost_per_request)


def test_streams_without_recent_activity_get_zeros_not_gaps() -> None:
    u, c = _day_rows(date(2026, 2, 1), 1)
    t = compute_windows(TODAY, [u], [c])
    for window in ("today", "yesterday", "7d", "month_to_date"):
        assert t.cost[window][("openai", "a", "p", "m", "tokens", "USD")] == 0
    assert t.cost["30d"][("openai", "a", "p", "m", "tokens", "USD")] == Decimal("0.01")


def test_withheld_rows_remove_their_series_from_every_window_containing_their_day() -> None:
    u, c = _day_rows(TODAY - timedelta(days=3), 1)
    _, ok = _day_rows(TODAY - timedelta(days=20), 2)
    unconverted = CostRecord("openai", "a", TODAY - timedelta(days=3), "p", "m", "tokens",
                             Decimal("5"), currency="JPY")  # fmt: skip
    other = CostRecord("openai", "a", TODAY, "q", "m", "tokens", Decimal("1"))
    t = compute_windows(TODAY, [u], [c, ok, other], withheld=[unconverted])
    key = ("openai", "a", "p", "m", "tokens", "USD")
    for window in ("7d", "30d"):  # contain the unconverted day: withheld, not summed wrong
        assert key not in t.cost[window]
    assert t.cost["today"][key] == 0 and t.cost["yesterday"][key] == 0
    assert t.cost["30d"][("openai", "a", "q", "m", "tokens", "USD")] == 0
    assert t.cost["today"][("openai", "a", "q", "m", "tokens", "USD")] == 1
    assert ("openai", "a", "p", "m", "USD") not in t.cost_per_request  # 30d ratios too
