"""The panel library for the generated Grafana dashboards.

A dashboard module builds its JSON model from keyword-only helpers:

    dashboard(uid=..., title=..., description=..., rows=[
        row(title="Headline", panels=[stat(title=..., expr=..., unit=..., description=..., w=6)]),
    ])

Each panel helper fixes its type's choices (stat, table, bar gauge and pie chart read instant
values; tables merge their queries into one table sorted by value; bar gauges are horizontal
gradients), so a dashboard module only says what differs. Panels flow left to right in their
row and wrap at Grafana's 24 columns; ids and positions follow from that order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DS = {"type": "prometheus", "uid": "${datasource}"}

# Label selectors. Health metrics have no project/model labels.
SEL = (
    'job=~"$job", provider=~"$provider", account=~"$account", project=~"$project", model=~"$model"'
)
ACC = 'job=~"$job", provider=~"$provider", account=~"$account"'
# The always-on roll-ups per model (aicost_model_*) have no project label.
MODEL = 'job=~"$job", provider=~"$provider", account=~"$account", model=~"$model"'
MODEL_VARIABLES = ("job", "provider", "account", "model")  # dashboards on aicost_model_*
JOB = 'job=~"$job"'
BUD = 'job=~"$job", budget=~"$budget"'  # with the budget variable

VARIABLES = ("job", "provider", "account", "project", "model")
GRADIENT = {"displayMode": "gradient", "orientation": "horizontal"}

Target = tuple[str, str]  # (expr, legend)


# Money panels are currency-neutral by default: Grafana cannot take a unit from a variable
# (grafana/grafana#93462), so the amount is a plain number with two decimals and the panel
# title names the currency from the `currency` dashboard variable (the metrics' `currency`
# label). One set of dashboards works for every accounting currency.
NEUTRAL = ""  # the currency argument of build() for the committed, currency-neutral JSON
MONEY = "aicost:money"  # placeholder unit of a neutral money panel (rendered by _panel_json)
MONEY_UNIT = "none"
MONEY_DECIMALS = 2
CURRENCY_TITLE = " ($currency)"


def money(currency: str) -> str:
    """The unit of amounts: currency-neutral for ``NEUTRAL``; for an ISO 4217 code
    (``gen_dashboards.py --currency``) Grafana's custom suffix unit, e.g. ``suffix: AUD``."""
    return f"suffix: {currency}" if currency else MONEY


@dataclass(frozen=True, kw_only=True)
class Panel:
    kind: str  # stat | timeseries | table | bargauge | piechart
    title: str
    targets: list[Target]
    unit: str
    description: str
    w: int
    h: int
    instant: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    transformations: list[dict[str, Any]] = field(default_factory=list)
    decimals: int | None = None
    max: float | None = None


@dataclass(frozen=True, kw_only=True)
class Row:
    title: str
    panels: list[Panel]


def _targets(expr: str, legend: str, targets: list[Target]) -> list[Target]:
    if bool(expr) == bool(targets):
        raise ValueError("give either expr (and legend) or targets")
    return targets or [(expr, legend)]


def stat(
    *,
    title: str,
    expr: str,
    legend: str = "",
    unit: str,
    description: str,
    w: int,
    h: int = 4,
    decimals: int | None = None,
    text_mode: str | None = None,
) -> Panel:
    """A headline value: the last value of one query (one value per legend)."""
    return Panel(
        kind="stat",
        title=title,
        targets=[(expr, legend)],
        unit=unit,
        description=description,
        w=w,
        h=h,
        decimals=decimals,
        options={} if text_mode is None else {"textMode": text_mode},
    )


def timeseries(
    *,
    title: str,
    expr: str = "",
    legend: str = "",
    targets: list[Target] | None = None,
    unit: str,
    description: str,
    w: int,
    h: int = 8,
    max: float | None = None,
) -> Panel:
    """A line graph of one query (``expr``, ``legend``) or several (``targets``)."""
    return Panel(
        kind="timeseries",
        title=title,
        targets=_targets(expr, legend, targets or []),
        unit=unit,
        description=description,
        w=w,
        h=h,
        instant=False,
        max=max,
    )


def table(
    *,
    title: str,
    expr: str = "",
    exprs: list[str] | None = None,
    unit: str,
    description: str,
    w: int,
    h: int = 8,
    decimals: int | None = None,
    hide: tuple[str, ...] = (),
) -> Panel:
    """Instant values of one query (``expr``) or several merged (``exprs``), highest first;
    ``hide`` drops columns besides Time, __name__ and job."""
    return Panel(
        kind="table",
        title=title,
        targets=_targets(expr, "", [(e, "") for e in exprs or []]),
        unit=unit,
        description=description,
        w=w,
        h=h,
        decimals=decimals,
        transformations=_sorted_table(hide),
    )


def bargauge(
    *,
    title: str,
    expr: str,
    legend: str,
    unit: str,
    description: str,
    w: int,
    h: int = 8,
    max: float | None = None,
    gradient: bool = True,
) -> Panel:
    """One bar per series of an instant query; horizontal gradient bars unless not ``gradient``."""
    return Panel(
        kind="bargauge",
        title=title,
        targets=[(expr, legend)],
        unit=unit,
        description=description,
        w=w,
        h=h,
        max=max,
        options=dict(GRADIENT) if gradient else {},
    )


def piechart(
    *, title: str, expr: str, legend: str, unit: str, description: str, w: int, h: int = 8
) -> Panel:
    """Shares of the series of an instant query."""
    return Panel(
        kind="piechart",
        title=title,
        targets=[(expr, legend)],
        unit=unit,
        description=description,
        w=w,
        h=h,
    )


def row(*, title: str, panels: list[Panel]) -> Row:
    """A full-width row header followed by its panels."""
    return Row(title=title, panels=panels)


def dashboard(
    *,
    uid: str,
    title: str,
    description: str,
    rows: list[Row],
    variables: tuple[str, ...] = VARIABLES,
) -> dict[str, Any]:
    """The dashboard's JSON model, with the shared conventions (UTC, uneditable, links)."""
    return {
        # shown by Grafana's importer (and the app plugin's dashboard import)
        "__requires": [
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"}
        ],
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["ai-cost"],
        "timezone": "utc",
        "editable": False,
        "graphTooltip": 1,
        "refresh": "5m",
        "schemaVersion": 39,
        "time": {"from": "now-30d", "to": "now"},
        "id": None,
        "links": [
            {"type": "dashboards", "tags": ["ai-cost"], "asDropdown": True, "title": "AI Cost"}
        ],
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                },
                *(_variable(v, "project" in variables) for v in variables),
                *([_currency_variable()] if _has_money(rows) else []),
            ]
        },
        "panels": _layout(rows),
    }


# JSON assembly


def _layout(rows: list[Row]) -> list[dict[str, Any]]:
    """Row headers and panels with ids and grid positions, in order."""
    panels: list[dict[str, Any]] = []
    pid, y = 1, 0
    for r in rows:
        panels.append(
            {
                "id": pid,
                "type": "row",
                "title": r.title,
                "collapsed": False,
                "gridPos": {"x": 0, "y": y, "w": 24, "h": 1},
                "panels": [],
            }
        )
        pid, y, x, row_h = pid + 1, y + 1, 0, 0
        for p in r.panels:
            if x + p.w > 24:
                x, y, row_h = 0, y + row_h, 0
            panels.append(_panel_json(p, pid, x, y))
            pid, x, row_h = pid + 1, x + p.w, max(row_h, p.h)
        y += row_h
    return panels


def _panel_json(p: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    neutral = p.unit == MONEY
    defaults: dict[str, Any] = {"unit": MONEY_UNIT if neutral else p.unit}
    if p.decimals is not None:
        defaults["decimals"] = p.decimals
    elif neutral:
        defaults["decimals"] = MONEY_DECIMALS
    if p.max is not None:
        defaults["max"] = p.max
        defaults["min"] = 0
    if p.kind == "timeseries":
        defaults["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10}
    options = dict(p.options)
    if p.kind in ("stat", "bargauge"):
        options.setdefault(
            "reduceOptions", {"calcs": ["lastNotNull"], "fields": "", "values": False}
        )
    targets = [
        {
            "datasource": DS,
            "expr": expr,
            "legendFormat": legend,
            "refId": chr(ord("A") + i),
            "instant": p.instant,
            "range": not p.instant,
            **({"format": "table"} if p.kind == "table" else {}),
        }
        for i, (expr, legend) in enumerate(p.targets)
    ]
    out: dict[str, Any] = {
        "id": pid,
        "type": p.kind,
        "title": p.title + (CURRENCY_TITLE if neutral else ""),
        "description": p.description,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": p.w, "h": p.h},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
        "targets": targets,
    }
    if p.transformations:
        out["transformations"] = p.transformations
    return out


def _sorted_table(hide: tuple[str, ...]) -> list[dict[str, Any]]:
    exclude = {"Time": True, "__name__": True, "job": True, **dict.fromkeys(hide, True)}
    return [
        {"id": "merge", "options": {}},
        {"id": "organize", "options": {"excludeByName": exclude}},
        {"id": "sortBy", "options": {"sort": [{"field": "Value", "desc": True}]}},
    ]


def _variable(name: str, by_project: bool = True) -> dict[str, Any]:
    """A template variable; ``by_project=False``: the dashboard has no project variable
    (it reads the per-model roll-ups), so the model list does not depend on one."""
    queries = {
        "job": "label_values(aicost_build_info, job)",
        "provider": 'label_values(aicost_up{job=~"$job"}, provider)',
        "account": 'label_values(aicost_up{job=~"$job", provider=~"$provider"}, account)',
        "project": (
            'label_values(aicost_cost_30d{job=~"$job", provider=~"$provider", '
            'account=~"$account"}, project)'
        ),
        "model": (
            'label_values(aicost_cost_30d{job=~"$job", provider=~"$provider", '
            'account=~"$account", project=~"$project"}, model)'
            if by_project
            else 'label_values(aicost_model_cost_30d{job=~"$job", provider=~"$provider", '
            'account=~"$account"}, model)'
        ),
        "budget": 'label_values(aicost_budget_limit{job=~"$job"}, budget)',
        "endpoint": (
            'label_values(aicost_app_requests_total{job=~"$job", provider=~"$provider"}, endpoint)'
        ),
    }
    return {
        "name": name,
        "label": name,
        "type": "query",
        "datasource": DS,
        "query": {"query": queries[name], "refId": f"{name}-var"},
        "definition": queries[name],
        "refresh": 2,  # on time range change
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
        "hide": 0,
    }


def _has_money(rows: list[Row]) -> bool:
    return any(p.unit == MONEY for r in rows for p in r.panels)


def _currency_variable() -> dict[str, Any]:
    """The accounting currency, read from the money metrics' `currency` label: shown in the
    titles of money panels (one currency per exporter; the first one if several)."""
    query = 'label_values(aicost_cost_30d{job=~"$job"}, currency)'
    return {
        "name": "currency",
        "label": "currency",
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": "currency-var"},
        "definition": query,
        "refresh": 2,
        "multi": False,
        "includeAll": False,
        "current": {},
        "sort": 1,
        "hide": 0,
    }
