"""Roll-ups per model, project and account: exact sums of the streams, withheld with them."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from exporter.analytics import cardinality
from exporter.analytics.rollups import compute_rollups
from exporter.analytics.windows import compute_windows
from exporter.config import MetricsConfig
from exporter.records import CostRecord, UsageRecord
from exporter.snapshot import AccountKey, CostLabels, Currency, ModelKey, ProjectKey, TokenLabel

TODAY = date(2026, 3, 2)
YESTERDAY = TODAY - timedelta(days=1)
TOKENS = CostLabels("tokens", "USD")


def usage(project: str, model: str, day: date, n: int) -> UsageRecord:
    return UsageRecord(
        "openai", "a", day, project, model, "completions",
        input_tokens=100 * n, output_tokens=10 * n, cache_read_tokens=50 * n,
        cache_write_tokens=0, requests=n,
    )  # fmt: skip


def cost(project: str, model: str, day: date, amount: str, cost_type: str = "tokens") -> CostRecord:
    return CostRecord("openai", "a", day, project, model, cost_type, Decimal(amount))


ROWS_USAGE = [
    usage("p1", "m", YESTERDAY, 1),
    usage("p2", "m", YESTERDAY, 2),
    usage("p2", "n", TODAY, 3),
    usage("p1", "m", TODAY - timedelta(days=10), 4),  # prev_7d
]
ROWS_COST = [
    cost("p1", "m", YESTERDAY, "0.10"),
    cost("p2", "m", YESTERDAY, "0.20"),
    cost("p2", "n", TODAY, "0.03"),
    cost("p1", "m", TODAY - timedelta(days=10), "0.40"),
    cost("p2", "", YESTERDAY, "0.07", "web_search"),
]


def test_rollups_are_exact_sums_of_the_streams_per_level() -> None:
    r = compute_rollups(TODAY, compute_windows(TODAY, ROWS_USAGE, ROWS_COST))
    m, n = ModelKey("openai", "a", "m"), ModelKey("openai", "a", "n")
    # 0.1 + 0.2 in Decimal, not float: exact
    assert r.model.cost["yesterday"][m, TOKENS] == Decimal("0.30")
    assert r.model.cost["30d"][m, TOKENS] == Decimal("0.70")
    assert r.model.cost["today"][n, TOKENS] == Decimal("0.03")
    assert r.model.cost["yesterday"][ModelKey("openai", "a", ""), CostLabels("web_search", "USD")]
    assert r.model.tokens["yesterday"][m, TokenLabel("input")] == 300
    assert r.model.tokens["prev_7d"][m, TokenLabel("input")] == 400
    assert r.model.requests["7d"][m] == 3
    p2 = ProjectKey("openai", "a", "p2")
    assert r.project.cost["month_to_date"][p2, TOKENS] == Decimal("0.23")
    assert r.project.cost["month_to_date"][p2, CostLabels("web_search", "USD")] == Decimal("0.07")
    assert r.project_tokens["today"][p2] == 3 * 160  # n's 300 + 30 + 150 tokens
    assert r.project.tokens == {}  # per project: all token types together only
    assert r.project.requests["month_to_date"][p2] == 5
    acc = AccountKey("openai", "a")
    assert r.account.cost["30d"][acc, TOKENS] == Decimal("0.70")  # complete days: not today
    assert r.account.cost["month_to_date"][acc, TOKENS] == Decimal("0.33")
    assert r.account.tokens["30d"][acc, TokenLabel("cache_read")] == 50 * (1 + 2 + 4)
    # ratios over the model's 30 complete days: 0.1 + 0.2 + 0.4 over 1 + 2 + 4 requests
    assert r.cost_per_request[m, Currency("USD")] == Decimal("0.1")
    assert r.cost_per_1k_tokens[m, Currency("USD")] == Decimal("0.70") * 1000 / (160 * 7)
    assert r.cache_hit_ratio[m] == 50 / 150
    assert ModelKey("openai", "a", "") not in {k for k, _ in r.cost_per_request}  # tool cost


def test_a_withheld_row_withholds_its_groups_in_the_windows_of_its_day() -> None:
    late = CostRecord("openai", "a", YESTERDAY, "p1", "m", "tokens", Decimal("9"), currency="JPY")
    totals = compute_windows(TODAY, ROWS_USAGE, ROWS_COST, withheld=[late])
    r = compute_rollups(TODAY, totals, [late])
    m = ModelKey("openai", "a", "m")
    for window in ("yesterday", "7d", "30d", "month_to_date"):
        assert (m, TOKENS) not in r.model.cost[window]  # not 0.20 without p1's share
        assert (ProjectKey("openai", "a", "p1"), TOKENS) not in r.project.cost[window]
        assert (AccountKey("openai", "a"), TOKENS) not in r.account.cost[window]
    assert r.model.cost["today"][m, TOKENS] == 0
    assert (ProjectKey("openai", "a", "p2"), TOKENS) in r.project.cost["30d"]  # others stay
    assert (m, Currency("USD")) not in r.cost_per_request
    assert (m, Currency("USD")) not in r.cost_per_1k_tokens
    assert r.cache_hit_ratio[m] == 50 / 150  # tokens are not money: still there


def test_rollups_carry_every_window_whatever_the_streams_trim() -> None:
    totals = compute_windows(TODAY, ROWS_USAGE, ROWS_COST)
    trimmed = cardinality.select(totals, MetricsConfig())
    assert "7d" not in trimmed.cost and trimmed.tokens == {} and trimmed.cost_per_request == {}
    r = compute_rollups(TODAY, totals)
    assert set(r.model.cost) == {"today", "yesterday", "7d", "30d", "month_to_date"}
    assert set(r.model.tokens) == set(r.project_tokens) == {*r.model.cost, "prev_7d"}
