"""``focus``: FOCUS 1.2 rows checked against the specification's own column rules.

The rules are read from ``data/focus-1.2-columns.json``, extracted from the FOCUS
specification's column pages (FinOps Foundation, FOCUS_Spec tag v1.2; the file names its
source and commit, ``data/extract_focus_rules.py`` how it was made), never from our code:
presence, data type and value format, allowed values, nullability (including the
conditional "MUST (NOT) be null when X is (not) null" rules), null handling (no empty
strings) and the ``x_`` prefix of custom columns.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from exporter.finops.focus import PROVIDER_NAMES
from exporter.store import Store
from tests.finops.conftest import DemoHistory

SPEC = json.loads((Path(__file__).parent / "data" / "focus-1.2-columns.json").read_text())
RULES = {c["column"]: c for c in SPEC["columns"]}
# Columns whose presence is conditional on the provider: the conditions that hold for an
# AI API (it has projects/workspaces, meters usage, publishes price lists, has tags).
CONDITIONS_THAT_HOLD = ("supports a sub account", "measurement of usage", "publishes price lists",
                        "supports setting user or provider-defined tags")  # fmt: skip

NUMERIC = re.compile(r"^-?(\d+(\.\d+)?|\.\d+)([eE]-?\d+)?$")  # NumericFormat
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")  # DateTimeFormat
CURRENCY = re.compile(r"^[A-Z]{3}$")  # CurrencyFormat (ISO 4217)


def run(history: DemoHistory, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter.cli", *args, "--config", str(history.path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def must_be_present(rule: dict[str, Any]) -> bool:
    for req in rule["requirements"]:
        if re.match(rf"^{rule['column']} MUST be present in a FOCUS dataset\.$", req):
            return True
        if req.startswith(f"{rule['column']} MUST be present in a FOCUS dataset when"):
            return any(c in req for c in CONDITIONS_THAT_HOLD)
    return False


def check_row(row: dict[str, Any], header: list[str]) -> list[str]:
    """Every violation of the spec's rules in one row (null = None)."""
    problems = []
    for name in header:
        value = row[name]
        if name not in RULES:
            if not name.startswith("x_"):
                problems.append(f"{name}: not a FOCUS 1.2 column and not prefixed x_")
            continue
        rule = RULES[name]
        if value == "":
            problems.append(f"{name}: empty string (NullHandling: use null)")
            continue
        if value is None:
            if not rule["allows_nulls"]:
                problems.append(f"{name}: null, but the column does not allow nulls")
            continue
        text = value if isinstance(value, str) else json.dumps(value)
        kind, fmt = rule["data_type"], rule["value_format"] or ""
        if kind == "Decimal" and not NUMERIC.match(text):
            problems.append(f"{name}: {text!r} is not in NumericFormat")
        if kind == "Date/Time" and not DATETIME.match(text):
            problems.append(f"{name}: {text!r} is not in DateTimeFormat")
        if "Currency" in fmt and not CURRENCY.match(text):
            problems.append(f"{name}: {text!r} is not an ISO 4217 code")
        if kind == "JSON":
            obj = json.loads(text)
            if not isinstance(obj, dict) or any(isinstance(v, dict | list) for v in obj.values()):
                problems.append(f"{name}: {text!r} is not a flat JSON object (KeyValueFormat)")
        if rule["allowed_values"] and text not in rule["allowed_values"]:
            problems.append(f"{name}: {text!r} is not one of the allowed values")
        parent = rule.get("allowed_parents", {}).get(text)
        if parent and row.get("ServiceCategory") != parent:
            problems.append(f"{name}: {text!r} belongs to ServiceCategory {parent!r}")
    for name, rule in RULES.items():  # conditional nullability read from the requirements
        if name not in row:
            continue
        for req in rule["requirements"]:
            m = re.match(rf"^{name} MUST (NOT )?be null when (\w+) is (not )?null\.$", req)
            if m and m.group(2) in row:
                other_null = row[m.group(2)] is None
                applies = other_null != bool(m.group(3))
                if applies and (row[name] is None) == bool(m.group(1)):
                    problems.append(f"{name}: violates {req!r}")
            m = re.match(rf'^{name} MUST NOT be null when ChargeCategory is "(\w+)"', req)
            if m and row.get("ChargeCategory") == m.group(1) and row[name] is None:
                problems.append(f"{name}: violates {req!r}")
    return problems


def parse_csv(text: str) -> tuple[list[str], list[dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text))
    rows = [{k: (v if v != "" else None) for k, v in r.items()} for r in reader]
    return list(reader.fieldnames or []), rows


def parse_jsonl(text: str) -> tuple[list[str], list[dict[str, Any]]]:
    rows = [json.loads(line, parse_float=str, parse_int=str) for line in text.splitlines()]
    return list(rows[0]), rows


@pytest.fixture(scope="module")
def span(eur: DemoHistory) -> tuple[date, date]:
    return eur.today - timedelta(days=70), eur.today - timedelta(days=1)


@pytest.fixture(scope="module")
def exported(
    eur: DemoHistory, span: tuple[date, date]
) -> dict[str, tuple[list[str], list[dict[str, Any]]]]:
    out = {}
    for fmt, parse in (("csv", parse_csv), ("jsonl", parse_jsonl)):
        r = run(eur, "focus", "--from", str(span[0]), "--to", str(span[1]), "--format", fmt)
        assert r.returncode == 0, r.stderr
        out[fmt] = parse(r.stdout)
    return out


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_rows_follow_the_focus_column_rules(exported: dict, fmt: str) -> None:
    header, rows = exported[fmt]
    assert rows
    missing = [c for c, rule in RULES.items() if must_be_present(rule) and c not in header]
    assert not missing, f"columns the spec requires are missing: {missing}"
    problems = [(i, p) for i, row in enumerate(rows) for p in check_row(row, header)]
    assert not problems, problems[:20]


def test_the_validator_catches_what_the_spec_forbids(exported: dict) -> None:
    """The checks above can fail: broken copies of a real row are caught."""
    header, rows = exported["jsonl"]
    row = next(r for r in rows if r["ConsumedQuantity"] is not None)
    broken = {
        "BilledCost": None, "ChargeCategory": "Usages", "ChargePeriodStart": "2026-03-01",
        "BillingCurrency": "usd", "ServiceSubcategory": "Compute", "ConsumedUnit": None,
        "Tags": '{"a": {"b": 1}}', "ListCost": "1,5",
    }  # fmt: skip
    for column, value in broken.items():
        assert check_row({**row, column: value}, header), column
    assert check_row({**row, "Team": "x"}, [*header, "Team"])


def test_rows_sum_to_the_stored_cost_per_provider_and_day(
    eur: DemoHistory, exported: dict, span: tuple[date, date]
) -> None:
    store = Store(eur.config.storage.path, read_only=True)
    try:
        stored: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        converted: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for c in store.costs_between(span[0], span[1] + timedelta(days=1)):
            stored[(c.provider, c.day.isoformat())] += c.amount
        rows, _ = store.converted_costs_between(span[0], span[1] + timedelta(days=1), "EUR")
        for c in rows:
            converted[(c.provider, c.day.isoformat())] += c.amount
    finally:
        store.close()
    names = {name: provider for provider, name in PROVIDER_NAMES.items()}
    for fmt in ("csv", "jsonl"):
        billed: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        accounting: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for r in exported[fmt][1]:
            key = (names[r["ProviderName"]], r["ChargePeriodStart"][:10])
            billed[key] += Decimal(r["BilledCost"])
            accounting[key] += Decimal(r["x_AccountingCost"])
            assert r["x_AccountingCurrency"] == "EUR" and r["BillingCurrency"] == "USD"
        cent = Decimal("0.01")
        assert {k: v.quantize(cent) for k, v in billed.items()} == {
            k: v.quantize(cent) for k, v in stored.items()
        }
        assert {k: v.quantize(cent) for k, v in accounting.items()} == {
            k: v.quantize(cent) for k, v in converted.items()
        }
        assert len({k[0] for k in billed}) == len(eur.config.providers)
        assert len({k[1] for k in billed}) == 70


def test_one_row_per_stream_cost_type_and_day_with_audit_and_tags(exported: dict) -> None:
    _, rows = exported["jsonl"]
    keys = [
        (r["ProviderName"], r["BillingAccountId"], r["SubAccountId"], r["ResourceId"],
         r["x_CostType"], r["ChargePeriodStart"])
        for r in rows
    ]  # fmt: skip
    assert len(keys) == len(set(keys))
    search = [r for r in rows if json.loads(r["Tags"]).get("team") == "search"]
    assert search and json.loads(search[0]["Tags"]) == {
        "team": "search",
        "pool": "eng/search",
        "owner": "search-lead",
        "environment": "prod",
    }
    converted = [r for r in rows if (r["x_FxRateSource"] or "").startswith("ecb")]
    assert converted
    for r in converted:
        exact = Decimal(r["BilledCost"]) * Decimal(r["x_FxRate"])
        # the sum of its rows' stored conversions, each at 12 decimals (within 5e-13)
        assert abs(Decimal(r["x_AccountingCost"]) - exact) < Decimal("1e-10")
        assert r["x_FxStatus"] in ("final", "provisional")
        assert date.fromisoformat(r["x_FxRateDate"]) <= date.fromisoformat(
            r["ChargePeriodStart"][:10]
        )
    tokens = next(r for r in rows if r["x_CostType"] == "tokens" and r["ConsumedQuantity"])
    parts = ("x_InputTokens", "x_OutputTokens", "x_CacheReadTokens", "x_CacheWriteTokens")
    assert Decimal(tokens["ConsumedQuantity"]) == sum(Decimal(tokens[p]) for p in parts)
    assert tokens["ConsumedUnit"] == "Tokens" and tokens["PricingUnit"] == "1000000 Tokens"
    assert any(r["x_ListCostSource"] == "catalogue" for r in rows)


def test_output_file_and_read_only(eur: DemoHistory, tmp_path: Path) -> None:
    db = Path(eur.config.storage.path)
    before = db.read_bytes()
    out = tmp_path / "focus.csv"
    r = run(eur, "focus", "--from", str(eur.today), "--to", str(eur.today), "--output", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_text().startswith("BilledCost,") and "FOCUS rows" in r.stderr
    assert db.read_bytes() == before
    bad = run(eur, "focus", "--from", str(eur.today), "--to", str(eur.today - timedelta(days=1)))
    assert bad.returncode == 2 and "--to" in bad.stderr
