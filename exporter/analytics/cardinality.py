"""Bounded cardinality: which per-stream families a snapshot carries, and how many series
that makes (``check-config`` prints the estimate for the stored streams).

Per model stream (provider, account, project, model) with ``C`` cost types and ``W``
selected windows (``metrics.windows``):

    series = W x C                          aicost_cost_<window>
           + W                              aicost_requests_<window>
           + 4 x (W + [7d selected])        aicost_tokens_<window> and _prev_7d, if token_types
           + 3                              the 30-day ratios, if stream_ratios
           + 3                              daily baseline, anomaly score, month-end forecast

The defaults (all five windows, token types and ratios on) give 5 + 5 + 24 + 3 + 3 = 40 for
a stream with one cost type. A tool-cost stream (``model=""``) has only its cost and
governance series: ``W x C + 3``. Per-project (``aicost_project_info``), budget,
recommendation, FX and health series come on top and do not grow with streams.
"""

from __future__ import annotations

from dataclasses import replace

from exporter.config import MetricsConfig
from exporter.snapshot import WindowTotals

GOVERNANCE_SERIES = 3  # baseline, anomaly score, forecast
RATIO_SERIES = 3
TOKEN_TYPE_COUNT = 4


def token_windows(cfg: MetricsConfig) -> set[str]:
    """Windows of the token families: the selected ones, with ``prev_7d`` beside ``7d``."""
    return set(cfg.windows) | ({"prev_7d"} if "7d" in cfg.windows else set())


def select(totals: WindowTotals, cfg: MetricsConfig) -> WindowTotals:
    """``totals`` with only the families and windows ``cfg`` publishes."""
    windows = set(cfg.windows)
    tokens = token_windows(cfg) if cfg.token_types else set()
    return replace(
        totals,
        cost={w: v for w, v in totals.cost.items() if w in windows},
        requests={w: v for w, v in totals.requests.items() if w in windows},
        tokens={w: v for w, v in totals.tokens.items() if w in tokens},
        cache_hit_ratio=totals.cache_hit_ratio if cfg.stream_ratios else {},
        cost_per_1k_tokens=totals.cost_per_1k_tokens if cfg.stream_ratios else {},
        cost_per_request=totals.cost_per_request if cfg.stream_ratios else {},
    )


def series_per_stream(cfg: MetricsConfig, cost_types: int = 1) -> int:
    """Series of one model stream with ``cost_types`` cost types (the formula above)."""
    w = len(cfg.windows)
    tokens = TOKEN_TYPE_COUNT * len(token_windows(cfg)) if cfg.token_types else 0
    ratios = RATIO_SERIES if cfg.stream_ratios else 0
    return w * cost_types + w + tokens + ratios + GOVERNANCE_SERIES


def expected_series(cfg: MetricsConfig, model_streams: int, tool_streams: int) -> int:
    """Per-stream series of the stored streams (one cost type each)."""
    tool = len(cfg.windows) + GOVERNANCE_SERIES
    return model_streams * series_per_stream(cfg) + tool_streams * tool
