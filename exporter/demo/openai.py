"""A fake OpenAI organisation and a loopback HTTP server speaking its admin usage/cost API.

What is faked (reference ``provider-apis.md`` §1, "What a fake server must reproduce"):

* ``GET /v1/organization/usage/{completions,embeddings,moderations,images,audio_speeches,
  audio_transcriptions}`` and ``GET /v1/organization/costs`` with OpenAI's page envelope,
  one bucket per UTC day in ``[start_time, end_time)`` (empty ones included), paging by
  buckets with an opaque ``next_page`` cursor, ``group_by`` aggregation with ``null``
  echoes for ungrouped dimensions, the three array encodings on the query string, and
  400/401/403/404 errors with OpenAI's four-key error object.
* ``GET /v1/organization/projects`` and ``.../projects/{id}/api_keys`` list endpoints with
  ``after``/``has_more`` paging.
* Injectable faults (429 + ``Retry-After``, 5xx, slow answers, truncated or raw bodies) and
  revisions (tests mutate :attr:`FakeOpenAIServer.org`, e.g. with
  :meth:`FakeOpenAIOrg.scale_day`).

The truth is kept at day grain (:class:`UsageRow`, :class:`CostRow`), so only
``bucket_width=1d`` really buckets; ``1h``/``1m`` are answered with a 400 saying so. A
bucket that covers only part of a day (an unaligned ``start_time``, or today's bucket) holds
that whole day's truth.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from exporter.demo.http import (
    ApiError,
    FakeHTTPServer,
    Fault,
    Query,
    RecordedRequest,
    Response,
    bad_request,
    bucket_day,
    by_day,
    cut_page,
    day_end,
    day_start,
    decimal_text,
    dump_json,
    encode_cursor,
    filters,
    group_by,
    list_page,
    matches,
    page_start,
    scale_int,
    sort_key,
)

__all__ = [
    "AMOUNT_QUANTUM",
    "DEFAULT_ADMIN_KEY",
    "ApiError",
    "CostRow",
    "FakeOpenAIOrg",
    "FakeOpenAIServer",
    "Fault",
    "RecordedRequest",
    "Response",
    "UsageRow",
    "aggregate_costs",
    "aggregate_usage",
    "day_end",
    "day_start",
    "decimal_text",
    "dump_json",
]

AMOUNT_QUANTUM = Decimal("0.00000001")
DEFAULT_ADMIN_KEY = "fake-admin-key-for-tests"
PROJECT_KEY_PREFIX = "fake-project-key"


# --------------------------------------------------------------------------- truth model


@dataclass
class UsageRow:
    """One truth usage row at the finest grain the fake knows (a UTC day)."""

    day: date
    endpoint: str  # completions | embeddings | moderations | images | audio_speeches | ...
    project_id: str
    model: str
    api_key_id: str | None
    user_id: str | None = None
    batch: bool = False  # completions only
    service_tier: str | None = None  # completions only, e.g. "default", "flex"
    input_tokens: int = 0  # ALL input incl. cached and cache-write (OpenAI semantics)
    output_tokens: int = 0
    input_cached_tokens: int = 0
    input_cache_write_tokens: int = 0  # "new" field; sent only when org.new_fields
    num_model_requests: int = 0
    images: int = 0
    characters: int = 0
    seconds: int = 0
    source: str | None = None  # images only, e.g. "image.generation"
    size: str | None = None  # images only, e.g. "1024x1024"


@dataclass
class CostRow:
    """One truth cost line for a day; the last three fields are test truth, never sent."""

    day: date
    project_id: str | None
    line_item: str | None  # verbatim OpenAI-style text, e.g. "gpt-4o-2024-08-06, cached input"
    amount: Decimal  # dollars, exact
    quantity: Decimal | None = None
    quantity_unit: str | None = None
    api_key_id: str | None = None
    model: str = ""  # "" for tool/service lines
    cost_type: str = "tokens"  # tokens | web_search | code_execution | file_search | other
    token_type: str = ""  # input | cache_read | cache_write | output | ""


_USAGE_INT_FIELDS: tuple[str, ...] = (
    "input_tokens",
    "output_tokens",
    "input_cached_tokens",
    "input_cache_write_tokens",
    "num_model_requests",
    "images",
    "characters",
    "seconds",
)


def _scale_usage_row(row: UsageRow, factor: Decimal) -> UsageRow:
    scaled = replace(
        row, **{name: scale_int(getattr(row, name), factor) for name in _USAGE_INT_FIELDS}
    )
    # Rounding must not break the invariant cached + cache_write <= input.
    scaled.input_cached_tokens = min(scaled.input_cached_tokens, scaled.input_tokens)
    scaled.input_cache_write_tokens = min(
        scaled.input_cache_write_tokens, scaled.input_tokens - scaled.input_cached_tokens
    )
    return scaled


def _scale_cost_row(row: CostRow, factor: Decimal) -> CostRow:
    quantity = row.quantity
    if quantity is not None:
        if quantity == quantity.to_integral_value():
            quantity = Decimal(scale_int(int(quantity), factor))
        else:
            quantity = (quantity * factor).quantize(AMOUNT_QUANTUM, rounding=ROUND_HALF_EVEN)
    amount = (row.amount * factor).quantize(AMOUNT_QUANTUM, rounding=ROUND_HALF_EVEN)
    return replace(row, amount=amount, quantity=quantity)


@dataclass
class FakeOpenAIOrg:
    """A fake organisation: projects, their API keys, and day-grain usage and cost truth."""

    admin_key: str = DEFAULT_ADMIN_KEY  # deliberately not shaped like a real admin key
    projects: list[dict[str, Any]] = field(default_factory=list)
    api_keys: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    usage: list[UsageRow] = field(default_factory=list)
    costs: list[CostRow] = field(default_factory=list)
    new_fields: bool = True  # send the mid-2026 optional completions fields
    amounts_as_strings: bool = False  # send amount.value as a JSON string

    def scale_day(self, day: date, factor: Decimal | int | str) -> None:
        """Revise one day: multiply its usage (ints rounded half-even) and costs (8 dp).

        The lists are replaced, not edited in place, so a concurrent reader sees either the
        old or the new day, never a mix.
        """
        factor = Decimal(factor)
        if factor < 0:
            raise ValueError("factor must be >= 0")
        self.usage = [_scale_usage_row(r, factor) if r.day == day else r for r in self.usage]
        self.costs = [_scale_cost_row(r, factor) if r.day == day else r for r in self.costs]

    def project_ids(self) -> list[str]:
        return [str(p["id"]) for p in self.projects]


# --------------------------------------------------------------------------- endpoint specs


@dataclass(frozen=True)
class _UsageSpec:
    result_object: str
    dims: tuple[str, ...]
    metrics: tuple[str, ...]  # UsageRow attributes summed into a result
    filters: tuple[tuple[str, str], ...]  # (query param, UsageRow attribute)


_COMMON_DIMS = ("project_id", "user_id", "api_key_id", "model")
_COMMON_FILTERS = (
    ("project_ids", "project_id"),
    ("user_ids", "user_id"),
    ("api_key_ids", "api_key_id"),
    ("models", "model"),
)
_TOKEN_METRICS = ("input_tokens", "num_model_requests")

USAGE_SPECS: dict[str, _UsageSpec] = {
    "completions": _UsageSpec(
        "organization.usage.completions.result",
        (*_COMMON_DIMS, "batch", "service_tier"),
        (
            "input_tokens",
            "output_tokens",
            "input_cached_tokens",
            "input_cache_write_tokens",
            "num_model_requests",
        ),
        _COMMON_FILTERS,
    ),
    "embeddings": _UsageSpec(
        "organization.usage.embeddings.result", _COMMON_DIMS, _TOKEN_METRICS, _COMMON_FILTERS
    ),
    "moderations": _UsageSpec(
        "organization.usage.moderations.result", _COMMON_DIMS, _TOKEN_METRICS, _COMMON_FILTERS
    ),
    "images": _UsageSpec(
        "organization.usage.images.result",
        (*_COMMON_DIMS, "size", "source"),
        ("images", "num_model_requests"),
        (*_COMMON_FILTERS, ("sources", "source"), ("sizes", "size")),
    ),
    "audio_speeches": _UsageSpec(
        "organization.usage.audio_speeches.result",
        _COMMON_DIMS,
        ("characters", "num_model_requests"),
        _COMMON_FILTERS,
    ),
    "audio_transcriptions": _UsageSpec(
        "organization.usage.audio_transcriptions.result",
        _COMMON_DIMS,
        ("seconds", "num_model_requests"),
        _COMMON_FILTERS,
    ),
}

COST_DIMS: tuple[str, ...] = ("project_id", "line_item", "api_key_id")
_COST_FILTERS: tuple[tuple[str, str], ...] = (
    ("project_ids", "project_id"),
    ("api_key_ids", "api_key_id"),
)

USAGE_LIMITS = (7, 1, 31)  # default, min, max buckets per page for 1d
COST_LIMITS = (7, 1, 180)
LIST_LIMITS = (20, 1, 100)


# --------------------------------------------------------------------------- pages


@dataclass(frozen=True)
class _Window:
    start: int
    end: int
    limit: int
    first: int  # start of the first bucket on this page


def _window(query: Query, now: datetime, limits: tuple[int, int, int]) -> _Window:
    """Validate start/end/limit/page; buckets are 1d only (checked by the caller)."""
    start = query.integer("start_time", None, 0, 2**40)
    end = query.integer("end_time", int(now.timestamp()), 0, 2**40)
    if end <= start:
        raise bad_request("'end_time' must be greater than 'start_time'.", "end_time")
    limit = query.integer("limit", *limits)
    return _Window(start, end, limit, page_start(query, start, end))


def _page(window: _Window, bucket: Callable[[int, int], dict[str, Any]]) -> dict[str, Any]:
    """Cut one page of ``window.limit`` buckets and attach the envelope."""
    spans, next_start = cut_page(window.first, window.end, window.limit)
    data = [
        {"object": "bucket", "start_time": start, "end_time": stop} | bucket(start, stop)
        for start, stop in spans
    ]
    return {
        "object": "page",
        "data": data,
        "has_more": next_start is not None,
        "next_page": encode_cursor(next_start) if next_start is not None else None,
    }


# --------------------------------------------------------------------------- aggregation


def aggregate_usage(
    rows: Iterable[UsageRow], spec: _UsageSpec, group_by: set[str], new_fields: bool
) -> list[dict[str, Any]]:
    """One result per distinct combination of grouped dims; other dims echo ``null``."""
    sums: dict[tuple[Any, ...], dict[str, int]] = {}
    for row in rows:
        key = tuple(getattr(row, d) if d in group_by else None for d in spec.dims)
        acc = sums.setdefault(key, dict.fromkeys(spec.metrics, 0))
        for metric in spec.metrics:
            acc[metric] += getattr(row, metric)
    return [
        _usage_result(spec, dict(zip(spec.dims, key, strict=True)), sums[key], new_fields)
        for key in sorted(sums, key=sort_key)
    ]


def _usage_result(
    spec: _UsageSpec, dims: dict[str, Any], sums: dict[str, int], new_fields: bool
) -> dict[str, Any]:
    result: dict[str, Any] = {"object": spec.result_object}
    if spec.result_object.endswith(".completions.result"):
        result |= {
            "input_tokens": sums["input_tokens"],
            "output_tokens": sums["output_tokens"],
            "input_cached_tokens": sums["input_cached_tokens"],
            "input_audio_tokens": 0,
            "output_audio_tokens": 0,
            "num_model_requests": sums["num_model_requests"],
        }
        if new_fields:
            cache_write = sums["input_cache_write_tokens"]
            result["input_cache_write_tokens"] = cache_write
            result["input_uncached_tokens"] = (
                sums["input_tokens"] - sums["input_cached_tokens"] - cache_write
            )
    else:
        result |= sums
    return result | dims


def aggregate_costs(
    rows: Iterable[CostRow], group_by: set[str], as_strings: bool
) -> list[dict[str, Any]]:
    """Cost results; ``quantity``/``quantity_unit`` only when grouped by line_item."""
    amounts: dict[tuple[Any, ...], Decimal] = {}
    quantities: dict[tuple[Any, ...], Decimal | None] = {}
    units: dict[tuple[Any, ...], str | None] = {}
    for row in rows:
        key = tuple(getattr(row, d) if d in group_by else None for d in COST_DIMS)
        amounts[key] = amounts.get(key, Decimal(0)) + row.amount
        if row.quantity is not None:
            quantities[key] = (quantities.get(key) or Decimal(0)) + row.quantity
        if row.quantity_unit is not None:
            units.setdefault(key, row.quantity_unit)
    by_line = "line_item" in group_by
    results = []
    for key in sorted(amounts, key=sort_key):
        amount = amounts[key]
        value: Any = decimal_text(amount) if as_strings else amount
        results.append(
            {
                "object": "organization.costs.result",
                "amount": {"value": value, "currency": "usd"},
                **dict(zip(COST_DIMS, key, strict=True)),
                "quantity": quantities.get(key) if by_line else None,
                "quantity_unit": units.get(key) if by_line else None,
            }
        )
    return results


# --------------------------------------------------------------------------- server


def _error_type(status: int) -> tuple[str, str | None]:
    if status == 429:
        return "requests", "rate_limit_exceeded"
    if status >= 500:
        return "server_error", None
    return "invalid_request_error", None


class FakeOpenAIServer(FakeHTTPServer[FakeOpenAIOrg]):
    """Serves a :class:`FakeOpenAIOrg` over HTTP on loopback (``127.0.0.1`` by default).

    Use as a context manager; point clients at :attr:`base_url` (``.../v1``). ``now`` (UTC)
    is the clock used for the default ``end_time``.
    """

    name = "fake-openai"
    path_prefix = "/v1"

    def error_body(self, err: ApiError) -> dict[str, Any]:
        """OpenAI's four-key error object."""
        return {
            "error": {
                "message": err.message,
                "type": err.type,
                "param": err.param,
                "code": err.code,
            }
        }

    def fault_error(self, status: int) -> ApiError:
        type_, code = _error_type(status)
        message = "Rate limit reached." if status == 429 else "The fake server had an error."
        return ApiError(status, message, type_=type_, code=code)

    def answer(
        self, method: str, path: str, query: Query, headers: dict[str, str]
    ) -> dict[str, Any]:
        self._authorize(headers.get("authorization"))
        if method != "GET":
            raise ApiError(405, f"Method {method} not allowed on {path}.")
        return self._route(path, query)

    def _authorize(self, header: str | None) -> None:
        scheme, _, token = (header or "").partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token == self._org.admin_key:
            return
        if scheme.lower() == "bearer" and token.startswith(PROJECT_KEY_PREFIX):
            raise ApiError(
                403,
                "You have insufficient permissions for this operation. "
                "Missing scopes: api.usage.read. (fake: project keys cannot read usage)",
            )
        if not token:
            raise ApiError(401, "You didn't provide an API key (fake).")
        raise ApiError(401, "Incorrect API key provided (fake).", code="invalid_api_key")

    def _route(self, path: str, query: Query) -> dict[str, Any]:
        parts = path.rstrip("/").split("/")
        # ["", "v1", "organization", ...]
        if parts[:3] == ["", "v1", "organization"]:
            rest = parts[3:]
            if len(rest) == 2 and rest[0] == "usage" and rest[1] in USAGE_SPECS:
                return self._usage(rest[1], query)
            if rest == ["costs"]:
                return self._costs(query)
            if rest == ["projects"]:
                return self._projects(query)
            if len(rest) == 3 and rest[0] == "projects" and rest[2] == "api_keys":
                return self._api_keys(rest[1], query)
        raise ApiError(404, f"Invalid URL (GET {path}) on the fake OpenAI server.")

    def _usage(self, endpoint: str, query: Query) -> dict[str, Any]:
        spec = USAGE_SPECS[endpoint]
        width = query.one("bucket_width") or "1d"
        if width in ("1h", "1m"):
            message = f"bucket_width={width} is not supported by the fake (1d only)."
            raise bad_request(message, "bucket_width")
        if width != "1d":
            raise bad_request(f"Invalid bucket_width {width!r}; use 1m, 1h or 1d.", "bucket_width")
        window = _window(query, self._now(), USAGE_LIMITS)
        grouped = group_by(query, spec.dims)
        wanted = filters(query, spec.filters)
        batch = query.boolean("batch") if endpoint == "completions" else None
        rows = by_day(
            r
            for r in self._org.usage
            if r.endpoint == endpoint and matches(r, wanted) and (batch is None or r.batch == batch)
        )
        new_fields = self._org.new_fields

        def bucket(start: int, _stop: int) -> dict[str, Any]:
            day_rows = rows.get(bucket_day(start), [])
            return {"results": aggregate_usage(day_rows, spec, grouped, new_fields)}

        return _page(window, bucket)

    def _costs(self, query: Query) -> dict[str, Any]:
        width = query.one("bucket_width") or "1d"
        if width != "1d":
            raise bad_request(
                f"Invalid bucket_width {width!r}; costs support only 1d.", "bucket_width"
            )
        window = _window(query, self._now(), COST_LIMITS)
        grouped = group_by(query, COST_DIMS)
        wanted = filters(query, _COST_FILTERS)
        rows = by_day(r for r in self._org.costs if matches(r, wanted))
        as_strings = self._org.amounts_as_strings

        def bucket(start: int, _stop: int) -> dict[str, Any]:
            day_rows = rows.get(bucket_day(start), [])
            return {"results": aggregate_costs(day_rows, grouped, as_strings)}

        return _page(window, bucket)

    def _projects(self, query: Query) -> dict[str, Any]:
        include_archived = bool(query.boolean("include_archived"))
        projects = [
            p
            for p in self._org.projects
            if include_archived or (p.get("archived_at") is None and p.get("status") != "archived")
        ]
        return _list_page(projects, query)

    def _api_keys(self, project_id: str, query: Query) -> dict[str, Any]:
        if project_id not in self._org.project_ids() and project_id not in self._org.api_keys:
            raise ApiError(404, f"No such project: {project_id}.", param="project_id")
        keys = self._org.api_keys.get(project_id, [])
        access = query.one("owner_project_access")
        if access not in (None, "", "any", "active", "inactive"):
            raise bad_request(f"Invalid owner_project_access {access!r}.", "owner_project_access")
        if access in ("active", "inactive"):
            keys = [k for k in keys if k.get("owner_project_access", "active") == access]
        return _list_page(keys, query)


def _list_page(items: list[dict[str, Any]], query: Query) -> dict[str, Any]:
    """OpenAI list envelope with ``after=<id>`` paging."""
    return {"object": "list"} | list_page(items, query, "after", LIST_LIMITS)
