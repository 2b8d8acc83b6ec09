"""OTLP/HTTP trace bodies -> request records, and the ``ExportTraceServiceResponse``.

Two encodings of one ``ExportTraceServiceRequest``: binary protobuf
(``application/x-protobuf``, decoded with the generated classes of ``opentelemetry-proto``,
an optional dependency imported only here and only for protobuf bodies) and OTLP JSON
(``application/json``), read by hand because it differs from protobuf's JSON mapping:
``traceId``/``spanId`` are hex (not base64), 64-bit integers (``intValue``,
``*UnixNano``) are strings, enums are integers.

Only spans with GenAI usage attributes count (:func:`~exporter.ingest.attributes.span_record`);
a span with usage that cannot be counted is rejected and reported in ``partial_success``.
The idempotency key of a span is ``span:<trace id>:<span id>`` (hex).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from exporter.config import IngestAttributes
from exporter.ingest.attributes import Invalid, Parsed, Rejection, span_record, wanted_keys

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_TRACE_ID = re.compile(r"^[0-9a-fA-F]{32}$")
_SPAN_ID = re.compile(r"^[0-9a-fA-F]{16}$")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
MAX_REASONS = 5  # error_message lists this many rejected spans, then a count


class BadBody(ValueError):
    """The body is not an ExportTraceServiceRequest in the declared encoding (HTTP 400)."""


class UnsupportedMedia(ValueError):
    """A content type (or a missing optional package) this endpoint cannot read (HTTP 415)."""


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def decode(body: bytes, content_type: str, mapping: IngestAttributes, now: datetime) -> Parsed:
    """The GenAI requests of an OTLP/HTTP trace body. ``now``: the time of spans without one."""
    kind = media_type(content_type)
    if kind == PROTOBUF:
        spans = _protobuf_spans(body, wanted_keys(mapping))
    elif kind == JSON:
        spans = _json_spans(body)
    else:
        raise UnsupportedMedia(
            f"Content-Type {content_type or '(none)'} is not {PROTOBUF} or {JSON}"
        )
    parsed = Parsed()
    for index, (trace_id, span_id, nanos, attrs, resource) in enumerate(spans):
        key = f"span:{trace_id}:{span_id}".lower()
        try:
            if not _TRACE_ID.match(trace_id) or trace_id == _ZERO_TRACE:
                raise Invalid(f"traceId {trace_id[:40]!r} is not 16 bytes of hex")
            if not _SPAN_ID.match(span_id) or span_id == _ZERO_SPAN:
                raise Invalid(f"spanId {span_id[:40]!r} is not 8 bytes of hex")
            time = datetime.fromtimestamp(nanos / 1e9, UTC) if nanos > 0 else now
            record = span_record(key, time, attrs, resource, mapping)
        except Invalid as exc:
            parsed.rejected.append(Rejection(index, key, str(exc)))
            continue
        if record is None:
            parsed.ignored += 1
        else:
            parsed.add(index, record)
    return parsed


Span = tuple[str, str, int, dict[str, Any], dict[str, Any]]  # trace, span, ns, attrs, resource


# --------------------------------------------------------------------------- protobuf


def _protobuf_spans(body: bytes, wanted: frozenset[str]) -> Iterator[Span]:
    try:
        from google.protobuf.message import DecodeError
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )
    except ImportError:  # pragma: no cover - the optional extra is part of [test]
        raise UnsupportedMedia(
            f"{PROTOBUF} needs the opentelemetry-proto package: install "
            f"ai-cost-exporter[ingest], or send {JSON}"
        ) from None
    try:
        request = ExportTraceServiceRequest.FromString(body)
    except DecodeError as exc:
        raise BadBody(f"not a protobuf ExportTraceServiceRequest: {exc}") from None
    return _pb_iter(request, wanted)


def _pb_iter(request: Any, wanted: frozenset[str]) -> Iterator[Span]:
    """The spans of a decoded request; only the attributes we read are converted (GenAI
    spans also carry prompts, completions and request parameters)."""
    for rs in request.resource_spans:
        resource = {kv.key: _pb_value(kv.value) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            for span in ss.spans:
                attrs = {}
                for kv in span.attributes:
                    key = kv.key
                    if key in wanted:
                        attrs[key] = _pb_value(kv.value)
                yield (
                    span.trace_id.hex(),
                    span.span_id.hex(),
                    span.end_time_unix_nano or span.start_time_unix_nano,
                    attrs,
                    resource,
                )


def _pb_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind in ("string_value", "int_value", "double_value", "bool_value"):
        return getattr(value, kind)
    return None  # arrays, maps and bytes name no dimension we read


# --------------------------------------------------------------------------- OTLP JSON


def _json_spans(body: bytes) -> Iterator[Span]:
    try:
        request = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadBody(f"not JSON: {exc}") from None
    if not isinstance(request, dict):
        raise BadBody("an OTLP JSON ExportTraceServiceRequest is an object with resourceSpans")
    return _json_iter(request)


def _list(obj: Mapping[str, Any], key: str) -> list[Any]:
    value = obj.get(key) or []
    if not isinstance(value, list):
        raise BadBody(f"{key} must be an array")
    return value


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise BadBody(f"{what} must be an object")
    return value


def _json_attrs(items: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in items:
        if isinstance(kv, dict) and isinstance(kv.get("key"), str):
            out[kv["key"]] = _json_value(kv.get("value"))
    return out


def _json_value(value: Any) -> Any:
    if not isinstance(value, dict):
        return None
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:  # int64: a string in OTLP JSON (a number is accepted)
        raw = value["intValue"]
        try:
            return int(raw) if isinstance(raw, str | int) and not isinstance(raw, bool) else raw
        except ValueError:
            return raw
    if "doubleValue" in value:
        raw = value["doubleValue"]
        return float(raw) if isinstance(raw, int | float | str) else raw
    if "boolValue" in value:
        return value["boolValue"]
    return None


def _nanos(value: Any) -> int:
    if value is None or value == "":
        return 0
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadBody(f"a *UnixNano time must be an integer (string), got {value!r}") from None


def _json_iter(request: Mapping[str, Any]) -> Iterator[Span]:
    for rs in _list(request, "resourceSpans"):
        rs = _object(rs, "resourceSpans[]")
        resource = _json_attrs(_list(_object(rs.get("resource") or {}, "resource"), "attributes"))
        for ss in _list(rs, "scopeSpans"):
            for span in _list(_object(ss, "scopeSpans[]"), "spans"):
                span = _object(span, "spans[]")
                yield (
                    str(span.get("traceId") or ""),
                    str(span.get("spanId") or ""),
                    _nanos(span.get("endTimeUnixNano")) or _nanos(span.get("startTimeUnixNano")),
                    _json_attrs(_list(span, "attributes")),
                    resource,
                )


# --------------------------------------------------------------------------- response


def error_message(rejected: list[Rejection]) -> str:
    """``partial_success.error_message``: the first few reasons, then how many more."""
    shown = "; ".join(f"span {r.index} ({r.id}): {r.reason}" for r in rejected[:MAX_REASONS])
    more = len(rejected) - MAX_REASONS
    return shown + (f"; and {more} more" if more > 0 else "")


def response(rejected: list[Rejection], content_type: str) -> tuple[bytes, str]:
    """The ``ExportTraceServiceResponse`` body in the request's encoding, and its type."""
    message = error_message(rejected)
    if media_type(content_type) == PROTOBUF:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTracePartialSuccess,
            ExportTraceServiceResponse,
        )

        reply = ExportTraceServiceResponse()
        if rejected:
            reply.partial_success.CopyFrom(
                ExportTracePartialSuccess(rejected_spans=len(rejected), error_message=message)
            )
        return reply.SerializeToString(), PROTOBUF
    partial = {"rejectedSpans": str(len(rejected)), "errorMessage": message} if rejected else None
    body = {"partialSuccess": partial} if partial else {}
    return json.dumps(body).encode(), JSON
