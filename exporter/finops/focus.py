"""``focus``: the stored costs as FOCUS 1.2 rows (FinOps Open Cost and Usage Specification).

One row per provider, account, project, model, cost type, billing currency and UTC day
(the charge period is that day). Money columns are in the provider's billing currency
(``BillingCurrency``, e.g. USD) and exact; the accounting-currency amount and its FX audit
ride in ``x_`` extension columns. Mapping (see ``docs/finops.md``):

* ``BilledCost`` = ``EffectiveCost`` = ``ContractedCost`` = the stored billed amount
  (no amortised commitments, no negotiated rates are known to the exporter);
  ``ListCost`` = observed tokens priced per token type at the genai-prices catalogue's
  list price of the day (batch rows at the batch discount) where the model has a price,
  else the billed amount.
* ``SubAccountId`` = project / workspace; ``ResourceId`` = model; ``SkuId`` (and
  ``SkuPriceId``) = ``provider:model:cost_type`` (``provider:cost_type`` for tool costs).
* ``ConsumedQuantity``/``ConsumedUnit``: all tokens (``Tokens``) of a token row, the
  provider's counted units of a tool row (web search ``Requests``); null when the provider
  reports no volume for the line (the spec wants one for usage; there is none to give).
  ``PricingQuantity``/``PricingUnit``: tokens in millions (``1000000 Tokens``, the unit of
  the catalogue's prices), else the consumed quantity, else the billed amount in the
  billing currency (a line the provider reports as money only).
* ``Tags``: ``team``, ``pool``, ``owner``, ``environment`` from ``attribution:`` (JSON).
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import IO, Any

from exporter.config import Config
from exporter.finops.common import Attributions, next_month
from exporter.pricing import Catalogue
from exporter.records import TOKEN_TYPES, UsageRecord
from exporter.store import Store

FOCUS_VERSION = "1.2"

PROVIDER_NAMES = {
    "openai": "OpenAI", "anthropic": "Anthropic", "xai": "xAI", "azure_openai": "Microsoft",
    "bedrock": "AWS", "vertex": "Google Cloud", "gemini": "Google",
}  # fmt: skip
SERVICE_NAMES = {
    "openai": "OpenAI API", "anthropic": "Claude API", "xai": "xAI API",
    "azure_openai": "Azure OpenAI", "bedrock": "Amazon Bedrock", "vertex": "Vertex AI",
    "gemini": "Gemini API",
}  # fmt: skip
SUB_ACCOUNT_TYPES = {
    "anthropic": "Workspace",
    "xai": "Team",
    "azure_openai": "Azure OpenAI resource",
}  # fmt: skip  (else "Project")
# Usage units that measure a tool cost type: (usage unit) -> (cost type, FOCUS unit).
TOOL_UNITS = {"web_search_requests": ("web_search", "Requests")}
MTOK = Decimal(1_000_000)

COLUMNS: tuple[str, ...] = (
    "BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "BillingCurrency",
    "BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd",
    "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency",
    "ProviderName", "PublisherName", "InvoiceIssuerName",
    "BillingAccountId", "BillingAccountName", "SubAccountId", "SubAccountName",
    "SubAccountType", "ServiceName", "ServiceCategory", "ServiceSubcategory",
    "ResourceId", "ResourceName", "ResourceType", "SkuId", "SkuPriceId", "SkuMeter",
    "SkuPriceDetails", "RegionId", "RegionName",
    "ConsumedQuantity", "ConsumedUnit", "PricingQuantity", "PricingUnit", "Tags",
    "x_AccountingCost", "x_AccountingCurrency", "x_FxRate", "x_FxRateDate",
    "x_FxRateSource", "x_FxStatus", "x_CostType", "x_ListCostSource",
    "x_InputTokens", "x_OutputTokens", "x_CacheReadTokens", "x_CacheWriteTokens",
    "x_Requests",
)  # fmt: skip
DECIMAL_COLUMNS = frozenset(
    {"BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "ConsumedQuantity",
     "PricingQuantity", "x_AccountingCost", "x_FxRate", "x_InputTokens", "x_OutputTokens",
     "x_CacheReadTokens", "x_CacheWriteTokens", "x_Requests"}
)  # fmt: skip

Value = str | Decimal | None
Row = dict[str, Value]
Key = tuple[str, str, str, str, str, date, str]  # provider account project model type day cur


@dataclass
class _Charge:
    billed: Decimal = Decimal(0)
    accounting: Decimal | None = Decimal(0)
    fx: set[tuple[str, str, str]] = field(default_factory=set)  # (rate, rate date, source)
    statuses: set[str] = field(default_factory=set)


def _timestamp(day: date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


def _accumulate(rows: Iterable[Mapping[str, Any]], currency: str) -> dict[Key, _Charge]:
    """Stored cost rows (with their FX audit columns) summed per FOCUS row."""
    out: dict[Key, _Charge] = defaultdict(_Charge)
    for r in rows:
        key: Key = (
            r["provider"], r["account"], r["project"], r["model"], r["cost_type"],
            date.fromisoformat(r["day"]), r["currency"],
        )  # fmt: skip
        charge = out[key]
        charge.billed += Decimal(r["amount"])
        converted = r["fx_currency"] == currency and r["fx_status"] in ("final", "provisional")
        if converted:
            amount: Decimal | None = Decimal(r["fx_amount"])
            charge.fx.add((r["fx_rate"], r["fx_rate_date"], r["fx_source"]))
            charge.statuses.add(r["fx_status"])
        elif r["currency"] == currency:  # same currency, no rate needed
            amount = Decimal(r["amount"])
            charge.fx.add(("1", r["day"], "identity"))
            charge.statuses.add("final")
        else:
            amount = None
            charge.statuses.add("error")
        charge.accounting = (
            None if amount is None or charge.accounting is None else charge.accounting + amount
        )
    return out


@dataclass
class _Volume:
    tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOKEN_TYPES, 0))
    requests: int = 0
    list_cost: Decimal | None = Decimal(0)  # None: some tokens have no catalogue price
    units: dict[tuple[str, str], int] = field(default_factory=dict)  # (cost type, unit) -> n


def _volumes(
    usage: Iterable[UsageRecord], catalogue: Catalogue
) -> tuple[
    dict[tuple[str, str, str, str, date], _Volume], dict[tuple[str, str, str, date], _Volume]
]:
    """Usage per (stream, day), and tool units per (provider, account, project, day)."""
    per_stream: dict[tuple[str, str, str, str, date], _Volume] = defaultdict(_Volume)
    per_project: dict[tuple[str, str, str, date], _Volume] = defaultdict(_Volume)
    for u in usage:
        v = per_stream[(u.provider, u.account, u.project, u.model, u.day)]
        for t in TOKEN_TYPES:
            v.tokens[t] += u.tokens(t)
        v.requests += u.requests
        price = catalogue.row_cost(u)
        v.list_cost = None if price is None or v.list_cost is None else v.list_cost + price
        if u.unit and u.units and u.unit not in TOOL_UNITS:  # images, characters, seconds
            unit = ("tokens", u.unit.replace("_", " ").title())
            v.units[unit] = v.units.get(unit, 0) + u.units
        if u.unit in TOOL_UNITS and u.units:
            tool = per_project[(u.provider, u.account, u.project, u.day)]
            unit = TOOL_UNITS[u.unit]
            tool.units[unit] = tool.units.get(unit, 0) + u.units
    return per_stream, per_project


def focus_rows(
    config: Config, store: Store, catalogue_usd: Catalogue, start: date, end: date
) -> Iterator[Row]:
    """The FOCUS rows of the UTC days ``[start, end)``, sorted by day then stream.

    ``catalogue_usd``: list prices in USD (the providers' billing currency); a row billed
    in another currency keeps ``ListCost`` = ``BilledCost``.
    """
    attributions = Attributions(config.attribution, store.projects())
    day = start
    while day < end:  # one day at a time: a year of a large org never sits in memory
        charges = _accumulate(store.cost_audit(day), config.currency)
        per_stream, per_project = _volumes(
            store.usage_between(day, day + timedelta(days=1)), catalogue_usd
        )
        for key in sorted(charges):
            yield _row(config, key, charges[key], per_stream, per_project, attributions)
        day += timedelta(days=1)


def _row(
    config: Config,
    key: Key,
    charge: _Charge,
    per_stream: Mapping[tuple[str, str, str, str, date], _Volume],
    per_project: Mapping[tuple[str, str, str, date], _Volume],
    attributions: Attributions,
) -> Row:
    provider, account, project, model, cost_type, day, currency = key
    volume = per_stream.get((provider, account, project, model, day))
    consumed: Decimal | None = None
    consumed_unit = pricing_unit = None
    pricing: Decimal | None = None
    list_cost, list_source = charge.billed, "billed"
    if cost_type == "tokens" and volume is not None and any(volume.tokens.values()):
        total = sum(volume.tokens.values())
        consumed, consumed_unit = Decimal(total), "Tokens"
        pricing, pricing_unit = Decimal(total) / MTOK, "1000000 Tokens"
        if volume.list_cost is not None and currency == "USD":
            list_cost, list_source = volume.list_cost, "catalogue"
    else:  # counted units: of the stream (images), of the project's tool calls (searches)
        counted = volume if cost_type == "tokens" else per_project.get((*key[:3], day))
        units = [
            (u, n) for (t, u), n in (counted.units.items() if counted else ()) if t == cost_type
        ]
        if len(units) == 1:
            consumed_unit = pricing_unit = units[0][0]
            consumed = pricing = Decimal(units[0][1])
    if pricing is None:  # the provider reports money only: the line is priced in money
        pricing, pricing_unit = charge.billed, currency
    attribution = attributions.of((provider, account, project))
    tags = {
        "team": attribution.team,
        "pool": attribution.pool,
        "owner": attribution.cost_owner,
        "environment": attribution.environment,
    }
    rate = rate_date = source = None
    if len(charge.fx) == 1:
        rate, rate_date, source = next(iter(charge.fx))
    elif charge.fx:
        source = "mixed"
    status = (
        "error" if "error" in charge.statuses
        else "provisional" if "provisional" in charge.statuses else "final"
    )  # fmt: skip
    name = PROVIDER_NAMES.get(provider, provider)
    tokens = volume.tokens if volume is not None and cost_type == "tokens" else None
    what = model if model else cost_type.replace("_", " ")
    sku = f"{provider}:{model}:{cost_type}" if model else f"{provider}:{cost_type}"
    return {
        "BilledCost": charge.billed,
        "EffectiveCost": charge.billed,
        "ListCost": list_cost,
        "ContractedCost": charge.billed,
        "BillingCurrency": currency,
        "BillingPeriodStart": _timestamp(day.replace(day=1)),
        "BillingPeriodEnd": _timestamp(next_month(day)),
        "ChargePeriodStart": _timestamp(day),
        "ChargePeriodEnd": _timestamp(day + timedelta(days=1)),
        "ChargeCategory": "Usage",
        "ChargeClass": None,
        "ChargeDescription": f"{what} {cost_type}" if model else f"{what} ({cost_type})",
        "ChargeFrequency": "Usage-Based",
        "ProviderName": name,
        "PublisherName": name,
        "InvoiceIssuerName": name,
        "BillingAccountId": account,
        "BillingAccountName": account,
        "SubAccountId": project or None,
        "SubAccountName": (attributions.name((provider, account, project)) or None)
        if project
        else None,
        "SubAccountType": SUB_ACCOUNT_TYPES.get(provider, "Project") if project else None,
        "ServiceName": SERVICE_NAMES.get(provider, f"{name} API"),
        "ServiceCategory": "AI and Machine Learning",
        "ServiceSubcategory": "Generative AI",
        "ResourceId": model or None,
        "ResourceName": model or None,
        "ResourceType": "Model" if model else None,
        "SkuId": sku,
        "SkuPriceId": sku,  # one list price per SKU and day (the spec allows SkuId)
        "SkuMeter": "Tokens" if cost_type == "tokens" else cost_type.replace("_", " ").title(),
        "SkuPriceDetails": None,
        "RegionId": None,
        "RegionName": None,
        "ConsumedQuantity": consumed,
        "ConsumedUnit": consumed_unit,
        "PricingQuantity": pricing,
        "PricingUnit": pricing_unit,
        "Tags": json.dumps({k: v for k, v in tags.items() if v}, sort_keys=True),
        "x_AccountingCost": charge.accounting,
        "x_AccountingCurrency": config.currency,
        "x_FxRate": Decimal(rate) if rate is not None else None,
        "x_FxRateDate": rate_date,
        "x_FxRateSource": source,
        "x_FxStatus": status,
        "x_CostType": cost_type,
        "x_ListCostSource": list_source,
        "x_InputTokens": Decimal(tokens["input"]) if tokens else None,
        "x_OutputTokens": Decimal(tokens["output"]) if tokens else None,
        "x_CacheReadTokens": Decimal(tokens["cache_read"]) if tokens else None,
        "x_CacheWriteTokens": Decimal(tokens["cache_write"]) if tokens else None,
        "x_Requests": Decimal(volume.requests) if volume is not None and tokens else None,
    }


def _text(value: Value) -> str:
    if value is None:
        return ""
    return format(value, "f") if isinstance(value, Decimal) else value


def write_csv(rows: Iterable[Row], out: IO[str]) -> int:
    """CSV with a header of :data:`COLUMNS`; null is an empty field. Returns the row count."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    n = 0
    for row in rows:
        writer.writerow([_text(row[c]) for c in COLUMNS])
        n += 1
    return n


def write_jsonl(rows: Iterable[Row], out: IO[str]) -> int:
    """One JSON object per line; decimals are exact JSON numbers, null is ``null``."""
    n = 0
    for row in rows:
        parts = []
        for c in COLUMNS:
            v = row[c]
            text = (
                "null" if v is None else format(v, "f") if isinstance(v, Decimal) else json.dumps(v)
            )
            parts.append(f"{json.dumps(c)}: {text}")
        out.write("{" + ", ".join(parts) + "}\n")
        n += 1
    return n


def write(rows: Iterable[Row], out: IO[str], fmt: str) -> int:
    return write_jsonl(rows, out) if fmt == "jsonl" else write_csv(rows, out)


__all__: Sequence[str] = ("COLUMNS", "FOCUS_VERSION", "focus_rows", "write")
