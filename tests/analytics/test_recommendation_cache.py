"""Per-account recommendation rules run only for accounts whose rows changed, and give what
the full computation gives."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from exporter.analytics.build import find_recommendations
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
    builder = app.builder
    runs = builder.account_rule_runs
    app.refresh()  # nothing changed: no per-account rule runs again
    assert builder.account_rule_runs == runs
    assert app.pollers[1].poll()
    app.refresh()
    assert builder.account_rule_runs == runs + 1  # only the polled account

    usage, costs, _ = builder.history.load(TODAY - timedelta(days=60), TODAY + timedelta(days=1))
    cached = builder._findings(TODAY, usage, costs)
    full = find_recommendations(app.store, app.config, TODAY, app.catalogue, app.maps)
    assert full.recommendations  # the fake org has savings to find
    key = lambda r: r.id  # noqa: E731
    assert sorted(cached.recommendations, key=key) == sorted(full.recommendations, key=key)
    assert cached.cache_savings == full.cache_savings
