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

import base64
import binascii
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from exporter.demo.loopback import Fault as Fault  # re-exported: tests import it from here
from exporter.demo.loopback import (
    LoopbackServer,
    Response,
    decimal_text,
    json_response,
    retry_after_headers,
)

DAY_SECONDS = 86_400
AMOUNT_QUANTUM = Decimal("0.00000001")
DEFAULT_ADMIN_KEY = "fake-admin-key-for-tests"
PROJECT_KEY_PREFIX = "fake-project-key"
PAGE_PREFIX = "page_"


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


def _scale_int(value: int, factor: Decimal) -> int:
    return int((Decimal(value) * factor).to_integral_value(rounding=ROUND_HALF_EVEN))


def _scale_usage_row(row: UsageRow, factor: Decimal) -> UsageRow:
    scaled = replace(
        row, **{name: _scale_int(getattr(row, name), factor) for name in _USAGE_INT_FIELDS}
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
            quantity = Decimal(_scale_int(int(quantity), factor))
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

    def days(self) -> list[date]:
        """All days that have usage or cost truth, oldest first."""
        return sorted({r.day for r in self.usage} | {r.day for r in self.costs})

    def cost_total(self, start: date, end: date) -> Decimal:
        """Sum of all cost lines on days in ``[start, end)``."""
        return sum((r.amount for r in self.costs if start <= r.day < end), Decimal(0))


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


# --------------------------------------------------------------------------- wire helpers


class ApiError(Exception):
    """An error answered with OpenAI's error object."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def _bad(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, param=param)


def encode_cursor(start: int) -> str:
    """Opaque page cursor for a bucket start (``page_`` + base64, like OpenAI's)."""
    return PAGE_PREFIX + base64.urlsafe_b64encode(struct.pack(">q", start)).decode()


def decode_cursor(cursor: str) -> int:
    if not cursor.startswith(PAGE_PREFIX):
        raise _bad("Invalid page cursor.", "page")
    try:
        raw = base64.urlsafe_b64decode(cursor[len(PAGE_PREFIX) :].encode())
        (start,) = struct.unpack(">q", raw)
    except (binascii.Error, struct.error, ValueError) as exc:
        raise _bad("Invalid page cursor.", "page") from exc
    return int(start)


class Query:
    """The query string, with OpenAI's scalar and array parameter encodings."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self.pairs = list(pairs)

    def one(self, name: str) -> str | None:
        for key, value in self.pairs:
            if key == name:
                return value
        return None

    def many(self, name: str) -> list[str]:
        """``name[]=a&name[]=b``, ``name=a&name=b`` and ``name=a,b`` all give ``[a, b]``."""
        values: list[str] = []
        for key, value in self.pairs:
            if key in (name, f"{name}[]"):
                values.extend(part.strip() for part in value.split(",") if part.strip())
        return values

    def integer(self, name: str, default: int | None, low: int, high: int) -> int:
        raw = self.one(name)
        if raw is None or raw == "":
            if default is None:
                raise _bad(f"Missing required parameter: '{name}'.", name)
            return default
        try:
            value = int(raw)
        except ValueError as exc:
            raise _bad(f"Invalid '{name}': expected an integer, got {raw!r}.", name) from exc
        if not low <= value <= high:
            raise _bad(f"Invalid '{name}': {value} is not between {low} and {high}.", name)
        return value

    def boolean(self, name: str) -> bool | None:
        raw = self.one(name)
        if raw is None or raw == "":
            return None
        if raw.lower() in ("true", "1"):
            return True
        if raw.lower() in ("false", "0"):
            return False
        raise _bad(f"Invalid '{name}': expected true or false, got {raw!r}.", name)


def _group_by(query: Query, allowed: tuple[str, ...]) -> set[str]:
    values = query.many("group_by")
    for value in values:
        if value not in allowed:
            raise _bad(
                f"Invalid group_by value {value!r}; allowed: {', '.join(allowed)}.", "group_by"
            )
    return set(values)


def _filters(query: Query, specs: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    return {attr: set(values) for param, attr in specs if (values := query.many(param))}


def _matches(row: Any, filters: dict[str, set[str]]) -> bool:
    return all(getattr(row, attr) in allowed for attr, allowed in filters.items())


def _next_midnight(ts: int) -> int:
    return (ts // DAY_SECONDS + 1) * DAY_SECONDS


def _bucket_day(ts: int) -> date:
    return datetime.fromtimestamp(ts, UTC).date()


def _buckets(first: int, end: int) -> Iterator[tuple[int, int]]:
    """Bucket (start, end) pairs from ``first`` until ``end``; each ends at a UTC midnight."""
    start = first
    while start < end:
        stop = _next_midnight(start)
        yield start, stop
        start = stop


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
        raise _bad("'end_time' must be greater than 'start_time'.", "end_time")
    limit = query.integer("limit", *limits)
    first = start
    page = query.one("page")
    if page:
        first = decode_cursor(page)
        if not (start <= first < end and (first == start or first % DAY_SECONDS == 0)):
            raise _bad("Invalid page cursor for this query.", "page")
    return _Window(start, end, limit, first)


def _page(window: _Window, bucket: Callable[[int, int], dict[str, Any]]) -> dict[str, Any]:
    """Cut one page of ``window.limit`` buckets and attach the envelope."""
    data: list[dict[str, Any]] = []
    next_start: int | None = None
    for start, stop in _buckets(window.first, window.end):
        if len(data) == window.limit:
            next_start = start
            break
        head = {"object": "bucket", "start_time": start, "end_time": stop}
        data.append(head | bucket(start, stop))
    return {
        "object": "page",
        "data": data,
        "has_more": next_start is not None,
        "next_page": encode_cursor(next_start) if next_start is not None else None,
    }


def _sort_key(key: tuple[Any, ...]) -> tuple[tuple[bool, str], ...]:
    return tuple((value is None, str(value)) for value in key)


def _by_day(rows: Iterable[Any]) -> dict[date, list[Any]]:
    out: dict[date, list[Any]] = {}
    for row in rows:
        out.setdefault(row.day, []).append(row)
    return out


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
        for key in sorted(sums, key=_sort_key)
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
    for key in sorted(amounts, key=_sort_key):
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


class FakeOpenAIServer(LoopbackServer[FakeOpenAIOrg]):
    """Serves a :class:`FakeOpenAIOrg` over HTTP on loopback (``127.0.0.1`` by default).

    Use as a context manager; point clients at :attr:`base_url`. ``now`` (UTC) is the clock
    used for the default ``end_time``.
    """

    server_version = "FakeOpenAI/1.0"
    base_path = "/v1"

    @property
    def org(self) -> FakeOpenAIOrg:
        return self.truth

    @org.setter
    def org(self, org: FakeOpenAIOrg) -> None:
        self.truth = org

    def _fault_error(self, fault: Fault) -> Response:
        status = fault.status or 500
        type_, code = _error_type(status)
        message = "Rate limit reached." if status == 429 else "The fake server had an error."
        error = ApiError(status, message, type_=type_, code=code)
        return json_response(status, error.body(), retry_after_headers(fault))

    def _answer(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        headers: dict[str, str],
        body: bytes,
    ) -> Response:
        try:
            with self.lock:
                self._authorize(headers.get("authorization"))
                if method != "GET":
                    raise ApiError(405, f"Method {method} not allowed on {path}.")
                return json_response(200, self._route(path, Query(query)))
        except ApiError as err:
            return json_response(err.status, err.body(), err.headers)

    def _authorize(self, header: str | None) -> None:
        scheme, _, token = (header or "").partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token == self.org.admin_key:
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
            raise _bad(message, "bucket_width")
        if width != "1d":
            raise _bad(f"Invalid bucket_width {width!r}; use 1m, 1h or 1d.", "bucket_width")
        window = _window(query, self._now(), USAGE_LIMITS)
        group_by = _group_by(query, spec.dims)
        filters = _filters(query, spec.filters)
        batch = query.boolean("batch") if endpoint == "completions" else None
        rows = _by_day(
            r
            for r in self.org.usage
            if r.endpoint == endpoint
            and _matches(r, filters)
            and (batch is None or r.batch == batch)
        )
        new_fields = self.org.new_fields

        def bucket(start: int, _stop: int) -> dict[str, Any]:
            day_rows = rows.get(_bucket_day(start), [])
            return {"results": aggregate_usage(day_rows, spec, group_by, new_fields)}

        return _page(window, bucket)

    def _costs(self, query: Query) -> dict[str, Any]:
        width = query.one("bucket_width") or "1d"
        if width != "1d":
            raise _bad(f"Invalid bucket_width {width!r}; costs support only 1d.", "bucket_width")
        window = _window(query, self._now(), COST_LIMITS)
        group_by = _group_by(query, COST_DIMS)
        filters = _filters(query, _COST_FILTERS)
        rows = _by_day(r for r in self.org.costs if _matches(r, filters))
        as_strings = self.org.amounts_as_strings

        def bucket(start: int, _stop: int) -> dict[str, Any]:
            day_rows = rows.get(_bucket_day(start), [])
            return {"results": aggregate_costs(day_rows, group_by, as_strings)}

        return _page(window, bucket)

    def _projects(self, query: Query) -> dict[str, Any]:
        include_archived = bool(query.boolean("include_archived"))
        projects = [
            p
            for p in self.org.projects
            if include_archived or (p.get("archived_at") is None and p.get("status") != "archived")
        ]
        return _list_page(projects, query)

    def _api_keys(self, project_id: str, query: Query) -> dict[str, Any]:
        if project_id not in self.org.project_ids() and project_id not in self.org.api_keys:
            raise ApiError(404, f"No such project: {project_id}.", param="project_id")
        keys = self.org.api_keys.get(project_id, [])
        access = query.one("owner_project_access")
        if access not in (None, "", "any", "active", "inactive"):
            raise _bad(f"Invalid owner_project_access {access!r}.", "owner_project_access")
        if access in ("active", "inactive"):
            keys = [k for k in keys if k.get("owner_project_access", "active") == access]
        return _list_page(keys, query)


def _list_page(items: list[dict[str, Any]], query: Query) -> dict[str, Any]:
    """OpenAI list envelope with ``after=<id>`` paging."""
    limit = query.integer("limit", *LIST_LIMITS)
    after = query.one("after")
    offset = 0
    if after:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise _bad(f"Invalid 'after': no object with id {after!r}.", "after")
        offset = ids.index(after) + 1
    page = items[offset : offset + limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": offset + limit < len(items),
    }


def day_start(day: date) -> int:
    """Unix seconds of a UTC day's midnight."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def day_end(day: date) -> int:
    return day_start(day + timedelta(days=1))
