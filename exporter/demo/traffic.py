"""Realistic, deterministic generated traffic for a fake OpenAI organisation.

Everything here is synthetic: four projects ("Search", "Support bot", "Data pipeline",
"R&D sandbox"), two or three API keys each, a weekday pattern (weekends ~40 % of a
weekday), mild growth, noise, prompt caching, batch traffic, a web-search tool line and a
vector-storage line. Costs are derived from the usage with :data:`PRICES_PER_MTOK`, so the
test oracles (``tests/oracles/openai.py``) are exact.

Cost lines follow OpenAI's observed ``line_item`` texts: ``"<model>, input"`` (uncached
input *plus* cache-write tokens, both at the input price: OpenAI has no separate
cache-write line), ``"<model>, cached input"``, ``"<model>, output"``,
``"<model>, image generation"``, ``"web search tool calls"`` and ``"Vector storage"``.
Batch traffic is billed at 50 % and folded into the same (day, project, line_item) row.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from exporter.demo.openai import (
    AMOUNT_QUANTUM,
    CostRow,
    FakeOpenAIOrg,
    UsageRow,
    day_start,
)

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
