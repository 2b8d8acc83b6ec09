"""Expected answers for a fake Anthropic org (:class:`exporter.demo.anthropic.FakeAnthropicOrg`).

Its cost rows are kept in cents, exactly, so these sums are exact too.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from exporter.demo.anthropic import FakeAnthropicOrg, UsageRow


def project_of(workspace_id: str | None) -> str:
    """The ``project`` label of a workspace: its id, ``default`` for the default one."""
    return workspace_id or "default"


def truth_days(org: FakeAnthropicOrg) -> list[date]:
    """All days that have usage or cost truth, oldest first."""
    return sorted({r.day for r in org.usage} | {r.day for r in org.costs})


def truth_cost_total(org: FakeAnthropicOrg, start: date, end: date) -> Decimal:
    """Sum of all cost lines on days in ``[start, end)``, in dollars."""
    return sum((r.amount for r in org.costs if start <= r.day < end), Decimal(0)).scaleb(-2)


def truth_costs(
    org: FakeAnthropicOrg, start: date, end: date
) -> dict[tuple[str, str, str], Decimal]:
    """Cost in dollars by (project, model, cost_type) for days in ``[start, end)``.

    Tool and service costs have ``model=""``.
    """
    out: dict[tuple[str, str, str], Decimal] = {}
    for row in org.costs:
        if start <= row.day < end:
            model = (row.model or "") if row.cost_type == "tokens" else ""
            key = (project_of(row.workspace_id), model, row.cost_type)
            out[key] = out.get(key, Decimal(0)) + row.dollars
    return out


def _token_parts(row: UsageRow) -> dict[str, int]:
    return {
        "input": row.uncached_input_tokens,
        "output": row.output_tokens,
        "cache_read": row.cache_read_input_tokens,
        "cache_write": row.cache_creation_5m_input_tokens + row.cache_creation_1h_input_tokens,
    }


def truth_tokens(org: FakeAnthropicOrg, start: date, end: date) -> dict[tuple[str, str, str], int]:
    """Tokens by (project, model, token_type) for days in ``[start, end)``; zeros left out."""
    out: dict[tuple[str, str, str], int] = {}
    for row in org.usage:
        if start <= row.day < end:
            for token_type, n in _token_parts(row).items():
                key = (project_of(row.workspace_id), row.model, token_type)
                out[key] = out.get(key, 0) + n
    return {key: n for key, n in out.items() if n}


def truth_cache_hit_ratio(
    org: FakeAnthropicOrg, start: date, end: date
) -> dict[tuple[str, str], float]:
    """cache_read / (input + cache_read + cache_write) by (project, model)."""
    sums: dict[tuple[str, str], dict[str, int]] = {}
    for (project, model, token_type), n in truth_tokens(org, start, end).items():
        acc = sums.setdefault((project, model), {"input": 0, "cache_read": 0, "cache_write": 0})
        if token_type in acc:
            acc[token_type] += n
    return {
        key: s["cache_read"] / (s["input"] + s["cache_read"] + s["cache_write"])
        for key, s in sums.items()
        if s["input"] + s["cache_read"] + s["cache_write"]
    }


def truth_web_search_requests(
    org: FakeAnthropicOrg, start: date, end: date
) -> dict[tuple[str, str], int]:
    """Server-side web search calls by (project, model); zeros left out."""
    out: dict[tuple[str, str], int] = {}
    for row in org.usage:
        if start <= row.day < end and row.web_search_requests:
            key = (project_of(row.workspace_id), row.model)
            out[key] = out.get(key, 0) + row.web_search_requests
    return out
