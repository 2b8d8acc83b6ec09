"""Bounded cardinality: metrics.windows / token_types / stream_ratios, and the estimate
check-config prints from the stored streams."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from exporter.analytics.cardinality import expected_series, series_per_stream
from exporter.app import build
from exporter.config import MetricsConfig
from exporter.demo.openai import FakeOpenAIServer
from tests.conftest import KEY_ENV, fixed_clock, make_config
from tests.helpers import opened, parse_exposition

TRIMMED = {"windows": ["today", "yesterday", "month_to_date", "30d"], "token_types": False,
           "stream_ratios": False}  # fmt: skip


def names(text: bytes) -> set[str]:
    return {name for name, _ in parse_exposition(text.decode())}


def test_the_formula_of_the_defaults_and_of_a_trimmed_set() -> None:
    assert series_per_stream(MetricsConfig()) == 5 + 5 + 4 * 6 + 3 + 3
    trimmed = MetricsConfig.model_validate(TRIMMED)
    assert series_per_stream(trimmed) == 4 + 4 + 0 + 0 + 3 <= 15
    with_7d = MetricsConfig.model_validate({"windows": ["7d"]})
    assert series_per_stream(with_7d) == 1 + 1 + 4 * 2 + 3 + 3  # prev_7d goes with 7d
    assert expected_series(trimmed, model_streams=10, tool_streams=2) == 10 * 11 + 2 * 7


def test_trimmed_families_leave_the_exposition_and_the_rest_is_unchanged(
    tmp_path: Path, fake: FakeOpenAIServer, env: dict[str, str]
) -> None:
    full = opened(build(make_config(tmp_path / "a", fake.base_url), clock=fixed_clock, env=env))
    assert full.poll_once()
    trimmed_config = make_config(tmp_path / "b", fake.base_url, metrics=TRIMMED)
    trimmed = opened(build(trimmed_config, clock=fixed_clock, env=env))
    assert trimmed.poll_once()
    gone = names(full.rendered.text) - names(trimmed.rendered.text)
    assert gone == {
        "aicost_cost_7d", "aicost_requests_7d", "aicost_cache_hit_ratio",
        "aicost_cost_per_1k_tokens", "aicost_cost_per_request",
        *(f"aicost_tokens_{w}" for w in ("today", "yesterday", "7d", "30d", "month_to_date",
                                         "prev_7d")),
    }  # fmt: skip

    def values(app_text: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        samples = parse_exposition(app_text.decode())
        return {k: v for k, v in samples.items() if k[0] != "aicost_poll_duration_seconds"}

    kept = values(trimmed.rendered.text)
    assert kept.items() <= values(full.rendered.text).items()
    assert any(name == "aicost_cost_30d" for name, _ in kept)


def test_check_config_prints_the_expected_series_of_the_stored_streams(
    tmp_path: Path, fake: FakeOpenAIServer, env: dict[str, str]
) -> None:
    config = make_config(tmp_path, fake.base_url, metrics=TRIMMED)
    app = opened(build(config, clock=fixed_clock, env=env))
    assert app.poll_once()
    model, tool = app.store.stream_kinds()
    assert model > 0
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_defaults=True)))
    proc = subprocess.run(
        [sys.executable, "-m", "exporter", "check-config", str(path)],
        capture_output=True, text=True, timeout=120, env={**os.environ, KEY_ENV: "x" * 20},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    expected = expected_series(config.metrics, model, tool)
    assert (
        f"series: ~{expected} per-stream series expected from {model + tool} stored stream(s) "
        "(11 per model stream; metrics.windows=[today, yesterday, month_to_date, 30d], "
        "token_types=false, stream_ratios=false)"
    ) in proc.stdout
