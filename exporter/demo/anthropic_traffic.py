"""Realistic, deterministic generated traffic for a fake Anthropic organisation.

Everything here is synthetic: the default workspace plus "Customer support" and
"Research agents" (and an archived "Prototype" without traffic), four Claude models,
prompt caching with 5-minute and 1-hour cache writes, a batch stream, a long-context
(200k-1M) stream, Console (Workbench) usage without an API key, web search and code
execution costs, and API keys of every status. The same weekday pattern, growth and noise
as the OpenAI demo org (:func:`exporter.demo.traffic.day_factor`).

Costs are priced from the usage with :data:`PRICES` (USD per million tokens, list prices)
and kept in **cents**, exactly, as the cost report sends them, so the test oracles
(``tests/oracles/anthropic.py``) sum them exactly.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from exporter.demo.anthropic import CostRow, FakeAnthropicOrg, UsageRow
from exporter.demo.traffic import day_factor, noise, random_id

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
        cents = _token_cents(row)
        display = PRICES[row.model].display
        for token_type, label in TOKEN_LINES:
            key = (
                row.day,
                row.workspace_id,
                f"{display} Usage - {label}",
                row.model,
                token_type,
                row.service_tier,
                row.context_window,
            )
            _add(acc, key, cents[token_type])
        key = (row.day, row.workspace_id, "Web Search Usage", None, None, "", "")
        _add(acc, key, WEB_SEARCH_CENTS * row.web_search_requests)
    for day, factor in factors.items():
        for workspace, hours in _CODE_EXECUTION_HOURS.items():
            used = Decimal(str(round(hours * factor * noise(rng, 0.15), 2)))
            key = (day, _workspace_id(ids, workspace), "Code Execution Usage", None, None, "", "")
            _add(acc, key, used * CODE_EXECUTION_CENTS_PER_HOUR)
    out = []
    for key, cents in sorted(acc.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        day, workspace_id, description, model, token_type, tier, window = key
        out.append(
            CostRow(
                day=day,
                workspace_id=workspace_id,
                description=description,
                amount=cents,
                cost_type="tokens" if model else _tool_type(description),
                model=model,
                token_type=token_type,
                service_tier=tier or None,
                context_window=window or None,
                inference_geo="not_available" if model else None,
            )
        )
    return out


def _tool_type(description: str) -> str:
    return "web_search" if description.startswith("Web Search") else "code_execution"


def _rfc3339(day: date, rng: random.Random) -> str:
    moment = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
        seconds=rng.randint(0, 86_399)
    )
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


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
                "created_at": _rfc3339(created, rng),
                "archived_at": _rfc3339(first - timedelta(days=10), rng) if archived else None,
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
                "created_at": _rfc3339(first - timedelta(days=rng.randint(5, 200)), rng),
                "created_by": creator,
                "expires_at": _rfc3339(today + timedelta(days=expires), rng) if expires else None,
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
