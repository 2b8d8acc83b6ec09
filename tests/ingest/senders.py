"""What applications send: OTLP ExportTraceServiceRequests (protobuf built with
opentelemetry-proto, and OTLP JSON written by its rules) and JSON events; plus a running
exporter with ingest enabled, served over loopback HTTP."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from genai_prices import Usage, calc_price
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from exporter.app import App, build
from exporter.config import validate
from exporter.server import MetricsServer
from tests.helpers import parse_exposition

TOKEN = "ingest-token-" + "x" * 20
TOKEN_ENV = "AICOST_TEST_INGEST_TOKEN"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

Attrs = Mapping[str, str | int | float | bool]


@dataclass
class GenAISpan:
    attrs: Attrs
    time: datetime
    trace_id: bytes = b""
    span_id: bytes = b""

    def __post_init__(self) -> None:
        self.trace_id = self.trace_id or secrets.token_bytes(16)
        self.span_id = self.span_id or secrets.token_bytes(8)

    @property
    def key(self) -> str:
        return f"span:{self.trace_id.hex()}:{self.span_id.hex()}"


def genai_attrs(
    provider: str = "openai",
    model: str = "gpt-4o-mini",
    input_tokens: int = 1000,
    output_tokens: int = 200,
    cache_read: int = 0,
    cache_write: int = 0,
    *,
    old_names: bool = False,
    **extra: str | int | float | bool,
) -> dict[str, str | int | float | bool]:
    """GenAI attributes as an instrumentation writes them (current or older names)."""
    if old_names:
        attrs: dict[str, str | int | float | bool] = {
            "gen_ai.system": provider,
            "gen_ai.request.model": model,
            "gen_ai.usage.prompt_tokens": input_tokens,
            "gen_ai.usage.completion_tokens": output_tokens,
        }
        if cache_read:
            attrs["gen_ai.usage.cache_read_input_tokens"] = cache_read
        if cache_write:
            attrs["gen_ai.usage.cache_creation_input_tokens"] = cache_write
    else:
        attrs = {
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": "ignored-request-model",
            "gen_ai.response.model": model,
            "gen_ai.usage.input_tokens": input_tokens,
            "gen_ai.usage.output_tokens": output_tokens,
        }
        if cache_read:
            attrs["gen_ai.usage.cache_read.input_tokens"] = cache_read
        if cache_write:
            attrs["gen_ai.usage.cache_write.input_tokens"] = cache_write
    attrs["gen_ai.operation.name"] = "chat"
    attrs.update(extra)
    return attrs


def _any(value: str | int | float | bool) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=value)


def _nanos(t: datetime) -> int:
    return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000


def otlp_protobuf(spans: list[GenAISpan], resource: Attrs | None = None) -> bytes:
    """An ExportTraceServiceRequest, serialised by the opentelemetry-proto classes."""
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(
                    attributes=[KeyValue(key=k, value=_any(v)) for k, v in (resource or {}).items()]
                ),
                scope_spans=[
                    ScopeSpans(
                        spans=[
                            Span(
                                trace_id=s.trace_id,
                                span_id=s.span_id,
                                name="chat",
                                kind=Span.SPAN_KIND_CLIENT,
                                start_time_unix_nano=_nanos(s.time) - 1_000_000,
                                end_time_unix_nano=_nanos(s.time),
                                attributes=[
                                    KeyValue(key=k, value=_any(v)) for k, v in s.attrs.items()
                                ],
                            )
                            for s in spans
                        ]
                    )
                ],
            )
        ]
    )
    return request.SerializeToString()


def _json_any(value: str | int | float | bool) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}  # OTLP JSON: int64 as a string
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": value}


def otlp_json(spans: list[GenAISpan], resource: Attrs | None = None) -> bytes:
    """The same request in OTLP JSON: hex ids, int64 as strings, enums as integers."""
    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [
                        {"key": k, "value": _json_any(v)} for k, v in (resource or {}).items()
                    ]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "opentelemetry.instrumentation.openai"},
                        "spans": [
                            {
                                "traceId": s.trace_id.hex(),
                                "spanId": s.span_id.hex(),
                                "name": "chat",
                                "kind": 3,
                                "startTimeUnixNano": str(_nanos(s.time) - 1_000_000),
                                "endTimeUnixNano": str(_nanos(s.time)),
                                "attributes": [
                                    {"key": k, "value": _json_any(v)} for k, v in s.attrs.items()
                                ],
                            }
                            for s in spans
                        ],
                    }
                ],
            }
        ]
    }
    return json.dumps(body).encode()


def event(event_id: str, time: datetime, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": event_id,
        "time": time.isoformat().replace("+00:00", "Z"),
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": 1000,
        "output_tokens": 200,
    }
    base.update(fields)
    return base


def ndjson(events: list[dict[str, Any]]) -> bytes:
    return b"\n".join(json.dumps(e).encode() for e in events) + b"\n"


def list_price(
    provider: str,
    model: str,
    input_tokens: int,
    output_tokens: int,
    cache_read: int = 0,
    cache_write: int = 0,
    when: datetime | None = None,
) -> Decimal:
    """genai-prices' own price of one request (input includes the cached tokens)."""
    usage = Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )
    catalogue_provider = {"xai": "x-ai"}.get(provider, provider)
    price = calc_price(usage, model, provider_id=catalogue_provider, genai_request_timestamp=when)
    return Decimal(price.total_price)


# --------------------------------------------------------------------------- exporter


@dataclass
class Running:
    app: App
    server: MetricsServer
    client: httpx.Client

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def post(self, path: str, body: bytes, content_type: str, **headers: str) -> httpx.Response:
        return self.client.post(
            self.url + path,
            content=body,
            headers={"Content-Type": content_type, **AUTH, **headers},
        )

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        self.app.refresh_ingest()
        return parse_exposition(self.client.get(self.url + "/metrics").text)


def ingest_config(tmp_path: Path, **ingest: Any) -> Any:
    return validate(
        {
            "storage": {"path": str(tmp_path / "history.db")},
            "ingest": {"enabled": True, "token_env": TOKEN_ENV, **ingest},
        }
    )


# The server class running() starts (tests/ingest/test_http.py runs it with each).
SERVER_TYPE: type[MetricsServer] = MetricsServer


@contextmanager
def running(tmp_path: Path, clock: Any, **ingest: Any) -> Iterator[Running]:
    """The exporter of ``ingest_config`` behind a real HTTP server on loopback."""
    app = build(ingest_config(tmp_path, **ingest), clock=clock, env={TOKEN_ENV: TOKEN})
    server = SERVER_TYPE(("127.0.0.1", 0))
    server.source, server.ingest = app, app.intake
    server.start()
    client = httpx.Client(timeout=10)
    try:
        yield Running(app, server, client)
    finally:
        client.close()
        server.stop()
        app.stop()


def sample(
    samples: Mapping[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples[(name, frozenset(labels.items()))]


def total(
    samples: Mapping[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """Sum of ``name`` over the series that have ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


__all__ = ["UTC"]
