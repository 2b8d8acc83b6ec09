"""Bounded cardinality: which per-stream families a snapshot carries, and how many series
that makes (``check-config`` prints the estimate for the stored streams).

Per model stream (provider, account, project, model) with ``C`` cost types and ``W``
selected windows (``metrics.windows``):

    series = W x C                          aicost_cost_<window>
           + W                              aicost_requests_<window>
           + 4 x (W + [7d selected])        aicost_tokens_<window> and _prev_7d, if token_types
           + 3                              the 30-day ratios, if stream_ratios
           + 3                              daily baseline, anomaly score, month-end forecast

The defaults (windows today, yesterday, month_to_date, 30d; no per-stream tokens or
ratios) give 4 + 4 + 0 + 0 + 3 = 11 for a stream with one cost type; every family on (all
five windows, token types and ratios) gives 5 + 5 + 24 + 3 + 3 = 40. A tool-cost stream
(``model=""``) has only its cost and governance series: ``W x C + 3``.

The roll-ups (:mod:`exporter.analytics.rollups`) are always on and grow with models,
projects and accounts, not with streams (``C`` cost types of the group):

    per (provider, account, model)    5 x C + 4 x 6 + 5 + 3   cost, tokens (+ prev_7d), requests,
                                                              ratios (model="": 5 x C)
    per (provider, account, project)  5 x C + 6 + 5           cost, all tokens (+ prev_7d), requests
    per (provider, account)           5 x C + 4 x 6 + 5

Per-project (``aicost_project_info``), budget, recommendation, FX and health series come
on top and do not grow with streams either.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from exporter.config import MetricsConfig
from exporter.records import Stream
from exporter.snapshot import TOKEN_WINDOW_NAMES, WINDOW_NAMES, WindowTotals

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


def left_out(cfg: MetricsConfig) -> set[str]:
    """Names of the per-stream families ``cfg`` does not publish (their HELP and TYPE stay,
    without samples); the roll-ups are never among them."""
    windows = set(cfg.windows)
    tokens = token_windows(cfg) if cfg.token_types else set()
    out = {
        f"aicost_{f}_{w}" for f in ("cost", "requests") for w in WINDOW_NAMES if w not in windows
    }
    out |= {f"aicost_tokens_{w}" for w in TOKEN_WINDOW_NAMES if w not in tokens}
    if not cfg.stream_ratios:
        out |= {"aicost_cache_hit_ratio", "aicost_cost_per_1k_tokens", "aicost_cost_per_request"}
    return out


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


ROLLUP_WINDOWS = 5
ROLLUP_TOKEN_WINDOWS = ROLLUP_WINDOWS + 1  # prev_7d


@dataclass(frozen=True)
class Groups:
    """What the roll-ups are per: (provider, account, model) groups with a model and
    without one (tool costs), (provider, account, project) and (provider, account)."""

    models: int
    tool_models: int
    projects: int
    accounts: int

    @classmethod
    def of(cls, streams: Iterable[Stream]) -> Groups:
        streams = list(streams)
        models = {(s.provider, s.account, s.model) for s in streams}
        return cls(
            models=sum(1 for m in models if m[2]),
            tool_models=sum(1 for m in models if not m[2]),
            projects=len({(s.provider, s.account, s.project) for s in streams}),
            accounts=len({(s.provider, s.account) for s in streams}),
        )


def rollup_series(groups: Groups, cost_types: int = 1) -> int:
    """Series of the roll-ups (the formula in the module docstring), ``cost_types`` cost
    types per group; a tool-cost model group (``model=""``) has only its cost."""
    cost = ROLLUP_WINDOWS * cost_types
    by_type = TOKEN_TYPE_COUNT * ROLLUP_TOKEN_WINDOWS
    return (
        groups.models * (cost + by_type + ROLLUP_WINDOWS + RATIO_SERIES)
        + groups.tool_models * cost
        + groups.projects * (cost + ROLLUP_TOKEN_WINDOWS + ROLLUP_WINDOWS)
        + groups.accounts * (cost + by_type + ROLLUP_WINDOWS)
    )
