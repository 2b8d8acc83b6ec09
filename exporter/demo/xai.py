"""A fake xAI team and a loopback HTTP server speaking its Management API billing endpoints.

What is faked (reference ``provider-apis.md`` §3 and ``docs/providers/xai.md``):

* ``POST /v1/billing/teams/{team_id}/usage`` with an ``analyticsRequest`` body: day
  buckets (``TIME_UNIT_DAY``; other units get a 400) over ``[startTime, endTime)`` given
  as ``YYYY-MM-DD HH:MM:SS`` in ``Etc/GMT``/``UTC``, one value (``usd`` in dollars or
  ``tokens``) summed per ``groupBy`` combination of ``model``, ``unit_type``,
  ``description`` and ``api_key_id``, answered as ``timeSeries[].groupLabels`` and dense
  ``dataPoints`` (0 on empty days). Above :attr:`FakeXaiTeam.max_points` points the answer
  is cut and flagged ``limitReached: true``, like xAI's cardinality cap.
* ``GET .../postpaid/invoice/preview`` (``billingCycle``, ``coreInvoice`` with one line per
  model and unit type in USD cents strings, ``prepaidCredits``/``prepaidCreditsUsed`` as
  ``{"val": ...}``, ``effectiveSpendingLimit``), ``GET .../postpaid/spending-limits`` and
  ``GET .../prepaid/balance`` (a ledger: purchases negative, booked spends positive). A team
  without postpaid or prepaid billing answers those with 404 (or
  :attr:`FakeXaiTeam.missing_status`).
* Bearer management-key check (401), unknown team (404), gRPC-gateway style error bodies
  (``{"code", "message", "details"}``), value encodings (numbers, numeric strings or
  ``{"val"}`` wrappers), proto3 omission of empty fields, and the injectable faults of
  :class:`~exporter.demo.http.FakeHTTPServer` (429 + ``Retry-After``, 5xx, delays,
  truncated or raw bodies).

The truth is day grain (:class:`XaiUsageRow`); its ``cost_type``/``token_type`` fields say
what a row means and are never sent. Everything here is synthetic.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from exporter.demo.http import (
    ApiError,
    FakeHTTPServer,
    Query,
    bad_request,
    decimal_text,
    scale_int,
)

DEFAULT_TEAM_ID = "team-fake-0001"
DEFAULT_MANAGEMENT_KEY = "fake-management-key-for-tests"  # deliberately not key-shaped
WIRE_TIME = "%Y-%m-%d %H:%M:%S"
TIMEZONES = ("Etc/GMT", "UTC", "Etc/UTC")
GROUP_DIMS = ("model", "unit_type", "description", "api_key_id")
VALUE_NAMES = ("usd", "tokens")
CENT = Decimal(100)
MILLION = Decimal(1_000_000)

# gRPC status codes used in error bodies
_GRPC = {400: 3, 401: 16, 403: 7, 404: 5, 405: 12, 429: 8, 500: 13, 502: 14, 503: 14}


# --------------------------------------------------------------------------- truth model


@dataclass
class XaiUsageRow:
    """One day of one (model, unit type, API key) at xAI; the last two fields are truth."""

    day: date
    model: str
    unit_type: str  # xAI's label: "Prompt", "Cached prompt", "Completion", ...
    usd: Decimal  # dollars, exact
    tokens: int | None = None  # None: the unit does not count tokens (sources, images)
    api_key_id: str = "key-fake-1"
    cost_type: str = "tokens"  # what the row is: tokens | web_search | code_execution | other
    token_type: str = ""  # input | cache_read | output | "" (never sent)

    @property
    def description(self) -> str:
        return f"{self.model} {self.unit_type}".strip()


@dataclass
class FakeXaiTeam:
    """A fake xAI team: day-grain usage truth plus its billing state."""

    team_id: str = DEFAULT_TEAM_ID
    management_key: str = DEFAULT_MANAGEMENT_KEY
    usage: list[XaiUsageRow] = field(default_factory=list)
    postpaid: bool = True  # invoice preview and spending limits exist
    prepaid: bool = True  # the prepaid ledger exists
    missing_status: int = 404  # answer for an endpoint the team does not have
    prepaid_purchased_cents: int = 0  # credit bought (ledger PURCHASE rows, negative)
    prepaid_booked_cents: int = 0  # spends booked when earlier periods closed (positive)
    spending_limit_cents: int | None = None  # effectiveSpendingLimit; None: omitted
    hard_limit_cents: int = 0
    vat_rate: Decimal = Decimal(0)
    tokens_supported: bool = True  # False: a 400 for values=[tokens]
    refused_group_by: tuple[str, ...] = ()  # groupBy dimensions answered with a 400
    encoding: str = "number"  # usage values as "number" | "string" | "val"
    omit_defaults: bool = False  # proto3 JSON: leave out false/empty fields
    max_points: int = 5000  # series x buckets above this: cut, limitReached=true

    def scale_day(self, day: date, factor: Decimal | int | str) -> None:
        """Revise one day (usd and tokens); the list is replaced, never edited in place."""
        f = Decimal(factor)
        self.usage = [
            replace(
                r,
                usd=r.usd * f,
                tokens=None if r.tokens is None else scale_int(r.tokens, f),
            )
            if r.day == day
            else r
            for r in self.usage
        ]

    # -- billing state the server answers from (the oracles are in tests/oracles/xai.py)

    def preview_lines(self, now: date) -> list[dict[str, Any]]:
        """Invoice lines of ``now``'s month: one per (model, unit type), amounts in cents."""
        first = now.replace(day=1)
        sums: dict[tuple[str, str], tuple[Decimal, int]] = {}
        for r in self.usage:
            if first <= r.day <= now:
                usd, units = sums.get((r.model, r.unit_type), (Decimal(0), 0))
                sums[(r.model, r.unit_type)] = (usd + r.usd, units + (r.tokens or 0))
        return [
            {
                "description": f"{model} {unit}".strip(),
                "unitType": "tokens" if units else "units",
                "numUnits": str(units),
                "amount": str(_cents(usd)),
                "clusterName": "us-east-1",
            }
            for (model, unit), (usd, units) in sorted(sums.items())
        ]

    def prepaid_used_cents(self, now: date) -> int:
        available = self.prepaid_purchased_cents - self.prepaid_booked_cents
        billed = sum(int(x["amount"]) for x in self.preview_lines(now))
        return max(0, min(available, billed)) if self.prepaid else 0


def _cents(usd: Decimal) -> int:
    return int((usd * CENT).to_integral_value(rounding=ROUND_HALF_EVEN))


# --------------------------------------------------------------------------- usage query


@dataclass(frozen=True)
class _Query:
    start: date
    end: date
    value: str
    group_by: tuple[str, ...]


def _parse_time(value: object, name: str) -> date:
    if not isinstance(value, str):
        raise bad_request(
            f"analyticsRequest.timeRange.{name} must be a string 'YYYY-MM-DD HH:MM:SS'"
        )
    try:
        moment = datetime.strptime(value, WIRE_TIME)
    except ValueError:
        raise bad_request(f"analyticsRequest.timeRange.{name}: cannot parse {value!r}") from None
    if moment.time() != datetime.min.time():
        raise bad_request(f"analyticsRequest.timeRange.{name}: the fake buckets whole days only")
    return moment.date()


def parse_usage_request(
    body: bytes, tokens_supported: bool, refused_group_by: tuple[str, ...] = ()
) -> _Query:
    """Validate an analytics body the way the fake understands it; 400 on anything else."""
    try:
        data = json.loads(body or b"null")
    except ValueError:
        raise bad_request("request body is not valid JSON") from None
    req = data.get("analyticsRequest") if isinstance(data, dict) else None
    if not isinstance(req, dict):
        raise bad_request("analyticsRequest is required")
    time_range = req.get("timeRange")
    if not isinstance(time_range, dict):
        raise bad_request("analyticsRequest.timeRange is required")
    if time_range.get("timezone") not in TIMEZONES:
        raise bad_request(
            f"analyticsRequest.timeRange.timezone must be one of {', '.join(TIMEZONES)}"
        )
    start = _parse_time(time_range.get("startTime"), "startTime")
    end = _parse_time(time_range.get("endTime"), "endTime")
    if end <= start:
        raise bad_request("analyticsRequest.timeRange: endTime must be after startTime")
    if req.get("timeUnit") != "TIME_UNIT_DAY":
        raise bad_request(
            f"timeUnit {req.get('timeUnit')!r} is not supported by the fake (day only)"
        )
    values = req.get("values")
    if not isinstance(values, list) or len(values) != 1 or not isinstance(values[0], dict):
        raise bad_request("analyticsRequest.values must hold exactly one value (fake)")
    name = values[0].get("name")
    if name not in VALUE_NAMES or (name == "tokens" and not tokens_supported):
        raise bad_request(f"unknown value name {name!r}")
    if values[0].get("aggregation") != "AGGREGATION_SUM":
        raise bad_request("only AGGREGATION_SUM is supported by the fake")
    group_by = req.get("groupBy", [])
    if not isinstance(group_by, list) or any(g not in GROUP_DIMS for g in group_by):
        raise bad_request(f"groupBy entries must be among {', '.join(GROUP_DIMS)}")
    refused = [g for g in group_by if g in refused_group_by]
    if refused:
        raise bad_request(f"invalid groupBy dimension {refused[0]!r}")
    if req.get("filters", []) != []:
        raise bad_request("filters are not supported by the fake")
    return _Query(start, end, str(name), tuple(group_by))


def _encode(value: Decimal | int, encoding: str) -> Decimal | int | str | dict[str, str]:
    text = decimal_text(Decimal(value))
    if encoding == "string":
        return text
    if encoding == "val":
        return {"val": text}
    return value


def usage_answer(team: FakeXaiTeam, q: _Query) -> dict[str, Any]:
    """``timeSeries`` for a parsed query: dense day points, cut at ``team.max_points``."""
    sums: dict[tuple[str, ...], dict[date, Decimal]] = {}
    for r in team.usage:
        if not q.start <= r.day < q.end:
            continue
        amount = r.usd if q.value == "usd" else r.tokens
        if amount is None:
            continue  # the unit has no tokens
        key = tuple(str(getattr(r, dim)) for dim in q.group_by)
        by_day = sums.setdefault(key, {})
        by_day[r.day] = by_day.get(r.day, Decimal(0)) + amount
    days = [q.start + timedelta(days=n) for n in range((q.end - q.start).days)]
    series: list[dict[str, Any]] = []
    limited = False
    for key in sorted(sums):
        if (len(series) + 1) * len(days) > team.max_points:
            limited = True
            break
        points = [
            {
                "timestamp": f"{day.isoformat()}T00:00:00Z",
                "values": [_encode(_integral(sums[key].get(day, Decimal(0))), team.encoding)],
            }
            for day in days
        ]
        series.append({"groupLabels": list(key), "dataPoints": points})
    answer: dict[str, Any] = {"timeSeries": series, "limitReached": limited}
    if team.omit_defaults:
        answer = {k: v for k, v in answer.items() if v}
    return answer


def _integral(value: Decimal) -> Decimal | int:
    return int(value) if value == value.to_integral_value() else value


# --------------------------------------------------------------------------- billing state


def _val(cents: int) -> dict[str, str]:
    return {"val": str(cents)}


def invoice_preview(team: FakeXaiTeam, today: date) -> dict[str, Any]:
    lines = team.preview_lines(today)
    before = sum(int(x["amount"]) for x in lines)
    vat = int((before * team.vat_rate).to_integral_value(rounding=ROUND_HALF_EVEN))
    available = team.prepaid_purchased_cents - team.prepaid_booked_cents if team.prepaid else 0
    core: dict[str, Any] = {
        "lines": lines,
        "amountBeforeVat": str(before),
        "vatCost": str(vat),
        "amountAfterVat": str(before + vat - team.prepaid_used_cents(today)),
        "prepaidCredits": _val(-available),
        "prepaidCreditsUsed": _val(team.prepaid_used_cents(today)),
    }
    if team.omit_defaults and not lines:
        del core["lines"]
    preview: dict[str, Any] = {
        "billingCycle": {"year": today.year, "month": today.month},
        "coreInvoice": core,
        "defaultCredits": "0",
    }
    if team.spending_limit_cents is not None:
        preview["effectiveSpendingLimit"] = str(team.spending_limit_cents)
    return preview


def spending_limits(team: FakeXaiTeam) -> dict[str, Any]:
    soft = team.spending_limit_cents or 0
    return {
        "spendingLimits": {
            "softSl": _val(soft),
            "effectiveSl": _val(soft),
            "hardSlAuto": _val(team.hard_limit_cents),
            "effectiveHardSl": _val(team.hard_limit_cents),
        }
    }


def prepaid_balance(team: FakeXaiTeam, today: date) -> dict[str, Any]:
    changes: list[dict[str, Any]] = []
    if team.prepaid_purchased_cents:
        changes.append(
            {
                "changeOrigin": "PURCHASE",
                "amount": _val(-team.prepaid_purchased_cents),
                "createTime": f"{today.replace(day=1) - timedelta(days=40)}T09:00:00Z",
            }
        )
    if team.prepaid_booked_cents:
        last = today.replace(day=1) - timedelta(days=1)
        changes.append(
            {
                "changeOrigin": "SPEND",
                "amount": _val(team.prepaid_booked_cents),
                "spendBpKeyYear": last.year,
                "spendBpKeyMonth": last.month,
            }
        )
    total = team.prepaid_booked_cents - team.prepaid_purchased_cents
    return {"changes": changes, "total": _val(total)}


# --------------------------------------------------------------------------- server


class FakeXaiServer(FakeHTTPServer[FakeXaiTeam]):
    """Serves a :class:`FakeXaiTeam` on loopback; ``base_url`` is the management API root."""

    name = "fake-xai"

    @property
    def team(self) -> FakeXaiTeam:
        return self.org

    @team.setter
    def team(self, team: FakeXaiTeam) -> None:
        self.org = team

    def error_body(self, err: ApiError) -> dict[str, Any]:
        """gRPC-gateway style: the gRPC status code, the message, no details."""
        return {"code": _GRPC.get(err.status, 2), "message": err.message, "details": []}

    def fault_error(self, status: int) -> ApiError:
        message = "Too many requests." if status == 429 else "The fake server had an error."
        return ApiError(status, message)

    def answer_with_body(
        self, method: str, path: str, query: Query, headers: dict[str, str], body: bytes
    ) -> dict[str, Any]:
        self._authorize(headers.get("authorization"))
        return self._route(method, path, body)

    def _authorize(self, header: str | None) -> None:
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "Missing management key (fake).")
        if token.strip() != self.team.management_key:
            raise ApiError(401, "Invalid management key (fake).")

    def _route(self, method: str, path: str, body: bytes) -> dict[str, Any]:
        parts = path.rstrip("/").split("/")
        if parts[:4] != ["", "v1", "billing", "teams"] or len(parts) < 6:
            raise ApiError(404, f"Not found: {path} (fake xAI management API).")
        team = self.team
        if parts[4] != team.team_id:
            raise ApiError(404, f"Team {parts[4]} not found.")
        rest = tuple(parts[5:])
        routes: dict[tuple[str, ...], tuple[str, Callable[[], dict[str, Any]]]] = {
            ("usage",): ("POST", lambda: usage_answer(team, self._usage_query(body))),
            ("postpaid", "invoice", "preview"): ("GET", self._preview),
            ("postpaid", "spending-limits"): ("GET", self._limits),
            ("prepaid", "balance"): ("GET", self._balance),
        }
        if rest not in routes:
            raise ApiError(404, f"Not found: {path} (fake xAI management API).")
        allowed, answer = routes[rest]
        if method != allowed:
            raise ApiError(405, f"Method {method} not allowed on {path}.")
        return answer()

    def _usage_query(self, body: bytes) -> _Query:
        return parse_usage_request(body, self.team.tokens_supported, self.team.refused_group_by)

    def _today(self) -> date:
        return self._now().astimezone(UTC).date()

    def _missing(self, what: str) -> ApiError:
        return ApiError(self.team.missing_status, f"Team has no {what} billing (fake).")

    def _preview(self) -> dict[str, Any]:
        if not self.team.postpaid:
            raise self._missing("postpaid")
        return invoice_preview(self.team, self._today())

    def _limits(self) -> dict[str, Any]:
        if not self.team.postpaid:
            raise self._missing("postpaid")
        return spending_limits(self.team)

    def _balance(self) -> dict[str, Any]:
        if not self.team.prepaid:
            raise self._missing("prepaid")
        return prepaid_balance(self.team, self._today())


# --------------------------------------------------------------------------- generated team


GROK_4 = "grok-4-0709"
GROK_3_MINI = "grok-3-mini"

# USD per 1M tokens: (prompt, cached prompt, completion); reasoning is billed as completion.
PRICES_PER_MTOK: dict[str, tuple[Decimal, Decimal, Decimal]] = {
    GROK_4: (Decimal("3.00"), Decimal("0.75"), Decimal("15.00")),
    GROK_3_MINI: (Decimal("0.30"), Decimal("0.075"), Decimal("0.50")),
}
SEARCH_PRICE_PER_SOURCE = Decimal("0.025")

# model -> weekday (requests, prompt tokens, completion tokens, reasoning tokens per request)
_TRAFFIC: dict[str, tuple[int, int, int, int]] = {
    GROK_4: (900, 2400, 300, 900),
    GROK_3_MINI: (6000, 1100, 160, 250),
}


def _rows_for(day: date, model: str, factor: float, rng: random.Random) -> list[XaiUsageRow]:
    requests, prompt, completion, reasoning = _TRAFFIC[model]
    n = max(0, round(requests * factor))
    if n == 0:
        return []
    total_prompt = round(n * prompt * rng.uniform(0.9, 1.1))
    cached = round(total_prompt * rng.uniform(0.3, 0.6))
    tokens = {
        ("Prompt", "input"): total_prompt - cached,
        ("Cached prompt", "cache_read"): cached,
        ("Completion", "output"): round(n * completion * rng.uniform(0.9, 1.1)),
        ("Reasoning", "output"): round(n * reasoning * rng.uniform(0.8, 1.2)),
    }
    price_in, price_cached, price_out = PRICES_PER_MTOK[model]
    prices = {"input": price_in, "cache_read": price_cached, "output": price_out}
    rows = [
        XaiUsageRow(day, model, unit, count * prices[kind] / MILLION, count, token_type=kind)
        for (unit, kind), count in tokens.items()
        if count
    ]
    if model == GROK_4:
        sources = round(n * 0.05 * rng.uniform(0.5, 1.5))
        if sources:
            usd = sources * SEARCH_PRICE_PER_SOURCE
            rows.append(XaiUsageRow(day, model, "Live search sources", usd, cost_type="web_search"))
    return rows


def generate_team(*, today: date, days: int = 90, seed: int = 0) -> FakeXaiTeam:
    """A team with two Grok models on ``today - days + 1`` .. ``today``; deterministic.

    Weekdays busier than weekends, mild growth, today partial (40 %), one quiet day per
    fortnight with no traffic at all, prepaid credit and a monthly spending limit.
    """
    if days < 1:
        raise ValueError("days must be >= 1")
    rng = random.Random(seed)
    first = today - timedelta(days=days - 1)
    usage: list[XaiUsageRow] = []
    for index in range(days):
        day = first + timedelta(days=index)
        if index % 14 == 5:
            continue  # an empty day
        factor = (0.4 if day.weekday() >= 5 else 1.0) * (1 + 0.3 * index / max(1, days - 1))
        factor *= 0.4 if day == today else rng.uniform(0.85, 1.15)
        for model in _TRAFFIC:
            usage.extend(_rows_for(day, model, factor, rng))
    return FakeXaiTeam(
        usage=usage,
        prepaid_purchased_cents=250_000,
        prepaid_booked_cents=180_000,
        spending_limit_cents=500_000,
        hard_limit_cents=1_000_000,
    )
