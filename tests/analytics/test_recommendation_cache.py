"""Per-account recommendation rules run only for accounts whose rows changed, re-read only
the polled days, and give what the record-based rules give over the stored rows."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from exporter.analytics.recommendations import compute_recommendations
from exporter.app import build
from exporter.demo.openai import FakeOpenAIServer
from tests.conftest import TODAY, fixed_clock, make_config
from tests.helpers import opened


def test_only_the_polled_account_reruns_and_the_findings_equal_a_full_run(
    tmp_path: Path, fake: FakeOpenAIServer, env: dict[str, str]
) -> None:
    providers = [
        {"type": "openai", "name": name, "base_url": fake.base_url,
         "api_key_env": "AICOST_TEST_OPENAI_KEY"}
        for name in ("first", "second")
    ]  # fmt: skip
    app = opened(build(make_config(tmp_path, fake.base_url, providers=providers),
                       clock=fixed_clock, env=env))  # fmt: skip
    assert app.poll_once()
    state = app.builder.rec_state
    runs = state.account_rule_runs
    app.refresh()  # nothing changed: no per-account rule runs again, no day re-read
    assert state.account_rule_runs == runs
    assert state.reloaded_days == 0
    assert app.pollers[1].poll()
    app.refresh()
    assert state.account_rule_runs == runs + 1  # only the polled account
    lookback = app.config.poll.lookback_days
    assert 0 < state.reloaded_days <= lookback + 1  # only its re-polled days

    cached = app.builder._findings(TODAY)
    start, end = TODAY - timedelta(days=60), TODAY + timedelta(days=1)
    costs, _withheld = app.store.converted_costs_between(start, end, app.config.currency)
    full = compute_recommendations(
        TODAY, app.store.usage_between(start, end), costs, app.store.api_keys(),
        app.catalogue, app.maps, app.config.recommendations,
    )  # fmt: skip
    assert full.recommendations  # the fake org has savings to find
    key = lambda r: r.id  # noqa: E731
    assert sorted(cached.recommendations, key=key) == sorted(full.recommendations, key=key)
    assert cached.cache_savings == full.cache_savings
