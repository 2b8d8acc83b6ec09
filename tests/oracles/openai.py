"""Expected answers for a fake OpenAI org (:class:`exporter.demo.openai.FakeOpenAIOrg`)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from exporter.demo.openai import FakeOpenAIOrg


def truth_days(org: FakeOpenAIOrg) -> list[date]:
    """All days that have usage or cost truth, oldest first."""
    return sorted({r.day for r in org.usage} | {r.day for r in org.costs})


def truth_cost_total(org: FakeOpenAIOrg, start: date, end: date) -> Decimal:
    """Sum of all cost lines on days in ``[start, end)``."""
    return sum((r.amount for r in org.costs if start <= r.day < end), Decimal(0))


def truth_costs(org: FakeOpenAIOrg, start: date, end: date) -> dict[tuple[str, str, str], Decimal]:
    """Cost by (project_id or "", model, cost_type) for days in ``[start, end)``."""
    out: dict[tuple[str, str, str], Decimal] = {}
    for row in org.costs:
        if start <= row.day < end:
            key = (row.project_id or "", row.model, row.cost_type)
            out[key] = out.get(key, Decimal(0)) + row.amount
    return out


def truth_tokens(org: FakeOpenAIOrg, start: date, end: date) -> dict[tuple[str, str, str], int]:
    """Tokens by (project_id, model, token_type) for completions and embeddings rows.

    token_type: ``input`` (uncached: input - cached - cache_write), ``cache_read``,
    ``cache_write``, ``output``; embeddings count all input as ``input``. Zero totals are
    left out.
    """
    out: dict[tuple[str, str, str], int] = {}
    for row in org.usage:
        if not start <= row.day < end or row.endpoint not in ("completions", "embeddings"):
            continue
        if row.endpoint == "embeddings":
            parts = {"input": row.input_tokens}
        else:
            parts = {
                "input": row.input_tokens - row.input_cached_tokens - row.input_cache_write_tokens,
                "cache_read": row.input_cached_tokens,
                "cache_write": row.input_cache_write_tokens,
                "output": row.output_tokens,
            }
        for token_type, tokens in parts.items():
            key = (row.project_id, row.model, token_type)
            out[key] = out.get(key, 0) + tokens
    return {key: tokens for key, tokens in out.items() if tokens}
