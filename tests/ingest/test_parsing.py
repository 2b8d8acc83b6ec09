"""Span attributes and event fields -> request records (no HTTP): provider names, the
token arithmetic of both attribute generations, OTLP JSON details, config errors."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exporter.config import ConfigErrors, IngestAttributes, validate
from exporter.ingest import events, otlp
from exporter.ingest.attributes import Invalid, span_record
from tests.ingest.senders import GenAISpan, genai_attrs, otlp_json, running

T = datetime(2026, 3, 18, 13, 25, tzinfo=UTC)
MAPPING = IngestAttributes()


@pytest.mark.parametrize(
    ("value", "ours"),
    [("openai", "openai"), ("anthropic", "anthropic"), ("x_ai", "xai"),
     ("aws.bedrock", "bedrock"), ("azure.ai.openai", "azure_openai"),
     ("gcp.vertex_ai", "vertex"), ("gcp.gemini", "gemini"), ("OpenAI", "openai")],
)  # fmt: skip
def test_provider_names_map_to_ours(value: str, ours: str) -> None:
    r = span_record("s", T, genai_attrs(value, "m"), {}, MAPPING)
    assert r is not None and r.provider == ours


def test_input_tokens_include_the_cache_unless_smaller_than_it() -> None:
    otel = span_record("s", T, genai_attrs(input_tokens=1000, cache_read=600, cache_write=100),
                       {}, MAPPING)  # fmt: skip
    assert otel is not None and (otel.input_tokens, otel.cache_read_tokens) == (300, 600)
    # Anthropic-style: input_tokens excludes the cache (fewer than the cached tokens)
    anth = span_record("s", T, genai_attrs(input_tokens=50, cache_read=600), {}, MAPPING)
    assert anth is not None and anth.input_tokens == 50


def test_attribution_falls_back_to_the_resource_and_configured_keys() -> None:
    r = span_record("s", T, genai_attrs(), {"service.name": "svc", "tenant.id": "t1"}, MAPPING)
    assert r is not None and (r.endpoint, r.tenant, r.user) == ("svc", "t1", "")
    custom = IngestAttributes(tenant=("org.id",), endpoint=("feature",))
    r = span_record("s", T, genai_attrs(**{"org.id": "o9", "feature": "f"}), {}, custom)
    assert r is not None and (r.endpoint, r.tenant) == ("f", "o9")


def test_a_span_without_usage_is_not_a_request_and_bad_usage_is_invalid() -> None:
    assert span_record("s", T, {"http.route": "/x"}, {}, MAPPING) is None
    with pytest.raises(Invalid, match="whole number"):
        span_record("s", T, genai_attrs(input_tokens=1.5), {}, MAPPING)  # type: ignore[arg-type]
    with pytest.raises(Invalid, match=r"gen_ai\.provider\.name"):
        span_record("s", T, {"gen_ai.usage.input_tokens": 1, "gen_ai.request.model": "m"},
                    {}, MAPPING)  # fmt: skip


def test_otlp_json_reads_hex_ids_and_string_int64() -> None:
    span = GenAISpan(genai_attrs(input_tokens=7, output_tokens=3), T)
    parsed = otlp.decode(otlp_json([span]), "application/json; charset=utf-8", MAPPING, T)
    assert [r.id for r in parsed.records] == [span.key]
    assert parsed.records[0].time == T
    body = json.loads(otlp_json([span]))
    body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] = "AAEC"  # base64-ish
    parsed = otlp.decode(json.dumps(body).encode(), "application/json", MAPPING, T)
    assert "traceId" in parsed.rejected[0].reason


def test_events_accept_an_array_and_unix_seconds() -> None:
    body = json.dumps([{"id": "a", "time": T.timestamp(), "provider": "x_ai", "model": "grok-3",
                        "input_tokens": 5, "output_tokens": 1}]).encode()  # fmt: skip
    parsed = events.decode(body)
    assert parsed.records[0].provider == "xai" and parsed.records[0].time == T
    with pytest.raises(events.BadBody):
        events.decode(b"   ")
    with pytest.raises(events.BadBody):
        events.decode(b"not json\nnor this\n")


def test_enabling_ingest_needs_a_token_source() -> None:
    with pytest.raises(ConfigErrors, match="token_env or token_file"):
        validate({"ingest": {"enabled": True}})
    with pytest.raises(ConfigErrors, match="NAME of an environment variable"):
        validate({"ingest": {"enabled": True, "token_env": "sk-live token"}})
    with pytest.raises(ConfigErrors, match=r"unknown_key|extra"):
        validate({"ingest": {"unknown_key": 1}})


def test_a_busy_history_is_a_503_to_retry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def locked(*_: object) -> int:
        raise sqlite3.OperationalError("database is locked")

    with running(tmp_path, lambda: T) as ex:
        monkeypatch.setattr(ex.app.store, "record_requests", locked)
        r = ex.post("/api/v1/events", json.dumps([events_ok()]).encode(), "application/json")
        assert r.status_code == 503
        assert r.headers["retry-after"] == "5"


def events_ok() -> dict[str, object]:
    return {"id": "x", "time": T.isoformat(), "provider": "openai", "model": "gpt-4o",
            "input_tokens": 1, "output_tokens": 1}  # fmt: skip


def test_check_config_reads_the_token_and_allows_ingest_without_providers() -> None:
    from exporter.config import check

    config = validate({"ingest": {"enabled": True, "token_env": "AICOST_T"}})
    assert check(config, {"AICOST_T": "secret-value"}) == []
    problems = check(config, {})
    assert problems == ["ingest: environment variable AICOST_T is not set or empty"]
    assert check(validate({}), {}) == ["providers: no provider configured; nothing would be polled"]
