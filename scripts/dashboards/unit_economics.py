"""AI Cost / Unit economics: grafana/dashboards/ai-unit-economics.json.

Request-level usage ingested from applications (OTLP GenAI spans, JSON events): estimated
cost per request and per outcome by endpoint, top tenants, prompt-version comparison,
retry rate, and the estimate against the provider's bill.
"""

from __future__ import annotations

from typing import Any

from .lib import bargauge, dashboard, money, row, stat, table, timeseries

APP = 'job=~"$job", provider=~"$provider", endpoint=~"$endpoint"'
OUT = 'job=~"$job", endpoint=~"$endpoint"'
BILL = 'job=~"$job", provider=~"$provider", account=~"$account"'
DAY = "[1d]"  # the headline's fixed window: the last 24 hours


def build(currency: str) -> dict[str, Any]:
    m = money(currency)
    cost = f"aicost_app_cost_total{{{APP}}}"
    reqs = f"aicost_app_requests_total{{{APP}}}"
    retries = f"aicost_app_retries_total{{{APP}}}"
    return dashboard(
        uid="aicost-unit-economics",
        title="AI Cost / Unit economics",
        description="Estimated cost per request, outcome, endpoint, tenant and prompt version, from the requests the applications report (OTLP GenAI spans and JSON events), with the retry rate and the estimate against the bill.",
        variables=("job", "provider", "account", "endpoint"),
        rows=[
            row(
                title="Headline",
                panels=[
                    stat(
                        title="Estimated cost (24h)",
                        expr=f"sum(increase({cost}{DAY}))",
                        unit=m,
                        description="Estimated cost of the requests reported in the last 24 hours: genai-prices list price of their tokens at each request's day, converted at that day's ECB rate. Requests of models the catalogue does not know have no cost.",
                        w=5,
                    ),
                    stat(
                        title="Requests (24h)",
                        expr=f"sum(increase({reqs}{DAY}))",
                        unit="short",
                        description="AI API requests the applications reported in the last 24 hours (each span or event id counted once).",
                        w=5,
                    ),
                    stat(
                        title="Cost per request (24h)",
                        expr=f"sum(increase({cost}{DAY})) / sum(increase({reqs}{DAY}))",
                        unit=m,
                        description="Estimated cost of the last 24 hours divided by its requests, all endpoints and models.",
                        w=5,
                    ),
                    stat(
                        title="Retry rate (24h)",
                        expr=f"sum(increase({retries}{DAY})) / sum(increase({reqs}{DAY}))",
                        unit="percentunit",
                        description="Share of the reported requests that were retries (aicost.retry, http.request.resend_count > 0, or the event's retry field). Every retry is billed.",
                        w=4,
                    ),
                    stat(
                        title="Estimate / billed (yesterday)",
                        expr=f"avg(aicost_app_estimate_to_billed_ratio{{{BILL}}})",
                        unit="percentunit",
                        description="Average over models of yesterday's estimated cost divided by the billed cost (where both exist). Far below 100%: traffic that is not instrumented; above: discounts the list price does not know.",
                        w=5,
                    ),
                ],
            ),
            row(
                title="Cost per request and per outcome",
                panels=[
                    timeseries(
                        title="Cost per request by endpoint (7d)",
                        expr=f"aicost_app_cost_per_request_7d{{{APP}}}",
                        legend="{{endpoint}} {{model}} {{prompt_version}}",
                        unit=m,
                        description="Estimated cost per request over the 7 UTC days ending today, per endpoint, model and prompt version.",
                        w=14,
                    ),
                    table(
                        title="Cost per outcome (7d)",
                        expr=f"aicost_app_cost_per_outcome_7d{{{OUT}}}",
                        unit=m,
                        description="Everything an endpoint spent over the last 7 days divided by its requests with each outcome (aicost.outcome): the cost of one successful outcome includes the failed attempts around it.",
                        w=10,
                        hide=("currency",),
                    ),
                ],
            ),
            row(
                title="Tenants and endpoints",
                panels=[
                    bargauge(
                        title="Top tenants by estimated cost (24h)",
                        expr=f"topk(10, sum by (tenant) (increase({cost}{DAY})))",
                        legend="{{tenant}}",
                        unit=m,
                        description="The 10 tenants with the highest estimated cost in the last 24 hours; tenants past ingest.max_tenants are summed as `other`. Per-user detail: `ai-cost-exporter top --by user`.",
                        w=12,
                    ),
                    bargauge(
                        title="Endpoints by estimated cost (24h)",
                        expr=f"topk(15, sum by (endpoint) (increase({cost}{DAY})))",
                        legend="{{endpoint}}",
                        unit=m,
                        description="Estimated cost per endpoint (aicost.endpoint, http.route or service.name) in the last 24 hours.",
                        w=12,
                    ),
                    timeseries(
                        title="Estimated cost rate by endpoint",
                        expr=f"sum by (endpoint) (rate({cost}[$__rate_interval])) * 3600",
                        legend="{{endpoint}}",
                        unit=m,
                        description="Estimated spend per hour, per endpoint.",
                        w=24,
                    ),
                ],
            ),
            row(
                title="Prompt versions",
                panels=[
                    table(
                        title="Newest prompt version vs previous (cost per request)",
                        expr=f"aicost_app_prompt_version_cost_change_ratio{{{OUT}}}",
                        unit="percentunit",
                        description="Cost per request of each endpoint's newest prompt version divided by the previous version's, each over its last 7 active days; above 120% fires AICostPromptVersionRegression.",
                        w=10,
                    ),
                    timeseries(
                        title="Cost per request by prompt version (7d)",
                        expr=f"sum by (endpoint, prompt_version) (aicost_app_cost_per_request_7d{{{APP}}})",
                        legend="{{endpoint}} {{prompt_version}}",
                        unit=m,
                        description="Estimated cost per request of each prompt version (summed over models), 7 days ending today.",
                        w=14,
                    ),
                ],
            ),
            row(
                title="Retries and the bill",
                panels=[
                    timeseries(
                        title="Retry rate by endpoint",
                        expr=f"sum by (endpoint) (rate({retries}[$__rate_interval])) / sum by (endpoint) (rate({reqs}[$__rate_interval]))",
                        legend="{{endpoint}}",
                        unit="percentunit",
                        description="Share of each endpoint's requests that were retries; above 10% for 30 minutes fires AICostRetryRateHigh.",
                        w=12,
                        max=1,
                    ),
                    table(
                        title="Estimate / billed by model (yesterday)",
                        expr=f"aicost_app_estimate_to_billed_ratio{{{BILL}}}",
                        unit="percentunit",
                        description="Yesterday's estimated cost of the ingested requests divided by the provider's billed token cost of that model and account; outside 75-125% for 6 hours fires AICostEstimateBilledDrift.",
                        w=12,
                    ),
                ],
            ),
        ],
    )
