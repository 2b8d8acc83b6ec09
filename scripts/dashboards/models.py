"""AI Cost / Models and tokens: grafana/dashboards/ai-models-and-tokens.json."""

from __future__ import annotations

from typing import Any

from .lib import (
    MODEL,
    MODEL_VARIABLES,
    bargauge,
    dashboard,
    money,
    piechart,
    row,
    stat,
    table,
    timeseries,
)


def build(currency: str) -> dict[str, Any]:
    m = money(currency)
    return dashboard(
        uid="aicost-models",
        title="AI Cost / Models and tokens",
        description="Token volumes, caching and effective prices per model, over all projects (the always-on aicost_model_* roll-ups).",
        variables=MODEL_VARIABLES,
        rows=[
            row(
                title="Headline",
                panels=[
                    stat(
                        title="Tokens (30d)",
                        expr=f"sum(aicost_model_tokens_30d{{{MODEL}}})",
                        unit="short",
                        description="All tokens of the last 30 complete days.",
                        w=6,
                    ),
                    stat(
                        title="Requests (30d)",
                        expr=f"sum(aicost_model_requests_30d{{{MODEL}}})",
                        unit="short",
                        description="API requests of the last 30 complete days.",
                        w=6,
                    ),
                    stat(
                        title="Cost per 1K tokens (30d)",
                        expr=f'sum(aicost_model_cost_30d{{{MODEL}, cost_type="tokens"}}) / sum(aicost_model_tokens_30d{{{MODEL}}}) * 1000',
                        unit=m,
                        description="Billed token cost per 1,000 tokens over the last 30 complete days, all selected streams.",
                        w=6,
                        decimals=4,
                    ),
                    stat(
                        title="Cache hit ratio (30d)",
                        expr=f'sum(aicost_model_tokens_30d{{{MODEL}, token_type="cache_read"}}) / sum(aicost_model_tokens_30d{{{MODEL}, token_type=~"input|cache_read|cache_write"}})',
                        unit="percentunit",
                        description="Share of input tokens served from a prompt cache over the last 30 complete days.",
                        w=6,
                    ),
                ],
            ),
            row(
                title="Tokens",
                panels=[
                    bargauge(
                        title="Tokens by type (30d)",
                        expr=f"sum by (token_type) (aicost_model_tokens_30d{{{MODEL}}})",
                        legend="{{token_type}}",
                        unit="short",
                        description="Tokens of the last 30 complete days: input (uncached), output, cache_read, cache_write add up to all tokens.",
                        w=8,
                        gradient=False,
                    ),
                    timeseries(
                        title="Tokens today by type",
                        expr=f"sum by (token_type) (aicost_model_tokens_today{{{MODEL}}})",
                        legend="{{token_type}}",
                        unit="short",
                        description="Running token count of the current UTC day.",
                        w=16,
                    ),
                    table(
                        title="Input / output ratio (30d)",
                        expr=f'sum by (provider, model) (aicost_model_tokens_30d{{{MODEL}, token_type=~"input|cache_read|cache_write"}}) / sum by (provider, model) (aicost_model_tokens_30d{{{MODEL}, token_type="output"}} > 0)',
                        unit="short",
                        description="All input tokens per output token over the last 30 complete days.",
                        w=8,
                    ),
                    table(
                        title="Requests (30d) by model",
                        expr=f"sort_desc(sum by (provider, model) (aicost_model_requests_30d{{{MODEL}}}))",
                        unit="short",
                        description="API requests of the last 30 complete days.",
                        w=8,
                    ),
                    piechart(
                        title="Model spend distribution (30d)",
                        expr=f'sum by (model) (aicost_model_cost_30d{{{MODEL}, model!=""}})',
                        legend="{{model}}",
                        unit=m,
                        description="Share of the last 30 days' token cost per model.",
                        w=8,
                    ),
                ],
            ),
            row(
                title="Efficiency",
                panels=[
                    bargauge(
                        title="Cache hit ratio (30d)",
                        expr=f"aicost_model_cache_hit_ratio{{{MODEL}}}",
                        legend="{{provider}} {{account}} {{model}}",
                        unit="percentunit",
                        description="cache_read / (input + cache_read + cache_write) over the last 30 complete days, per model (all projects).",
                        w=8,
                        max=1,
                    ),
                    table(
                        title="Effective cost per 1K tokens (30d)",
                        expr=f"sort_desc(aicost_model_cost_per_1k_tokens{{{MODEL}}})",
                        unit=m,
                        description="Billed token cost / tokens x 1000 over the last 30 complete days (includes caching and batch discounts).",
                        w=8,
                        decimals=4,
                    ),
                    table(
                        title="Cost per request (30d)",
                        expr=f"sort_desc(aicost_model_cost_per_request{{{MODEL}}})",
                        unit=m,
                        description="Billed cost / requests over the last 30 complete days.",
                        w=8,
                        decimals=4,
                    ),
                ],
            ),
        ],
    )
