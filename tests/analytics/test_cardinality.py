"""Bounded cardinality: metrics.windows / token_types / stream_ratios, and the estimate
check-config prints from the stored streams."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import yaml

from exporter.analytics.cardinality import (
    Groups,
    expected_series,
    rollup_series,
    series_per_stream,
)
from exporter.app import build
from exporter.config import MetricsConfig
from exporter.demo.openai import FakeOpenAIServer
from tests.conftest import KEY_ENV, fixed_clock, make_config
from tests.helpers import opened, parse_exposition

TRIMMED = {"windows": ["today", "month_to_date", "30d"]}
ALL_FAMILIES = {"windows": ["today", "yesterday", "7d", "30d", "month_to_date"],
                "token_types": True, "stream_ratios": True}  # fmt: skip
ROLLUPS = ("aicost_model_", "aicost_project_cost_", "aicost_project_tokens_",
           "aicost_project_requests_", "aicost_account_")  # fmt: skip


def names(text: bytes) -> set[str]:
    return {name for name, _ in parse_exposition(text.decode())}


def test_the_formula_of_the_defaults_of_every_family_and_of_a_trimmed_set() -> None:
    assert series_per_stream(MetricsConfig()) == 4 + 4 + 0 + 0 + 3 <= 15
    assert series_per_stream(MetricsConfig.model_validate(ALL_FAMILIES)) == 5 + 5 + 4 * 6 + 3 + 3
    trimmed = MetricsConfig.model_validate(TRIMMED)
    assert series_per_stream(trimmed) == 3 + 3 + 3
    with_7d = MetricsConfig.model_validate({"windows": ["7d"], "token_types": True,
                                            "stream_ratios": True})  # fmt: skip
    assert series_per_stream(with_7d) == 1 + 1 + 4 * 2 + 3 + 3  # prev_7d goes with 7d
    assert expected_series(MetricsConfig(), model_streams=10, tool_streams=2) == 10 * 11 + 2 * 7


def test_the_rollup_formula_counts_what_the_exposition_carries(
    tmp_path: Path, fake: FakeOpenAIServer, env: dict[str, str]
) -> None:
    app = opened(build(make_config(tmp_path, fake.base_url), clock=fixed_clock, env=env))
    assert app.poll_once()
    streams = list(app.store.streams_first_seen(date.min))
    samples = parse_exposition(app.rendered.text.decode())
    rolled = [name for name, _ in samples if name.startswith(ROLLUPS)]
    # the formula counts one cost type per group; each further one adds a series per window
    extra = 0
    for level, keys in (("model", ("provider", "account", "model")),
                        ("project", ("provider", "account", "project")),
                        ("account", ("provider", "account"))):  # fmt: skip
        labels = [dict(k) for n, k in samples if n == f"aicost_{level}_cost_30d"]
        extra += len(labels) - len({tuple(k[x] for x in keys) for k in labels})
    # a ratio is left out where it is undefined (no tokens, no requests): at most 3 per model
    groups = Groups.of(streams)
    ratios = [n for n in rolled if n.endswith(("_ratio", "_per_1k_tokens", "_per_request"))]
    assert 0 < len(ratios) <= 3 * groups.models
    formula = rollup_series(groups) + 5 * extra
    assert len(rolled) - len(ratios) == formula - 3 * groups.models > 0


def test_trimmed_families_leave_the_exposition_and_the_rest_is_unchanged(
    tmp_path: Path, fake: FakeOpenAIServer, env: dict[str, str]
) -> None:
    full_config = make_config(tmp_path / "a", fake.base_url, metrics=ALL_FAMILIES)
    full = opened(build(full_config, clock=fixed_clock, env=env))
    assert full.poll_once()
    trimmed = opened(build(make_config(tmp_path / "b", fake.base_url), clock=fixed_clock, env=env))
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
    # the roll-ups are on in both, with the same values
    rolled = {k: v for k, v in kept.items() if k[0].startswith(ROLLUPS)}
    assert {k[0] for k in rolled} >= {
        "aicost_model_tokens_7d",
        "aicost_model_cost_per_request",
        "aicost_project_cost_7d",
        "aicost_account_tokens_prev_7d",
    }
    assert rolled == {k: v for k, v in values(full.rendered.text).items() if k[0] in
                      {n for n, _ in rolled}}  # fmt: skip


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
    per_stream = expected_series(config.metrics, model, tool)
    groups = Groups.of(app.store.streams_first_seen(date.min))
    rolled = rollup_series(groups)
    assert (
        f"series: ~{per_stream + rolled} expected from {model + tool} stored stream(s): "
        f"~{per_stream} per-stream (9 per model stream; metrics.windows=[today, "
        "month_to_date, 30d], token_types=false, stream_ratios=false) + "
        f"~{rolled} roll-up ({groups.models + groups.tool_models} model(s), "
        f"{groups.projects} project(s), {groups.accounts} account(s))"
    ) in proc.stdout
