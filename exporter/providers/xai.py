"""xAI Management API (billing) -> records.

Reads, for the UTC days ``[start, end)`` of one team (``team_id`` from the config; the team
becomes the ``project``):

* **cost per model per day**: ``POST /v1/billing/teams/{team_id}/usage`` with an
  ``analyticsRequest`` (``TIME_UNIT_DAY`` in ``Etc/GMT``, value ``usd`` summed, grouped by
  ``model`` and ``unit_type``). ``usd`` values are dollars. Each (model, unit type) series
  is a cost line: ``Prompt`` -> input, ``Cached prompt`` -> cache_read, ``Completion`` and
  ``Reasoning`` -> output, search and code tool units -> their own ``cost_type`` with
  ``model=""``; an unknown unit type keeps its money as ``cost_type="other"`` and is logged;
* **tokens per model per day**: the same query with the value ``tokens``. A 400 for it
  (the value name is not confirmed) leaves tokens out and keeps the costs; a 400 for the
  ``unit_type`` grouping (not confirmed either) re-asks the costs grouped by
  ``description`` (exact per model) and reads no tokens. Both are reported in
  ``FetchResult.degraded`` (the poller logs once and counts them);
* **billing state**: the postpaid invoice preview (running total = the sum of its line
  items, ``effectiveSpendingLimit``, prepaid credits used this period), the prepaid
  ledger (``/prepaid/balance``) and, when the preview has no limit,
  ``/postpaid/spending-limits``. Money there is USD **cents** (strings, numbers or
  ``{"val": ...}``). A 400/404 (a team without postpaid or prepaid billing) leaves that
  value out with an info log.

Ranges longer than ``usage_page_size`` days (31; ``page_size`` overrides it) are split; a
result with ``limitReached: true`` (xAI's cardinality cap: a partial answer) is re-asked in
halves, and fails the poll as a parse error only when a single day is still capped,
because storing a partial window would replace complete stored days with lower values.

What is confirmed and from where: ``docs/providers/xai.md``. Produces, e.g.::

    aicost_cost_today{provider="xai",account="xai",project="<team>",model="grok-4-0709",
                      cost_type="tokens",currency="USD"} 1.25
    aicost_prepaid_balance{provider="xai",account="xai",currency="USD"} 42.5
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from exporter.config import Secret, XAIConfig
from exporter.providers.errors import ClientError, ParseError
from exporter.providers.http import HttpProvider
from exporter.providers.parse import as_count, as_decimal, cents, json_field
from exporter.records import (
    BillingRecord,
    CostRecord,
    FetchResult,
    ProjectRecord,
    UsageRecord,
    merge_costs,
    merge_usage,
)

log = logging.getLogger(__name__)

TIMEZONE = "Etc/GMT"
GROUP_BY: tuple[str, ...] = ("model", "unit_type")  # `unit_type` is unconfirmed
# What the usage query falls back to when xAI refuses GROUP_BY: the one grouping observed
# in every client (the line label, e.g. "grok-4 Cached prompt" or a model name).
CONFIRMED_GROUP_BY: tuple[str, ...] = ("description",)
WIRE_TIME = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class UnitType:
    """What a billing unit type (``unit_type`` group label) means for our records."""

    cost_type: str
    token_type: str  # "" when the unit does not count tokens
    has_model: bool = True  # tool units carry no model (model="")


OTHER_UNIT = UnitType("other", "")


def classify_unit(label: str) -> UnitType | None:
    """``"Cached prompt"`` -> tokens/cache_read; None for a unit type we do not know."""
    text = " ".join(label.lower().split())
    if "search" in text or "source" in text:
        return UnitType("web_search", "", has_model=False)
    if "code" in text:
        return UnitType("code_execution", "", has_model=False)
    if text.startswith("cached"):
        return UnitType("tokens", "cache_read")
    if text.startswith(("prompt", "input")):
        return UnitType("tokens", "input")
    if text.startswith(("completion", "reasoning", "output")):
        return UnitType("tokens", "output")
    if text.startswith("image"):
        return UnitType("tokens", "")  # generated images: model cost, not tokens
    return None


@dataclass(frozen=True)
class _Point:
    day: date
    model: str
    unit: str
    value: Decimal


class XAIProvider(HttpProvider):
    """The usage "page" is a range of day buckets: ``usage_page_size`` days per request."""

    type: ClassVar[str] = "xai"
    # FetchResult.degraded reasons: the unit_type grouping or the tokens value refused
    degradations: ClassVar[tuple[str, ...]] = ("unit_type", "tokens")

    def __init__(
        self, config: XAIConfig, client: httpx.Client, api_key: Secret, **options: Any
    ) -> None:
        """``options``: those of :class:`HttpProvider` (retry, observer, page_size)."""
        super().__init__(config, client, api_key, **options)
        team = config.team_id
        self.team: str = team
        self._base = f"/v1/billing/teams/{quote(team, safe='')}"
        self._unknown_units: set[str] = set()

    def auth_headers(self, api_key: Secret) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_key.value}"}

    def error_message(self, body: Any) -> str:
        """xAI's message from an error body (``{"code": ..., "error"|"message": ...}``)."""
        if isinstance(body, dict):
            for name in ("message", "error"):
                value = body.get(name)
                if isinstance(value, str):
                    return value[:300]
                if isinstance(value, dict) and isinstance(value.get("message"), str):
                    return str(value["message"])[:300]
        return ""

    # -- public -------------------------------------------------------------------------

    def fetch(self, start: date, end: date) -> FetchResult:
        """Costs and tokens per model and unit type; when xAI refuses the ``unit_type``
        grouping (400), costs per model from the ``description`` grouping (exact totals)
        and no tokens for this poll; when it refuses the ``tokens`` value, no tokens."""
        self._unknown_units = set()
        costs: list[CostRecord] = []
        usage: list[UsageRecord] = []
        degraded: dict[str, str] = {}
        for first, stop in _chunks(start, end, self._usage_limit):
            if "unit_type" not in degraded:
                try:
                    points = list(self._series("usage/cost", "usd", first, stop))
                    costs.extend(self._cost(p) for p in points)
                except ClientError as exc:
                    if exc.status != 400:
                        raise
                    degraded["unit_type"] = (
                        f"the usage API refused groupBy {list(GROUP_BY)} ({exc}); costs "
                        f"were read grouped by {list(CONFIRMED_GROUP_BY)} (exact per model), "
                        "tokens by unit type are unknown for this poll; the finer query is "
                        "tried again next poll"
                    )
            if "unit_type" in degraded:
                coarse = self._series("usage/cost", "usd", first, stop, CONFIRMED_GROUP_BY)
                costs.extend(self._described_cost(p) for p in list(coarse))
                continue
            if "tokens" in degraded:
                continue
            try:
                points = list(self._series("usage/tokens", "tokens", first, stop))
            except ClientError as exc:
                degraded["tokens"] = (
                    f"the usage API refused the token query ({exc}); costs are kept, "
                    "tokens are left out of this poll"
                )
                continue
            usage.extend(u for p in points if (u := self._usage(p)) is not None)
        project = ProjectRecord(self.type, self.account, self.team, self.team)
        return FetchResult(
            start,
            end,
            usage=merge_usage(usage),
            costs=merge_costs(costs),
            projects=[project],
            billing=self._billing(),
            degraded=degraded,
        )

    # -- usage analytics ----------------------------------------------------------------

    def _series(
        self,
        endpoint: str,
        value: str,
        start: date,
        end: date,
        group_by: tuple[str, ...] = GROUP_BY,
    ) -> Iterator[_Point]:
        """One analytics query over ``[start, end)``; capped answers are re-asked in halves.
        A point's ``model`` is the first group label, its ``unit`` the second (or "")."""
        body = {
            "analyticsRequest": {
                "timeRange": {
                    "startTime": _wire_time(start),
                    "endTime": _wire_time(end),
                    "timezone": TIMEZONE,
                },
                "timeUnit": "TIME_UNIT_DAY",
                "values": [{"name": value, "aggregation": "AGGREGATION_SUM"}],
                "groupBy": list(group_by),
                "filters": [],
            }
        }
        page = self._api.request_json("POST", endpoint, f"{self._base}/usage", body=body)
        where = f"{endpoint} {start}..{end - timedelta(days=1)}"
        if _proto_field(page, "limitReached", bool, where, False):
            days = (end - start).days
            if days <= 1:
                raise ParseError(
                    f"{where}: limitReached (a partial result) even for a single day; "
                    "not storing a partial window"
                )
            middle = start + timedelta(days=days // 2)
            log.warning(
                "xai/%s: %s: limitReached (partial result); asking again in two halves",
                self.account,
                where,
            )
            yield from self._series(endpoint, value, start, middle, group_by)
            yield from self._series(endpoint, value, middle, end, group_by)
            return
        series = _proto_field(page, "timeSeries", list, where, [])
        for s_no, s in enumerate(series):
            swhere = f"{where} timeSeries[{s_no}]"
            points = _proto_field(s, "dataPoints", list, swhere, [])
            model, unit = _labels(s, swhere, group_by)
            for p_no, point in enumerate(points):
                pwhere = f"{swhere}.dataPoints[{p_no}]"
                day, amount = _point(point, pwhere, start, end)
                if amount is None:
                    log.warning(
                        "xai/%s: %s has no value; the point is skipped (not counted as 0)",
                        self.account,
                        pwhere,
                    )
                elif amount != 0:  # an empty day stores no row
                    yield _Point(day, model, unit, amount)

    def _unit(self, label: str) -> UnitType:
        unit = classify_unit(label)
        if unit is not None:
            return unit
        if label not in self._unknown_units:
            self._unknown_units.add(label)
            log.warning(
                "xai/%s: unknown billing unit type %r: its cost is kept as cost_type=other, "
                "its volume is not counted as tokens",
                self.account,
                label,
            )
        return OTHER_UNIT

    def _cost(self, p: _Point) -> CostRecord:
        unit = self._unit(p.unit)
        line_item = f"{p.model}, {p.unit}" if p.model else p.unit
        return self._cost_record(p, p.model if unit.has_model else "", unit, line_item)

    def _described_cost(self, p: _Point) -> CostRecord:
        """A cost of the coarse query: its one group label is the line's description."""
        model, unit = split_description(p.model)
        return self._cost_record(p, model, unit, p.model)

    def _cost_record(self, p: _Point, model: str, unit: UnitType, line_item: str) -> CostRecord:
        return CostRecord(
            provider=self.type,
            account=self.account,
            day=p.day,
            project=self.team,
            model=model,
            cost_type=unit.cost_type,
            amount=p.value,
            currency="USD",
            line_item=line_item,
            token_type=unit.token_type,
            attribution="line_item" if model else "unattributed",
        )

    def _usage(self, p: _Point) -> UsageRecord | None:
        unit = self._unit(p.unit)
        if not unit.token_type:
            return None  # images, tool calls, unknown units: not tokens
        count = as_count(p.value, f"usage/tokens {p.day} {p.model!r} {p.unit!r}")
        return UsageRecord(
            provider=self.type,
            account=self.account,
            day=p.day,
            project=self.team,
            model=p.model,
            source="usage",
            **{f"{unit.token_type}_tokens": count},  # type: ignore[arg-type]
        )

    # -- billing state ------------------------------------------------------------------

    def _billing(self) -> list[BillingRecord]:
        out: list[BillingRecord] = []
        used = Decimal(0)
        has_limit = False
        tag = f"xai/{self.account}"
        preview = self._optional("invoice/preview", "/postpaid/invoice/preview")
        if preview is not None:
            where = f"{tag} invoice/preview"
            period = _period(preview.get("billingCycle"), where)
            core = preview.get("coreInvoice")
            if isinstance(core, dict):
                total = _lines_total(core, where)
                if total is not None:
                    out.append(self._state("invoice_preview", total, period))
                used = _optional_cents(core, "prepaidCreditsUsed", where) or Decimal(0)
            else:
                log.warning("%s has no coreInvoice; no running total", where)
            limit = _optional_cents(preview, "effectiveSpendingLimit", where)
            if limit is not None:
                out.append(self._state("spending_limit", limit, period))
                has_limit = True
        if not has_limit:
            limits = self._optional("spending-limits", "/postpaid/spending-limits")
            if limits is not None:
                inner = limits.get("spendingLimits", limits)
                if isinstance(inner, dict):
                    limit = _optional_cents(inner, "effectiveSl", f"{tag} spending-limits")
                    if limit is not None:
                        out.append(self._state("spending_limit", limit, ""))
        ledger = self._optional("prepaid/balance", "/prepaid/balance")
        if ledger is not None:
            total = _optional_cents(ledger, "total", f"{tag} prepaid/balance")
            if total is not None:
                # The ledger books purchases as negative amounts and a period's spend only
                # when the period closes: what is left now is -total minus this period's use.
                out.append(self._state("prepaid_balance", -total - abs(used), ""))
        return out

    def _state(self, kind: str, amount: Decimal, period: str) -> BillingRecord:
        return BillingRecord(self.type, self.account, kind, amount, "USD", period)

    def _optional(self, endpoint: str, path: str) -> dict[str, Any] | None:
        """GET a billing endpoint a team may not have: 400/404 -> None with an info log."""
        try:
            body = self._api.get_json(endpoint, self._base + path)
        except ClientError as exc:
            if exc.status in (400, 404):
                log.info("xai/%s: %s not available for this team (%s)", self.account, endpoint, exc)
                return None
            raise
        if not isinstance(body, dict):
            raise ParseError(f"{endpoint}: expected a JSON object")
        return body


# -- wire helpers ---------------------------------------------------------------------------


def _proto_field(obj: Any, name: str, kind: type, where: str, default: Any) -> Any:
    """:func:`json_field` for proto3 JSON, which omits a field holding its default value
    (``false``, ``[]``, ``0``): absent or null gives ``default``."""
    if isinstance(obj, dict) and obj.get(name) is None:
        return default
    return json_field(obj, name, kind, where)


def _chunks(start: date, end: date, days: int) -> Iterator[tuple[date, date]]:
    first = start
    while first < end:
        stop = min(end, first + timedelta(days=days))
        yield first, stop
        first = stop


def _wire_time(day: date) -> str:
    return datetime(day.year, day.month, day.day).strftime(WIRE_TIME)


def _labels(
    series: dict[str, Any], where: str, group_by: tuple[str, ...] = GROUP_BY
) -> tuple[str, str]:
    labels = series.get("groupLabels", series.get("group"))
    if (
        not isinstance(labels, list)
        or len(labels) != len(group_by)
        or not all(isinstance(x, str) for x in labels)
    ):
        raise ParseError(
            f"{where}.groupLabels: expected {len(group_by)} strings ({', '.join(group_by)})"
        )
    return labels[0], labels[1] if len(labels) > 1 else ""


def split_description(label: str) -> tuple[str, UnitType]:
    """A ``description`` group label -> (model, what it is), for the coarse query.

    ``"grok-4 Cached prompt"`` -> ("grok-4", tokens); ``"grok-4 Live search sources"`` ->
    ("", web_search); a bare ``"grok-4"`` -> ("grok-4", tokens); ``"File Storage"`` ->
    ("", other). The token type is left unknown (""): only the finer query says it."""
    words = label.split()
    for i in range(1, len(words)):
        unit = classify_unit(" ".join(words[i:]))
        if unit is not None:
            model = " ".join(words[:i]) if unit.has_model else ""
            return model, UnitType(unit.cost_type, "", unit.has_model)
    unit = classify_unit(label)
    if unit is not None and not unit.has_model:
        return "", unit
    if label.lower().startswith("grok"):
        return label.strip(), UnitType("tokens", "")
    return "", UnitType("other", "", has_model=False)


def _point(point: Any, where: str, start: date, end: date) -> tuple[date, Decimal | None]:
    """(day, value) of a data point; the value is None when the point carries none."""
    day = _day(json_field(point, "timestamp", str, where), f"{where}.timestamp")
    if not start <= day < end:
        raise ParseError(f"{where}.timestamp: {day} lies outside the requested range")
    values = _proto_field(point, "values", list, where, [])
    if not values or values[0] is None:
        return day, None
    return day, _number(values[0], f"{where}.values[0]")


def _day(value: str, where: str) -> date:
    """A bucket start (RFC 3339, or ``YYYY-MM-DD HH:MM:SS`` in UTC) -> its UTC day."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ParseError(f"{where}: {value[:40]!r} is not a timestamp") from None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if moment.time() != datetime.min.time():
        raise ParseError(
            f"{where}: {value!r} is not a UTC midnight; days were bucketed in another zone"
        )
    return moment.date()


def _number(value: Any, where: str) -> Decimal:
    """A number, a numeric string or ``{"val": ...}`` (``{}`` is proto3's zero)."""
    if isinstance(value, dict):
        inner = value.get("val")
        return Decimal(0) if inner is None else as_decimal(inner, f"{where}.val")
    return as_decimal(value, where)


def _optional_cents(obj: dict[str, Any], name: str, where: str) -> Decimal | None:
    """A USD-cents field in dollars, or None (with a warning) when missing or malformed."""
    if obj.get(name) is None:
        log.warning("%s.%s is missing; that value is left out", where, name)
        return None
    try:
        return cents(_number(obj[name], f"{where}.{name}"), f"{where}.{name}")
    except ParseError as exc:
        log.warning("%s; that value is left out", exc)
        return None


def _lines_total(core: dict[str, Any], where: str) -> Decimal | None:
    """Sum of the preview's line amounts (cents) in dollars; None if a line is malformed."""
    lines = core.get("lines", [])  # proto3 JSON omits an empty list
    if not isinstance(lines, list):
        log.warning("%s.coreInvoice.lines is not a list; no running total", where)
        return None
    total = Decimal(0)
    for n, line in enumerate(lines):
        lwhere = f"{where}.coreInvoice.lines[{n}]"
        if not isinstance(line, dict):
            log.warning("%s is not an object; no running total", lwhere)
            return None
        amount = _optional_cents(line, "amount", lwhere)
        if amount is None:
            return None
        total += amount
    return total


def _period(cycle: Any, where: str) -> str:
    if isinstance(cycle, dict):
        year, month = (str(cycle.get(k, "")) for k in ("year", "month"))
        if year.isdigit() and month.isdigit() and 1 <= int(month) <= 12:
            return f"{int(year):04d}-{int(month):02d}"
    log.warning("%s.billingCycle is missing or malformed; the invoice gap is not computed", where)
    return ""
