"""List prices from the genai-prices catalogue, and our own model maps.

**Prices.** :class:`Catalogue` reads per-token-type unit prices (input, output, cache read,
cache write, per million tokens) straight from the catalogue bundled with ``genai-prices``
(``genai_prices.data``), choosing the price **in force on each day** (the catalogue's
``StartDateConstraint`` entries). It never feeds volumes into genai-prices' per-request
calculation: a day's volume is many requests, so a context tier ("over 200k input tokens")
cannot be decided from it; tiered prices are read at their base (first) tier. Time-of-day
prices (off-peak windows) cannot be placed within a daily bucket and are ignored.

**Offline.** genai-prices only downloads prices when an ``UpdatePrices`` updater is started,
which the exporter never does; we also read the bundled data module rather than
``genai_prices.data_snapshot.get_snapshot()``, so not even a process-wide custom snapshot
changes our prices. No network is touched at run time or in tests.

**Units.** Catalogue prices are USD. ``convert`` turns a USD amount of a day into the
accounting currency (identity for USD; any other ``currency`` without a converter is an
error, never a silent 1.0 rate; the FX module supplies the ECB rate once it lands).

**Maps.** :class:`ModelMaps` holds the alternatives map (model -> cheaper model), the
cross-provider equivalence map (one model on several routes) and the batch-capable model
list, loaded from ``exporter/data/*.yaml`` (shipped as package data) with config overrides.
Map keys are model *families*: :func:`model_family` strips snapshot suffixes, so
``gpt-4o-2024-08-06`` matches ``gpt-4o``.
"""

from __future__ import annotations

import fnmatch
import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from importlib import resources
from typing import Any, Protocol

import yaml
from genai_prices import types as gp

from exporter.records import TOKEN_TYPES, UsageRecord

log = logging.getLogger(__name__)

# Our provider ids -> the catalogue's provider ids.
CATALOGUE_PROVIDER: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "xai": "x-ai",
    "bedrock": "aws",
    "azure_openai": "azure",
    "vertex": "google",
    "gemini": "google",
}
PROVIDERS: tuple[str, ...] = tuple(CATALOGUE_PROVIDER)

MTOK = Decimal(1_000_000)
# OpenAI, Anthropic, Bedrock and Vertex all bill batch requests at 50 % of the list price.
BATCH_DISCOUNT = Decimal("0.5")

_PRICE_KEYS = {
    "input": "input_mtok",
    "output": "output_mtok",
    "cache_read": "cache_read_mtok",
    "cache_write": "cache_write_mtok",
}

Converter = Callable[[date, Decimal], Decimal]


def _identity(_day: date, amount: Decimal) -> Decimal:
    return amount


# --------------------------------------------------------------------------- model ids

_REGION_PREFIX = re.compile(r"^(?:us|eu|apac|au|ca|jp|us-gov|global|regional)\.")
_SUFFIXES = (
    re.compile(r"-v\d+:\d+$"),  # Bedrock version: -v1:0
    re.compile(r"@(?:\d{8}|latest|default)$"),  # Vertex: @20250514
    re.compile(r"-\d{4}-\d{2}-\d{2}$"),  # OpenAI: -2024-08-06
    re.compile(r"-20\d{6}$"),  # Anthropic: -20250514
    re.compile(r"-(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])$"),  # -0613, xAI -0709
    re.compile(r"-latest$"),
)


def model_family(model: str) -> str:
    """The model id without region prefix and snapshot suffixes, lower case.

    ``gpt-4o-2024-08-06`` -> ``gpt-4o``; ``claude-sonnet-4-20250514`` -> ``claude-sonnet-4``;
    ``us.anthropic.claude-sonnet-4-20250514-v1:0`` -> ``anthropic.claude-sonnet-4``;
    ``claude-opus-4@20250514`` -> ``claude-opus-4``; ``grok-4-0709`` -> ``grok-4``.
    """
    family = _REGION_PREFIX.sub("", model.strip().lower())
    changed = True
    while changed:
        changed = False
        for pattern in _SUFFIXES:
            stripped = pattern.sub("", family)
            if stripped != family and stripped:
                family, changed = stripped, True
    return family


def is_batch(row: UsageRecord) -> bool:
    """Batch traffic. Providers set ``batch`` from their own batch flag or service tier."""
    return row.batch == "true"


# --------------------------------------------------------------------------- prices


class HasTokens(Protocol):
    """A usage row or an ingested request: token counts by token type."""

    def tokens(self, token_type: str) -> int: ...


@dataclass(frozen=True)
class UnitPrices:
    """List prices per million tokens of one model on one day, in the accounting currency.

    A catalogue entry without a cache-read or cache-write price bills those tokens as
    input (OpenAI has no cache-write charge); one without an output price (embeddings)
    prices output at 0.
    """

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal

    def of(self, token_type: str) -> Decimal:
        return Decimal(getattr(self, token_type))

    def cost(self, row: UsageRecord) -> Decimal:
        """What the row's tokens cost at these prices (batch rows at the batch discount)."""
        total = self.tokens_cost(row)
        return total * BATCH_DISCOUNT if is_batch(row) else total

    def tokens_cost(self, row: HasTokens) -> Decimal:
        """What the four token types of ``row`` cost at these prices (no discount)."""
        # Decimal(0) + each type's cost in TOKEN_TYPES order, without a Decimal copy per type
        # (the recommendation rules price tens of thousands of volumes per refresh)
        return (
            Decimal(0)
            + row.tokens("input") * self.input
            + row.tokens("output") * self.output
            + row.tokens("cache_read") * self.cache_read
            + row.tokens("cache_write") * self.cache_write
        ) / MTOK


def _base(value: Any) -> Decimal | None:
    """A catalogue price value: tiered prices at their base tier (see the module doc)."""
    if value is None:
        return None
    if isinstance(value, gp.TieredPrices):
        return Decimal(value.base)
    return Decimal(value)


def _active_on(constraint: Any, day: date) -> bool:
    if constraint is None:
        return True
    if isinstance(constraint, gp.StartDateConstraint):
        return constraint.start_date <= day
    return False  # time-of-day windows cannot be placed in a daily bucket


def price_on(info: gp.ModelInfo, day: date, service_tier: str = "") -> dict[str, Decimal | None]:
    """The catalogue's per-MTok price keys of ``info`` in force on ``day``.

    Conditional prices: the last one whose start date is on or before ``day`` wins (the
    first when none is). A ``service_tier`` price variant (e.g. OpenAI ``priority``)
    overrides the keys it sets.
    """
    if isinstance(info.prices, gp.ModelPrice):
        chosen = info.prices
    else:
        chosen = info.prices[0].prices
        for conditional in info.prices:
            if _active_on(conditional.constraint, day):
                chosen = conditional.prices
    out = {key: _base(getattr(chosen, key, None)) for key in _PRICE_KEYS.values()}
    if service_tier:
        for variant in info.price_variants or ():
            if variant.when != {"service_tier": service_tier}:
                continue
            if not _active_on(variant.constraint, day):
                continue
            for key in _PRICE_KEYS.values():
                value = _base(getattr(variant.prices, key, None))
                if value is not None:
                    out[key] = value
            break
    return out


class Catalogue:
    """Per-token list prices of the models our providers report.

    Lookups are cached; a model the catalogue does not know is logged once (at warning) and
    priced as ``None``, so callers skip it instead of guessing.
    """

    def __init__(
        self,
        providers: Sequence[gp.Provider] | None = None,
        *,
        currency: str = "USD",
        convert: Converter | None = None,
        unpriced_note: str = "recommendations that need its price are skipped",
    ) -> None:
        if convert is None and currency != "USD":
            raise ValueError(
                f"catalogue prices are USD; pricing in {currency} needs a USD->{currency} "
                "converter (convert=)"
            )
        if providers is None:
            from genai_prices.data import providers as bundled

            providers = bundled
        self._providers = list(providers)
        self._by_id = {p.id: p for p in self._providers}
        self._convert = convert or _identity
        self._models: dict[tuple[str, str], gp.ModelInfo | None] = {}
        self._prices: dict[tuple[str, str, date, str], UnitPrices | None] = {}
        self._reported: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._unpriced_note = unpriced_note

    def model(self, provider: str, model: str) -> gp.ModelInfo | None:
        """The catalogue entry of ``model`` on our ``provider`` (None when unknown)."""
        key = (provider, model)
        if key not in self._models:
            self._models[key] = self._find(provider, model)
        return self._models[key]

    def _find(self, provider: str, model: str) -> gp.ModelInfo | None:
        catalogue_id = CATALOGUE_PROVIDER.get(provider)
        entry = self._by_id.get(catalogue_id) if catalogue_id else None
        if entry is None or not model:
            return None
        for ref in dict.fromkeys((model, model_family(model))):
            found = entry.find_model(ref, all_providers=self._providers)
            if found is not None:
                return found
        return None

    def prices(
        self, provider: str, model: str, day: date, service_tier: str = ""
    ) -> UnitPrices | None:
        """Unit prices of ``model`` on ``day`` in the accounting currency, or None."""
        key = (provider, model, day, service_tier)
        if key not in self._prices:
            self._prices[key] = self._resolve(provider, model, day, service_tier)
        return self._prices[key]

    def _resolve(self, provider: str, model: str, day: date, tier: str) -> UnitPrices | None:
        info = self.model(provider, model)
        if info is None:
            self._report(provider, model, "is not in the price catalogue")
            return None
        raw = price_on(info, day, tier)
        input_price = raw["input_mtok"]
        if input_price is None:
            self._report(provider, model, "has no per-token price in the catalogue")
            return None

        def money(value: Decimal | None, fallback: Decimal) -> Decimal:
            return self._convert(day, fallback if value is None else value)

        return UnitPrices(
            input=money(input_price, input_price),
            output=money(raw["output_mtok"], Decimal(0)),
            cache_read=money(raw["cache_read_mtok"], input_price),
            cache_write=money(raw["cache_write_mtok"], input_price),
        )

    def _report(self, provider: str, model: str, problem: str) -> None:
        with self._lock:
            if (provider, model) in self._reported:
                return
            self._reported.add((provider, model))
        log.warning("pricing: %s model %r %s; %s", provider, model, problem, self._unpriced_note)

    def row_cost(self, row: UsageRecord) -> Decimal | None:
        """List-price cost of a usage row (its priced volume); None when unpriced.

        Rows without tokens (images, audio seconds) cost 0 here and are never looked up.
        """
        if not any(row.tokens(t) for t in TOKEN_TYPES):
            return Decimal(0)
        prices = self.prices(row.provider, row.model, row.day, row.service_tier)
        return None if prices is None else prices.cost(row)


# --------------------------------------------------------------------------- model maps


@dataclass(frozen=True)
class ModelMaps:
    """Alternatives, equivalence groups and batch-capable patterns, keyed by family."""

    alternatives: Mapping[tuple[str, str], str] = field(default_factory=dict)
    groups: Mapping[tuple[str, str], str] = field(default_factory=dict)
    batch: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def alternative(self, provider: str, model: str) -> str | None:
        """The recommended cheaper model for ``model`` on ``provider``, if any."""
        return self.alternatives.get((provider, model_family(model))) or None

    def group(self, provider: str, model: str) -> str | None:
        """The equivalence group ``model`` on ``provider`` belongs to, if any."""
        return self.groups.get((provider, model_family(model)))

    def batch_capable(self, provider: str, model: str) -> bool:
        family = model_family(model)
        included = False
        for pattern in self.batch.get(provider, ()):
            if pattern.startswith("!"):
                if fnmatch.fnmatchcase(family, pattern[1:]):
                    return False
            elif fnmatch.fnmatchcase(family, pattern):
                included = True
        return included


def packaged_map(name: str) -> Any:
    """A YAML map shipped in exporter/data/ (parsed, without overrides)."""
    text = resources.files("exporter").joinpath("data", name).read_text(encoding="utf-8")
    return yaml.safe_load(text) or {}


def _families(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def load_maps(
    alternatives: Mapping[str, Mapping[str, str]] | None = None,
    equivalence: Mapping[str, Mapping[str, str | Sequence[str]] | None] | None = None,
    batch_models: Mapping[str, Sequence[str]] | None = None,
) -> ModelMaps:
    """The packaged maps with config overrides applied.

    ``alternatives``: provider -> {family: model}; a value ``""`` removes a packaged entry.
    ``equivalence``: group -> {provider: family or families}; replaces a packaged group of
    that name, ``None`` removes it. ``batch_models``: provider -> patterns (replaces).
    """
    alt: dict[tuple[str, str], str] = {}
    for source in (packaged_map("alternatives.yaml"), alternatives or {}):
        for provider, entries in source.items():
            for family, target in (entries or {}).items():
                alt[(provider, model_family(family))] = target or ""
    group_defs: dict[str, Mapping[str, Any]] = dict(packaged_map("equivalence.yaml"))
    for name, routes in (equivalence or {}).items():
        if routes is None:
            group_defs.pop(name, None)
        else:
            group_defs[name] = routes
    groups: dict[tuple[str, str], str] = {}
    for name, routes in group_defs.items():
        for provider, value in routes.items():
            for family in _families(value):
                key = (provider, model_family(family))
                if key in groups and groups[key] != name:
                    raise ValueError(
                        f"equivalence: {provider} {family!r} is in both {groups[key]!r} "
                        f"and {name!r}"
                    )
                groups[key] = name
    batch = {p: tuple(v or ()) for p, v in packaged_map("batch.yaml").items()}
    batch.update({p: tuple(v) for p, v in (batch_models or {}).items()})
    return ModelMaps(alternatives=alt, groups=groups, batch=batch)
