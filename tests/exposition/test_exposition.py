"""Exposition: golden file, promtool check metrics, OpenMetrics, gzip."""

from __future__ import annotations

import gzip
import os
import platform
import subprocess
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse

from exporter.analytics import cardinality
from exporter.analytics.billing import compute_billing
from exporter.analytics.governance import compute_governance
from exporter.analytics.rollups import compute_rollups
from exporter.analytics.windows import compute_windows
from exporter.config import ALL_WINDOWS, MetricsConfig, validate
from exporter.exposition import render
from exporter.metrics import CATALOGUE
from exporter.records import BillingRecord, CostRecord, ProjectRecord, Stream, UsageRecord
from exporter.snapshot import (
    Baseline,
    FxRateSample,
    FxState,
    ProviderHealth,
    Snapshot,
    UnconvertedKey,
)
from tests.helpers import parse_exposition, promtool

GOLDEN = Path(__file__).parent / "golden" / "metrics.prom"
# The golden file of every per-stream family as it was before the roll-ups came (issue 17).
GOLDEN_ALL = Path(__file__).parent / "golden" / "metrics-all-families.prom"
ROLLUP_PREFIXES = ("aicost_model_", "aicost_project_cost_", "aicost_project_tokens_",
                   "aicost_project_requests_", "aicost_account_")  # fmt: skip
TODAY = date(2026, 3, 2)


# Every per-stream family on: what the defaults published before issue 17.
ALL_FAMILIES = MetricsConfig.model_validate(
    {"windows": list(ALL_WINDOWS), "token_types": True, "stream_ratios": True}
)


def seeded_snapshot(metrics: MetricsConfig | None = None) -> Snapshot:
    """The golden snapshot, its per-stream families chosen by ``metrics`` (the defaults
    without one); the roll-ups are always there."""
    usage = [
        UsageRecord("openai", "main", date(2026, 3, 1), "proj_a", "gpt-4o-2024-08-06",
                    "completions", api_key="key_1", batch="false", input_tokens=1000,
                    output_tokens=200, cache_read_tokens=500, cache_write_tokens=0, requests=10),
        UsageRecord("openai", "main", TODAY, "proj_a", "gpt-4o-2024-08-06", "completions",
                    api_key="key_1", batch="true", input_tokens=300, output_tokens=50,
                    requests=2),
        UsageRecord("openai", "main", date(2026, 2, 27), "proj_b", "text-embedding-3-small",
                    "embeddings", input_tokens=9000, requests=3),
    ]  # fmt: skip
    costs = [
        CostRecord("openai", "main", date(2026, 3, 1), "proj_a", "gpt-4o-2024-08-06", "tokens",
                   Decimal("0.0125"), line_item="gpt-4o-2024-08-06, input", token_type="input"),
        CostRecord("openai", "main", date(2026, 3, 1), "proj_a", "gpt-4o-2024-08-06", "tokens",
                   Decimal("0.002"), line_item="gpt-4o-2024-08-06, output",
                   token_type="output"),
        CostRecord("openai", "main", TODAY, "proj_a", "", "web_search", Decimal("0.03"),
                   line_item="web search tool calls", attribution="unattributed"),
        CostRecord("openai", "main", date(2026, 2, 27), "proj_b", "text-embedding-3-small",
                   "tokens", Decimal("0.00018"), line_item="text-embedding-3-small, input"),
        CostRecord("xai", "team", date(2026, 3, 1), "team-1", "grok-4-0709", "tokens",
                   Decimal("1.234"), line_item="grok-4-0709, Prompt", token_type="input"),
    ]  # fmt: skip
    billing = [
        BillingRecord("xai", "team", "invoice_preview", Decimal("1.25"), period="2026-03"),
        BillingRecord("xai", "team", "prepaid_balance", Decimal("42.5")),
        BillingRecord("xai", "team", "spending_limit", Decimal("100"), period="2026-03"),
    ]
    health = ProviderHealth(
        "openai", "main", up=True, last_success=1772409600.0,
        data_complete_through=1772409600.0, poll_duration=1.5,
        errors={"auth": 0, "rate_limit": 1, "upstream": 0, "timeout": 0, "parse": 0, "config": 0},
        requests={("costs", "200"): 2, ("costs", "429"): 1},
    )  # fmt: skip
    projects = [
        ProjectRecord(
            "openai", "main", "proj_a", "Search", created_at=datetime(2025, 1, 1, tzinfo=UTC)
        ),
        ProjectRecord("openai", "main", "proj_b", 'Data "pipeline"'),
    ]
    config = validate(
        {
            "attribution": [
                {"match": {"project": "proj_a"}, "team": "search", "pool": "eng/search",
                 "cost_owner": "ana", "environment": "prod"},
            ],
            "budgets": [
                {"name": "search-monthly", "period": "month", "limit": 100,
                 "scope": {"team": "search"}, "thresholds": [0.8, 1]},
                {"name": "staging-daily", "period": "day", "limit": 50,
                 "scope": {"environment": "staging"}},
            ],
        }
    )  # fmt: skip
    new_stream = Stream("openai", "main", "proj_b", "text-embedding-3-small")
    governance = compute_governance(
        config, TODAY, costs, usage, projects, first_seen={new_stream: date(2026, 2, 27)}
    )
    # three days of history give no baseline yet; render one anyway
    governance.baselines[Stream("openai", "main", "proj_a", "gpt-4o-2024-08-06")] = Baseline(
        Decimal("0.005"), 4.5
    )
    totals = compute_windows(TODAY, usage, costs)
    return Snapshot(
        totals=cardinality.select(totals, metrics or MetricsConfig()),
        rollups=compute_rollups(TODAY, totals),
        governance=governance,
        health=[health],
        fx=FxState(
            rates=[FxRateSample("USD", "USD", "identity", Decimal(1), TODAY)],
            unconverted={
                UnconvertedKey("EUR", "USD", "no_rate"): 0,
                UnconvertedKey("EUR", "USD", "stale"): 2,
            },
            refresh_errors={"parse": 0, "timeout": 1, "upstream": 0},
        ),
        billing=compute_billing([(b, Decimal(1)) for b in billing], costs, "USD"),
    )


def normalise(text: str) -> str:
    return text.replace(f'python_version="{platform.python_version()}"', 'python_version="X"')


def test_golden_exposition() -> None:
    text = normalise(render(seeded_snapshot()).text.decode())
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), "exposition changed; rerun with UPDATE_GOLDEN=1 and review"


def without_rollups(text: str) -> str:
    """``text`` without the roll-up families' HELP, TYPE and sample lines."""
    return "".join(
        line
        for line in text.splitlines(keepends=True)
        if not line.removeprefix("# HELP ").removeprefix("# TYPE ").startswith(ROLLUP_PREFIXES)
    )


def test_every_per_stream_family_is_still_there_unchanged_when_opted_in() -> None:
    text = normalise(render(seeded_snapshot(ALL_FAMILIES)).text.decode())
    assert without_rollups(text) == GOLDEN_ALL.read_text()
    assert without_rollups(text) != text  # the roll-ups come on top
    default = normalise(render(seeded_snapshot()).text.decode())
    assert without_rollups(default) != GOLDEN_ALL.read_text()  # the defaults trim
    # the roll-ups do not depend on what metrics.* trims from the streams
    assert set(text.splitlines()) - set(without_rollups(text).splitlines()) == set(
        default.splitlines()
    ) - set(without_rollups(default).splitlines())


def test_values_trace_back_to_rows() -> None:
    samples = parse_exposition(render(seeded_snapshot()).text.decode())

    def value(name: str, **labels: str) -> float:
        return samples[(name, frozenset(labels.items()))]

    stream = {"provider": "openai", "account": "main", "project": "proj_a",
              "model": "gpt-4o-2024-08-06"}  # fmt: skip
    assert value("aicost_cost_yesterday", **stream, cost_type="tokens", currency="USD") == 0.0145
    assert (
        value("aicost_cost_month_to_date", **stream, cost_type="tokens", currency="USD") == 0.0145
    )
    assert value("aicost_requests_month_to_date", **stream) == 12
    model = {"provider": "openai", "account": "main", "model": "gpt-4o-2024-08-06"}
    assert value("aicost_model_tokens_today", **model, token_type="input") == 300
    assert value("aicost_model_cost_yesterday", **model, cost_type="tokens",
                 currency="USD") == 0.0145  # fmt: skip
    assert value("aicost_model_cache_hit_ratio", **model) == 500 / 1500
    assert (
        value("aicost_model_cost_per_request", **model, currency="USD") == 0.00145
    )  # 0.0145 / 10 requests
    # proj_a: 1000 + 200 + 500 tokens yesterday, 300 + 50 today; its tool cost has no model
    proj_a = {"provider": "openai", "account": "main", "project": "proj_a"}
    assert value("aicost_project_tokens_month_to_date", **proj_a) == 1700 + 350
    assert value("aicost_project_cost_today", **proj_a, cost_type="web_search",
                 currency="USD") == 0.03  # fmt: skip
    assert value("aicost_model_cost_today", provider="openai", account="main", model="",
                 cost_type="web_search", currency="USD") == 0.03  # fmt: skip
    main = {"provider": "openai", "account": "main"}
    # the 30d window: proj_a's 0.0145 (Mar 1) + proj_b's 0.00018 (Feb 27)
    assert value("aicost_account_cost_30d", **main, cost_type="tokens",
                 currency="USD") == 0.0145 + 0.00018  # fmt: skip
    assert value("aicost_account_requests_30d", **main) == 10 + 3
    assert value("aicost_account_tokens_prev_7d", **main, token_type="input") == 0
    assert ("aicost_tokens_today", frozenset({**stream, "token_type": "input"}.items())) not in (
        samples
    )  # per-stream tokens are opt-in
    assert value("aicost_requests_month_to_date", **stream) == 12
    assert value("aicost_project_info", provider="openai", account="main", project="proj_b",
                 project_name='Data "pipeline"', team="", pool="unassigned", cost_owner="",
                 environment="") == 1  # fmt: skip
    assert value("aicost_project_info", provider="openai", account="main", project="proj_a",
                 project_name="Search", team="search", pool="eng/search", cost_owner="ana",
                 environment="prod") == 1  # fmt: skip
    budget = {"budget": "search-monthly", "period": "month", "currency": "USD"}
    assert value("aicost_budget_spend", **budget) == 0.0145 + 0.03  # proj_a in March
    assert value("aicost_budget_limit", **budget) == 100
    assert value("aicost_budget_threshold_ratio", budget="search-monthly", threshold="0.8") == 0.8
    assert value("aicost_budget_scope_matched", budget="staging-daily") == 0
    new_stream = {"provider": "openai", "account": "main", "project": "proj_b",
                  "model": "text-embedding-3-small"}  # fmt: skip
    assert value("aicost_stream_first_seen_timestamp_seconds", **new_stream) == 1772150400
    assert value("aicost_poll_errors_total", provider="openai", account="main",
                 reason="rate_limit") == 1  # fmt: skip
    team = {"provider": "xai", "account": "team", "currency": "USD"}
    assert value("aicost_invoice_preview", **team) == 1.25
    assert value("aicost_invoice_preview_gap", **team) == 0.016  # 1.25 - 1.234
    assert value("aicost_prepaid_balance", **team) == 42.5
    assert value("aicost_spending_limit", **team) == 100


def test_every_catalogue_metric_is_exposed_with_help_saying_it_is_polled() -> None:
    text = render(seeded_snapshot()).text.decode()
    for metric in CATALOGUE:
        assert f"# HELP {metric.name}" in text or f"# HELP {metric.name}_total" in text
    for line in text.splitlines():
        if line.startswith(
            ("# HELP aicost_cost_", "# HELP aicost_tokens_", "# HELP aicost_model_")
        ):
            assert "not at scrape time" in line


def test_promtool_check_metrics_accepts_the_exposition(tmp_path: Path) -> None:
    tool = promtool()
    body = render(seeded_snapshot(ALL_FAMILIES)).text
    proc = subprocess.run([tool, "check", "metrics"], input=body, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode() + proc.stdout.decode()


def test_openmetrics_and_gzip_variants() -> None:
    rendered = render(seeded_snapshot())
    body, ctype, gz = rendered.pick("application/openmetrics-text; version=1.0.0", "")
    assert ctype.startswith("application/openmetrics-text") and not gz
    assert body.endswith(b"# EOF\n")
    names = {f.name for f in om_parse(body.decode())}
    assert "aicost_poll_errors" in names and "aicost_cost_today" in names
    body, ctype, gz = rendered.pick("text/plain", "gzip, deflate")
    assert gz and ctype.startswith("text/plain")
    assert gzip.decompress(body) == rendered.text
