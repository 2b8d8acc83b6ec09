"""AWS Bedrock (Cost Explorer + CloudWatch, through boto3) -> records.

Needs the optional extra ``aws`` (boto3), imported lazily here: a base install still runs
the direct providers and refuses a configured ``bedrock`` block with the extra to install.

For the UTC days ``[start, end)`` of one AWS account (``account_id``, the ``project``):

* **cost**: one Cost Explorer ``GetCostAndUsage`` query (``DAILY``, ``UnblendedCost``,
  grouped by ``SERVICE`` and ``USAGE_TYPE``), filtered to the account and to
  ``SERVICE = "Amazon Bedrock"`` **or** ``BILLING_ENTITY = "AWS Marketplace"``, because
  Anthropic and other third-party models are billed by Marketplace under services named
  ``"<model> (Amazon Bedrock Edition)"``; other Marketplace services are dropped here.
  ``NextPageToken`` is followed only when Cost Explorer sends one. Every request costs
  USD 0.01, so that is the only Cost Explorer call a poll makes. Each usage type maps to
  model + token type (``USE1-MP:USE1_InputTokenCount-Units``,
  ``USW2-MP:USW2_output_tokens_standard-Units``, ``USE1-NovaPro-input-tokens``); any
  other usage type keeps its money as ``cost_type="other"`` (logged);
* **tokens**: CloudWatch ``AWS/Bedrock`` in ``region``: ``ListMetrics`` for the
  ``ModelId`` values, then ``GetMetricData`` (``Sum``, one-day periods) of
  ``InputTokenCount``, ``OutputTokenCount``, ``CacheReadInputTokenCount``,
  ``CacheWriteInputTokenCount`` and ``Invocations`` (requests).

Cost rows take the model id CloudWatch reports (``anthropic.claude-sonnet-4-5-20250929-v1:0``)
when the Marketplace service names the same model, so cost and tokens share a stream.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from exporter.config import BedrockConfig
from exporter.pricing import model_family
from exporter.providers.cloud import CloudProvider
from exporter.providers.errors import (
    AuthError,
    ClientError,
    ParseError,
    ProviderError,
    ProviderTimeout,
    RateLimitError,
    UpstreamError,
)
from exporter.providers.http import with_retries
from exporter.providers.parse import as_decimal, json_field
from exporter.records import CostRecord, FetchResult, ProjectRecord, UsageRecord, merge_costs

log = logging.getLogger(__name__)

BEDROCK_SERVICE = "Amazon Bedrock"
MARKETPLACE = "AWS Marketplace"
EDITION = " (Amazon Bedrock Edition)"
NAMESPACE = "AWS/Bedrock"
COST_METRIC = "UnblendedCost"
MAX_PAGES = 1000

# CloudWatch metric -> the UsageRecord field it fills.
TOKEN_METRICS: dict[str, str] = {
    "InputTokenCount": "input_tokens",
    "OutputTokenCount": "output_tokens",
    "CacheReadInputTokenCount": "cache_read_tokens",
    "CacheWriteInputTokenCount": "cache_write_tokens",
    "Invocations": "requests",
}

# Usage-type suffix (lower case, after the region prefix) -> token type; first match wins.
_TOKEN_TYPES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"cache[-_ ]?read"), "cache_read"),
    (re.compile(r"cache[-_ ]?write"), "cache_write"),
    (re.compile(r"input[-_ ]?token"), "input"),
    (re.compile(r"output[-_ ]?token"), "output"),
)
_MARKETPLACE_USAGE = re.compile(r"^[A-Z0-9]+-MP:[A-Z0-9]+_(?P<kind>.+?)(?:-Units)?$")
_FIRST_PARTY_USAGE = re.compile(
    r"^[A-Z0-9]+-(?P<model>.+?)-(?P<kind>(?:cache-(?:read|write)-)?(?:input|output)-tokens"
    r"(?:-[a-z]+)?)$"
)

# Errors that mean the credentials are wrong (HTTP 400 for some, so matched by code).
_AUTH_CODES = frozenset(
    {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignatureException",
        "MissingAuthenticationTokenException",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
    }
)
_THROTTLE_CODES = frozenset({"ThrottlingException", "LimitExceededException", "Throttling"})


@dataclass(frozen=True, slots=True)
class UsageLine:
    """What a Cost Explorer usage type says: a model (``""`` if none) and a token type."""

    model: str
    token_type: str  # "" for a non-token cost


def classify_usage_type(usage_type: str) -> UsageLine | None:
    """The model name and token type a usage type encodes, or None when it is unknown.

    Marketplace usage types carry no model (the service name does): ``model=""``.
    """
    if m := _MARKETPLACE_USAGE.match(usage_type):
        kind, model = m.group("kind").lower(), ""
    elif m := _FIRST_PARTY_USAGE.match(usage_type):
        kind, model = m.group("kind").lower(), m.group("model").lower()
    else:
        return None
    for pattern, token_type in _TOKEN_TYPES:
        if pattern.search(kind):
            return UsageLine(model, token_type)
    return None


def service_model(service: str) -> str:
    """``"Claude Sonnet 4.5 (Amazon Bedrock Edition)"`` -> ``"claude-sonnet-4-5"``."""
    name = service.removesuffix(EDITION).strip().lower()
    return re.sub(r"[^a-z0-9]+", "-", name).strip("-")


def _compact(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def match_model(name: str, model_ids: Iterable[str]) -> str | None:
    """The CloudWatch model id naming the same model as ``name`` (a service or usage-type
    model name), comparing families without vendor prefix, version and punctuation."""
    wanted = _compact(name)
    for model_id in sorted(model_ids):
        family = model_family(model_id)
        family = family.split(".", 1)[1] if "." in family else family
        if _compact(family) == wanted:
            return model_id
    return None


class BedrockProvider(CloudProvider[BedrockConfig]):
    """Cost Explorer and CloudWatch of one AWS account, through boto3."""

    type: ClassVar[str] = "bedrock"
    config_class = BedrockConfig

    def _start(self) -> None:
        self._ce = self._client("ce", self._config.url, "us-east-1", self._timeout)
        self._cw = self._client(
            "cloudwatch", self._config.monitoring_url, self._config.region, self._timeout
        )
        self._unknown: set[str] = set()

    def _client(self, service: str, url: str, region: str, timeout: float) -> Any:
        import boto3
        import botocore.config
        import botocore.session

        core = botocore.session.Session()
        if self._config.credentials_file:
            core.set_config_variable("credentials_file", self._config.credentials_file)
        if self._config.profile:
            core.set_config_variable("profile", self._config.profile)
        session = boto3.session.Session(botocore_session=core, region_name=region)
        settings = botocore.config.Config(
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"total_max_attempts": 1, "mode": "standard"},  # ours: RetryPolicy
        )
        return session.client(service, endpoint_url=url, config=settings)

    # -- public -------------------------------------------------------------------------

    def fetch(self, start: date, end: date) -> FetchResult:
        self._unknown = set()
        usage = self._usage(start, end)
        model_ids = {u.model for u in usage}
        costs = [c for c in self._costs(start, end, model_ids) if start <= c.day < end]
        project = ProjectRecord(
            self.type, self.account, self._config.account_id, f"AWS {self._config.account_id}"
        )
        return FetchResult(start, end, usage=usage, costs=merge_costs(costs), projects=[project])

    # -- Cost Explorer ------------------------------------------------------------------

    def _costs(self, start: date, end: date, model_ids: set[str]) -> Iterator[CostRecord]:
        request: dict[str, Any] = {
            "TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()},
            "Granularity": "DAILY",
            "Metrics": [COST_METRIC],
            "Filter": {
                "And": [
                    {
                        "Dimensions": {
                            "Key": "LINKED_ACCOUNT",
                            "Values": [self._config.account_id],
                        }
                    },
                    {
                        "Or": [
                            {"Dimensions": {"Key": "SERVICE", "Values": [BEDROCK_SERVICE]}},
                            {"Dimensions": {"Key": "BILLING_ENTITY", "Values": [MARKETPLACE]}},
                        ]
                    },
                ]
            },
            "GroupBy": [
                {"Type": "DIMENSION", "Key": "SERVICE"},
                {"Type": "DIMENSION", "Key": "USAGE_TYPE"},
            ],
        }
        token: str | None = None
        seen: set[str] = set()
        for page_no in range(1, MAX_PAGES + 1):
            body = {**request, **({"NextPageToken": token} if token else {})}
            page = self._call(self._ce, "ce/GetCostAndUsage", "get_cost_and_usage", body)
            where = f"ce/GetCostAndUsage page {page_no}"
            for r_no, result in enumerate(json_field(page, "ResultsByTime", list, where)):
                yield from self._result(result, f"{where} ResultsByTime[{r_no}]", model_ids)
            token = page.get("NextPageToken") or None
            if token is None:
                return
            if token in seen:
                raise ParseError(f"{where}: NextPageToken repeats a token already followed")
            seen.add(token)
        raise ParseError(f"ce/GetCostAndUsage: more than {MAX_PAGES} pages")

    def _result(self, result: Any, where: str, model_ids: set[str]) -> Iterator[CostRecord]:
        period = json_field(result, "TimePeriod", dict, where)
        day = _iso_day(json_field(period, "Start", str, f"{where}.TimePeriod"), where)
        for g_no, group in enumerate(json_field(result, "Groups", list, where)):
            gwhere = f"{where}.Groups[{g_no}]"
            keys = json_field(group, "Keys", list, gwhere)
            if len(keys) != 2 or not all(isinstance(k, str) for k in keys):
                raise ParseError(f"{gwhere}.Keys: expected [SERVICE, USAGE_TYPE]")
            service, usage_type = keys
            if service != BEDROCK_SERVICE and not service.endswith(EDITION):
                continue  # another Marketplace product, not Bedrock
            metric = json_field(
                json_field(group, "Metrics", dict, gwhere), COST_METRIC, dict, gwhere
            )
            amount = as_decimal(json_field(metric, "Amount", str, gwhere), f"{gwhere} Amount")
            currency = json_field(metric, "Unit", str, gwhere).upper()
            if not re.fullmatch(r"[A-Z]{3}", currency):
                raise ParseError(f"{gwhere}: {COST_METRIC} Unit {currency[:10]!r} is no currency")
            if amount == 0:
                continue
            yield self._cost(day, service, usage_type, amount, currency, model_ids)

    def _cost(
        self,
        day: date,
        service: str,
        usage_type: str,
        amount: Decimal,
        currency: str,
        model_ids: set[str],
    ) -> CostRecord:
        line = classify_usage_type(usage_type)
        model = ""
        if line is not None:
            name = service_model(service) if service != BEDROCK_SERVICE else line.model
            model = match_model(name, model_ids) or name
        elif usage_type not in self._unknown:
            self._unknown.add(usage_type)
            log.warning(
                "bedrock/%s: unknown usage type %r of %r: its cost is kept as cost_type=other",
                self.account,
                usage_type,
                service,
            )
        token_type = line.token_type if line is not None else ""
        project = self._config.account_id
        line_item = f"{service}, {usage_type}"
        return self._cost_line(day, project, model, token_type, amount, currency, line_item)

    # -- CloudWatch ---------------------------------------------------------------------

    def _usage(self, start: date, end: date) -> list[UsageRecord]:
        model_ids = sorted(self._model_ids())
        if not model_ids:
            return []
        queries: list[dict[str, Any]] = []
        what: dict[str, tuple[str, str]] = {}  # query Id -> (model id, metric)
        for m_no, model_id in enumerate(model_ids):
            for n, metric in enumerate(TOKEN_METRICS):
                query_id = f"m{m_no}_{n}"
                what[query_id] = (model_id, metric)
                stat = {
                    "Metric": {
                        "Namespace": NAMESPACE,
                        "MetricName": metric,
                        "Dimensions": [{"Name": "ModelId", "Value": model_id}],
                    },
                    "Period": 86_400,
                    "Stat": "Sum",
                }
                queries.append({"Id": query_id, "MetricStat": stat, "ReturnData": True})
        counts: dict[tuple[date, str], dict[str, int]] = {}
        for chunk_no in range(0, len(queries), 500):  # GetMetricData takes 500 queries
            chunk = queries[chunk_no : chunk_no + 500]
            for result_id, day, value in self._metric_data(chunk, start, end):
                if result_id not in what:
                    raise ParseError(f"cloudwatch/GetMetricData: unknown result Id {result_id!r}")
                model_id, metric = what[result_id]
                row = counts.setdefault((day, model_id), {})
                row[TOKEN_METRICS[metric]] = row.get(TOKEN_METRICS[metric], 0) + value
        return [
            UsageRecord(
                provider=self.type,
                account=self.account,
                day=day,
                project=self._config.account_id,
                model=model_id,
                source="cloudwatch",
                **fields,  # type: ignore[arg-type]
            )
            for (day, model_id), fields in sorted(counts.items())
            if start <= day < end and any(fields.values())
        ]

    def _model_ids(self) -> set[str]:
        found: set[str] = set()
        token: str | None = None
        for page_no in range(1, MAX_PAGES + 1):
            body: dict[str, Any] = {"Namespace": NAMESPACE, "MetricName": "InputTokenCount"}
            if token:
                body["NextToken"] = token
            page = self._call(self._cw, "cloudwatch/ListMetrics", "list_metrics", body)
            where = f"cloudwatch/ListMetrics page {page_no}"
            for metric in json_field(page, "Metrics", list, where):
                for dim in metric.get("Dimensions") or []:
                    if dim.get("Name") == "ModelId" and isinstance(dim.get("Value"), str):
                        found.add(dim["Value"])
            token = page.get("NextToken") or None
            if token is None:
                return found
        raise ParseError(f"cloudwatch/ListMetrics: more than {MAX_PAGES} pages")

    def _metric_data(
        self, queries: list[dict[str, Any]], start: date, end: date
    ) -> Iterator[tuple[str, date, int]]:
        token: str | None = None
        for page_no in range(1, MAX_PAGES + 1):
            body: dict[str, Any] = {
                "MetricDataQueries": queries,
                "StartTime": _midnight(start),
                "EndTime": _midnight(end),
                "ScanBy": "TimestampAscending",
            }
            if token:
                body["NextToken"] = token
            page = self._call(self._cw, "cloudwatch/GetMetricData", "get_metric_data", body)
            where = f"cloudwatch/GetMetricData page {page_no}"
            for r_no, result in enumerate(json_field(page, "MetricDataResults", list, where)):
                rwhere = f"{where} MetricDataResults[{r_no}]"
                status = result.get("StatusCode")
                if status not in ("Complete", "PartialData"):
                    raise ParseError(f"{rwhere}: StatusCode {status!r}")
                stamps = json_field(result, "Timestamps", list, rwhere)
                values = json_field(result, "Values", list, rwhere)
                if len(stamps) != len(values):
                    raise ParseError(f"{rwhere}: Timestamps and Values differ in length")
                for stamp, value in zip(stamps, values, strict=True):
                    yield result["Id"], _stamp_day(stamp, rwhere), _token_count(value, rwhere)
            token = page.get("NextToken") or None
            if token is None:
                return
        raise ParseError(f"cloudwatch/GetMetricData: more than {MAX_PAGES} pages")

    # -- boto3 calls ----------------------------------------------------------------------

    def _call(self, client: Any, endpoint: str, operation: str, body: dict[str, Any]) -> Any:
        method: Callable[..., Any] = getattr(client, operation)
        return with_retries(self._retry, endpoint, lambda: self._once(endpoint, method, body))

    def _once(self, endpoint: str, method: Callable[..., Any], body: dict[str, Any]) -> Any:
        from botocore import exceptions as bx

        try:
            response = method(**body)
        except bx.ClientError as exc:
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            self._observe(endpoint, str(status or "error"))
            raise _client_error(endpoint, exc.response, status) from None
        except (bx.ReadTimeoutError, bx.ConnectTimeoutError):
            self._observe(endpoint, "timeout")
            raise ProviderTimeout(f"{endpoint}: no response in time") from None
        except (bx.NoCredentialsError, bx.PartialCredentialsError, bx.ProfileNotFound) as exc:
            raise AuthError(
                f"{endpoint}: no usable AWS credentials ({type(exc).__name__}); set them in "
                "the environment, a profile, credentials_file or an instance/pod role"
            ) from None
        except bx.BotoCoreError as exc:  # connection refused, bad response framing
            self._observe(endpoint, "error")
            raise UpstreamError(f"{endpoint}: {type(exc).__name__}: cannot reach the API") from None
        meta = response.get("ResponseMetadata", {})
        self._observe(endpoint, str(meta.get("HTTPStatusCode", 200)))
        return response


def _client_error(endpoint: str, response: dict[str, Any], status: int) -> ProviderError:
    error = response.get("Error", {})
    code = str(error.get("Code", ""))[:80]
    message = f"{endpoint}: HTTP {status} {code}: {str(error.get('Message', ''))[:300]}"
    if code in _AUTH_CODES or status in (401, 403):
        return AuthError(
            message + " (check the AWS credentials and ce:GetCostAndUsage, "
            "cloudwatch:GetMetricData, cloudwatch:ListMetrics)"
        )
    if code in _THROTTLE_CODES or status == 429:
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        return RateLimitError(message, _retry_after(headers.get("retry-after")))
    if status >= 500:
        return UpstreamError(message, status)
    if code == "DataUnavailableException":
        return UpstreamError(message, status)  # retried next cycle
    return ClientError(message, status or None)


def _retry_after(value: Any) -> float | None:
    try:
        return max(float(value), 0.0) if value is not None else None
    except (TypeError, ValueError):
        return None


def _iso_day(value: str, where: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ParseError(f"{where}: {value[:40]!r} is not a YYYY-MM-DD day") from None


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _stamp_day(stamp: Any, where: str) -> date:
    if not isinstance(stamp, datetime):
        raise ParseError(f"{where}: a timestamp is not a time")
    moment = stamp.astimezone(UTC)
    if moment.time() != datetime.min.time():
        raise ParseError(f"{where}: {moment.isoformat()} is not a UTC midnight")
    return moment.date()


def _token_count(value: Any, where: str) -> int:
    """A CloudWatch Sum of counts (a float on the wire) as an exact integer."""
    number = as_decimal(str(value), where) if isinstance(value, float) else as_decimal(value, where)
    if number != number.to_integral_value() or number < 0:
        raise ParseError(f"{where}: {number} is not a token count")
    return int(number)
