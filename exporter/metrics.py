"""The metric catalogue: every metric the exporter can expose, in one place.

``docs/metrics.md`` is checked against this table by ``tests/bundle/test_docs.py``; the exposition
only emits metrics listed here.
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.snapshot import WINDOW_NAMES

STREAM = ("provider", "account", "project", "model")
PROVIDER = ("provider", "account")
BILLING = ("provider", "account", "currency")
BUDGET = ("budget", "period", "currency")

APP = ("provider", "model", "endpoint")
INGESTED = "From SQLite, refreshed every ingest.refresh_interval; never reset by a restart."
POLLED = "Refreshed after each poll from the SQLite history, not at scrape time."


@dataclass(frozen=True)
class MetricDef:
    name: str
    type: str  # gauge | counter | info
    labels: tuple[str, ...]
    help: str


# What each window of snapshot.WINDOW_NAMES covers, for the HELP texts (in that order).
WINDOWS: dict[str, str] = dict(
    zip(
        WINDOW_NAMES,
        (
            "so far in the current UTC day (partial; the provider revises it)",
            "of the last complete UTC day",
            "of the last 7 complete UTC days",
            "of the last 30 complete UTC days",
            "from the 1st of the current UTC month through now",
        ),
        strict=True,
    )
)


def _windows() -> list[MetricDef]:
    out = []
    for window, phrase in WINDOWS.items():
        out.append(
            MetricDef(
                f"aicost_cost_{window}",
                "gauge",
                (*STREAM, "cost_type", "currency"),
                f"Billed cost {phrase}, from the provider's cost API. {POLLED}",
            )
        )
    for window, phrase in WINDOWS.items():
        out.append(
            MetricDef(
                f"aicost_tokens_{window}",
                "gauge",
                (*STREAM, "token_type"),
                f"Tokens {phrase}; token_type input (uncached), output, cache_read, "
                f"cache_write add up to all tokens. {POLLED}",
            )
        )
    out.append(
        MetricDef(
            "aicost_tokens_prev_7d",
            "gauge",
            (*STREAM, "token_type"),
            "Tokens of the 7 complete UTC days before the last 7 (days 8-14 ago), for "
            f"week-over-week growth without Prometheus retention. {POLLED}",
        )
    )
    for window, phrase in WINDOWS.items():
        out.append(
            MetricDef(
                f"aicost_requests_{window}",
                "gauge",
                STREAM,
                f"API requests {phrase}. {POLLED}",
            )
        )
    return out


CATALOGUE: list[MetricDef] = [
    *_windows(),
    MetricDef(
        "aicost_cache_hit_ratio",
        "gauge",
        STREAM,
        "Last 30 complete days: cache_read / (input + cache_read + cache_write) tokens. " + POLLED,
    ),
    MetricDef(
        "aicost_cost_per_1k_tokens",
        "gauge",
        (*STREAM, "currency"),
        "Last 30 complete days: billed token cost / tokens x 1000 (effective rate). " + POLLED,
    ),
    MetricDef(
        "aicost_cost_per_request",
        "gauge",
        (*STREAM, "currency"),
        "Last 30 complete days: billed cost / requests. " + POLLED,
    ),
    MetricDef(
        "aicost_cache_savings_30d",
        "gauge",
        (*STREAM, "currency"),
        "Last 30 complete days: prompt-cache savings realised, cache_read tokens x (input - "
        "cache read list price). " + POLLED,
    ),
    MetricDef(
        "aicost_savings_monthly",
        "gauge",
        (*STREAM, "recommendation", "target", "currency"),
        "Projected saving per 30 days if the recommendation (batch, model_downgrade, "
        "cross_provider) is applied; target is the cheaper model, route or batch. Series "
        'beyond recommendations.max_series are summed into labels "other". ' + POLLED,
    ),
    MetricDef(
        "aicost_inactive_key_exposure_monthly",
        "gauge",
        ("provider", "account", "project", "api_key", "api_key_name", "currency"),
        "Spend per 30 days a quiet-but-valid API key would resume at (its days 31-60 daily "
        "rate x 30); rotate or revoke it. " + POLLED,
    ),
    MetricDef(
        "aicost_recommendation_first_seen_timestamp_seconds",
        "gauge",
        (*STREAM, "api_key", "recommendation", "target"),
        "Unix time (UTC midnight) of the day a published recommendation was first seen "
        "(kept in SQLite). " + POLLED,
    ),
    MetricDef(
        "aicost_prepaid_balance",
        "gauge",
        BILLING,
        "Prepaid credit still available, as the provider reports it (xAI: the prepaid ledger "
        "less this billing period's credits used), converted at the rate of the day it was "
        "observed. Absent when the account has none. " + POLLED,
    ),
    MetricDef(
        "aicost_spending_limit",
        "gauge",
        BILLING,
        "Effective spending limit of the current billing period, as the provider reports it, "
        "converted at the rate of the day it was observed. Absent when the account has none. "
        + POLLED,
    ),
    MetricDef(
        "aicost_invoice_preview",
        "gauge",
        BILLING,
        "Running total of the current billing period's invoice preview (xAI: the sum of its "
        "line items, before VAT and prepaid credits), converted at the rate of the day it was "
        "observed. " + POLLED,
    ),
    MetricDef(
        "aicost_invoice_preview_gap",
        "gauge",
        BILLING,
        "Invoice preview total minus the daily costs stored for the same billing period (both "
        "in the billed currency, then converted like the preview); near 0 when the daily data "
        "is complete. " + POLLED,
    ),
    MetricDef(
        "aicost_cost_daily_baseline",
        "gauge",
        (*STREAM, "currency"),
        "Expected cost of yesterday (all cost types): weekday factor x median of the prior "
        "28 complete days, deseasonalised. " + POLLED,
    ),
    MetricDef(
        "aicost_cost_anomaly_score",
        "gauge",
        STREAM,
        "Yesterday's cost vs aicost_cost_daily_baseline as a robust z-score (spread: MAD of "
        "the prior 28 days, at least 20 % of the baseline); >= 3 is unusual. " + POLLED,
    ),
    MetricDef(
        "aicost_cost_forecast_month_end",
        "gauge",
        (*STREAM, "currency"),
        "Projected cost of the current UTC month (all cost types): month to date plus a "
        "weekday-aware run rate of recent complete days. " + POLLED,
    ),
    MetricDef(
        "aicost_stream_first_seen_timestamp_seconds",
        "gauge",
        STREAM,
        "Start of the first UTC day with data in the store, only for streams first seen in "
        "the last 7 days (a new workload). " + POLLED,
    ),
    MetricDef(
        "aicost_budget_limit",
        "gauge",
        BUDGET,
        "Configured limit of the budget for its period. " + POLLED,
    ),
    MetricDef(
        "aicost_budget_spend",
        "gauge",
        BUDGET,
        "Cost in the budget's scope from the start of its current UTC period (day, ISO week, "
        "month) through now. " + POLLED,
    ),
    MetricDef(
        "aicost_budget_forecast",
        "gauge",
        BUDGET,
        "Projected cost in the budget's scope at the end of its current period. " + POLLED,
    ),
    MetricDef(
        "aicost_budget_utilization_ratio",
        "gauge",
        BUDGET,
        "aicost_budget_spend / aicost_budget_limit. " + POLLED,
    ),
    MetricDef(
        "aicost_budget_threshold_ratio",
        "gauge",
        ("budget", "threshold"),
        "The budget's alert thresholds as fractions of its limit (value = threshold), for "
        "alert rules that compare utilisation against them.",
    ),
    MetricDef(
        "aicost_budget_scope_matched",
        "gauge",
        ("budget",),
        "1 if the budget's scope matched any cost in the last 30 days or the current "
        "month, else 0 (probably a typo in the scope). " + POLLED,
    ),
    MetricDef(
        "aicost_project_info",
        "gauge",
        (
            "provider",
            "account",
            "project",
            "project_name",
            "team",
            "pool",
            "cost_owner",
            "environment",
        ),
        "Always 1; names and attribution of a project/workspace, for group_left joins "
        "(unattributed projects are in pool unassigned). " + POLLED,
    ),
    MetricDef(
        "aicost_up",
        "gauge",
        PROVIDER,
        "1 if the last poll of this provider account succeeded, else 0.",
    ),
    MetricDef(
        "aicost_last_success_timestamp_seconds",
        "gauge",
        PROVIDER,
        "Unix time at which the last successful poll ended (0 if none yet).",
    ),
    MetricDef(
        "aicost_data_complete_through_timestamp_seconds",
        "gauge",
        PROVIDER,
        "Watermark: all UTC days before this Unix time were read after they closed "
        "(start of the current UTC day at the last successful poll, less the provider's "
        "expected data lag).",
    ),
    MetricDef(
        "aicost_data_expected_lag_seconds",
        "gauge",
        PROVIDER,
        "How far a provider's complete cost data normally trails real time (whole days: 0 "
        "for the direct APIs, 1-2 for cloud billing; config data_lag_days); the stale-data "
        "alert allows it on top of its own threshold.",
    ),
    MetricDef(
        "aicost_poll_duration_seconds",
        "gauge",
        PROVIDER,
        "Duration of the last poll of this provider account, successful or not.",
    ),
    MetricDef(
        "aicost_poller_leader",
        "gauge",
        PROVIDER,
        "1 if this replica polls the provider account (it holds the account's advisory lock "
        "on a shared PostgreSQL history; always 1 with SQLite), 0 on a standby. Per replica.",
    ),
    MetricDef(
        "aicost_poll_errors_total",
        "counter",
        (*PROVIDER, "reason"),
        "Failed polls by reason: auth, rate_limit, upstream, timeout, parse, config.",
    ),
    MetricDef(
        "aicost_api_requests_total",
        "counter",
        (*PROVIDER, "endpoint", "code"),
        "HTTP requests made to provider APIs, by endpoint and HTTP status "
        "(code=timeout or error when no response arrived).",
    ),
    MetricDef(
        "aicost_poll_degraded_total",
        "counter",
        (*PROVIDER, "reason"),
        "Successful polls that fell back to a coarser, confirmed query because the provider "
        "refused an unconfirmed dimension (xAI: reason unit_type, tokens); costs stay exact.",
    ),
    MetricDef(
        "aicost_fx_rate",
        "gauge",
        ("base", "quote", "source"),
        "Rate applied to costs of the current UTC day: units of quote (the accounting "
        "currency) per unit of base (the billing currency); ECB reference rates crossed "
        "through EUR. source: ecb-daily, ecb-hist-90d, ecb-hist, bundled, identity. " + POLLED,
    ),
    MetricDef(
        "aicost_fx_rate_date_timestamp_seconds",
        "gauge",
        ("base", "quote"),
        "Unix time of the UTC midnight of the ECB day aicost_fx_rate is of: older than today "
        "on weekends, holidays, before the 16:00 CET publication and during ECB outages.",
    ),
    MetricDef(
        "aicost_fx_unconverted_costs",
        "gauge",
        ("base", "quote", "reason"),
        "Stored cost records without a usable rate (reason no_rate, stale, pending): kept "
        "unconverted, and every money series whose window contains one is withheld.",
    ),
    MetricDef(
        "aicost_fx_refresh_errors_total",
        "counter",
        ("reason",),
        "Failed ECB rate downloads by reason: upstream, timeout, parse (cached rates are used).",
    ),
    MetricDef(
        "aicost_build_info",
        "gauge",
        ("version", "python_version"),
        "Always 1; the exporter's version.",
    ),
    # Request-level usage ingested from applications (OTLP GenAI spans, JSON events).
    *[
        MetricDef(name, kind, labels, help_ + " " + INGESTED)
        for name, kind, labels, help_ in (
            (
                "aicost_app_requests_total",
                "counter",
                (*APP, "tenant", "prompt_version", "outcome"),
                "AI API requests the applications reported; endpoint, tenant and prompt_version "
                "capped (ingest.max_*) with an `other` series.",
            ),
            (
                "aicost_app_retries_total",
                "counter",
                APP,
                "Requests that were retries (aicost.retry, http.request.resend_count > 0).",
            ),
            (
                "aicost_app_tokens_total",
                "counter",
                (*APP, "tenant", "prompt_version", "token_type"),
                "Tokens of the reported requests; token_type input (uncached), output, cache_read, "
                "cache_write.",
            ),
            (
                "aicost_app_cost_total",
                "counter",
                (*APP, "tenant", "prompt_version", "currency"),
                "ESTIMATED cost of the reported requests: catalogue (genai-prices) list price on "
                "the request's day at that day's ECB rate; requests of unknown models have none.",
            ),
            (
                "aicost_app_cost_per_request_7d",
                "gauge",
                (*APP, "prompt_version", "currency"),
                "Estimated cost per request over the 7 UTC days ending today.",
            ),
            (
                "aicost_app_cost_per_outcome_7d",
                "gauge",
                ("endpoint", "outcome", "currency"),
                "Estimated cost of the endpoint over the 7 UTC days ending today divided by its "
                "requests with this outcome (what one successful outcome cost).",
            ),
            (
                "aicost_app_prompt_version_cost_change_ratio",
                "gauge",
                ("endpoint", "prompt_version"),
                "Cost per request of the endpoint's newest prompt version (this label) divided by "
                "the previous version's, each over its last 7 active days.",
            ),
            (
                "aicost_app_estimate_to_billed_ratio",
                "gauge",
                ("provider", "account", "model"),
                "Estimated token cost of yesterday from ingested requests divided by the billed "
                "token cost, where both exist and one account bills the model.",
            ),
        )
    ],
    MetricDef(
        "aicost_ingest_rejected_total",
        "counter",
        ("source", "reason"),
        "Ingest requests, spans or events refused since the exporter started, by source "
        "(otlp, events) and reason (unauthorized, forbidden, too_large, bad_body, unsupported, "
        "invalid, too_old, storage, unavailable).",
    ),
]

BY_NAME: dict[str, MetricDef] = {m.name: m for m in CATALOGUE}
