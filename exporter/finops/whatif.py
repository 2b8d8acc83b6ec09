"""``whatif``: a monthly projection of the current spend, and of a scenario.

The projection is the **30-day run rate**: the cost of the last 30 complete UTC days in the
accounting currency (30 days ~ a month). A scenario changes it by

* ``--scale project=ID:FACTOR``: every cost of project (or workspace) ``ID`` times FACTOR
  ("feature X doubles its tokens": ``project=proj_x:2``);
* ``--scale model=NAME:FACTOR``: every cost of model ``NAME`` (snapshot or family) times
  FACTOR;
* ``--swap FROM:TO``: the token cost of model ``FROM`` is replaced by its observed tokens
  priced per token type (input, output, cache read, cache write; batch rows at the batch
  discount) at ``TO``'s catalogue list price of each day, on the same provider. Tool costs
  of the stream stay, and so does token cost of a day whose tokens are not stored.

Factors multiply (a project and a model scale both apply); a swapped stream's new cost is
scaled like the old one was. Nothing is written anywhere.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

from exporter.finops.common import aligned, cents, money
from exporter.pricing import Catalogue, model_family
from exporter.records import TOKEN_TYPES, CostRecord, UsageRecord
from exporter.store import Store

RUN_RATE_DAYS = 30


class ScenarioError(ValueError):
    """A --scale/--swap argument that cannot be applied (message names the argument)."""


@dataclass(frozen=True)
class Scale:
    kind: str  # project | model
    name: str
    factor: Decimal


@dataclass(frozen=True)
class Swap:
    source: str
    target: str


def parse_scale(text: str) -> Scale:
    kind, sep, rest = text.partition("=")
    name, colon, factor = rest.rpartition(":")
    if not sep or kind not in ("project", "model") or not colon or not name:
        raise ScenarioError(f"--scale {text!r}: expected project=ID:FACTOR or model=NAME:FACTOR")
    try:
        value = Decimal(factor)
    except InvalidOperation:
        raise ScenarioError(f"--scale {text!r}: FACTOR {factor!r} is not a number") from None
    if not value.is_finite() or value < 0:
        raise ScenarioError(f"--scale {text!r}: FACTOR must be a number >= 0")
    return Scale(kind, name, value)


def parse_swap(text: str) -> Swap:
    source, colon, target = text.partition(":")
    if not colon or not source or not target:
        raise ScenarioError(f"--swap {text!r}: expected FROM_MODEL:TO_MODEL")
    return Swap(source, target)


def _matches(name: str, model: str) -> bool:
    return bool(model) and name in (model, model_family(model))


@dataclass
class Projection:
    total: Decimal = Decimal(0)
    by_project: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    by_model: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))

    def add(self, provider: str, account: str, project: str, model: str, amount: Decimal) -> None:
        self.total += amount
        self.by_project[f"{provider}/{account}/{project}"] += amount
        self.by_model[f"{provider}/{model}"] += amount

    def as_json(self) -> dict[str, object]:
        return {
            "total": money(self.total),
            "by_project": {k: money(v) for k, v in sorted(self.by_project.items())},
            "by_model": {k: money(v) for k, v in sorted(self.by_model.items())},
        }


@dataclass(frozen=True)
class WhatIf:
    start: date
    end: date  # exclusive
    currency: str
    baseline: Projection
    scenario: Projection
    withheld: int  # cost rows without a usable FX rate (left out of both)

    def as_json(self) -> dict[str, object]:
        return {
            "window": {
                "from": self.start.isoformat(),
                "to": (self.end - timedelta(days=1)).isoformat(),
                "days": (self.end - self.start).days,
            },
            "currency": self.currency,
            "baseline": self.baseline.as_json(),
            "scenario": self.scenario.as_json(),
            "change": money(self.scenario.total - self.baseline.total),
            "withheld_cost_rows": self.withheld,
        }


def _factor(scales: Sequence[Scale], project: str, model: str) -> Decimal:
    factor = Decimal(1)
    for s in scales:
        if (s.kind == "project" and s.name == project) or (
            s.kind == "model" and _matches(s.name, model)
        ):
            factor *= s.factor
    return factor


def project(
    costs: Iterable[CostRecord],
    usage: Iterable[UsageRecord],
    catalogue: Catalogue,
    scales: Sequence[Scale] = (),
    swaps: Sequence[Swap] = (),
) -> tuple[Projection, Projection]:
    """(baseline, scenario) of converted ``costs`` and the ``usage`` of the same days.

    ``catalogue`` prices in the costs' (accounting) currency."""
    baseline, scenario = Projection(), Projection()
    known = {c.model for c in costs} | {u.model for u in usage}
    for scale in scales:
        if scale.kind == "model" and not any(_matches(scale.name, m) for m in known):
            raise ScenarioError(f"--scale model={scale.name}: no cost or usage of that model")
    for swap in swaps:
        if not any(_matches(swap.source, m) for m in known):
            raise ScenarioError(f"--swap {swap.source}:{swap.target}: no usage of {swap.source}")

    def swapped(model: str) -> Swap | None:
        return next((s for s in swaps if _matches(s.source, model)), None)

    # Token cost is replaced only where the stream's tokens of that day are known (a
    # provider reporting money only, e.g. some Azure meters, keeps its cost).
    priced = {
        (u.provider, u.account, u.project, u.model, u.day)
        for u in usage
        if swapped(u.model) and any(u.tokens(t) for t in TOKEN_TYPES)
    }
    for c in costs:
        baseline.add(c.provider, c.account, c.project, c.model, c.amount)
        if c.cost_type == "tokens" and (*c.stream, c.day) in priced:
            continue  # replaced by its tokens at the target's price (below)
        factor = _factor(scales, c.project, c.model)
        scenario.add(c.provider, c.account, c.project, c.model, c.amount * factor)
    for u in usage:
        target = swapped(u.model)
        if target is None:
            continue
        prices = catalogue.prices(u.provider, target.target, u.day, u.service_tier)
        if prices is None:
            raise ScenarioError(
                f"--swap {target.source}:{target.target}: {u.provider} model {target.target!r} has "
                "no per-token price in the genai-prices catalogue"
            )
        factor = _factor(scales, u.project, u.model)
        scenario.add(u.provider, u.account, u.project, target.target, prices.cost(u) * factor)
    return baseline, scenario


def what_if(
    store: Store,
    currency: str,
    catalogue: Catalogue,
    today: date,
    scales: Sequence[Scale] = (),
    swaps: Sequence[Swap] = (),
) -> WhatIf:
    """The 30-day run rate before ``today`` (complete days), and the scenario."""
    start, end = today - timedelta(days=RUN_RATE_DAYS), today
    costs, withheld = store.converted_costs_between(start, end, currency)
    usage = store.usage_between(start, end)
    baseline, scenario = project(costs, usage, catalogue, scales, swaps)
    return WhatIf(start, end, currency, baseline, scenario, len(withheld))


def to_json(result: WhatIf) -> str:
    return json.dumps(result.as_json(), indent=2) + "\n"


def to_table(result: WhatIf) -> str:
    """Baseline and scenario side by side per project and per model, to the cent."""
    cur = result.currency
    lines = [
        f"monthly projection: 30-day run rate {result.start} .. "
        f"{result.end - timedelta(days=1)}, in {cur}",
    ]
    for title, base, scen in (
        ("PROJECT", result.baseline.by_project, result.scenario.by_project),
        ("MODEL", result.baseline.by_model, result.scenario.by_model),
    ):
        keys = sorted(set(base) | set(scen), key=lambda k: (-scen.get(k, Decimal(0)), k))
        cells = [
            (k, cents(base.get(k, Decimal(0))), cents(scen.get(k, Decimal(0))),
             cents(scen.get(k, Decimal(0)) - base.get(k, Decimal(0))))
            for k in keys
        ]  # fmt: skip
        lines += ["", *aligned([(title, "BASELINE", "SCENARIO", "CHANGE"), *cells])]
    b, s = result.baseline.total, result.scenario.total
    lines += [
        "",
        f"TOTAL  baseline {cents(b)} {cur}  scenario {cents(s)} {cur}  change {cents(s - b)} {cur}",
    ]
    if result.withheld:
        lines.append(f"note: {result.withheld} cost row(s) have no {cur} rate and are left out")
    return "\n".join(lines) + "\n"
