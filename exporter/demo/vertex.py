"""A fake Cloud Billing export in BigQuery and a loopback server speaking the BigQuery
REST API the way google-cloud-bigquery calls it (``client_options`` ``api_endpoint``).

What is faked (reference ``provider-apis.md`` §4 and ``docs/providers/vertex.md``):

* ``POST /bigquery/v2/projects/{project}/queries`` (jobs.query) with a GoogleSQL query,
  named query parameters and ``maxResults``; the answer carries ``schema``, the first
  ``rows`` page (``{"f": [{"v": ...}]}``, every value a string), ``totalRows``,
  ``totalBytesProcessed``, ``jobComplete`` and a ``pageToken`` when more rows follow;
* ``GET /bigquery/v2/projects/{project}/queries/{jobId}`` (jobs.getQueryResults) with
  ``pageToken``/``maxResults``/``startIndex``, and ``GET .../jobs/{jobId}`` (jobs.get);
* the export table: hourly rows per project and SKU (``usage_start_time``), each in an
  ingestion partition (``_PARTITIONTIME``) that can be a day or two after its usage (late
  rows), negative ``credits``, the billing account's ``currency`` (EUR in tests), and
  ``cost_type`` ``tax``/``adjustment`` rows, which the exporter's query must exclude;
* what BigQuery refuses: a query over the table (``require_partition_filter``) without a
  ``_PARTITIONTIME`` bound (400 ``invalidQuery``), an unknown table (404 ``notFound``), a
  page token of another job, legacy SQL. The SQL is not executed: the fake recognises the
  exporter's query (its aliases, parameters and filters) and aggregates its own rows the
  way that query does; any other query gets a 400. Bytes "processed" are 200 per row in the
  partitions scanned, so a looser partition bound scans (and reports) more.

Synthetic data; no credentials are checked (tests use anonymous credentials, as against a
local emulator).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from exporter.demo.http import ApiError, FakeHTTPServer, Query

DEFAULT_TABLE = "billing-admin-01.billing_export.gcp_billing_export_v1_011702_58A742_BQB4E8"
BYTES_PER_ROW = 200
MAX_PAGE_ROWS = 100_000
ALIASES = (
    "day",
    "project_id",
    "project_name",
    "service",
    "sku",
    "currency",
    "gross",
    "credits",
    "usage_amount",
    "usage_unit",
)
SCHEMA = [
    {"name": "day", "type": "DATE", "mode": "NULLABLE"},
    {"name": "project_id", "type": "STRING", "mode": "NULLABLE"},
    {"name": "project_name", "type": "STRING", "mode": "NULLABLE"},
    {"name": "service", "type": "STRING", "mode": "NULLABLE"},
    {"name": "sku", "type": "STRING", "mode": "NULLABLE"},
    {"name": "currency", "type": "STRING", "mode": "NULLABLE"},
    {"name": "gross", "type": "NUMERIC", "mode": "NULLABLE"},
    {"name": "credits", "type": "NUMERIC", "mode": "NULLABLE"},
    {"name": "usage_amount", "type": "NUMERIC", "mode": "NULLABLE"},
    {"name": "usage_unit", "type": "STRING", "mode": "NULLABLE"},
]
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
_REASON = {
    400: "invalidQuery",
    404: "notFound",
    429: "rateLimitExceeded",
    500: "backendError",
    503: "backendError",
}


@dataclass(frozen=True)
class BillingRow:
    """One row of the standard usage cost export."""

    usage_start: datetime  # UTC, on the hour
    partition: date  # the ingestion day (_PARTITIONTIME); >= the usage day
    project_id: str
    service: str
    sku: str
    cost: Decimal  # gross, in ``currency``
    credits: tuple[Decimal, ...] = ()  # negative amounts
    usage_amount: Decimal = Decimal(0)
    usage_unit: str = "count"
    currency: str = "USD"
    cost_type: str = "regular"  # regular | tax | adjustment | rounding error
    project_name: str = ""

    @property
    def day(self) -> date:
        return self.usage_start.date()


@dataclass
class FakeBillingExport:
    rows: list[BillingRow] = field(default_factory=list)
    table: str = DEFAULT_TABLE


@dataclass
class _Job:
    project: str
    job_id: str
    sql: str
    rows: list[dict[str, Any]]
    bytes_processed: int


class FakeBigQueryServer(FakeHTTPServer[FakeBillingExport]):
    """BigQuery jobs.query / getQueryResults / jobs.get over one fake billing export."""

    name = "fake-bigquery"

    def __init__(self, org: FakeBillingExport, **kwargs: Any) -> None:
        super().__init__(org, **kwargs)
        self._jobs: dict[str, _Job] = {}
        self._job_no = 0

    def error_body(self, err: ApiError) -> dict[str, Any]:
        reason = err.code or _REASON.get(err.status, "backendError")
        return {
            "error": {
                "code": err.status,
                "message": err.message,
                "errors": [{"message": err.message, "domain": "global", "reason": reason}],
                "status": _STATUS.get(err.status, "UNKNOWN"),
            }
        }

    def fault_error(self, status: int) -> ApiError:
        if status == 429:
            return ApiError(429, "Exceeded rate limits: too many api requests per user")
        return ApiError(
            status, "An internal error occurred and the request could not be completed."
        )

    def answer_with_body(
        self, method: str, path: str, query: Query, headers: dict[str, str], body: bytes
    ) -> dict[str, Any]:
        if m := re.fullmatch(r"/bigquery/v2/projects/([^/]+)/queries", path):
            if method != "POST":
                raise ApiError(405, "Method not allowed")
            return self._query(m.group(1), _json(body))
        if m := re.fullmatch(r"/bigquery/v2/projects/([^/]+)/queries/([^/]+)", path):
            return self._results(self._job(m.group(1), m.group(2)), query)
        if m := re.fullmatch(r"/bigquery/v2/projects/([^/]+)/jobs/([^/]+)", path):
            return self._job_resource(self._job(m.group(1), m.group(2)))
        raise ApiError(404, f"Not found: {path}", code="notFound")

    # -- jobs.query

    def _query(self, project: str, request: dict[str, Any]) -> dict[str, Any]:
        sql = request.get("query")
        if not isinstance(sql, str) or not sql.strip():
            raise ApiError(400, "Query is required", code="required")
        if request.get("useLegacySql", True) is not False:
            raise ApiError(400, "This fake answers GoogleSQL (useLegacySql: false) only")
        tables = re.findall(r"`([^`]+)`", sql)
        if tables != [self.org.table]:
            raise ApiError(
                404, f"Not found: Table {', '.join(tables) or '(none)'}", code="notFound"
            )
        params = _parameters(request)
        bound = re.search(r"_PARTITIONTIME\s*>=\s*@(\w+)", sql)
        if bound is None or not isinstance(params.get(bound.group(1)), datetime):
            raise ApiError(
                400,
                f"Cannot query over table '{self.org.table}' without a filter over column(s) "
                "'_PARTITIONTIME' that can be used for partition elimination",
            )
        rows, scanned = self._aggregate(sql, params, params[bound.group(1)])
        self._job_no += 1
        job = _Job(project, f"job_fake_{self._job_no:06d}", sql, rows, scanned * BYTES_PER_ROW)
        self._jobs[job.job_id] = job
        limit = _limit(request.get("maxResults"))
        return {
            "kind": "bigquery#queryResponse",
            "jobReference": {"projectId": project, "jobId": job.job_id, "location": "US"},
            "jobComplete": True,
            "cacheHit": False,
            "totalBytesProcessed": str(job.bytes_processed),
            **self._page(job, 0, limit),
        }

    def _aggregate(
        self, sql: str, params: dict[str, Any], partition_start: datetime
    ) -> tuple[list[dict[str, Any]], int]:
        missing = [a for a in ALIASES if not re.search(rf"\bAS\s+{a}\b", sql)]
        shape = (
            r"usage_start_time\s*>=\s*@start\b",
            r"usage_start_time\s*<\s*@end\b",
            r"service\.description\s+IN\s+UNNEST\(@services\)",
            r"cost_type\s*=\s*'regular'",
            r"GROUP\s+BY\s+day,\s*project_id,\s*service,\s*sku,\s*currency",
        )
        if missing or not all(re.search(p, sql) for p in shape):
            raise ApiError(400, "This fake answers the exporter's billing query only")
        start, end, services = params.get("start"), params.get("end"), params.get("services")
        if not isinstance(start, datetime) or not isinstance(end, datetime):
            raise ApiError(400, "Query parameters @start and @end must be TIMESTAMPs")
        if not isinstance(services, list):
            raise ApiError(400, "Query parameter @services must be an ARRAY<STRING>")
        floor = partition_start.astimezone(UTC).date()
        scanned = [r for r in self.org.rows if r.partition >= floor]
        groups: dict[tuple[date, str, str, str, str], list[BillingRow]] = {}
        for row in scanned:
            if start <= row.usage_start < end and row.service in services:
                if row.cost_type == "regular":
                    key = (row.day, row.project_id, row.service, row.sku, row.currency)
                    groups.setdefault(key, []).append(row)
        out = []
        for (day, project_id, service, sku, currency), members in sorted(groups.items()):
            values = [
                day.isoformat(),
                project_id,
                members[0].project_name or None,
                service,
                sku,
                currency,
                _numeric(sum((r.cost for r in members), Decimal(0))),
                _numeric(sum((c for r in members for c in r.credits), Decimal(0))),
                _numeric(sum((r.usage_amount for r in members), Decimal(0))),
                members[0].usage_unit,
            ]
            out.append({"f": [{"v": v} for v in values]})
        return out, len(scanned)

    # -- getQueryResults / jobs.get

    def _job(self, project: str, job_id: str) -> _Job:
        job = self._jobs.get(job_id)
        if job is None or job.project != project:
            raise ApiError(404, f"Not found: Job {project}:US.{job_id}", code="notFound")
        return job

    def _results(self, job: _Job, query: Query) -> dict[str, Any]:
        token = query.one("pageToken")
        if token:
            m = re.fullmatch(rf"{re.escape(job.job_id)}~(\d+)", token)
            if not m or not 0 < int(m.group(1)) < len(job.rows):
                raise ApiError(400, "Invalid page token", code="invalid")
            offset = int(m.group(1))
        else:
            offset = query.integer("startIndex", 0, 0, max(len(job.rows), 0))
        limit = _limit(query.one("maxResults"))
        return {
            "kind": "bigquery#getQueryResultsResponse",
            "jobReference": {"projectId": job.project, "jobId": job.job_id, "location": "US"},
            "jobComplete": True,
            "totalBytesProcessed": str(job.bytes_processed),
            **self._page(job, offset, limit),
        }

    def _page(self, job: _Job, offset: int, limit: int) -> dict[str, Any]:
        rows = job.rows[offset : offset + limit] if limit else []
        page: dict[str, Any] = {"schema": {"fields": SCHEMA}, "totalRows": str(len(job.rows))}
        if rows:
            page["rows"] = rows
        if offset + len(rows) < len(job.rows) and limit:
            page["pageToken"] = f"{job.job_id}~{offset + len(rows)}"
        return page

    def _job_resource(self, job: _Job) -> dict[str, Any]:
        ref = {"projectId": job.project, "jobId": job.job_id, "location": "US"}
        return {
            "kind": "bigquery#job",
            "id": f"{job.project}:US.{job.job_id}",
            "jobReference": ref,
            "configuration": {
                "jobType": "QUERY",
                "query": {"query": job.sql, "useLegacySql": False},
            },
            "status": {"state": "DONE"},
            "statistics": {
                "totalBytesProcessed": str(job.bytes_processed),
                "query": {"totalBytesProcessed": str(job.bytes_processed), "cacheHit": False},
            },
        }


# --------------------------------------------------------------------------- wire helpers


def _json(body: bytes) -> dict[str, Any]:
    import json

    try:
        value = json.loads(body or b"{}")
    except ValueError:
        raise ApiError(400, "Invalid JSON payload received.") from None
    if not isinstance(value, dict):
        raise ApiError(400, "Invalid JSON payload received.")
    return value


def _limit(value: Any) -> int:
    if value is None or value == "":
        return MAX_PAGE_ROWS
    try:
        return max(0, min(int(value), MAX_PAGE_ROWS))
    except (TypeError, ValueError):
        raise ApiError(400, f"Invalid maxResults {value!r}") from None


def _parameters(request: dict[str, Any]) -> dict[str, Any]:
    """Named query parameters: TIMESTAMP -> aware datetime, ARRAY<STRING> -> list."""
    out: dict[str, Any] = {}
    for param in request.get("queryParameters") or []:
        name, ptype = param.get("name"), param.get("parameterType") or {}
        value = param.get("parameterValue") or {}
        if ptype.get("type") == "TIMESTAMP":
            try:
                moment = datetime.fromisoformat(str(value.get("value")).replace(" ", "T"))
            except ValueError:
                raise ApiError(400, f"Invalid TIMESTAMP parameter @{name}") from None
            out[name] = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        elif ptype.get("type") == "ARRAY":
            out[name] = [v.get("value") for v in value.get("arrayValues") or []]
        else:
            out[name] = value.get("value")
    return out


def _numeric(value: Decimal) -> str:
    """A NUMERIC value (9 decimal digits) as BigQuery sends it."""
    return format(value.quantize(Decimal("0.000000001")).normalize(), "f")


# --------------------------------------------------------------------------- demo traffic

PROJECT = ("genai-prod-4711", "GenAI production")
# SKU descriptions (the exact strings are not confirmed; see docs/providers/vertex.md) and
# list prices in USD per million tokens, with a negotiated 10 % discount on Claude.
DEMO_SKUS: tuple[tuple[str, str, Decimal, str], ...] = (
    ("Vertex AI", "Claude Sonnet 4.5 Input Tokens", Decimal("2.7"), "input"),
    ("Vertex AI", "Claude Sonnet 4.5 Output Tokens", Decimal("13.5"), "output"),
    ("Vertex AI", "Claude Sonnet 4.5 Cache Read Input Tokens", Decimal("0.27"), "cache_read"),
    ("Vertex AI", "Gemini 2.5 Pro Text Input - Predictions", Decimal("1.25"), "input"),
    ("Vertex AI", "Gemini 2.5 Pro Text Output - Predictions", Decimal("10"), "output"),
    ("Gemini API", "Generate content input token count gemini 2.5 flash", Decimal("0.3"), "input"),
    (
        "Gemini API",
        "Generate content output token count gemini 2.5 flash",
        Decimal("2.5"),
        "output",
    ),
    (
        "Gemini API",
        "Generate content cached input token count gemini 2.5 flash",
        Decimal("0.075"),
        "cache_read",
    ),
)
# Tokens per 6-hour row by token type; the Claude workload is cache-heavy (a long shared
# system prompt), so its effective rate per token is the lowest of the three Claude routes.
_VOLUME = {"input": 1_000_000, "output": 200_000, "cache_read": 500_000}
_CLAUDE_VOLUME = {"input": 600_000, "output": 100_000, "cache_read": 1_800_000}


def generate_export(
    *, today: date, days: int = 90, seed: int = 0, currency: str = "USD", now_hour: int = 12
) -> FakeBillingExport:
    """Hourly rows (four per day here, to stay small) per SKU on ``days`` days up to
    ``today`` (through ``now_hour``), each ingested the same day or up to two days late; a
    free-tier credit on Gemini API rows, a daily tax row; deterministic."""
    if days < 1:
        raise ValueError("days must be >= 1")
    rng = random.Random(seed * 104_729 + 7)
    first = today - timedelta(days=days - 1)
    rows = []
    for index in range(days):
        day = first + timedelta(days=index)
        weekend = 0.5 if day.weekday() >= 5 else 1.0
        for hour in (0, 6, 12, 18):
            if day == today and hour > now_hour:
                break
            start = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
            partition = min(today, day + timedelta(days=rng.choice((0, 0, 0, 1, 2))))
            for service, sku, price, kind in DEMO_SKUS:
                volume = _CLAUDE_VOLUME if sku.startswith("Claude") else _VOLUME
                tokens = int(volume[kind] * weekend * rng.uniform(0.8, 1.2))
                cost = (Decimal(tokens) * price / Decimal(1_000_000)).quantize(Decimal("0.000001"))
                credits = (
                    (-(cost * Decimal("0.2")).quantize(Decimal("0.000001")),)
                    if service == "Gemini API"
                    else ()
                )
                rows.append(
                    BillingRow(
                        start,
                        partition,
                        PROJECT[0],
                        service,
                        sku,
                        cost,
                        credits,
                        Decimal(tokens),
                        "count",
                        currency,
                        project_name=PROJECT[1],
                    )
                )
        tax_time = datetime(day.year, day.month, day.day, tzinfo=UTC)
        rows.append(
            BillingRow(
                tax_time,
                day,
                PROJECT[0],
                "Vertex AI",
                "Tax",
                Decimal("1.50"),
                currency=currency,
                cost_type="tax",
                project_name=PROJECT[1],
            )
        )
    return FakeBillingExport(rows=rows)
