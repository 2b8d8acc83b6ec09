"""Dashboards: conventions, generated JSON up to date, only metrics the exporter has."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.metrics import CATALOGUE

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
KNOWN = {m.name for m in CATALOGUE} | {m.name + "_total" for m in CATALOGUE if m.type == "counter"}


RECORDED = {
    rule["record"]
    for path in (ROOT / "alerting").glob("*.yaml")
    for group in yaml.safe_load(path.read_text())["groups"]
    for rule in group["rules"]
    if "record" in rule
}


def panels(path: Path) -> list[dict[str, Any]]:
    return [p for p in json.loads(path.read_text())["panels"] if p["type"] != "row"]


def _datasource_refs(node: Any) -> Any:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource" and isinstance(value, dict) and "uid" in value:
                yield value
            else:
                yield from _datasource_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _datasource_refs(item)


def queries() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, expr) for every panel query."""
    return [
        (path.name, p["title"], t["expr"])
        for path in FILES
        for p in panels(path)
        for t in p["targets"]
    ]


def test_generated_json_is_up_to_date() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_dashboards.py"), "--check"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout


def test_uids_are_fixed_readable_and_unique() -> None:
    uids = [json.loads(p.read_text())["uid"] for p in FILES]
    assert len(uids) == len(set(uids)) >= 3
    assert all(re.fullmatch(r"aicost-[a-z0-9-]+", u) for u in uids)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_dashboard_conventions(path: Path) -> None:
    d = json.loads(path.read_text())
    assert d["timezone"] == "utc" and d["id"] is None and d["editable"] is False
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"job", "provider", "account"} <= set(variables)
    # the only datasource reference anywhere is the variable: no hard-coded uid
    refs = list(_datasource_refs(d))
    assert refs and all(r == {"type": "prometheus", "uid": "${datasource}"} for r in refs)
    headline = [p for p in d["panels"] if p["gridPos"]["y"] == 1]
    assert headline and all(p["type"] == "stat" for p in headline), "no headline stat row"
    for p in panels(path):
        assert p["description"], f"{p['title']}: no description"
        assert p["fieldConfig"]["defaults"].get("unit"), f"{p['title']}: no unit"
        assert p["targets"], f"{p['title']}: no query"
        for t in p["targets"]:
            assert 'job=~"$job"' in t["expr"], f"{p['title']}: no job matcher"


@pytest.mark.parametrize(("file", "title", "expr"), queries(), ids=lambda x: str(x)[:40])
def test_queries_use_only_exposed_metrics(file: str, title: str, expr: str) -> None:
    names = set(re.findall(r"(?<![:\w])(aicost_[a-z0-9_]+)", expr))
    recorded = set(re.findall(r"\b([a-z_]+:aicost_[a-z0-9_]+:[a-z0-9_]+)", expr))
    assert names or recorded or "ALERTS{" in expr, f"{file}/{title}: no aicost metric"
    assert names <= KNOWN, f"{file}/{title}: unknown metrics {names - KNOWN}"
    assert recorded <= RECORDED, f"{file}/{title}: unknown recording rules {recorded - RECORDED}"
    for counter in re.findall(r"\b(aicost_[a-z0-9_]+_total)\b", expr):
        assert re.search(rf"(rate|increase)\({counter}", expr), f"{counter} outside rate()"


def _money_panels(path: Path) -> list[dict[str, Any]]:
    return [p for p in panels(path) if p["title"].endswith("($currency)")]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_money_is_currency_neutral(path: Path) -> None:
    """One set of dashboards for every accounting currency: no currency unit is baked in;
    money panels name the currency from the `currency` variable (the metrics' label)."""
    d = json.loads(path.read_text())
    units = {p["fieldConfig"]["defaults"]["unit"] for p in panels(path)}
    assert not {u for u in units if u.startswith(("currency", "suffix:", "prefix:"))}, units
    money = _money_panels(path)
    variables = {v["name"]: v for v in d["templating"]["list"]}
    if money:
        currency = variables["currency"]
        assert "currency)" in currency["definition"] and currency["multi"] is False
        assert all(p["fieldConfig"]["defaults"]["decimals"] >= 2 for p in money)


def test_every_money_metric_panel_names_the_currency() -> None:
    money_metrics = {m.name for m in CATALOGUE if "currency" in m.labels}
    for path in FILES:
        for p in panels(path):
            names = set(re.findall(r"(?<![:\w])(aicost_[a-z0-9_]+)", p["targets"][0]["expr"]))
            unit = p["fieldConfig"]["defaults"]["unit"]
            if names and names <= money_metrics and unit == "none":
                assert p["title"].endswith("($currency)"), f"{path.name}/{p['title']}"


def test_currency_option_validates_and_writes_elsewhere(tmp_path: Path) -> None:
    gen = [sys.executable, str(ROOT / "scripts" / "gen_dashboards.py")]
    before = {p: p.read_bytes() for p in FILES}
    for bad in ("aud", "XYZ", "AU"):
        proc = subprocess.run([*gen, "--currency", bad, "--out", str(tmp_path)],
                              capture_output=True, text=True)  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        assert "ISO 4217" in proc.stderr or "no ECB reference rate" in proc.stderr
    refused = subprocess.run([*gen, "--currency", "AUD"], capture_output=True, text=True)
    assert refused.returncode == 2 and "--out" in refused.stderr
    proc = subprocess.run([*gen, "--currency", "AUD", "--out", str(tmp_path)],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert {p.read_bytes() for p in FILES} == set(before.values())  # committed files untouched
    overview = json.loads((tmp_path / "ai-spend-overview.json").read_text())
    units = {p["fieldConfig"]["defaults"]["unit"] for p in overview["panels"] if "fieldConfig" in p}
    assert "suffix: AUD" in units and not any(u.startswith("currencyAUD") for u in units)
