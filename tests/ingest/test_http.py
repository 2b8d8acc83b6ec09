"""Ingest end to end through the real HTTP server: OTLP protobuf, OTLP JSON, NDJSON, the
old and new GenAI attribute names, duplicates, restart, caps, bad bodies and auth."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from exporter.server import MetricsServer
from tests.ingest import senders
from tests.ingest.senders import (
    AUTH,
    GenAISpan,
    event,
    genai_attrs,
    list_price,
    ndjson,
    otlp_json,
    otlp_protobuf,
    running,
    sample,
    total,
)

NOW = datetime(2026, 3, 18, 13, 30, tzinfo=UTC)
T = NOW - timedelta(minutes=5)
PROTOBUF = "application/x-protobuf"
JSON = "application/json"


def clock() -> datetime:
    return NOW


@pytest.fixture(autouse=True)
def _each_server(server_type: type[MetricsServer], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test here over MetricsServer and over the serving process's LoopServer."""
    monkeypatch.setattr(senders, "SERVER_TYPE", server_type)


def test_otlp_protobuf_spans_are_counted_and_priced_like_genai_prices(tmp_path: Path) -> None:
    spans = [
        GenAISpan(genai_attrs(input_tokens=1200, output_tokens=300, cache_read=1000,
                              **{"http.route": "/summarize", "aicost.tenant": "acme",
                                 "aicost.prompt_version": "summarizer_v3",
                                 "aicost.outcome": "success"}), T),
        GenAISpan(genai_attrs("anthropic", "claude-sonnet-4-5", 500, 80, cache_write=200,
                              **{"aicost.endpoint": "/chat", "tenant.id": "globex",
                                 "http.request.resend_count": 1}), T),
        GenAISpan({"http.route": "/healthz"}, T),  # not a GenAI span: ignored, not rejected
    ]  # fmt: skip
    with running(tmp_path, clock) as ex:
        r = ex.post("/v1/traces", otlp_protobuf(spans, {"service.name": "api"}), PROTOBUF)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == PROTOBUF
        reply = ExportTraceServiceResponse.FromString(r.content)
        assert not reply.HasField("partial_success")
        m = ex.metrics()
    req = {"provider": "openai", "model": "gpt-4o-mini", "endpoint": "/summarize",
           "tenant": "acme", "prompt_version": "summarizer_v3"}  # fmt: skip
    assert sample(m, "aicost_app_requests_total", **req, outcome="success") == 1
    assert sample(m, "aicost_app_tokens_total", **req, token_type="input") == 200  # uncached
    assert sample(m, "aicost_app_tokens_total", **req, token_type="cache_read") == 1000
    assert sample(m, "aicost_app_tokens_total", **req, token_type="output") == 300
    expected = list_price("openai", "gpt-4o-mini", 1200, 300, cache_read=1000, when=T)
    assert Decimal(str(sample(m, "aicost_app_cost_total", **req, currency="USD"))) == expected
    claude = {"provider": "anthropic", "model": "claude-sonnet-4-5", "endpoint": "/chat",
              "tenant": "globex", "prompt_version": "unknown"}  # fmt: skip
    assert sample(m, "aicost_app_requests_total", **claude, outcome="unknown") == 1
    assert sample(m, "aicost_app_tokens_total", **claude, token_type="cache_write") == 200
    assert sample(m, "aicost_app_tokens_total", **claude, token_type="input") == 300
    want = list_price("anthropic", "claude-sonnet-4-5", 500, 80, cache_write=200, when=T)
    assert Decimal(str(sample(m, "aicost_app_cost_total", **claude, currency="USD"))) == want
    assert sample(m, "aicost_app_retries_total", provider="anthropic",
                  model="claude-sonnet-4-5", endpoint="/chat") == 1  # fmt: skip
    assert total(m, "aicost_app_requests_total") == 2


def test_otlp_json_with_older_attribute_names_and_gzip(tmp_path: Path) -> None:
    spans = [
        GenAISpan(genai_attrs("x_ai", "grok-3", 100, 10, old_names=True,
                              **{"user.id": "u1", "aicost.retry": True}), T),
        GenAISpan(genai_attrs("anthropic", "claude-sonnet-4-5", 400, 40, cache_read=300,
                              old_names=True), T),
    ]  # fmt: skip
    body = gzip.compress(otlp_json(spans, {"service.name": "billing-svc"}))
    with running(tmp_path, clock) as ex:
        r = ex.post("/v1/traces", body, JSON, **{"Content-Encoding": "gzip"})
        assert r.status_code == 200, r.text
        assert r.json() == {}
        m = ex.metrics()
    grok = {"provider": "xai", "model": "grok-3", "endpoint": "billing-svc"}
    assert total(m, "aicost_app_requests_total", **grok) == 1
    assert sample(m, "aicost_app_retries_total", **grok) == 1
    claude = {"provider": "anthropic", "model": "claude-sonnet-4-5", "endpoint": "billing-svc"}
    assert total(m, "aicost_app_tokens_total", **claude, token_type="cache_read") == 300
    assert total(m, "aicost_app_tokens_total", **claude, token_type="input") == 100
    assert not any("u1" in dict(ls).values() for (_, ls) in m), "user must never be a label"


def test_rejected_spans_are_reported_in_partial_success(tmp_path: Path) -> None:
    good = GenAISpan(genai_attrs(), T)
    negative = GenAISpan(genai_attrs(output_tokens=-5), T)
    no_model = GenAISpan({"gen_ai.provider.name": "openai", "gen_ai.usage.input_tokens": 3}, T)
    with running(tmp_path, clock) as ex:
        r = ex.post("/v1/traces", otlp_protobuf([good, negative, no_model]), PROTOBUF)
        assert r.status_code == 200
        reply = ExportTraceServiceResponse.FromString(r.content)
        assert reply.partial_success.rejected_spans == 2
        assert "must not be negative" in reply.partial_success.error_message
        assert "gen_ai.response.model" in reply.partial_success.error_message
        r = ex.post("/v1/traces", otlp_json([negative]), JSON)
        assert r.json()["partialSuccess"]["rejectedSpans"] == "1"
        m = ex.metrics()
    assert total(m, "aicost_app_requests_total") == 1
    assert sample(m, "aicost_ingest_rejected_total", source="otlp", reason="invalid") == 3


def test_events_ndjson_and_array_keep_the_valid_ones(tmp_path: Path) -> None:
    events = [
        event("e1", T, endpoint="/summarize", tenant="acme", user="u-42",
              prompt_version="v1", outcome="success", cache_read_tokens=400),
        event("e2", T, input_tokens=-1),
        event("e3", T, output_tokens="many"),
        event("e4", T, tokens_in=5),
        {"id": "e5"},
        event("e6", T, input_tokens=10, cache_read_tokens=20),
        event("e7", T, provider="anthropic", model="claude-sonnet-4-5", retry=True),
    ]  # fmt: skip
    with running(tmp_path, clock) as ex:
        r = ex.post("/api/v1/events", ndjson(events) + b"{not json\n", "application/x-ndjson")
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["accepted"], body["new"], body["rejected"]) == (2, 2, 6)
        reasons = {e["index"]: (e["id"], e["reason"]) for e in body["errors"]}
        assert reasons[1] == ("e2", "input_tokens must not be negative, got -1")
        assert "output_tokens must be a non-negative integer" in reasons[2][1]
        assert "unknown field(s): tokens_in" in reasons[3][1]
        assert "missing field(s): time, provider, model" in reasons[4][1]
        assert "cache_read_tokens" in reasons[5][1]
        assert reasons[7][1].startswith("not JSON")
        r = ex.post("/api/v1/events", json.dumps([event("e8", T)]).encode(), JSON)
        assert r.json()["new"] == 1
        m = ex.metrics()
    e1 = {"provider": "openai", "model": "gpt-4o-mini", "endpoint": "/summarize",
          "tenant": "acme", "prompt_version": "v1"}  # fmt: skip
    assert sample(m, "aicost_app_tokens_total", **e1, token_type="input") == 600
    assert Decimal(str(sample(m, "aicost_app_cost_total", **e1, currency="USD"))) == list_price(
        "openai", "gpt-4o-mini", 1000, 200, cache_read=400, when=T
    )
    assert total(m, "aicost_app_requests_total") == 3
    assert sample(m, "aicost_app_retries_total", provider="anthropic",
                  model="claude-sonnet-4-5", endpoint="unknown") == 1  # fmt: skip


def test_duplicates_and_restart_never_count_twice(tmp_path: Path) -> None:
    spans = [GenAISpan(genai_attrs(), T) for _ in range(3)]
    events = [event(f"r{i}", T) for i in range(4)]
    with running(tmp_path, clock) as ex:
        ex.post("/v1/traces", otlp_protobuf(spans), PROTOBUF)
        ex.post("/v1/traces", otlp_json(spans[:2]), JSON)  # same spans in the other encoding
        r = ex.post("/api/v1/events", ndjson(events + events[:1]), "application/x-ndjson")
        assert (r.json()["accepted"], r.json()["new"], r.json()["duplicates"]) == (5, 4, 1)
        before = ex.metrics()
    assert total(before, "aicost_app_requests_total") == 7
    with running(tmp_path, clock) as ex:  # the same history file, a new process state
        after_restart = ex.metrics()
        assert total(after_restart, "aicost_app_requests_total") == 7
        r = ex.post("/api/v1/events", ndjson(events), "application/x-ndjson")
        assert r.json()["new"] == 0
        ex.post("/v1/traces", otlp_protobuf(spans), PROTOBUF)
        again = ex.metrics()
    assert total(again, "aicost_app_requests_total") == 7
    assert total(again, "aicost_app_cost_total") == pytest.approx(
        float(7 * list_price("openai", "gpt-4o-mini", 1000, 200, when=T))
    )


def test_caps_fold_later_values_into_other(tmp_path: Path) -> None:
    with running(tmp_path, clock, max_tenants=2, max_endpoints=1) as ex:
        first = [event(f"a{i}", T - timedelta(minutes=10 - i), tenant=f"t{i}", endpoint=f"/e{i}")
                 for i in range(4)]  # fmt: skip
        ex.post("/api/v1/events", ndjson(first), "application/x-ndjson")
        m = ex.metrics()
    tenants = {dict(ls)["tenant"] for (n, ls) in m if n == "aicost_app_requests_total"}
    endpoints = {dict(ls)["endpoint"] for (n, ls) in m if n == "aicost_app_requests_total"}
    assert tenants == {"t0", "t1", "other"}
    assert endpoints == {"/e0", "other"}
    assert total(m, "aicost_app_requests_total", tenant="other") == 2


@pytest.mark.parametrize(
    ("body", "headers", "code", "reason"),
    [
        (b"{not json", {"Content-Type": JSON}, 400, "bad_body"),
        (b"\x0a\xff\xff\xff", {"Content-Type": PROTOBUF}, 400, "bad_body"),
        (b'{"resourceSpans": 5}', {"Content-Type": JSON}, 400, "bad_body"),
        (b"{}", {"Content-Type": "text/plain"}, 415, "unsupported"),
        (b"not gzip", {"Content-Type": JSON, "Content-Encoding": "gzip"}, 400, "bad_body"),
        (b"{}", {"Content-Type": JSON, "Content-Encoding": "br"}, 415, "unsupported"),
    ],
)
def test_bad_trace_bodies_get_a_clear_4xx(
    tmp_path: Path, body: bytes, headers: dict[str, str], code: int, reason: str
) -> None:
    with running(tmp_path, clock) as ex:
        r = ex.client.post(ex.url + "/v1/traces", content=body, headers={**AUTH, **headers})
        assert r.status_code == code, r.text
        good = ex.post("/v1/traces", otlp_protobuf([GenAISpan(genai_attrs(), T)]), PROTOBUF)
        assert good.status_code == 200
        m = ex.metrics()
    assert sample(m, "aicost_ingest_rejected_total", source="otlp", reason=reason) == 1
    assert total(m, "aicost_app_requests_total") == 1


def test_huge_body_and_gzip_bomb_are_413_and_lose_nothing(tmp_path: Path) -> None:
    with running(tmp_path, clock, max_body_bytes=64 * 1024) as ex:
        ex.post("/api/v1/events", ndjson([event("keep", T)]), JSON)
        huge = ex.post("/api/v1/events", b"[" + b" " * (65 * 1024) + b"]", JSON)
        assert huge.status_code == 413
        assert "max_body_bytes" in huge.text
        bomb = gzip.compress(b" " * (50 * 1024 * 1024))  # 50 MiB of spaces in ~50 KiB
        assert len(bomb) < 64 * 1024
        r = ex.post("/api/v1/events", bomb, JSON, **{"Content-Encoding": "gzip"})
        assert r.status_code == 413
        assert "decompressed" in r.text
        r = ex.post("/api/v1/events", b"[1, 2", JSON)
        assert r.status_code == 400
        r = ex.post("/api/v1/events", json.dumps([{"id": "x"}]).encode(), JSON)
        assert r.status_code == 400  # nothing valid in it: every event reported
        assert r.json()["errors"][0]["index"] == 0
        m = ex.metrics()
    assert total(m, "aicost_app_requests_total") == 1
    assert sample(m, "aicost_ingest_rejected_total", source="events", reason="too_large") == 2


def test_token_is_required_and_checked(tmp_path: Path) -> None:
    body = ndjson([event("x", T)])
    with running(tmp_path, clock) as ex:
        url = ex.url + "/api/v1/events"
        none = ex.client.post(url, content=body, headers={"Content-Type": JSON})
        assert none.status_code == 401
        assert none.headers["www-authenticate"].startswith("Bearer")
        wrong = ex.client.post(
            url, content=body, headers={"Content-Type": JSON, "Authorization": "Bearer nope"}
        )
        assert wrong.status_code == 403
        assert "nope" not in wrong.text
        basic = ex.client.post(
            ex.url + "/v1/traces", content=b"{}", headers={"Authorization": "Basic Zm9vOmJhcg=="}
        )
        assert basic.status_code == 401
        m = ex.metrics()
        assert total(m, "aicost_app_requests_total") == 0
        assert sample(m, "aicost_ingest_rejected_total", source="events", reason="forbidden") == 1
        assert "ingest-token" not in ex.client.get(ex.url + "/metrics").text


def test_stale_and_future_requests_are_rejected(tmp_path: Path) -> None:
    old = event("old", NOW - timedelta(days=40))
    future = event("future", NOW + timedelta(hours=3))
    with running(tmp_path, clock) as ex:
        r = ex.post("/api/v1/events", ndjson([event("ok", T), old, {}, future]), JSON)
        reasons = {e["id"]: (e["index"], e["reason"]) for e in r.json()["errors"]}
        assert reasons["old"][0] == 1 and "retention_days" in reasons["old"][1]
        assert reasons["future"][0] == 3 and "future" in reasons["future"][1]
        assert reasons[""][0] == 2
        assert r.json()["new"] == 1


def test_ingest_disabled_answers_404(tmp_path: Path) -> None:
    from exporter.app import build
    from exporter.config import validate

    app = build(validate({"storage": {"path": str(tmp_path / "h.db")}}), clock=clock)
    server = senders.SERVER_TYPE(("127.0.0.1", 0))
    server.source, server.ingest = app, app.intake
    server.start()
    try:
        r = httpx.post(f"http://127.0.0.1:{server.port}/v1/traces", content=b"{}")
        assert r.status_code == 404
        assert "ingest.enabled" in r.text
    finally:
        server.stop()
        app.stop()


def test_unknown_models_count_tokens_without_cost_and_log_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    unknown = [event(f"u{i}", T, model="in-house-llm-7b") for i in range(3)]
    with running(tmp_path, clock) as ex:
        ex.post("/api/v1/events", ndjson(unknown[:2]), JSON)
        ex.post("/api/v1/events", ndjson(unknown[2:]), JSON)
        m = ex.metrics()
    labels = {"provider": "openai", "model": "in-house-llm-7b"}
    assert total(m, "aicost_app_requests_total", **labels) == 3
    assert total(m, "aicost_app_tokens_total", **labels, token_type="input") == 3000
    assert total(m, "aicost_app_cost_total", **labels) == 0
    assert not [
        k for k in m if k[0] == "aicost_app_cost_total" and ("model", "in-house-llm-7b") in k[1]
    ]
    warnings = [r for r in caplog.records if "in-house-llm-7b" in r.getMessage()]
    assert len(warnings) == 1 and "no estimated cost" in warnings[0].getMessage()


def test_retention_forgets_raw_ids_but_keeps_the_counters(tmp_path: Path) -> None:
    now = [NOW]
    with running(tmp_path, lambda: now[0]) as ex:
        ex.post("/api/v1/events", ndjson([event("r1", T), event("r2", T)]), JSON)
        before = ex.metrics()
        now[0] = NOW + timedelta(days=40)
        ex.app.prune()
        assert ex.app.store.request_ids(["event:r1", "event:r2"]) == set()
        ex.app.refresh()
        after = ex.metrics()
    for name in ("aicost_app_requests_total", "aicost_app_cost_total", "aicost_app_tokens_total"):
        assert total(after, name) == total(before, name) > 0
