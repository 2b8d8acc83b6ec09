"""Recommendations for people and scripts: the ``recommendations`` command's output.

Each recommendation is printed with its evidence (volumes, prices, dates) and the formula
with its numbers, so a reader can check the arithmetic without the exporter.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from exporter.analytics.recommendations import Recommendation, cents, dismissal_for
from exporter.config import Dismissal

COLUMNS = ("KIND", "MONTHLY", "TARGET", "PROVIDER/ACCOUNT", "PROJECT", "MODEL / KEY", "FIRST SEEN")


def as_dicts(
    recs: Sequence[Recommendation],
    *,
    currency: str,
    first_seen: Mapping[str, date],
    dismissed: Sequence[Dismissal],
) -> list[dict[str, Any]]:
    """Recommendations, largest first, as plain JSON-ready dicts (money as decimal strings)."""
    out = []
    for r in sorted(recs, key=lambda r: (-r.monthly, r.id)):
        dismissal = dismissal_for(r, dismissed)
        seen = first_seen.get(r.id)
        out.append(
            {
                "recommendation": r.kind,
                "provider": r.provider,
                "account": r.account,
                "project": r.project,
                "model": r.model,
                "api_key": r.api_key,
                "api_key_name": r.api_key_name,
                "target": r.target,
                "monthly": cents(r.monthly),
                "currency": currency,
                "first_seen": seen.isoformat() if seen else None,
                "dismissed": dismissal.reason if dismissal else None,
                "evidence": dict(r.evidence),
                "formula": r.formula,
            }
        )
    return out


def to_json(rows: list[dict[str, Any]], *, today: date, currency: str) -> str:
    return (
        json.dumps(
            {"date": today.isoformat(), "currency": currency, "recommendations": rows}, indent=2
        )
        + "\n"
    )


def to_table(rows: list[dict[str, Any]], *, today: date, currency: str) -> str:
    """A fixed-width table, each row followed by its evidence and formula."""
    if not rows:
        return f"No recommendations on {today} (history of the last 60 days).\n"
    cells = [
        (
            r["recommendation"],
            f"{r['monthly']} {currency}",
            r["target"] or "rotate or revoke",
            f"{r['provider']}/{r['account']}",
            r["project"],
            r["model"] or f"{r['api_key_name'] or '?'} ({r['api_key']})",
            r["first_seen"] or "new",
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in (COLUMNS, *cells)) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)).rstrip()]
    for row, cell in zip(rows, cells, strict=True):
        lines.append("  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)).rstrip())
        if row["dismissed"]:
            lines.append(f"    dismissed: {row['dismissed']} (not published)")
        evidence = "; ".join(f"{k} {v}" for k, v in row["evidence"].items())
        lines.append(f"    evidence: {evidence}")
        lines.append(f"    formula:  {row['formula']}")
    return "\n".join(lines) + "\n"
