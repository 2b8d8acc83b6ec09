"""A fake Anthropic organisation and a loopback HTTP server speaking its Admin API.

What is faked (reference ``provider-apis.md`` §2.9, "What a fake server must reproduce"):

* ``x-api-key`` (the org's admin key) and ``anthropic-version`` are both required; a wrong
  or missing key, or a missing version, answers 401 ``authentication_error`` with
  Anthropic's error object ``{"type": "error", "error": {"type", "message"},
  "request_id"}``; every answer carries a ``request-id`` header.
* ``GET /v1/organizations/usage_report/messages`` and ``GET /v1/organizations/cost_report``:
  RFC 3339 ``starting_at`` snapped down to the UTC day, ``ending_at`` exclusive (default
  now), one bucket per day including empty ones, oldest first, ``limit`` buckets per page
  (1d: default 7, max 31), opaque ``next_page`` (``page_<base64>``) and ``has_more``.
  Bracketed array parameters (``group_by[]``, ``models[]``, ...); the cost report groups
  only by ``workspace_id`` and ``description``.
* Usage results with nested ``cache_creation`` and ``server_tool_use`` objects and ``null``
  for ungrouped dimensions; ``workspace_id: null`` is the default workspace and
  ``api_key_id: null`` Console usage.
* Cost ``amount`` as a **string of cents** with fractional digits, ``currency: "USD"``;
  descriptive fields (``cost_type``, ``description``, ``model``, ``token_type``, ...) are
  ``null`` unless grouped by ``description``.
* ``GET /v1/organizations/workspaces`` (``include_archived``) and
  ``GET /v1/organizations/api_keys`` (``status``, ``workspace_id`` filters) with
  ``after_id`` paging; ``GET /v1/organizations/me``.
* Injectable faults from :mod:`exporter.demo.http` (429 ``rate_limit_error`` with
  ``retry-after``, 500 ``api_error``, 529 ``overloaded_error``, delays, truncation) and
  revisions (tests mutate :attr:`FakeAnthropicServer.org`, e.g. with
  :meth:`FakeAnthropicOrg.scale_day`).

Not faked: ``1h``/``1m`` buckets (the truth is kept per UTC day; they answer 400), the
Claude Code report, users, and the OAuth ``Authorization`` alternative.

:func:`generate_anthropic_org` builds the organisation ``demo`` serves: realistic,
deterministic, all synthetic: the default workspace plus "Customer support" and
"Research agents" (and an archived "Prototype" without traffic), four Claude models,
prompt caching with 5-minute and 1-hour cache writes, a batch stream, a long-context
(200k-1M) stream, Console (Workbench) usage without an API key, web search and code
execution costs, and API keys of every status. The same weekday pattern, growth and noise
as the OpenAI demo org (:func:`exporter.demo.openai.day_factor`).

Costs are priced from the usage with :data:`PRICES` (USD per million tokens, list prices)
and kept in **cents**, exactly, as the cost report sends them, so the test oracles
(``tests/oracles/anthropic.py``) sum them exactly.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from exporter.demo.http import (
    ApiError,
    FakeHTTPServer,
    Query,
    Response,
    bad_request,
    bucket_day,
    by_day,
    cut_page,
    day_start,
    decimal_text,
    encode_cursor,
    filters,
    group_by,
    list_page,
    matches,
    page_start,
    scale_int,
    sort_key,
)
from exporter.demo.openai import day_factor, noise, random_id

DEFAULT_ADMIN_KEY = "fake-anthropic-admin-key-for-tests"  # not shaped like a real key
API_VERSION = "2023-06-01"
CENTS_QUANTUM = Decimal("0.000001")  # revisions round cents to 6 decimals

# --------------------------------------------------------------------------- truth model


@dataclass
class UsageRow:
    """One truth usage row at the finest grain the fake knows (a UTC day)."""

    day: date
    workspace_id: str | None  # None: the default workspace
    model: str
    api_key_id: str | None  # None: Console (Workbench) usage
    service_tier: str = "standard"  # standard | batch | priority | ...
    context_window: str = "0-200k"  # 0-200k | 200k-1M
    inference_geo: str = "not_available"
    uncached_input_tokens: int = 0
    cache_creation_5m_input_tokens: int = 0
    cache_creation_1h_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    output_tokens: int = 0
    web_search_requests: int = 0


@dataclass
class CostRow:
    """One truth cost line for a day; ``amount`` is in **cents** (exact), as on the wire."""

    day: date
    workspace_id: str | None
    description: str  # e.g. "Claude Sonnet 4 Usage - Output Tokens", "Web Search Usage"
    amount: Decimal  # cents
    cost_type: str = "tokens"  # tokens | web_search | code_execution | session_usage
    model: str | None = None  # None for tool and service costs
    token_type: str | None = None  # wire value, e.g. "cache_creation.ephemeral_5m_input_tokens"
    service_tier: str | None = None
    context_window: str | None = None
    inference_geo: str | None = None

    @property
    def dollars(self) -> Decimal:
        return self.amount.scaleb(-2)


_USAGE_INT_FIELDS: tuple[str, ...] = (
    "uncached_input_tokens",
    "cache_creation_5m_input_tokens",
    "cache_creation_1h_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
    "web_search_requests",
)


def _scale_usage_row(row: UsageRow, factor: Decimal) -> UsageRow:
    counts: dict[str, Any] = {n: scale_int(getattr(row, n), factor) for n in _USAGE_INT_FIELDS}
    return replace(row, **counts)


@dataclass
class FakeAnthropicOrg:
    """A fake organisation: workspaces, API keys, and day-grain usage and cost truth."""

    admin_key: str = DEFAULT_ADMIN_KEY
    name: str = "Fake Anthropic Org"
    workspaces: list[dict[str, Any]] = field(default_factory=list)
    api_keys: list[dict[str, Any]] = field(default_factory=list)
    usage: list[UsageRow] = field(default_factory=list)
    costs: list[CostRow] = field(default_factory=list)

    def scale_day(self, day: date, factor: Decimal | int | str) -> None:
        """Revise one day: multiply its usage (ints rounded half-even) and costs (cents,
        6 decimals). The lists are replaced, so a concurrent reader never sees a mix."""
        factor = Decimal(factor)
        if factor < 0:
            raise ValueError("factor must be >= 0")
        self.usage = [_scale_usage_row(r, factor) if r.day == day else r for r in self.usage]
        self.costs = [
            replace(r, amount=(r.amount * factor).quantize(CENTS_QUANTUM, ROUND_HALF_EVEN))
            if r.day == day
            else r
            for r in self.costs
        ]

    def copy(self) -> FakeAnthropicOrg:
        """A copy whose row lists can be revised without touching this org."""
        return replace(
            self,
            workspaces=list(self.workspaces),
            api_keys=list(self.api_keys),
            usage=list(self.usage),
            costs=list(self.costs),
        )


# --------------------------------------------------------------------------- endpoint specs

USAGE_DIMS: tuple[str, ...] = (
    "api_key_id",
    "workspace_id",
    "model",
    "service_tier",
    "context_window",
    "inference_geo",
    "speed",
    "account_id",
    "service_account_id",
)
_USAGE_FILTERS: tuple[tuple[str, str], ...] = (
    ("models", "model"),
    ("api_key_ids", "api_key_id"),
    ("workspace_ids", "workspace_id"),
    ("service_tiers", "service_tier"),
    ("context_window", "context_window"),
    ("inference_geos", "inference_geo"),
)
COST_GROUPS: tuple[str, ...] = ("workspace_id", "description")
# Fields that come with (and only with) group_by[]=description.
DESCRIPTION_FIELDS: tuple[str, ...] = (
    "cost_type",
    "description",
    "model",
    "token_type",
    "service_tier",
    "context_window",
    "inference_geo",
)

REPORT_LIMITS = (7, 1, 31)  # default, min, max buckets per page for 1d
WORKSPACE_LIMITS = (20, 1, 100)
API_KEY_LIMITS = (20, 1, 1000)
API_KEY_STATUSES = ("active", "inactive", "archived", "expired")

ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def rfc3339(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(query: Query, name: str, default: datetime | None) -> int:
    raw = query.one(name)
    if raw is None or raw == "":
        if default is None:
            raise bad_request(f"{name}: Field required", name)
        return int(default.timestamp())
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise bad_request(f"{name}: Input should be a valid RFC 3339 datetime", name) from exc
    if parsed.tzinfo is None:
        raise bad_request(f"{name}: Timezone offset required", name)
    return int(parsed.timestamp())


@dataclass(frozen=True)
class _Window:
    start: int  # snapped down to a UTC midnight
    end: int
    limit: int
    first: int  # start of the first bucket on this page


def _window(query: Query, now: datetime) -> _Window:
    """starting_at (snapped to the day), ending_at (default now), limit, page cursor."""
    start = _parse_time(query, "starting_at", None)
    start -= start % 86_400
    end = _parse_time(query, "ending_at", now)
    if end <= start:
        raise bad_request("ending_at must be after starting_at", "ending_at")
    limit = query.integer("limit", *REPORT_LIMITS)
    return _Window(start, end, limit, page_start(query, start, end))


def _report_page(
    window: _Window, results: Callable[[date], list[dict[str, Any]]]
) -> dict[str, Any]:
    spans, next_start = cut_page(window.first, window.end, window.limit)
    data = [
        {
            "starting_at": rfc3339(start),
            "ending_at": rfc3339(stop),
            "results": results(bucket_day(start)),
        }
        for start, stop in spans
    ]
    return {
        "data": data,
        "has_more": next_start is not None,
        "next_page": encode_cursor(next_start) if next_start is not None else None,
    }


# --------------------------------------------------------------------------- aggregation


def aggregate_usage(rows: Iterable[UsageRow], grouped: set[str]) -> list[dict[str, Any]]:
    """One result per distinct combination of grouped dims; other dims echo ``null``."""
    sums: dict[tuple[Any, ...], dict[str, int]] = {}
    for row in rows:
        key = tuple(getattr(row, d, None) if d in grouped else None for d in USAGE_DIMS)
        acc = sums.setdefault(key, dict.fromkeys(_USAGE_INT_FIELDS, 0))
        for name in _USAGE_INT_FIELDS:
            acc[name] += getattr(row, name)
    results = []
    for key in sorted(sums, key=sort_key):
        s = sums[key]
        results.append(
            {
                "uncached_input_tokens": s["uncached_input_tokens"],
                "cache_creation": {
                    "ephemeral_5m_input_tokens": s["cache_creation_5m_input_tokens"],
                    "ephemeral_1h_input_tokens": s["cache_creation_1h_input_tokens"],
                },
                "cache_read_input_tokens": s["cache_read_input_tokens"],
                "output_tokens": s["output_tokens"],
                "server_tool_use": {"web_search_requests": s["web_search_requests"]},
                **dict(zip(USAGE_DIMS, key, strict=True)),
            }
        )
    return results


def aggregate_costs(rows: Iterable[CostRow], grouped: set[str]) -> list[dict[str, Any]]:
    """Cost results: ``amount`` as a string of cents, descriptive fields per ``description``."""
    by_description = "description" in grouped
    amounts: dict[tuple[Any, ...], Decimal] = {}
    for row in rows:
        workspace = row.workspace_id if "workspace_id" in grouped else None
        details = tuple(getattr(row, f) if by_description else None for f in DESCRIPTION_FIELDS)
        key = (workspace, *details)
        amounts[key] = amounts.get(key, Decimal(0)) + row.amount
    results = []
    for key in sorted(amounts, key=sort_key):
        workspace, *described = key
        results.append(
            {
                "amount": decimal_text(amounts[key]),
                "currency": "USD",
                **dict(zip(DESCRIPTION_FIELDS, described, strict=True)),
                "workspace_id": workspace,
            }
        )
    return results


# --------------------------------------------------------------------------- server


class FakeAnthropicServer(FakeHTTPServer[FakeAnthropicOrg]):
    """Serves a :class:`FakeAnthropicOrg` over HTTP on loopback (``127.0.0.1`` by default).

    :attr:`base_url` is the origin (``http://127.0.0.1:PORT``): paths start at ``/v1``, as
    with ``https://api.anthropic.com``. ``now`` (UTC) is the clock of the default
    ``ending_at``.
    """

    name = "fake-anthropic"
    path_prefix = ""

    def __init__(
        self,
        org: FakeAnthropicOrg,
        host: str = "127.0.0.1",
        port: int = 0,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(org, host, port, now)
        self._request_ids = itertools.count(1)

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes = b""
    ) -> Response:
        response = super().handle(method, target, headers, body)
        response.headers.setdefault("request-id", f"req_fake{next(self._request_ids):08d}")
        return response

    def error_body(self, err: ApiError) -> dict[str, Any]:
        """Anthropic's error object; ``error.type`` follows the status."""
        kind = ERROR_TYPES.get(err.status, "api_error" if err.status >= 500 else err.type)
        return {
            "type": "error",
            "error": {"type": kind, "message": err.message},
            "request_id": "req_fake_error",
        }

    def fault_error(self, status: int) -> ApiError:
        messages = {
            429: "Number of requests has exceeded your rate limit (fake).",
            529: "Overloaded (fake).",
        }
        return ApiError(status, messages.get(status, "Internal server error (fake)."))

    def answer(
        self, method: str, path: str, query: Query, headers: dict[str, str]
    ) -> dict[str, Any]:
        self._authorize(headers)
        if method != "GET":
            raise ApiError(405, f"Method {method} not allowed on {path}.")
        return self._route(path, query)

    def _authorize(self, headers: dict[str, str]) -> None:
        key = headers.get("x-api-key", "").strip()
        if not key:
            raise ApiError(401, "x-api-key header is required (fake).")
        if key != self.org.admin_key:
            raise ApiError(401, "invalid x-api-key (fake: this is not the org's admin key)")
        version = headers.get("anthropic-version", "").strip()
        if not version:
            raise ApiError(401, "anthropic-version: header is required (fake).")
        if version != API_VERSION:
            raise bad_request(f"anthropic-version: {version!r} is not a valid version (fake).")

    def _route(self, path: str, query: Query) -> dict[str, Any]:
        routes: dict[str, Callable[[Query], dict[str, Any]]] = {
            "/v1/organizations/usage_report/messages": self._usage,
            "/v1/organizations/cost_report": self._costs,
            "/v1/organizations/workspaces": self._workspaces,
            "/v1/organizations/api_keys": self._api_keys,
            "/v1/organizations/me": self._me,
        }
        route = routes.get(path.rstrip("/"))
        if route is None:
            raise ApiError(404, f"Not found: {path} (fake Anthropic server).")
        return route(query)

    def _usage(self, query: Query) -> dict[str, Any]:
        width = query.one("bucket_width") or "1d"
        if width in ("1h", "1m"):
            raise bad_request(f"bucket_width={width} is not supported by the fake (1d only).")
        if width != "1d":
            raise bad_request(f"bucket_width: Input should be '1d', '1h' or '1m', got {width!r}")
        window = _window(query, self._now())
        grouped = group_by(query, USAGE_DIMS)
        wanted = filters(query, _USAGE_FILTERS)
        rows = by_day(r for r in self.org.usage if matches(r, wanted))
        return _report_page(window, lambda day: aggregate_usage(rows.get(day, []), grouped))

    def _costs(self, query: Query) -> dict[str, Any]:
        width = query.one("bucket_width") or "1d"
        if width != "1d":
            raise bad_request(f"bucket_width: the cost report supports only '1d', got {width!r}")
        window = _window(query, self._now())
        grouped = group_by(query, COST_GROUPS)
        rows = by_day(self.org.costs)
        return _report_page(window, lambda day: aggregate_costs(rows.get(day, []), grouped))

    def _workspaces(self, query: Query) -> dict[str, Any]:
        include_archived = bool(query.boolean("include_archived"))
        items = [w for w in self.org.workspaces if include_archived or w.get("archived_at") is None]
        return list_page(items, query, "after_id", WORKSPACE_LIMITS)

    def _api_keys(self, query: Query) -> dict[str, Any]:
        items = self.org.api_keys
        status = query.one("status")
        if status:
            if status not in API_KEY_STATUSES:
                raise bad_request(f"status: Input should be one of {API_KEY_STATUSES}", "status")
            items = [k for k in items if k.get("status") == status]
        workspace = query.one("workspace_id")
        if workspace:
            items = [k for k in items if k.get("workspace_id") == workspace]
        return list_page(items, query, "after_id", API_KEY_LIMITS)

    def _me(self, _query: Query) -> dict[str, Any]:
        return {"id": "fake-org-0000", "type": "organization", "name": self.org.name}


def midnight_rfc3339(day: date) -> str:
    """``2026-03-01T00:00:00Z`` for a UTC day."""
    return rfc3339(day_start(day))


# --------------------------------------------------------------------------- generated org

SONNET_4 = "claude-sonnet-4-20250514"
SONNET_45 = "claude-sonnet-4-5-20250929"
HAIKU_45 = "claude-haiku-4-5-20251001"
OPUS_41 = "claude-opus-4-1-20250805"


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens, and the model's name in cost descriptions."""

    display: str
    input: Decimal
    output: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    cache_read: Decimal


def _price(display: str, base: str) -> ModelPrice:
    """Anthropic's ratios: 5m write 1.25x, 1h write 2x, read 0.1x input; output 5x input."""
    b = Decimal(base)
    return ModelPrice(display, b, b * 5, b * Decimal("1.25"), b * 2, b / 10)


PRICES: dict[str, ModelPrice] = {
    SONNET_4: _price("Claude Sonnet 4", "3"),
    SONNET_45: _price("Claude Sonnet 4.5", "3"),
    HAIKU_45: _price("Claude Haiku 4.5", "1"),
    OPUS_41: _price("Claude Opus 4.1", "15"),
}
BATCH_FACTOR = Decimal("0.5")
# 200k-1M context: input-side prices x2, output x1.5.
LONG_CONTEXT_FACTORS: tuple[Decimal, Decimal] = (Decimal(2), Decimal("1.5"))
WEB_SEARCH_CENTS = Decimal(1)  # $10 per 1,000 searches
CODE_EXECUTION_CENTS_PER_HOUR = Decimal(5)  # $0.05 per container hour
MILLION = Decimal(1_000_000)

# (cost report token_type, description suffix) in the order lines are written.
TOKEN_LINES: tuple[tuple[str, str], ...] = (
    ("uncached_input_tokens", "Input Tokens"),
    ("output_tokens", "Output Tokens"),
    ("cache_read_input_tokens", "Cache Read Input Tokens"),
    ("cache_creation.ephemeral_5m_input_tokens", "Cache Write (5m) Input Tokens"),
    ("cache_creation.ephemeral_1h_input_tokens", "Cache Write (1h) Input Tokens"),
)

WORKSPACES: tuple[str, ...] = ("Customer support", "Research agents")
ARCHIVED_WORKSPACE = "Prototype"
DEFAULT = None  # the default workspace / a Console row


def _always(_age: int) -> float:
    return 1.0


def _retired(age: int) -> float:
    """A key busy 31-60 days ago and silent since."""
    return 1.0 if 31 <= age <= 60 else 0.0


def _now_and_then(age: int) -> float:
    return 1.0 if age % 9 in (1, 2, 5) else 0.0


@dataclass(frozen=True)
class _KeySpec:
    workspace: str | None  # None: the default workspace
    name: str
    status: str  # active | inactive | archived | expired
    principal: str  # user | service_account
    expires_in_days: int | None = None  # relative to today; negative: already expired


_KEYS: tuple[_KeySpec, ...] = (
    _KeySpec(DEFAULT, "default-prod", "active", "service_account"),
    _KeySpec(DEFAULT, "old-default", "inactive", "user"),
    _KeySpec("Customer support", "support-chat", "active", "service_account"),
    _KeySpec("Customer support", "support-batch", "active", "service_account"),
    _KeySpec("Customer support", "support-legacy", "archived", "user"),
    _KeySpec("Research agents", "agents-prod", "active", "service_account"),
    _KeySpec("Research agents", "notebook", "active", "user", expires_in_days=60),
    _KeySpec("Research agents", "expired-poc", "expired", "user", expires_in_days=-20),
)


@dataclass(frozen=True)
class _Stream:
    """Steady traffic: weekday volume at the start of the window, and its prompt shape."""

    workspace: str | None
    key: str | None  # None: Console usage (no API key)
    model: str
    requests: float
    prompt_per_request: int  # all input tokens of a request
    output_per_request: int
    read_share: float = 0.0  # of the prompt, served from the cache
    write_5m_share: float = 0.0
    write_1h_share: float = 0.0
    searches_per_request: float = 0.0
    tier: str = "standard"
    context_window: str = "0-200k"
    share: Callable[[int], float] = _always  # age in days -> multiplier


_STREAMS: tuple[_Stream, ...] = (
    _Stream(DEFAULT, "default-prod", SONNET_4, 800, 2000, 300, 0.5, 0.05),
    _Stream(DEFAULT, "default-prod", HAIKU_45, 3000, 800, 150, 0.3, 0.02),
    _Stream(DEFAULT, None, SONNET_45, 25, 1500, 600),  # Console / Workbench
    _Stream("Customer support", "support-chat", SONNET_45, 2500, 3000, 250, 0.6, 0.03, 0.02,
            searches_per_request=0.02),
    _Stream("Customer support", "support-batch", HAIKU_45, 10000, 900, 200, tier="batch"),
    _Stream("Customer support", "support-legacy", SONNET_4, 1200, 2500, 250, 0.4, 0.04,
            share=_retired),
    _Stream("Research agents", "agents-prod", OPUS_41, 200, 6000, 1200, 0.55, 0.02, 0.05,
            searches_per_request=0.3),
    _Stream("Research agents", "agents-prod", SONNET_4, 400, 4000, 800, 0.5, 0.05,
            searches_per_request=0.1),
    _Stream("Research agents", "agents-prod", SONNET_4, 30, 300_000, 2000, 0.4, 0.0, 0.03,
            context_window="200k-1M"),
    _Stream("Research agents", "notebook", SONNET_45, 60, 5000, 900, 0.3, 0.1,
            share=_now_and_then),
    _Stream("Research agents", "expired-poc", HAIKU_45, 500, 1200, 300, share=_retired),
)  # fmt: skip

# Code execution container hours on a weekday, per workspace.
_CODE_EXECUTION_HOURS: dict[str | None, float] = {"Research agents": 30.0, DEFAULT: 1.5}


# --------------------------------------------------------------------------- generation


@dataclass
class _Ids:
    workspaces: dict[str, str]
    keys: dict[str, str]
    users: list[str]


def _make_ids(rng: random.Random) -> _Ids:
    workspaces = {
        name: "wrkspc_01" + random_id(rng, 22) for name in (*WORKSPACES, ARCHIVED_WORKSPACE)
    }
    keys = {spec.name: "apikey_01" + random_id(rng, 22) for spec in _KEYS}
    users = ["user_01" + random_id(rng, 22) for _ in range(3)]
    return _Ids(workspaces, keys, users)


def _workspace_id(ids: _Ids, workspace: str | None) -> str | None:
    return None if workspace is None else ids.workspaces[workspace]


def _usage_row(
    stream: _Stream, day: date, requests: int, ids: _Ids, rng: random.Random
) -> UsageRow:
    prompt = round(requests * stream.prompt_per_request * noise(rng, 0.05))
    read = round(prompt * stream.read_share * noise(rng, 0.1))
    write_5m = round(prompt * stream.write_5m_share * noise(rng, 0.2))
    write_1h = round(prompt * stream.write_1h_share * noise(rng, 0.2))
    uncached = max(0, prompt - read - write_5m - write_1h)
    return UsageRow(
        day=day,
        workspace_id=_workspace_id(ids, stream.workspace),
        model=stream.model,
        api_key_id=ids.keys[stream.key] if stream.key else None,
        service_tier=stream.tier,
        context_window=stream.context_window,
        uncached_input_tokens=uncached,
        cache_creation_5m_input_tokens=write_5m,
        cache_creation_1h_input_tokens=write_1h,
        cache_read_input_tokens=read,
        output_tokens=round(requests * stream.output_per_request * noise(rng, 0.05)),
        web_search_requests=round(requests * stream.searches_per_request * noise(rng, 0.1)),
    )


def _generate_usage(
    today: date, days: int, ids: _Ids, rng: random.Random
) -> tuple[list[UsageRow], dict[date, float]]:
    rows: list[UsageRow] = []
    factors: dict[date, float] = {}
    first = today - timedelta(days=days - 1)
    for index in range(days):
        day = first + timedelta(days=index)
        age = (today - day).days
        factors[day] = day_factor(day, today, index, days, rng)
        for stream in _STREAMS:
            requests = round(stream.requests * factors[day] * stream.share(age) * noise(rng, 0.08))
            if requests > 0:
                rows.append(_usage_row(stream, day, requests, ids, rng))
    return rows, factors


_CostKey = tuple[date, str | None, str, str | None, str | None, str, str]


def _add(acc: dict[_CostKey, Decimal], key: _CostKey, cents: Decimal) -> None:
    if cents:
        acc[key] = acc.get(key, Decimal(0)) + cents


def _token_cents(row: UsageRow) -> dict[str, Decimal]:
    """Cents per cost-report token_type for one usage row (exact)."""
    price = PRICES[row.model]
    input_factor, output_factor = (
        LONG_CONTEXT_FACTORS if row.context_window == "200k-1M" else (Decimal(1), Decimal(1))
    )
    tier = BATCH_FACTOR if row.service_tier == "batch" else Decimal(1)
    per_mtok = {
        "uncached_input_tokens": (row.uncached_input_tokens, price.input * input_factor),
        "output_tokens": (row.output_tokens, price.output * output_factor),
        "cache_read_input_tokens": (row.cache_read_input_tokens, price.cache_read * input_factor),
        "cache_creation.ephemeral_5m_input_tokens": (
            row.cache_creation_5m_input_tokens,
            price.cache_write_5m * input_factor,
        ),
        "cache_creation.ephemeral_1h_input_tokens": (
            row.cache_creation_1h_input_tokens,
            price.cache_write_1h * input_factor,
        ),
    }
    return {
        token_type: Decimal(tokens) * usd * tier * 100 / MILLION
        for token_type, (tokens, usd) in per_mtok.items()
    }


def _generate_costs(
    usage: list[UsageRow], factors: dict[date, float], ids: _Ids, rng: random.Random
) -> list[CostRow]:
    acc: dict[_CostKey, Decimal] = {}
    for row in usage:
        token_cents = _token_cents(row)
        display = PRICES[row.model].display
        for token_type, label in TOKEN_LINES:
            key: _CostKey = (
                row.day,
                row.workspace_id,
                f"{display} Usage - {label}",
                row.model,
                token_type,
                row.service_tier,
                row.context_window,
            )
            _add(acc, key, token_cents[token_type])
        key = (row.day, row.workspace_id, "Web Search Usage", None, None, "", "")
        _add(acc, key, WEB_SEARCH_CENTS * row.web_search_requests)
    for day, factor in factors.items():
        for workspace, hours in _CODE_EXECUTION_HOURS.items():
            used = Decimal(str(round(hours * factor * noise(rng, 0.15), 2)))
            key = (day, _workspace_id(ids, workspace), "Code Execution Usage", None, None, "", "")
            _add(acc, key, used * CODE_EXECUTION_CENTS_PER_HOUR)
    out: list[CostRow] = []
    for key, cents in sorted(acc.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        day, workspace_id, description, model, wire_token_type, tier, window = key
        out.append(
            CostRow(
                day=day,
                workspace_id=workspace_id,
                description=description,
                amount=cents,
                cost_type="tokens" if model else _tool_type(description),
                model=model,
                token_type=wire_token_type,
                service_tier=tier or None,
                context_window=window or None,
                inference_geo="not_available" if model else None,
            )
        )
    return out


def _tool_type(description: str) -> str:
    return "web_search" if description.startswith("Web Search") else "code_execution"


def _random_time_on(day: date, rng: random.Random) -> str:
    """RFC 3339 text of a random second of the UTC ``day``."""
    return rfc3339(day_start(day) + rng.randint(0, 86_399))


def _workspaces(ids: _Ids, first: date, rng: random.Random) -> list[dict[str, Any]]:
    colours = ("#6C5BB9", "#C96442", "#3D8B6E")
    out = []
    for colour, name in zip(colours, (*WORKSPACES, ARCHIVED_WORKSPACE), strict=True):
        created = first - timedelta(days=rng.randint(60, 400))
        archived = name == ARCHIVED_WORKSPACE
        out.append(
            {
                "id": ids.workspaces[name],
                "type": "workspace",
                "name": name,
                "created_at": _random_time_on(created, rng),
                "archived_at": _random_time_on(first - timedelta(days=10), rng)
                if archived
                else None,
                "display_color": colour,
                "data_residency": {
                    "workspace_geo": "us",
                    "default_inference_geo": "global",
                    "allowed_inference_geos": "unrestricted",
                },
            }
        )
    return out


def _api_keys(ids: _Ids, today: date, first: date, rng: random.Random) -> list[dict[str, Any]]:
    out = []
    for spec in _KEYS:
        key_id = ids.keys[spec.name]
        creator = {"id": rng.choice(ids.users), "type": "user"}
        principal = (
            creator if spec.principal == "user" else {"id": "svcacct_01" + random_id(rng, 22),
                                                       "type": "service_account"}
        )  # fmt: skip
        expires = spec.expires_in_days
        out.append(
            {
                "id": key_id,
                "type": "api_key",
                "name": spec.name,
                "status": spec.status,
                "created_at": _random_time_on(first - timedelta(days=rng.randint(5, 200)), rng),
                "created_by": creator,
                "expires_at": _random_time_on(today + timedelta(days=expires), rng)
                if expires
                else None,
                "partial_key_hint": f"sk-ant-api03-**...{key_id[-4:]}",
                "principal": principal,
                "workspace_id": _workspace_id(ids, spec.workspace),
            }
        )
    return out


def generate_anthropic_org(*, today: date, days: int = 90, seed: int = 0) -> FakeAnthropicOrg:
    """A fake organisation with traffic on ``today - days + 1`` .. ``today`` (inclusive).

    Deterministic for a given (today, days, seed).
    """
    if days < 1:
        raise ValueError("days must be >= 1")
    rng = random.Random(seed)
    ids = _make_ids(rng)
    first = today - timedelta(days=days - 1)
    usage, factors = _generate_usage(today, days, ids, rng)
    costs = _generate_costs(usage, factors, ids, rng)
    return FakeAnthropicOrg(
        workspaces=_workspaces(ids, first, rng),
        api_keys=_api_keys(ids, today, first, rng),
        usage=usage,
        costs=costs,
    )
