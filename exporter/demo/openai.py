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

:func:`generate_org` builds the organisation ``demo`` serves: realistic, deterministic,
all synthetic: four projects ("Search", "Support bot", "Data pipeline", "R&D sandbox"),
two or three API keys each, a weekday pattern (weekends ~40 % of a weekday), mild growth,
noise, prompt caching, batch traffic, a web-search tool line and a vector-storage line.
Costs are derived from the usage with :data:`PRICES_PER_MTOK`, so the test oracles
(``tests/oracles/openai.py``) are exact.

Cost lines follow OpenAI's observed ``line_item`` texts: ``"<model>, input"`` (uncached
input *plus* cache-write tokens, both at the input price: OpenAI has no separate
cache-write line), ``"<model>, cached input"``, ``"<model>, output"``,
``"<model>, image generation"``, ``"web search tool calls"`` and ``"Vector storage"``.
Batch traffic is billed at 50 % and folded into the same (day, project, line_item) row.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
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
    "EMBEDDING",
    "GPT_4O",
    "GPT_4O_MINI",
    "IMAGE",
    "O3_MINI",
    "PRICES_PER_MTOK",
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
    "day_factor",
    "day_start",
    "decimal_text",
    "dump_json",
    "generate_org",
    "noise",
    "random_id",
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
    counts: dict[str, Any] = {n: scale_int(getattr(row, n), factor) for n in _USAGE_INT_FIELDS}
    scaled = replace(row, **counts)
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
        value: str | Decimal = decimal_text(amount) if as_strings else amount
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


# --------------------------------------------------------------------------- generated org

GPT_4O = "gpt-4o-2024-08-06"
GPT_4O_MINI = "gpt-4o-mini-2024-07-18"
O3_MINI = "o3-mini-2025-01-31"
EMBEDDING = "text-embedding-3-small"
IMAGE = "gpt-image-1"

# USD per 1M tokens: (input, cached input, output). Embeddings price input only.
PRICES_PER_MTOK: dict[str, tuple[Decimal, Decimal, Decimal]] = {
    GPT_4O: (Decimal("2.50"), Decimal("1.25"), Decimal("10.00")),
    GPT_4O_MINI: (Decimal("0.15"), Decimal("0.075"), Decimal("0.60")),
    O3_MINI: (Decimal("1.10"), Decimal("0.55"), Decimal("4.40")),
    EMBEDDING: (Decimal("0.02"), Decimal("0.02"), Decimal("0")),
}
PRICE_PER_IMAGE: dict[str, Decimal] = {IMAGE: Decimal("0.04")}
BATCH_FACTOR = Decimal("0.5")
WEB_SEARCH_PRICE_PER_CALL = Decimal("0.01")  # $10 per 1,000 calls
VECTOR_STORAGE_PRICE_PER_GIB_DAY = Decimal("0.10")
TODAY_SHARE = 0.4  # today is partial
WEEKEND_SHARE = 0.4
MILLION = Decimal(1_000_000)

_ID_CHARS = string.ascii_letters + string.digits


# --------------------------------------------------------------------------- traffic shape


def _always(_age: int) -> float:
    return 1.0


def _legacy_key_share(age: int) -> float:
    """The retired support key: busy 31-60 days ago, silent for the last 30 days."""
    return 0.7 if 31 <= age <= 60 else 0.0


def _support_prod_share(age: int) -> float:
    return 1.0 - _legacy_key_share(age)


def _hackathon_share(age: int) -> float:
    """A personal key used on two days out of eleven."""
    return 1.0 if age % 11 in (3, 4) else 0.0


@dataclass(frozen=True)
class _Stream:
    """A steady source of traffic: weekday volume at the start of the window."""

    project: str
    key: str
    endpoint: str
    model: str
    requests: float
    input_per_request: int = 0
    output_per_request: int = 0
    batch: bool = False
    user: str | None = None
    share: Callable[[int], float] = _always  # age in days -> multiplier


@dataclass(frozen=True)
class _KeySpec:
    project: str
    name: str
    owner: str  # "service_account" | "user"
    user: str | None = None


PROJECTS: tuple[str, ...] = ("Search", "Support bot", "Data pipeline", "R&D sandbox")

_KEYS: tuple[_KeySpec, ...] = (
    _KeySpec("Search", "search-prod", "service_account"),
    _KeySpec("Search", "search-staging", "service_account"),
    _KeySpec("Support bot", "support-prod", "service_account"),
    _KeySpec("Support bot", "support-bot-v1", "service_account"),
    _KeySpec("Support bot", "support-eval", "user", "dana"),  # never used
    _KeySpec("Data pipeline", "batch-worker", "service_account"),
    _KeySpec("Data pipeline", "etl-dev", "user", "bob"),
    _KeySpec("R&D sandbox", "alice-notebook", "user", "alice"),
    _KeySpec("R&D sandbox", "rnd-shared", "service_account"),
    _KeySpec("R&D sandbox", "hackathon", "user", "bob"),
)

_STREAMS: tuple[_Stream, ...] = (
    _Stream("Search", "search-prod", "completions", GPT_4O_MINI, 4000, 1800, 220),
    _Stream("Search", "search-prod", "completions", GPT_4O, 300, 2500, 350),
    _Stream("Search", "search-prod", "embeddings", EMBEDDING, 9000, 600),
    _Stream("Search", "search-staging", "completions", GPT_4O_MINI, 250, 1800, 220),
    _Stream(
        "Support bot",
        "support-prod",
        "completions",
        GPT_4O,
        1500,
        3200,
        280,
        share=_support_prod_share,
    ),
    _Stream(
        "Support bot",
        "support-bot-v1",
        "completions",
        GPT_4O,
        1500,
        3200,
        280,
        share=_legacy_key_share,
    ),
    _Stream(
        "Support bot",
        "support-prod",
        "completions",
        GPT_4O_MINI,
        2500,
        1200,
        120,
        share=_support_prod_share,
    ),
    _Stream(
        "Support bot",
        "support-bot-v1",
        "completions",
        GPT_4O_MINI,
        2500,
        1200,
        120,
        share=_legacy_key_share,
    ),
    _Stream(
        "Data pipeline", "batch-worker", "completions", GPT_4O_MINI, 20000, 900, 150, batch=True
    ),
    _Stream("Data pipeline", "batch-worker", "completions", O3_MINI, 1200, 2000, 1500, batch=True),
    _Stream("Data pipeline", "batch-worker", "embeddings", EMBEDDING, 15000, 800),
    _Stream("Data pipeline", "etl-dev", "completions", GPT_4O_MINI, 150, 900, 150, user="bob"),
    _Stream("R&D sandbox", "alice-notebook", "completions", O3_MINI, 120, 1500, 2500, user="alice"),
    _Stream("R&D sandbox", "rnd-shared", "completions", GPT_4O, 100, 2000, 500, user="bob"),
    _Stream("R&D sandbox", "rnd-shared", "images", IMAGE, 25, user="bob"),
    _Stream(
        "R&D sandbox",
        "hackathon",
        "completions",
        GPT_4O_MINI,
        800,
        1000,
        400,
        user="bob",
        share=_hackathon_share,
    ),
)

# Share of a project's chat requests that call the web search tool.
_WEB_SEARCH_SHARE: dict[str, float] = {"Search": 0.01, "Support bot": 0.04}


def random_id(rng: random.Random, n: int = 24) -> str:
    """Letters and digits, as in provider ids (shared with the other demo orgs)."""
    return "".join(rng.choice(_ID_CHARS) for _ in range(n))


def noise(rng: random.Random, sigma: float) -> float:
    """A multiplier around 1 (Gaussian, clipped to 0.5..1.6)."""
    return min(1.6, max(0.5, rng.gauss(1.0, sigma)))


def day_factor(day: date, today: date, index: int, days: int, rng: random.Random) -> float:
    """Weekday pattern x growth x noise x partial today."""
    weekday = WEEKEND_SHARE if day.weekday() >= 5 else 1.0
    growth = 1.0 + 0.35 * index / max(1, days - 1)
    partial = TODAY_SHARE if day == today else 1.0
    return weekday * growth * noise(rng, 0.1) * partial


# --------------------------------------------------------------------------- generation


@dataclass
class _Ids:
    projects: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)


def _make_ids(rng: random.Random) -> _Ids:
    ids = _Ids()
    for name in PROJECTS:
        ids.projects[name] = "proj_" + random_id(rng)
    for spec in _KEYS:
        ids.keys[spec.name] = "key_" + random_id(rng, 16)
    for user in ("alice", "bob", "dana"):
        ids.users[user] = "user-" + random_id(rng)
    return ids


def _usage_row(
    stream: _Stream, day: date, requests: int, ids: _Ids, rng: random.Random
) -> UsageRow:
    row = UsageRow(
        day=day,
        endpoint=stream.endpoint,
        project_id=ids.projects[stream.project],
        model=stream.model,
        api_key_id=ids.keys[stream.key],
        user_id=ids.users[stream.user] if stream.user else None,
        num_model_requests=requests,
    )
    if stream.endpoint == "images":
        row.images = requests
        row.source, row.size = "image.generation", "1024x1024"
        return row
    row.input_tokens = round(requests * stream.input_per_request * noise(rng, 0.05))
    if stream.endpoint == "completions":
        row.batch = stream.batch
        row.service_tier = "default"
        row.output_tokens = round(requests * stream.output_per_request * noise(rng, 0.05))
        row.input_cached_tokens = round(row.input_tokens * rng.uniform(0.2, 0.6))
        row.input_cache_write_tokens = round(row.input_tokens * rng.uniform(0.005, 0.02))
    return row


def _generate_usage(today: date, days: int, ids: _Ids, rng: random.Random) -> list[UsageRow]:
    rows: list[UsageRow] = []
    first = today - timedelta(days=days - 1)
    for index in range(days):
        day = first + timedelta(days=index)
        age = (today - day).days
        factor = day_factor(day, today, index, days, rng)
        for stream in _STREAMS:
            requests = round(stream.requests * factor * stream.share(age) * noise(rng, 0.08))
            if requests > 0:
                rows.append(_usage_row(stream, day, requests, ids, rng))
    return rows


@dataclass
class _CostAcc:
    amount: Decimal = Decimal(0)
    quantity: Decimal = Decimal(0)
    unit: str | None = "tokens"
    model: str = ""
    cost_type: str = "tokens"
    token_type: str = ""


def _add(
    acc: dict[tuple[date, str, str], _CostAcc],
    key: tuple[date, str, str],
    amount: Decimal,
    quantity: Decimal,
    **meta: Any,
) -> None:
    line = acc.setdefault(key, _CostAcc(**meta))
    line.amount += amount
    line.quantity += quantity


def _price_row(row: UsageRow, acc: dict[tuple[date, str, str], _CostAcc]) -> None:
    """Add one usage row's cost to the (day, project, line_item) accumulators."""
    if row.endpoint == "images":
        price = PRICE_PER_IMAGE[row.model]
        key = (row.day, row.project_id, f"{row.model}, image generation")
        _add(acc, key, price * row.images, Decimal(row.images), model=row.model, unit="images")
        return
    input_price, cached_price, output_price = PRICES_PER_MTOK[row.model]
    discount = BATCH_FACTOR if row.batch else Decimal(1)
    lines = [("input", "input", row.input_tokens - row.input_cached_tokens, input_price)]
    if row.endpoint == "completions":
        lines += [
            ("cached input", "cache_read", row.input_cached_tokens, cached_price),
            ("output", "output", row.output_tokens, output_price),
        ]
    for label, token_type, tokens, price in lines:
        amount = Decimal(tokens) * price * discount / MILLION
        key = (row.day, row.project_id, f"{row.model}, {label}")
        _add(acc, key, amount, Decimal(tokens), model=row.model, token_type=token_type)


def _tool_costs(
    usage: list[UsageRow], ids: _Ids, today: date, acc: dict[tuple[date, str, str], _CostAcc]
) -> None:
    """Web search calls (a share of chat requests) and the Search project's vector storage."""
    chat_requests: dict[tuple[date, str], int] = {}
    for row in usage:
        if row.endpoint == "completions":
            key = (row.day, row.project_id)
            chat_requests[key] = chat_requests.get(key, 0) + row.num_model_requests
    by_id = {pid: name for name, pid in ids.projects.items()}
    for (day, project_id), requests in chat_requests.items():
        calls = round(requests * _WEB_SEARCH_SHARE.get(by_id[project_id], 0.0))
        if calls:
            _add(
                acc,
                (day, project_id, "web search tool calls"),
                WEB_SEARCH_PRICE_PER_CALL * calls,
                Decimal(calls),
                cost_type="web_search",
                unit=None,
            )
    days = sorted({row.day for row in usage})
    for index, day in enumerate(days):
        gib = Decimal("1.8") + Decimal("0.01") * index
        share = Decimal(str(TODAY_SHARE)) if day == today else Decimal(1)
        _add(
            acc,
            (day, ids.projects["Search"], "Vector storage"),
            gib * VECTOR_STORAGE_PRICE_PER_GIB_DAY * share,
            gib * 24 * share,
            cost_type="other",
            unit="gibibyte_hours",
        )


def _generate_costs(usage: list[UsageRow], ids: _Ids, today: date) -> list[CostRow]:
    acc: dict[tuple[date, str, str], _CostAcc] = {}
    for row in usage:
        _price_row(row, acc)
    _tool_costs(usage, ids, today, acc)
    return [
        CostRow(
            day=day,
            project_id=project_id,
            line_item=line_item,
            amount=line.amount.quantize(AMOUNT_QUANTUM, rounding=ROUND_HALF_EVEN),
            quantity=line.quantity,
            quantity_unit=line.unit,
            model=line.model,
            cost_type=line.cost_type,
            token_type=line.token_type,
        )
        for (day, project_id, line_item), line in sorted(acc.items(), key=lambda kv: kv[0])
    ]


def _ts(day: date, rng: random.Random, max_hour: int = 23) -> int:
    return day_start(day) + rng.randint(0, max_hour * 3600)


def _projects(ids: _Ids, first: date, rng: random.Random) -> list[dict[str, Any]]:
    return [
        {
            "id": ids.projects[name],
            "object": "organization.project",
            "name": name,
            "created_at": _ts(first - timedelta(days=rng.randint(45, 400)), rng),
            "archived_at": None,
            "status": "active",
        }
        for name in PROJECTS
    ]


def _owner(spec: _KeySpec, ids: _Ids, created_at: int) -> dict[str, Any]:
    if spec.owner == "user" and spec.user:
        user = {
            "id": ids.users[spec.user],
            "name": spec.user.title(),
            "email": f"{spec.user}@example.invalid",
            "role": "member",
            "created_at": created_at,
        }
        return {"type": "user", "user": user}
    account = {
        "id": "svc_acct_" + ids.keys[spec.name][4:],
        "name": spec.name,
        "role": "member",
        "created_at": created_at,
    }
    return {"type": "service_account", "service_account": account}


def _api_keys(
    ids: _Ids, usage: list[UsageRow], today: date, first: date, rng: random.Random
) -> dict[str, list[dict[str, Any]]]:
    """Key objects whose ``created_at``/``last_used_at`` agree with the usage."""
    used: dict[str, list[date]] = {}
    for row in usage:
        if row.api_key_id is not None:
            used.setdefault(row.api_key_id, []).append(row.day)
    out: dict[str, list[dict[str, Any]]] = {ids.projects[p]: [] for p in PROJECTS}
    for spec in _KEYS:
        key_id = ids.keys[spec.name]
        days = used.get(key_id, [])
        born = min(days) if days else today - timedelta(days=20)
        created_at = _ts(min(born, first) - timedelta(days=rng.randint(1, 30)), rng)
        if days and min(days) > first:
            created_at = _ts(born - timedelta(days=rng.randint(1, 3)), rng)
        last_day = max(days) if days else None
        last_used = None
        if last_day is not None:
            last_used = _ts(last_day, rng, max_hour=9 if last_day == today else 23)
        tail = ids.keys[spec.name][-2:]
        out[ids.projects[spec.project]].append(
            {
                "object": "organization.project.api_key",
                "id": key_id,
                "name": spec.name,
                "redacted_value": f"sk-proj-**...{tail}",
                "created_at": created_at,
                "last_used_at": last_used,
                "owner_project_access": "active",
                "owner": _owner(spec, ids, created_at),
            }
        )
    return out


def generate_org(*, today: date, days: int = 90, seed: int = 0) -> FakeOpenAIOrg:
    """A fake organisation with traffic on ``today - days + 1`` .. ``today`` (inclusive).

    Deterministic for a given (today, days, seed).
    """
    if days < 1:
        raise ValueError("days must be >= 1")
    rng = random.Random(seed)
    ids = _make_ids(rng)
    first = today - timedelta(days=days - 1)
    usage = _generate_usage(today, days, ids, rng)
    costs = _generate_costs(usage, ids, today)
    projects = _projects(ids, first, rng)
    keys = _api_keys(ids, usage, today, first, rng)
    return FakeOpenAIOrg(projects=projects, api_keys=keys, usage=usage, costs=costs)
