"""AI Cost / Exporter health: grafana/dashboards/ai-exporter-health.json."""

from __future__ import annotations

from typing import Any

from .lib import ACC, JOB, dashboard, row, stat, timeseries


def build(currency: str) -> dict[str, Any]:
    return dashboard(
        uid="aicost-exporter-health",
        title="AI Cost / Exporter health",
        description="Is the exporter polling, how fast, and how fresh is the data.",
        variables=("job", "provider", "account"),
        rows=[
            row(
                title="Status",
                panels=[
                    stat(
                        title="Providers up",
                        expr=f"sum(aicost_up{{{ACC}}})",
                        unit="short",
                        description="Provider accounts whose last poll succeeded.",
                        w=6,
                    ),
                    stat(
                        title="Providers down",
                        expr=f"count(aicost_up{{{ACC}}} == 0) or vector(0)",
                        unit="short",
                        description="Provider accounts whose last poll failed.",
                        w=6,
                    ),
                    stat(
                        title="Last successful poll",
                        expr=f"min(aicost_last_success_timestamp_seconds{{{ACC}}}) * 1000",
                        unit="dateTimeFromNow",
                        description="End of the oldest last-successful poll across the selected accounts.",
                        w=6,
                    ),
                    stat(
                        title="Exporter version",
                        expr=f"count by (version) (aicost_build_info{{{JOB}}})",
                        legend="{{version}}",
                        unit="short",
                        description="Running exporter instances per version.",
                        w=6,
                        text_mode="name",
                    ),
                ],
            ),
            row(
                title="Polling",
                panels=[
                    timeseries(
                        title="Up by provider",
                        expr=f"aicost_up{{{ACC}}}",
                        legend="{{provider}}/{{account}}",
                        unit="bool_yes_no",
                        description="1 when the last poll of the account succeeded.",
                        w=12,
                        max=1,
                    ),
                    timeseries(
                        title="Poll duration",
                        expr=f"aicost_poll_duration_seconds{{{ACC}}}",
                        legend="{{provider}}/{{account}}",
                        unit="s",
                        description="Duration of the last poll (backfills take longer).",
                        w=12,
                    ),
                    timeseries(
                        title="Poll errors by reason",
                        expr=f"sum by (provider, account, reason) (increase(aicost_poll_errors_total{{{ACC}}}[$__rate_interval]))",
                        legend="{{provider}}/{{account}} {{reason}}",
                        unit="short",
                        description="Failed polls per interval by reason (auth, rate_limit, upstream, timeout, parse, config).",
                        w=12,
                    ),
                    timeseries(
                        title="Provider API requests by status",
                        expr=f"sum by (provider, code) (rate(aicost_api_requests_total{{{ACC}}}[$__rate_interval]))",
                        legend="{{provider}} {{code}}",
                        unit="reqps",
                        description="HTTP calls to provider APIs per second by status; 429 = rate limited.",
                        w=12,
                    ),
                    timeseries(
                        title="Data watermark age",
                        expr=f"time() - aicost_data_complete_through_timestamp_seconds{{{ACC}}}",
                        legend="{{provider}}/{{account}}",
                        unit="s",
                        description="Age of the newest complete UTC day read; above 26 h plus the provider's expected lag (aicost_data_expected_lag_seconds) the stale-data alert fires.",
                        w=12,
                    ),
                    timeseries(
                        title="Time since last success",
                        expr=f"time() - aicost_last_success_timestamp_seconds{{{ACC}}}",
                        legend="{{provider}}/{{account}}",
                        unit="s",
                        description="Seconds since the last successful poll; it should stay under two poll intervals.",
                        w=12,
                    ),
                ],
            ),
            row(
                title="Currency conversion",
                panels=[
                    stat(
                        title="FX rate applied today",
                        expr=f"aicost_fx_rate{{{JOB}}}",
                        legend="{{base}}->{{quote}} ({{source}})",
                        unit="none",
                        description="ECB reference rate applied to today's costs (units of quote per unit of base) and its source: ecb-daily, ecb-hist-90d, ecb-hist, bundled or identity.",
                        w=6,
                        h=6,
                        decimals=5,
                    ),
                    stat(
                        title="FX rate date",
                        expr=f"aicost_fx_rate_date_timestamp_seconds{{{JOB}}} * 1000",
                        legend="{{base}}->{{quote}}",
                        unit="dateTimeAsIsoNoDateIfToday",
                        description="ECB day of the rate in use: the previous working day on weekends, holidays, before 16:00 CET and during ECB outages.",
                        w=6,
                        h=6,
                    ),
                    timeseries(
                        title="Costs without a rate",
                        expr=f"sum by (base, quote, reason) (aicost_fx_unconverted_costs{{{JOB}}}) or on () vector(0)",
                        legend="{{base}}->{{quote}} {{reason}}",
                        unit="short",
                        description="Stored cost records that could not be converted (no_rate, stale) or await conversion (pending); their money is withheld.",
                        w=6,
                        h=6,
                    ),
                    timeseries(
                        title="ECB refresh errors",
                        expr=f"sum by (reason) (increase(aicost_fx_refresh_errors_total{{{JOB}}}[$__rate_interval]))",
                        legend="{{reason}}",
                        unit="short",
                        description="Failed ECB downloads per interval; cached rates are used meanwhile.",
                        w=6,
                        h=6,
                    ),
                ],
            ),
        ],
    )
