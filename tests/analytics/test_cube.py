"""The refresh cube and its analytics give exactly what the record path gives.

Randomised histories are written through ``replace_window`` (withheld rows, revisions that
lower or remove rows, tool costs with ``model=""``, amounts that are exact in pico-units
and 28-digit cross-rate conversions, several source currencies), then the cube is updated
incrementally (polls, day rollovers across a month boundary) and compared, field by field,
with :func:`compute_windows` / :func:`compute_governance` over the rows read now.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.analytics import cardinality, governance
from exporter.analytics.aggregated import CubeAnalytics
from exporter.analytics.anomaly import NEW_STREAM_DAYS
from exporter.analytics.build import history_range
from exporter.analytics.cube import Cube, units
from exporter.analytics.rollups import compute_rollups
from exporter.analytics.windows import compute_windows, history_start
from exporter.config import Config, MetricsConfig
from exporter.records import CostRecord, FetchResult, ProjectRecord, UsageRecord
from exporter.store import Store

ACCOUNTS = [("openai", "oa"), ("anthropic", "an")]
STREAMS = [("p1", "gpt-4o"), ("p1", "gpt-4o-mini"), ("p2", "gpt-4o"), ("p2", "")]
THIRD = Decimal(1) / Decimal(3)  # a cross rate: conversions get 28 significant digits

CONFIG = Config.model_validate(
    {
        "budgets": [
            {"name": "all-monthly", "period": "month", "limit": 100, "scope": {}},
            {"name": "oa-weekly", "period": "week", "limit": 10, "scope": {"account": "oa"}},
            {"name": "p2-daily", "period": "day", "limit": 1, "scope": {"project": "p2"}},
            {"name": "none", "period": "month", "limit": 1, "scope": {"project": "zzz"}},
        ]
    }
)


METRICS = [
    MetricsConfig(),
    MetricsConfig.model_validate({"windows": ["today", "30d"], "token_types": True}),
    MetricsConfig.model_validate({"windows": ["7d"], "stream_ratios": True}),
]


def annotate(c: CostRecord) -> dict[str, Any]:
    """FX columns as the service writes them: USD is identity; EUR converts at 1/3 (28
    digits); GBP has no rate (withheld); JPY converts to an exact amount."""
    if c.currency == "USD":
        return {"fx_amount": format(c.amount, "f"), "fx_currency": "USD", "fx_status": "final"}
    if c.currency == "GBP":
        return {"fx_currency": "USD", "fx_status": "error", "fx_error": "no_rate"}
    rate = THIRD if c.currency == "EUR" else Decimal("0.01")
    status = "provisional" if c.currency == "EUR" else "final"
    return {"fx_amount": format(c.amount * rate, "f"), "fx_currency": "USD", "fx_status": status}


amounts = st.one_of(
    st.integers(-5_000_000, 50_000_000).map(lambda n: Decimal(n).scaleb(-6)),
    st.integers(1, 10**14).map(lambda n: Decimal(n).scaleb(-13)),  # 13 decimals: exact text
)
row = st.tuples(
    st.integers(0, 1),  # account
    st.integers(0, len(STREAMS) - 1),
    st.sampled_from(["tokens", "web_search", "other"]),
    amounts,
    st.sampled_from(["USD", "USD", "USD", "EUR", "GBP", "JPY"]),
    st.integers(0, 3000),  # tokens
    st.integers(0, 80),  # day offset
)


def write(store: Store, account: int, start: date, end: date, rows: list[Any]) -> None:
    provider, name = ACCOUNTS[account]
    result = FetchResult(start, end)
    result.projects = [ProjectRecord(provider, name, p, f"Project {p}") for p in ("p1", "p2")]
    seen: set[tuple[Any, ...]] = set()
    span = (end - start).days
    for i, (acc, s, cost_type, amount, currency, tokens, offset) in enumerate(rows):
        if acc != account:
            continue
        project, model = STREAMS[s]
        day = start + timedelta(days=offset % span)
        if model == "":
            cost_type = "web_search" if cost_type == "tokens" else cost_type
        line = f"{model} {cost_type} {currency} {i % 3}"
        key = (day, project, line, model)
        if key in seen:
            continue
        seen.add(key)
        result.costs.append(
            CostRecord(provider, name, day, project, model, cost_type, amount, currency, line)
        )
        if model and (day, project, model) not in seen:
            seen.add((day, project, model))
            result.usage.append(
                UsageRecord(
                    provider, name, day, project, model, "completions",
                    input_tokens=tokens, output_tokens=tokens // 3 + i % 7,
                    cache_read_tokens=tokens // 5, cache_write_tokens=i % 11, requests=i % 13,
                )
            )  # fmt: skip
    store.replace_window(provider, name, result, annotate=annotate)


def check(store: Store, cube: Cube, analytics: CubeAnalytics, today: date) -> None:
    start, end = history_range(today)
    cube.update(start, end)
    # in the order the builder's record path read them (day, provider, account, rowid)
    costs, withheld = (
        sorted(rows, key=lambda r: (r.day, r.provider, r.account))
        for rows in store.converted_costs_between(start, end, "USD")
    )
    usage = sorted(store.usage_between(start, end), key=lambda r: (r.day, r.provider, r.account))
    ws = history_start(today)
    expected = compute_windows(
        today,
        [u for u in usage if u.day >= ws],
        [c for c in costs if c.day >= ws],
        [w for w in withheld if w.day >= ws],
    )
    got = analytics.windows(today)
    for metrics in METRICS:  # merging only what is published equals trimming afterwards
        assert analytics.windows(today, metrics) == cardinality.select(got, metrics)
    assert got.cost == expected.cost
    assert got.tokens == expected.tokens
    assert got.requests == expected.requests
    assert got.cache_hit_ratio == expected.cache_hit_ratio
    assert got.cost_per_1k_tokens == expected.cost_per_1k_tokens
    assert got.cost_per_request == expected.cost_per_request
    # the roll-ups kept per account part equal the record path's, withheld rows included
    assert analytics.rollups(today) == compute_rollups(
        today, expected, [w for w in withheld if w.day >= ws]
    )
    first_seen = store.streams_first_seen(today - timedelta(days=NEW_STREAM_DAYS))
    want = governance.compute_governance(CONFIG, today, costs, usage, store.projects(), first_seen)
    have = analytics.governance(today, store.projects(), first_seen)
    assert have.baselines == want.baselines
    assert have.forecasts == want.forecasts
    assert have.budgets == want.budgets
    assert have.project_info == want.project_info
    assert have.new_streams == want.new_streams
    # byte-identical exposition needs identical floats, not only equal Decimals
    assert [float(v) for v in got.cost["30d"].values()] == [
        float(expected.cost["30d"][k]) for k in got.cost["30d"]
    ]


exact_row = st.tuples(  # amounts that fit pico-units, no cross rate: the SQL-free groups
    st.integers(0, 1),
    st.integers(0, len(STREAMS) - 1),
    st.sampled_from(["tokens", "web_search", "other"]),
    st.integers(-5_000_000, 50_000_000).map(lambda n: Decimal(n).scaleb(-6)),
    st.sampled_from(["USD", "USD", "USD", "GBP", "JPY"]),
    st.integers(0, 3000),
    st.integers(0, 80),
)
SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TODAYS = st.dates(date(2026, 2, 25), date(2026, 3, 3))


def revisions_of(rows: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(
        st.tuples(st.integers(0, 1), st.integers(0, 6), st.lists(rows, max_size=25)), max_size=4
    )


def run(path: Path, history: list[Any], revisions: list[Any], today: date, *, groups: bool) -> None:
    """Write, check, re-poll and roll the day over; ``groups``: every account's read must
    come back as cost groups (no amount beyond pico-units), else as lines."""
    store = Store(path)
    try:
        first = today - timedelta(days=70)
        for account in (0, 1):
            write(store, account, first, today + timedelta(days=1), history)
        cube = Cube(store, "USD")
        analytics = CubeAnalytics(CONFIG, cube)
        check(store, cube, analytics, today)
        for account, back, rows in revisions:  # a re-poll: today + lookback, lower/remove
            day = today
            if back == 6:  # the day rolls over (across the month boundary for some dates)
                day = today = today + timedelta(days=1)
            write(store, account, day - timedelta(days=back % 4), day + timedelta(days=1), rows)
            check(store, cube, analytics, today)
        today += timedelta(days=2)  # two days later, nothing polled
        check(store, cube, analytics, today)
        if groups:
            for account in ACCOUNTS:
                cost_groups, lines, _usage = store.account_days("USD", account, first, today)
                mine = [c for c in store.costs_between(first, today) if c.account == account[1]]
                assert not lines and bool(cost_groups) == bool(mine)
    finally:
        store.close()


@SETTINGS
@given(history=st.lists(row, min_size=1, max_size=120), revisions=revisions_of(row), today=TODAYS)
def test_cube_equals_the_record_path(
    tmp_path_factory: pytest.TempPathFactory, history: list[Any], revisions: list[Any], today: date
) -> None:
    run(tmp_path_factory.mktemp("cube") / "h.db", history, revisions, today, groups=False)


@SETTINGS
@given(
    history=st.lists(exact_row, min_size=1, max_size=120),
    revisions=revisions_of(exact_row),
    today=TODAYS,
)
def test_cube_from_cost_groups_equals_the_record_path(
    tmp_path_factory: pytest.TempPathFactory, history: list[Any], revisions: list[Any], today: date
) -> None:
    """The groups summed while reading the compact rows (no record per row) give the record
    path's values, withheld (GBP) rows and first-seen order included."""
    run(tmp_path_factory.mktemp("cube") / "h.db", history, revisions, today, groups=True)


def test_the_cube_reads_the_same_on_sqlite_and_postgresql(storage_path: str) -> None:
    """A fixed history, both read paths (account "oa": cost groups; "an": a cross rate, so
    lines), polls and day rollovers, against the record path, on either backend."""
    rng = random.Random(7)
    history = [
        (acc, rng.randrange(len(STREAMS)), rng.choice(["tokens", "web_search", "other"]),
         Decimal(rng.randrange(-5_000_000, 50_000_000)).scaleb(-6),
         rng.choice(["USD", "USD", "GBP", "JPY"] + (["EUR"] if acc else [])),
         rng.randrange(3000), rng.randrange(81))
        for acc in (0, 1) for _ in range(150)
    ]  # fmt: skip
    revisions = [(0, 1, history[:20]), (1, 6, history[150:170]), (0, 6, history[20:40])]
    run(storage_path, history, revisions, date(2026, 2, 27), groups=False)


def test_an_amount_beyond_pico_units_reads_lines(tmp_path: Path) -> None:
    """One row with 13 decimals (kept as exact text) sends its account to the exact lines
    (Decimal cells); 12 decimals still fit."""
    store = Store(tmp_path / "h.db")
    try:
        day = date(2026, 3, 1)
        write(store, 0, day, day + timedelta(days=1), [(0, 0, "tokens", Decimal("1.5"), "USD",
                                                        10, 0)])  # fmt: skip
        groups, lines, _ = store.account_days("USD", ACCOUNTS[0], day, day + timedelta(days=1))
        assert groups == [("2026-03-01", "p1", "gpt-4o", "tokens", 1_500_000_000_000, 1, 0, 0)]
        assert not lines
        write(store, 0, day, day + timedelta(days=1), [(0, 0, "tokens", Decimal("1.5"), "USD",
                                                        10, 0),
                                                       (0, 1, "tokens", Decimal("1E-13"), "USD",
                                                        10, 0)])  # fmt: skip
        groups, lines, _ = store.account_days("USD", ACCOUNTS[0], day, day + timedelta(days=1))
        assert not groups
        assert [line[6] for line in lines] == ["1.5", "0.0000000000001"]
    finally:
        store.close()


def test_only_the_changed_account_is_reloaded_and_recomputed(tmp_path: Path) -> None:
    store = Store(tmp_path / "h.db")
    today = date(2026, 3, 10)
    rows = [
        (a, s, "tokens", Decimal("1.5"), "USD", 100, d)
        for a in (0, 1)
        for s in range(4)
        for d in range(61)
    ]
    for account in (0, 1):
        write(store, account, today - timedelta(days=60), today + timedelta(days=1), rows)
    cube = Cube(store, "USD")
    analytics = CubeAnalytics(CONFIG, cube)
    check(store, cube, analytics, today)
    start, end = history_range(today)  # the days the windows and governance read
    assert cube.reloaded_days == 2 * (end - start).days and analytics.recomputed == 2
    check(store, cube, analytics, today)
    assert cube.reloaded_days == 0 and analytics.recomputed == 2
    write(store, 1, today - timedelta(days=3), today + timedelta(days=1), rows[:3])
    check(store, cube, analytics, today)
    assert cube.reloaded_days == 4 and analytics.recomputed == 3  # only the polled account
    assert all(b.exact for b in cube.blocks.values())


def test_pico_units_are_exact_or_refused() -> None:
    assert units("1.5") == 1_500_000_000_000
    assert units("-0.000000000001") == -1
    assert units("12") == 12_000_000_000_000
    assert units("0.0000000000001") is None  # 13 decimals
    assert units("1E+3") is None
    assert units("150000") is None  # beyond one cell's integer range (2**63 / 64 units)
    assert units("144115") == 144_115 * 10**12


def test_decimal_cells_sum_across_streams_in_the_record_paths_order(tmp_path: Path) -> None:
    """28-digit amounts round on every addition, so the order matters: the budgets add
    the streams in the order the record path meets them (first day, then account)."""
    store = Store(tmp_path / "h.db")
    today, tiny = date(2026, 3, 20), Decimal("0.0000000000000000000000000005")
    d0, d1, x = date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 10)
    lines = {  # (provider, account, project): [(day, amount)]
        ("anthropic", "an", "p1"): [(d0, Decimal(2)), (x, tiny)],
        ("anthropic", "an", "p2"): [(d1, Decimal(2)), (x, tiny)],
        ("openai", "oa", "p1"): [(d0, Decimal(2)), (x, Decimal(1))],
    }
    for provider, account in ACCOUNTS:
        result = FetchResult(date(2026, 2, 1), today + timedelta(days=1))
        for (p, a, project), days in lines.items():
            if (p, a) == (provider, account):
                result.costs += [
                    CostRecord(p, a, day, project, "m", "tokens", amount, "USD", "m")
                    for day, amount in days
                ]
        store.replace_window(provider, account, result, annotate=annotate)
    cube = Cube(store, "USD")
    check(store, cube, CubeAnalytics(CONFIG, cube), today)
    assert not cube.blocks[("anthropic", "an")].exact and cube.blocks[("openai", "oa")].exact
