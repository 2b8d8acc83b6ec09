"""Plain JSON request events -> request records.

The body of ``POST /api/v1/events`` is a JSON array of event objects, or NDJSON (one
object per line). An event::

    {"id": "req-0001", "time": "2026-03-18T12:00:00Z", "provider": "openai",
     "model": "gpt-4o-mini", "input_tokens": 1200, "output_tokens": 300,
     "cache_read_tokens": 1000, "cache_write_tokens": 0, "endpoint": "/summarize",
     "tenant": "acme", "user": "u-42", "prompt_version": "summarizer_v4",
     "outcome": "success", "retry": false}

``input_tokens`` counts all input tokens, cached ones included (as the OpenTelemetry GenAI
conventions do), so it may not be less than ``cache_read_tokens + cache_write_tokens``.
Each invalid event is reported (index, id, reason); the valid ones are kept. Unknown
fields are refused, so a misspelt field is an error instead of a silent zero.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from exporter.ingest.attributes import (
    MAX_ID_LENGTH,
    MAX_LABEL_LENGTH,
    Invalid,
    Parsed,
    Rejection,
    count,
    label,
    provider_id,
    user_label,
)
from exporter.records import RequestRecord

REQUIRED = ("id", "time", "provider", "model", "input_tokens", "output_tokens")
OPTIONAL = (
    "cache_read_tokens", "cache_write_tokens", "endpoint", "tenant", "user",
    "prompt_version", "outcome", "retry",
)  # fmt: skip
FIELDS = frozenset(REQUIRED + OPTIONAL)


class BadBody(ValueError):
    """A body that holds no events at all (not JSON, not an array, not NDJSON): HTTP 400."""


def decode(body: bytes) -> Parsed:
    """The events of a JSON array or NDJSON body."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadBody(f"not UTF-8: {exc}") from None
    stripped = text.lstrip()
    if not stripped:
        raise BadBody("empty body: send a JSON array of events or NDJSON")
    items: list[tuple[Any, str | None]]  # (event, parse error of its NDJSON line)
    if stripped.startswith("["):
        try:
            array = json.loads(stripped)
        except ValueError as exc:
            raise BadBody(f"not a JSON array: {exc}") from None
        if not isinstance(array, list):
            raise BadBody("not a JSON array")
        items = [(e, None) for e in array]
    else:
        items = []
        for line in stripped.splitlines():
            if not line.strip():
                continue
            try:
                items.append((json.loads(line), None))
            except ValueError as exc:
                items.append((None, f"not JSON: {exc}"))
        if all(problem for _, problem in items):
            raise BadBody("neither a JSON array nor NDJSON: no line is a JSON object")
    parsed = Parsed()
    for index, (item, problem) in enumerate(items):
        raw_id = item.get("id") if isinstance(item, dict) else None
        shown = raw_id if isinstance(raw_id, str) else ""
        try:
            if problem:
                raise Invalid(problem)
            parsed.add(index, event_record(item))
        except Invalid as exc:
            parsed.rejected.append(Rejection(index, shown[:MAX_ID_LENGTH], str(exc)))
    return parsed


def _time(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            t = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise Invalid(f"time {value[:40]!r} is not an RFC 3339 timestamp") from None
        if t.tzinfo is None:
            raise Invalid("time needs a UTC offset (e.g. 2026-03-18T12:00:00Z)")
        return t.astimezone(UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)  # Unix seconds
    raise Invalid("time must be an RFC 3339 string or Unix seconds")


def _name(event: dict[str, Any], key: str) -> str:
    value = event.get(key)
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"{key} must be a non-empty string")
    if len(value) > MAX_LABEL_LENGTH:
        raise Invalid(f"{key} is longer than {MAX_LABEL_LENGTH} characters")
    return value.strip()


def event_record(event: Any) -> RequestRecord:
    """One event object -> its record; :class:`Invalid` with the reason otherwise."""
    if not isinstance(event, dict):
        raise Invalid(f"an event must be a JSON object, got {type(event).__name__}")
    missing = [k for k in REQUIRED if event.get(k) is None]
    if missing:
        raise Invalid(f"missing field(s): {', '.join(missing)}")
    unknown = sorted(set(event) - FIELDS)
    if unknown:
        raise Invalid(f"unknown field(s): {', '.join(unknown)}")
    event_id = event["id"]
    if not isinstance(event_id, str) or not event_id or len(event_id) > MAX_ID_LENGTH:
        raise Invalid(f"id must be a non-empty string of at most {MAX_ID_LENGTH} characters")
    tokens = {k: count(event.get(k, 0), k) for k in (
        "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"
    )}  # fmt: skip
    cached = tokens["cache_read_tokens"] + tokens["cache_write_tokens"]
    if tokens["input_tokens"] < cached:
        raise Invalid(
            "input_tokens counts all input tokens, cached ones included: it cannot be less "
            "than cache_read_tokens + cache_write_tokens"
        )
    retry = event.get("retry", False)
    if not isinstance(retry, bool):
        raise Invalid("retry must be true or false")
    return RequestRecord(
        id=f"event:{event_id}",
        time=_time(event["time"]),
        provider=provider_id(_name(event, "provider")),
        model=_name(event, "model"),
        input_tokens=tokens["input_tokens"] - cached,
        output_tokens=tokens["output_tokens"],
        cache_read_tokens=tokens["cache_read_tokens"],
        cache_write_tokens=tokens["cache_write_tokens"],
        endpoint=label(event.get("endpoint"), "endpoint"),
        tenant=label(event.get("tenant"), "tenant"),
        user=user_label(event.get("user")),
        prompt_version=label(event.get("prompt_version"), "prompt_version"),
        outcome=label(event.get("outcome"), "outcome"),
        retry=retry,
    )
