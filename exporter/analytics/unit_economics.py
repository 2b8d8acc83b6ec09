"""Unit economics of ingested requests: counters, cost per request/outcome, prompt-version
change, estimate vs bill, and the ``top`` lists.

Everything is computed from the daily roll-ups in SQLite (plus the carry that retention
folded away), so the counters equal what was sent and never reset on restart. Estimated
cost is the catalogue's USD list price of each request's tokens on its day, converted to
the accounting currency at that day's ECB rate (the same rate billed cost gets); a label
set whose day has no rate is withheld, never shown unconverted.

Windows: ``7d`` is the 7 UTC days ending today (today included: requests arrive in real
time, unlike the billed data). Caps: ``endpoint``, ``tenant`` and ``prompt_version`` admit
values in the order the exporter first stored them, up to ``ingest.max_*`` (``outcome``:
up to 20); later values are summed under ``other``, so an admitted value never moves
between series and a counter never drops.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from exporter.config import IngestConfig
from exporter.records import TOKEN_TYPES, UNKNOWN, CostRecord
from exporter.snapshot import (
    OTHER,
    AppCostKey,
    AppMetrics,
    AppOutcomeKey,
    AppRequestKey,
    AppRetryKey,
    AppTokenKey,
    AppUnitCostKey,
    EstimateKey,
    PromptVersionKey,
)
from exporter.store import DailyRow

log = logging.getLogger(__name__)

WINDOW_DAYS = 7
MAX_OUTCOMES = 20  # outcomes are an application's small enum; free text folds into `other`
Rate = Callable[[date], Decimal | None]  # USD -> accounting currency on a day; None: no rate


@dataclass(frozen=True)
class Caps:
    """The admitted values of each capped dimension (first seen first)."""

    endpoint: frozenset[str]
    tenant: frozenset[str]
    prompt_version: frozenset[str]
    outcome: frozenset[str]

    @classmethod
    def of(cls, order: Callable[[str], list[str]], ingest: IngestConfig) -> Caps:
        return cls(
            frozenset(order("endpoint")[: ingest.max_endpoints]),
            frozenset(order("tenant")[: ingest.max_tenants]),
            frozenset(order("prompt_version")[: ingest.max_prompt_versions]),
            frozenset(order("outcome")[:MAX_OUTCOMES]),
        )

    def endpoint_of(self, row: DailyRow) -> str:
        return row.endpoint if row.endpoint in self.endpoint else OTHER

    def tenant_of(self, row: DailyRow) -> str:
        return row.tenant if row.tenant in self.tenant else OTHER

    def version_of(self, row: DailyRow) -> str:
        return row.prompt_version if row.prompt_version in self.prompt_version else OTHER

    def outcome_of(self, row: DailyRow) -> str:
        return row.outcome if row.outcome in self.outcome else OTHER


class RowConverter:
    """Estimated USD of a roll-up row -> accounting currency, at the rate of its day."""

    def __init__(self, rate: Rate) -> None:
        self._rate = rate
        self._rates: dict[date, Decimal | None] = {}

    def __call__(self, row: DailyRow) -> Decimal | None:
        if row.day is None:  # carried totals: converted when folded; another currency's
            return Decimal(0) if row.carried_cost is None else row.carried_cost  # start at 0
        if not row.cost_pusd:
            return Decimal(0)
        if row.day not in self._rates:
            self._rates[row.day] = self._rate(row.day)
        r = self._rates[row.day]
        return None if r is None else row.cost_usd * r


def compute_app_metrics(
    rows: list[DailyRow],
    carry: list[DailyRow],
    billed_yesterday: list[CostRecord],
    today: date,
    currency: str,
    caps: Caps,
    version_order: Callable[[str], list[str]],
    rate: Rate,
) -> AppMetrics:
    """The app-request metrics of ``today`` from every roll-up row and the carry."""
    out = AppMetrics()
    convert = RowConverter(rate)
    withheld: set[AppCostKey] = set()
    for row in (*carry, *rows):
        ep, tenant, pv = caps.endpoint_of(row), caps.tenant_of(row), caps.version_of(row)
        rk = AppRequestKey(row.provider, row.model, ep, tenant, pv, caps.outcome_of(row))
        out.requests[rk] = out.requests.get(rk, 0) + row.requests
        if row.retries:
            tk = AppRetryKey(row.provider, row.model, ep)
            out.retries[tk] = out.retries.get(tk, 0) + row.retries
        for t in TOKEN_TYPES:
            nk = AppTokenKey(row.provider, row.model, ep, tenant, pv, t)
            out.tokens[nk] = out.tokens.get(nk, 0) + row.tokens(t)
        if row.requests == row.unpriced:
            continue  # an unknown model: tokens and requests, no cost
        ck = AppCostKey(row.provider, row.model, ep, tenant, pv, currency)
        amount = convert(row)
        if amount is None:
            withheld.add(ck)
            continue
        out.cost[ck] = out.cost.get(ck, Decimal(0)) + amount
    for key in withheld:
        out.cost.pop(key, None)
    if withheld:
        log.warning(
            "ingest: estimated cost of %d label set(s) withheld: no USD->%s rate for a day",
            len(withheld),
            currency,
        )
    start = today - timedelta(days=WINDOW_DAYS - 1)
    recent = [r for r in rows if r.day is not None and start <= r.day <= today]
    _unit_costs(out, recent, caps, currency, convert)
    _version_change(out, rows, today, caps, version_order)
    _estimate_to_billed(out, rows, billed_yesterday, today - timedelta(days=1), convert)
    return out


def _unit_costs(
    out: AppMetrics, recent: list[DailyRow], caps: Caps, currency: str, convert: RowConverter
) -> None:
    """Cost per request (by model and prompt version) and per outcome (by endpoint), 7d;
    a group with an unpriced request or an unconverted day gets no value."""
    cost: dict[AppUnitCostKey, Decimal | None] = {}
    count: dict[AppUnitCostKey, int] = defaultdict(int)
    endpoint_cost: dict[str, Decimal | None] = {}
    outcomes: dict[AppOutcomeKey, int] = defaultdict(int)
    for row in recent:
        ep = caps.endpoint_of(row)
        key = AppUnitCostKey(row.provider, row.model, ep, caps.version_of(row), currency)
        amount = None if row.unpriced else convert(row)
        cost[key] = _add(cost.get(key, Decimal(0)), amount)
        count[key] += row.requests
        endpoint_cost[ep] = _add(endpoint_cost.get(ep, Decimal(0)), amount)
        outcomes[AppOutcomeKey(ep, caps.outcome_of(row), currency)] += row.requests
    for key, total in cost.items():
        if total is not None and count[key]:
            out.cost_per_request_7d[key] = total / count[key]
    for ok, n in outcomes.items():
        spent = endpoint_cost[ok.endpoint]
        if spent is not None and n:
            out.cost_per_outcome_7d[ok] = spent / n


def _add(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    return None if a is None or b is None else a + b


def _version_change(
    out: AppMetrics,
    rows: list[DailyRow],
    today: date,
    caps: Caps,
    version_order: Callable[[str], list[str]],
) -> None:
    """Per endpoint: cost/request of the newest prompt version over its last 7 days ÷ the
    previous version's over its own last 7 days (currency-neutral: catalogue USD)."""
    by_version: dict[tuple[str, str], list[DailyRow]] = defaultdict(list)
    for row in rows:
        if row.day is not None and row.prompt_version != UNKNOWN:
            by_version[(row.endpoint, row.prompt_version)].append(row)
    for endpoint in sorted({e for e, _ in by_version}):
        if endpoint not in caps.endpoint:
            continue
        versions = [v for v in version_order(f"prompt_version@{endpoint}") if v != UNKNOWN]
        versions = [v for v in versions if (endpoint, v) in by_version]
        if len(versions) < 2:
            continue
        newest = _cost_per_request(by_version[(endpoint, versions[-1])], today)
        previous = _cost_per_request(by_version[(endpoint, versions[-2])], today)
        if newest is None or not previous:
            continue
        label = versions[-1] if versions[-1] in caps.prompt_version else OTHER
        out.prompt_version_change[PromptVersionKey(endpoint, label)] = newest / previous


def _cost_per_request(rows: Iterable[DailyRow], today: date) -> Decimal | None:
    """USD per request over the 7 days ending on the version's last active day (or today)."""
    rows = list(rows)
    last = min(today, max(r.day for r in rows if r.day is not None))
    start = last - timedelta(days=WINDOW_DAYS - 1)
    window = [r for r in rows if r.day is not None and start <= r.day <= last]
    n = sum(r.requests for r in window)
    if not n or any(r.unpriced for r in window):
        return None
    return sum((r.cost_usd for r in window), Decimal(0)) / n


def _estimate_to_billed(
    out: AppMetrics,
    rows: list[DailyRow],
    billed: list[CostRecord],
    yesterday: date,
    convert: RowConverter,
) -> None:
    """Estimated ÷ billed token cost of yesterday per (provider, account, model), where
    both exist and one account bills that provider's model (requests carry no account)."""
    estimated: dict[tuple[str, str], Decimal | None] = {}
    for row in rows:
        if row.day == yesterday:
            key = (row.provider, row.model)
            estimated[key] = _add(
                estimated.get(key, Decimal(0)), None if row.unpriced else convert(row)
            )
    bills: dict[tuple[str, str], dict[str, Decimal]] = defaultdict(dict)
    for c in billed:
        if c.day == yesterday and c.cost_type == "tokens" and c.model:
            accounts = bills[(c.provider, c.model)]
            accounts[c.account] = accounts.get(c.account, Decimal(0)) + c.amount
    for (provider, model), est in estimated.items():
        accounts = bills.get((provider, model), {})
        if est is None or len(accounts) != 1:
            continue
        ((account, amount),) = accounts.items()
        if amount > 0:
            out.estimate_to_billed[EstimateKey(provider, account, model)] = est / amount


# --------------------------------------------------------------------------- top


@dataclass(frozen=True)
class Spender:
    """One line of ``ai-cost-exporter top``."""

    value: str
    cost: Decimal | None  # None: no rate for a day, or unpriced requests only
    requests: int
    tokens: int
    unpriced: int


TOP_DIMENSIONS = ("user", "tenant", "endpoint")


def top_spenders(rows: list[DailyRow], by: str, rate: Rate) -> list[Spender]:
    """Roll-up rows grouped by ``by`` (user, tenant or endpoint), dearest first."""
    if by not in TOP_DIMENSIONS:
        raise ValueError(f"--by must be one of {', '.join(TOP_DIMENSIONS)}")
    convert = RowConverter(rate)
    groups: dict[str, list[DailyRow]] = defaultdict(list)
    for row in rows:
        groups[getattr(row, by) or UNKNOWN].append(row)
    out = []
    for value, group in groups.items():
        total: Decimal | None = Decimal(0)
        for row in group:
            total = _add(total, convert(row))
        out.append(
            Spender(
                value,
                total,
                sum(r.requests for r in group),
                sum(r.tokens(t) for r in group for t in TOKEN_TYPES),
                sum(r.unpriced for r in group),
            )
        )
    return sorted(out, key=lambda s: (-(s.cost or Decimal(0)), -s.requests, s.value))
