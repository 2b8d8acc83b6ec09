"""A fake AWS account using Bedrock, and a loopback server speaking Cost Explorer and
CloudWatch the way boto3 calls them (``endpoint_url`` pointed here).

What is faked (reference ``provider-apis.md`` §5 and ``docs/providers/bedrock.md``):

* **Cost Explorer** ``GetCostAndUsage`` (AWS JSON 1.1, ``X-Amz-Target:
  AWSInsightsIndexService.GetCostAndUsage``): ``TimePeriod`` (Start inclusive, End
  exclusive, ``YYYY-MM-DD``), ``DAILY`` granularity, ``Metrics``, up to two ``GroupBy``
  dimensions among ``SERVICE``/``USAGE_TYPE``/``LINKED_ACCOUNT``, a ``Filter`` expression
  (``And``/``Or``/``Not``/``Dimensions`` with ``EQUALS``), amounts as **strings**, empty
  ``Total`` when grouped, ``Estimated: true`` for today and yesterday, ``NextPageToken``
  after :attr:`FakeBedrockAccount.ce_page_groups` groups (a token bound to its request:
  ``RequestChangedException`` otherwise). Anthropic models are billed by AWS Marketplace
  under ``"<model> (Amazon Bedrock Edition)"`` services (``BILLING_ENTITY`` ``AWS
  Marketplace``), Amazon's own under ``Amazon Bedrock``; another Marketplace product
  shares the account, so a filter on the billing entity alone over-counts.
* **CloudWatch** ``ListMetrics`` and ``GetMetricData`` (AWS JSON 1.0, target prefix
  ``GraniteServiceVersion20100801``): ``AWS/Bedrock`` token counts and invocations per
  ``ModelId``, ``Sum`` over one-day periods, epoch-second timestamps, ``NextToken`` after
  :attr:`FakeBedrockAccount.cw_page_results` results.
* What AWS refuses: a request without a SigV4 ``Authorization`` header
  (``MissingAuthenticationTokenException``), an unknown access key id
  (``UnrecognizedClientException``), a credential scope of another service or region
  (``SignatureDoesNotMatch``), a wrong target or content type, invalid parameters
  (``ValidationException``). The signature itself is not recomputed.

The truth is one row per day and model (:class:`BedrockUsageRow`) plus non-token lines
(:class:`BedrockLine`); costs are derived from :attr:`FakeBedrockAccount.prices`. Synthetic.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from exporter.demo.http import ApiError, FakeHTTPServer, Query, day_start

DEFAULT_ACCOUNT_ID = "123456789012"
DEFAULT_ACCESS_KEY_ID = "FAKEDEMOACCESSKEY001"  # not shaped like a real AWS key id
DEFAULT_SECRET_KEY = "fake-secret-access-key-for-tests"  # deliberately not key-shaped
MARKETPLACE = "AWS Marketplace"
BEDROCK = "Amazon Bedrock"
CE_TARGET = "AWSInsightsIndexService."
CW_TARGET = "GraniteServiceVersion20100801."
MILLION = Decimal(1_000_000)
CE_METRICS = (
    "AmortizedCost",
    "BlendedCost",
    "NetAmortizedCost",
    "NetUnblendedCost",
    "NormalizedUsageAmount",
    "UnblendedCost",
    "UsageQuantity",
)
USAGE_METRICS = ("NormalizedUsageAmount", "UsageQuantity")
CE_DIMENSIONS = ("SERVICE", "USAGE_TYPE", "LINKED_ACCOUNT", "BILLING_ENTITY", "REGION")
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
CW_METRICS: dict[str, str] = {
    "InputTokenCount": "input_tokens",
    "OutputTokenCount": "output_tokens",
    "CacheReadInputTokenCount": "cache_read_tokens",
    "CacheWriteInputTokenCount": "cache_write_tokens",
    "Invocations": "invocations",
}
# Usage-type suffixes: Marketplace ("USE1-MP:USE1_" + suffix) and first party ("USE1-Model-").
MP_SUFFIX = {
    "input_tokens": "InputTokenCount-Units",
    "output_tokens": "OutputTokenCount-Units",
    "cache_read_tokens": "CacheReadInputTokenCount-Units",
    "cache_write_tokens": "CacheWriteInputTokenCount-Units",
}
FIRST_PARTY_SUFFIX = {
    "input_tokens": "input-tokens",
    "output_tokens": "output-tokens",
    "cache_read_tokens": "cache-read-input-tokens",
    "cache_write_tokens": "cache-write-input-tokens",
}


# --------------------------------------------------------------------------- truth model


@dataclass(frozen=True)
class Price:
    """USD per million tokens of each token type."""

    input: Decimal
    output: Decimal
    cache_read: Decimal = Decimal(0)
    cache_write: Decimal = Decimal(0)

    def of(self, token_field: str) -> Decimal:
        return Decimal(getattr(self, token_field.removesuffix("_tokens")))


@dataclass(frozen=True)
class BedrockModel:
    model_id: str  # CloudWatch ModelId
    service: str  # Cost Explorer SERVICE
    usage_prefix: str  # "USE1-MP:USE1_" (Marketplace) or "USE1-NovaPro-" (first party)
    price: Price

    @property
    def marketplace(self) -> bool:
        return self.service != BEDROCK

    def usage_type(self, token_field: str) -> str:
        table = MP_SUFFIX if self.marketplace else FIRST_PARTY_SUFFIX
        return self.usage_prefix + table[token_field]


@dataclass(frozen=True)
class BedrockUsageRow:
    """One model's traffic on one UTC day."""

    day: date
    model_id: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    invocations: int = 0


@dataclass(frozen=True)
class BedrockLine:
    """A cost line that is not a model's tokens (guardrails, another Marketplace product)."""

    day: date
    service: str
    usage_type: str
    amount: Decimal
    billing_entity: str = "AWS"


@dataclass
class FakeBedrockAccount:
    models: dict[str, BedrockModel]
    usage: list[BedrockUsageRow] = field(default_factory=list)
    lines: list[BedrockLine] = field(default_factory=list)
    account_id: str = DEFAULT_ACCOUNT_ID
    region: str = "us-east-1"
    access_key_id: str = DEFAULT_ACCESS_KEY_ID
    secret_access_key: str = DEFAULT_SECRET_KEY
    currency: str = "USD"
    ce_page_groups: int = 200
    cw_page_results: int = 100
    list_page_metrics: int = 500

    def cost_lines(self) -> list[tuple[date, str, str, Decimal, str]]:
        """Every billed line: (day, service, usage type, amount, billing entity)."""
        out = []
        for row in self.usage:
            model = self.models[row.model_id]
            entity = MARKETPLACE if model.marketplace else "AWS"
            for token_field in TOKEN_FIELDS:
                tokens = getattr(row, token_field)
                if tokens:
                    amount = Decimal(tokens) * model.price.of(token_field) / MILLION
                    out.append(
                        (row.day, model.service, model.usage_type(token_field), amount, entity)
                    )
        out.extend((x.day, x.service, x.usage_type, x.amount, x.billing_entity) for x in self.lines)
        return out


# --------------------------------------------------------------------------- server


class FakeBedrockServer(FakeHTTPServer[FakeBedrockAccount]):
    """Cost Explorer and CloudWatch of one fake account on one loopback port."""

    name = "fake-bedrock"

    def error_body(self, err: ApiError) -> dict[str, Any]:
        return {"__type": err.type, "message": err.message}

    def fault_error(self, status: int) -> ApiError:
        if status == 429:
            return ApiError(429, "Rate exceeded", type_="ThrottlingException")
        if status == 400:
            return ApiError(400, "Rate exceeded", type_="LimitExceededException")
        return ApiError(status, "Internal error", type_="InternalServerError")

    def answer_with_body(
        self, method: str, path: str, query: Query, headers: dict[str, str], body: bytes
    ) -> dict[str, Any]:
        target = headers.get("x-amz-target", "")
        if method != "POST" or path != "/":
            raise _error(404, "UnknownOperationException", "Unknown operation")
        if target.startswith(CE_TARGET):
            self._authorize(headers, "ce", "us-east-1", "application/x-amz-json-1.1")
            request = _json_body(body)
            if target != CE_TARGET + "GetCostAndUsage":
                raise _error(400, "UnknownOperationException", f"Unknown operation {target}")
            return self._cost_and_usage(request)
        if target.startswith(CW_TARGET):
            self._authorize(headers, "monitoring", self.org.region, "application/x-amz-json-1.0")
            request = _json_body(body)
            if target == CW_TARGET + "ListMetrics":
                return self._list_metrics(request)
            if target == CW_TARGET + "GetMetricData":
                return self._metric_data(request)
            raise _error(400, "UnknownOperationException", f"Unknown operation {target}")
        raise _error(400, "UnknownOperationException", "Missing or unknown X-Amz-Target")

    def _authorize(self, headers: dict[str, str], service: str, region: str, ctype: str) -> None:
        auth = headers.get("authorization", "")
        if not auth:
            raise _error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
        m = re.match(
            r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
            r"SignedHeaders=([^,]+), Signature=[0-9a-f]{64}$",
            auth,
        )
        if not m or "x-amz-date" not in headers:
            raise _error(400, "IncompleteSignatureException", "Authorization header is malformed")
        key_id, _, scope_region, scope_service, signed = m.groups()
        if key_id != self.org.access_key_id:
            raise _error(
                403,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        if (scope_service, scope_region) != (service, region):
            raise _error(
                403,
                "SignatureDoesNotMatch",
                f"Credential should be scoped to a valid region and service {service!r}.",
            )
        if "x-amz-target" not in signed.split(";"):
            raise _error(403, "SignatureDoesNotMatch", "X-Amz-Target must be signed")
        if headers.get("content-type", "").split(";")[0] != ctype:
            raise _error(400, "SerializationException", f"Content-Type must be {ctype}")

    # -- Cost Explorer

    def _cost_and_usage(self, request: dict[str, Any]) -> dict[str, Any]:
        period = request.get("TimePeriod") or {}
        start, end = _ce_day(period.get("Start"), "Start"), _ce_day(period.get("End"), "End")
        if start >= end:
            raise _validation("Start date (inclusive) must be before end date (exclusive)")
        if request.get("Granularity") != "DAILY":
            raise _validation("This fake answers Granularity DAILY only")
        metrics = request.get("Metrics")
        if not metrics or any(m not in CE_METRICS for m in metrics):
            raise _validation(f"Metrics must be a non-empty list of {', '.join(CE_METRICS)}")
        if any(m in USAGE_METRICS for m in metrics):
            raise _validation("This fake serves cost metrics only (no usage quantities)")
        groups = request.get("GroupBy") or []
        if len(groups) > 2:
            raise _validation("GroupBy supports at most two groups")
        keys = []
        for g in groups:
            if g.get("Type") != "DIMENSION" or g.get("Key") not in CE_DIMENSIONS:
                raise _validation(f"Unsupported GroupBy {g!r}")
            keys.append(g["Key"])
        expr = request.get("Filter")
        today = self._now().date()
        days: list[dict[str, Any]] = []
        for n in range((end - start).days):
            day = start + timedelta(days=n)
            totals: dict[tuple[str, ...], Decimal] = {}
            for line_day, service, usage_type, amount, entity in self.org.cost_lines():
                dims = {
                    "SERVICE": service,
                    "USAGE_TYPE": usage_type,
                    "LINKED_ACCOUNT": self.org.account_id,
                    "BILLING_ENTITY": entity,
                    "REGION": self.org.region,
                }
                if line_day == day and (expr is None or _matches(expr, dims)):
                    key = tuple(dims[k] for k in keys)
                    totals[key] = totals.get(key, Decimal(0)) + amount
            days.append(
                {
                    "day": day,
                    "groups": sorted(totals.items()),
                    "estimated": day >= today - timedelta(days=1),
                }
            )
        # Paging: whole days per page until ce_page_groups groups are reached.
        fingerprint = hashlib.sha256(
            json.dumps(
                {k: v for k, v in request.items() if k != "NextPageToken"}, sort_keys=True
            ).encode()
        ).hexdigest()[:16]
        first = 0
        token = request.get("NextPageToken")
        if token:
            m = re.fullmatch(r"([0-9a-f]{16})\.(\d+)", str(token))
            if not m:
                raise _error(400, "InvalidNextTokenException", "The NextPageToken is invalid")
            if m.group(1) != fingerprint:
                raise _error(400, "RequestChangedException", "The request changed between pages")
            first = int(m.group(2))
            if not 0 < first < len(days):
                raise _error(400, "InvalidNextTokenException", "The NextPageToken is invalid")
        page: list[dict[str, Any]] = []
        count, index = 0, first
        while index < len(days) and (
            not page or count + len(days[index]["groups"]) <= self.org.ce_page_groups
        ):
            count += len(days[index]["groups"])
            page.append(days[index])
            index += 1
        results = [
            {
                "TimePeriod": {
                    "Start": d["day"].isoformat(),
                    "End": (d["day"] + timedelta(days=1)).isoformat(),
                },
                "Total": {}
                if keys
                else {
                    m: _ce_amount(
                        sum((a for _, a in d["groups"]), Decimal(0)), m, self.org.currency
                    )
                    for m in metrics
                },
                "Groups": [
                    {
                        "Keys": list(key),
                        "Metrics": {m: _ce_amount(amount, m, self.org.currency) for m in metrics},
                    }
                    for key, amount in d["groups"]
                ]
                if keys
                else [],
                "Estimated": d["estimated"],
            }
            for d in page
        ]
        answer: dict[str, Any] = {
            "GroupDefinitions": [{"Type": "DIMENSION", "Key": k} for k in keys],
            "ResultsByTime": results,
            "DimensionValueAttributes": [],
        }
        if index < len(days):
            answer["NextPageToken"] = f"{fingerprint}.{index}"
        return answer

    # -- CloudWatch

    def _list_metrics(self, request: dict[str, Any]) -> dict[str, Any]:
        namespace, name = request.get("Namespace"), request.get("MetricName")
        metrics = [
            {
                "Namespace": "AWS/Bedrock",
                "MetricName": metric,
                "Dimensions": [{"Name": "ModelId", "Value": model_id}],
            }
            for model_id in sorted({r.model_id for r in self.org.usage})
            for metric in CW_METRICS
            if namespace in (None, "AWS/Bedrock") and name in (None, metric)
        ]
        first = _int_token(request.get("NextToken"), len(metrics))
        page = metrics[first : first + self.org.list_page_metrics]
        answer: dict[str, Any] = {"Metrics": page}
        if first + len(page) < len(metrics):
            answer["NextToken"] = str(first + len(page))
        return answer

    def _metric_data(self, request: dict[str, Any]) -> dict[str, Any]:
        queries = request.get("MetricDataQueries") or []
        if not queries or len(queries) > 500:
            raise _validation("MetricDataQueries must hold 1 to 500 queries")
        start, end = (
            _epoch(request.get("StartTime"), "StartTime"),
            _epoch(request.get("EndTime"), "EndTime"),
        )
        if start >= end:
            raise _validation("The parameter StartTime must be less than the parameter EndTime.")
        results = []
        for q in queries:
            stat = q.get("MetricStat") or {}
            metric = stat.get("Metric") or {}
            if stat.get("Stat") != "Sum" or stat.get("Period") != 86_400:
                raise _validation("This fake answers Stat Sum over Period 86400 only")
            dims = {d.get("Name"): d.get("Value") for d in metric.get("Dimensions") or []}
            field_name = CW_METRICS.get(str(metric.get("MetricName")))
            stamps, values = [], []
            if metric.get("Namespace") == "AWS/Bedrock" and field_name and set(dims) == {"ModelId"}:
                for row in sorted(self.org.usage, key=lambda r: r.day):
                    t = day_start(row.day)
                    if (
                        row.model_id == dims["ModelId"]
                        and start <= t < end
                        and getattr(row, field_name)
                    ):
                        stamps.append(t)
                        values.append(float(getattr(row, field_name)))
            results.append(
                {
                    "Id": q.get("Id"),
                    "Label": metric.get("MetricName"),
                    "Timestamps": stamps,
                    "Values": values,
                    "StatusCode": "Complete",
                }
            )
        first = _int_token(request.get("NextToken"), len(results))
        page = results[first : first + self.org.cw_page_results]
        answer: dict[str, Any] = {"MetricDataResults": page, "Messages": []}
        if first + len(page) < len(results):
            answer["NextToken"] = str(first + len(page))
        return answer


# --------------------------------------------------------------------------- wire helpers


def _error(status: int, type_: str, message: str) -> ApiError:
    return ApiError(status, message, type_=type_)


def _validation(message: str) -> ApiError:
    return _error(400, "ValidationException", message)


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        raise _error(400, "SerializationException", "Request body is not JSON") from None
    if not isinstance(value, dict):
        raise _error(400, "SerializationException", "Request body must be an object")
    return value


def _ce_day(value: Any, name: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise _validation(f"TimePeriod.{name} must be YYYY-MM-DD") from None


def _ce_amount(amount: Decimal, metric: str, currency: str) -> dict[str, str]:
    """A cost metric as Cost Explorer sends it: a decimal string and the currency (the
    fake has no discounts or amortisation, so every cost metric has the same amount)."""
    return {"Amount": format(amount.normalize(), "f"), "Unit": currency}


def _matches(expr: dict[str, Any], dims: dict[str, str]) -> bool:
    if "And" in expr:
        return all(_matches(e, dims) for e in expr["And"])
    if "Or" in expr:
        return any(_matches(e, dims) for e in expr["Or"])
    if "Not" in expr:
        return not _matches(expr["Not"], dims)
    if "Dimensions" in expr:
        d = expr["Dimensions"]
        if d.get("Key") not in CE_DIMENSIONS:
            raise _validation(f"Unsupported dimension {d.get('Key')!r}")
        options = d.get("MatchOptions") or ["EQUALS"]
        if any(o not in ("EQUALS", "CASE_SENSITIVE") for o in options):
            raise _validation("Dimensions support MatchOptions EQUALS and CASE_SENSITIVE only")
        return dims[d["Key"]] in (d.get("Values") or [])
    raise _validation("Filter expression must have And, Or, Not or Dimensions")


def _epoch(value: Any, name: str) -> int:
    if not isinstance(value, int | float):
        raise _validation(f"{name} must be a timestamp")
    return int(value)


def _int_token(token: Any, size: int) -> int:
    if token is None:
        return 0
    if not str(token).isdigit() or not 0 < int(token) < size:
        raise _error(400, "InvalidNextToken", "The service cannot understand the NextToken")
    return int(token)


# --------------------------------------------------------------------------- demo traffic

SONNET_45 = "anthropic.claude-sonnet-4-5-20250929-v1:0"
NOVA_PRO = "amazon.nova-pro-v1:0"

# Regional (in-region) endpoint prices; Sonnet 4.5 costs 10 % above Anthropic's list price.
DEMO_MODELS: dict[str, BedrockModel] = {
    SONNET_45: BedrockModel(
        SONNET_45,
        "Claude Sonnet 4.5 (Amazon Bedrock Edition)",
        "USE1-MP:USE1_",
        Price(Decimal("3.3"), Decimal("16.5"), Decimal("0.33"), Decimal("4.125")),
    ),
    NOVA_PRO: BedrockModel(
        NOVA_PRO, BEDROCK, "USE1-NovaPro-", Price(Decimal("0.8"), Decimal("3.2"), Decimal("0.2"))
    ),
}


def generate_account(*, today: date, days: int = 90, seed: int = 0) -> FakeBedrockAccount:
    """An account with Claude Sonnet 4.5 (Marketplace) and Nova Pro on ``days`` days up to
    ``today`` (partial), a guardrail charge and another Marketplace product; deterministic."""
    if days < 1:
        raise ValueError("days must be >= 1")
    rng = random.Random(seed * 7919 + 13)
    first = today - timedelta(days=days - 1)
    usage: list[BedrockUsageRow] = []
    lines: list[BedrockLine] = []
    for index in range(days):
        day = first + timedelta(days=index)
        factor = (0.5 if day.weekday() >= 5 else 1.0) * (
            0.4 if day == today else rng.uniform(0.85, 1.15)
        )
        for model_id, scale in ((SONNET_45, 1.0), (NOVA_PRO, 0.6)):
            inp = int(2_400_000 * scale * factor)
            usage.append(
                BedrockUsageRow(
                    day,
                    model_id,
                    input_tokens=inp,
                    output_tokens=inp // 5,
                    cache_read_tokens=inp // 2 if model_id == SONNET_45 else inp // 4,
                    cache_write_tokens=inp // 20 if model_id == SONNET_45 else 0,
                    invocations=max(1, inp // 3000),
                )
            )
        lines.append(
            BedrockLine(day, BEDROCK, "USE1-Guardrail-ContentPolicyUnitsConsumed", Decimal("0.15"))
        )
        lines.append(
            BedrockLine(
                day, "Acme Log Analytics", "USE1-MP:USE1_Units", Decimal("4.00"), MARKETPLACE
            )
        )
    return FakeBedrockAccount(models=dict(DEMO_MODELS), usage=usage, lines=lines)
