"""Google Vertex AI and the Gemini API (the Cloud Billing export in BigQuery) -> records.

Needs the optional extra ``gcp`` (google-cloud-bigquery), imported lazily here.

For the UTC days ``[start, end)``: **one** query per poll over the configured export table
(standard or detailed), restricted to ``services`` (``Vertex AI`` and ``Gemini API``: the
Gemini API of AI Studio bills through the same export) and ``cost_type = 'regular'``
(tax, adjustments and rounding are not usage), with a ``_PARTITIONTIME`` lower bound
``partition_slack_days`` before ``start`` (rows for an old usage day land in later
partitions, so the bound is wider than the usage window, and never open: the scan stays
to the days needed). The bytes BigQuery processed are logged. Rows are grouped by usage
day, project, service, SKU and currency; money is summed as ``NUMERIC`` so it stays exact.

Each SKU description maps to model + token type (``Gemini 2.5 Pro Text Input -
Predictions``, ``Generate content cached input token count gemini 2.5 flash``, ``Claude
Sonnet 4.5 Output Tokens``); an unknown SKU keeps its money as ``cost_type="other"``
(logged). **Credits** (negative) are their own cost rows, ``cost_type="credit"`` on the
same model: ``sum(aicost_cost_30d)`` is the net cost, ``cost_type!="credit"`` the gross.
The billing account's currency is kept as the source currency and converted like any
other cost. Token counts come from ``usage.amount`` when its unit is a count of tokens.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

from exporter.config import VertexConfig
from exporter.providers.cloud import CloudProvider
from exporter.providers.errors import (
    AuthError,
    ClientError,
    ConfigError,
    ParseError,
    ProviderError,
    ProviderTimeout,
    RateLimitError,
    UpstreamError,
)
from exporter.providers.http import with_retries
from exporter.providers.parse import as_decimal
from exporter.records import (
    CostRecord,
    FetchResult,
    ProjectRecord,
    UsageRecord,
    merge_costs,
    merge_usage,
)

log = logging.getLogger(__name__)

PAGE_ROWS = 10_000
ENDPOINT = "bigquery/jobs.query"
TOKEN_UNITS = frozenset({"count", "token", "tokens"})

QUERY = """
SELECT
  DATE(usage_start_time) AS day,
  project.id AS project_id,
  ANY_VALUE(project.name) AS project_name,
  service.description AS service,
  sku.description AS sku,
  currency AS currency,
  SUM(CAST(cost AS NUMERIC)) AS gross,
  SUM((SELECT IFNULL(SUM(CAST(c.amount AS NUMERIC)), 0) FROM UNNEST(credits) AS c)) AS credits,
  SUM(CAST(usage.amount AS NUMERIC)) AS usage_amount,
  ANY_VALUE(usage.unit) AS usage_unit
FROM `{table}`
WHERE _PARTITIONTIME >= @partition_start
  AND usage_start_time >= @start AND usage_start_time < @end
  AND service.description IN UNNEST(@services)
  AND cost_type = 'regular'
GROUP BY day, project_id, service, sku, currency
ORDER BY day, project_id, service, sku, currency
"""

# Token type from the SKU description (lower case); first match wins.
_TOKEN_TYPES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bcache[ds]?\b.*\b(read|hit)|\bcached input|\bcache read"), "cache_read"),
    (re.compile(r"\bcache (write|creation)"), "cache_write"),
    (re.compile(r"\b(input|prompt)\b"), "input"),
    (re.compile(r"\b(output|completion|response)\b"), "output"),
)
_MODELS: tuple[tuple[re.Pattern[str], str], ...] = (
    # "gemini 2.5 pro", "Gemini 2.5 Flash Lite", "gemini-2.0-flash"
    (re.compile(r"\bgemini[ -](\d+(?:\.\d+)?)[ -](pro|flash(?:[ -]lite)?)\b"), "gemini-{0}-{1}"),
    # "Claude Sonnet 4.5", "Claude Opus 4"
    (re.compile(r"\bclaude[ -](sonnet|opus|haiku)[ -](\d+(?:\.\d+)?)\b"), "claude-{0}-{1}"),
    # "Claude 3.5 Sonnet", "Claude 3 Haiku"
    (re.compile(r"\bclaude[ -](\d+(?:\.\d+)?)[ -](sonnet|opus|haiku)\b"), "claude-{0}-{1}"),
)
# A storage or per-hour charge mentioning a model is not a token line.
_NOT_TOKENS = re.compile(r"\b(storage|hour|hours|grounding|search|image|audio|video)\b")


@dataclass(frozen=True, slots=True)
class SkuLine:
    model: str
    token_type: str  # "" when the SKU names a model but not a token type


def classify_sku(description: str) -> SkuLine | None:
    """Model and token type a SKU description names; None when no known model is named."""
    text = description.lower()
    for pattern, template in _MODELS:
        if m := pattern.search(text):
            # Gemini ids keep the version's dot (gemini-2.5-pro), Claude ids dash it
            # (claude-sonnet-4-5), as each vendor names its models.
            sep = "." if template.startswith("gemini") else "-"
            parts = [re.sub(r"[ -]+", "-", g).replace(".", sep) for g in m.groups()]
            model = template.format(*parts)
            if _NOT_TOKENS.search(text):
                return SkuLine(model, "")
            for token_pattern, token_type in _TOKEN_TYPES:
                if token_pattern.search(text):
                    return SkuLine(model, token_type)
            return SkuLine(model, "")
    return None


class VertexProvider(CloudProvider[VertexConfig]):
    """One Cloud Billing export table, read through google-cloud-bigquery."""

    type: ClassVar[str] = "vertex"
    config_class = VertexConfig

    def _start(self) -> None:
        self._page_rows = self._page_size or PAGE_ROWS
        self._bq: Any = None
        self._unknown: set[str] = set()

    def _client(self) -> Any:
        if self._bq is not None:
            return self._bq
        import requests
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials, Credentials
        from google.cloud import bigquery

        cfg = self._config
        credentials: Credentials | None
        try:
            if cfg.anonymous:
                credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
            elif cfg.credentials_file:
                from google.oauth2 import service_account

                credentials = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
                    cfg.credentials_file,
                    scopes=["https://www.googleapis.com/auth/bigquery.readonly"],
                )
            else:
                import google.auth

                credentials, _ = google.auth.default(
                    scopes=["https://www.googleapis.com/auth/bigquery.readonly"]
                )
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"vertex/{self.account}: cannot load credentials ({type(exc).__name__})"
            ) from None
        except Exception as exc:  # google.auth.exceptions.DefaultCredentialsError
            raise AuthError(
                f"vertex/{self.account}: no Google credentials ({type(exc).__name__}); set "
                "credentials_file or Application Default Credentials"
            ) from None
        if isinstance(credentials, AnonymousCredentials):
            session: requests.Session = requests.Session()
        else:
            from google.auth.transport.requests import AuthorizedSession

            session = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
        session.hooks["response"].append(self._on_response)
        options = ClientOptions(api_endpoint=cfg.base_url) if cfg.base_url else None
        self._bq = bigquery.Client(
            project=cfg.job_project,
            credentials=credentials,
            client_options=options,
            _http=session,
        )
        return self._bq

    def _on_response(self, response: Any, *args: Any, **kwargs: Any) -> None:
        path = str(getattr(response.request, "path_url", ""))
        endpoint = (
            "bigquery/jobs.getQueryResults"
            if "/queries/" in path
            else ("bigquery/jobs.get" if "/jobs/" in path else ENDPOINT)
        )
        self._observe(endpoint, str(response.status_code))

    # -- public -------------------------------------------------------------------------

    def fetch(self, start: date, end: date) -> FetchResult:
        self._unknown = set()
        rows = with_retries(self._retry, ENDPOINT, lambda: self._query(start, end))
        usage: list[UsageRecord] = []
        costs: list[CostRecord] = []
        projects: dict[str, ProjectRecord] = {}
        for n, row in enumerate(rows):
            where = f"{ENDPOINT} row {n + 1}"
            day, project = row["day"], row["project_id"]
            if not isinstance(day, date) or not isinstance(project, str) or not project:
                raise ParseError(f"{where}: day or project_id missing")
            if not start <= day < end:
                raise ParseError(f"{where}: day {day} lies outside the requested window")
            projects.setdefault(
                project,
                ProjectRecord(self.type, self.account, project, row["project_name"] or project),
            )
            self._row(row, day, project, where, usage, costs)
        return FetchResult(
            start,
            end,
            usage=merge_usage(usage),
            costs=merge_costs(costs),
            projects=list(projects.values()),
        )

    # -- BigQuery -----------------------------------------------------------------------

    def _query(self, start: date, end: date) -> list[Any]:
        from google.cloud import bigquery

        cfg = self._config
        partition_start = start - timedelta(days=cfg.partition_slack_days)
        job_config = bigquery.QueryJobConfig(
            use_legacy_sql=False,
            query_parameters=[
                bigquery.ScalarQueryParameter(
                    "partition_start", "TIMESTAMP", _midnight(partition_start)
                ),
                bigquery.ScalarQueryParameter("start", "TIMESTAMP", _midnight(start)),
                bigquery.ScalarQueryParameter("end", "TIMESTAMP", _midnight(end)),
                bigquery.ArrayQueryParameter("services", "STRING", list(cfg.services)),
            ],
        )
        try:
            result = self._client().query_and_wait(
                QUERY.format(table=cfg.billing_table),
                job_config=job_config,
                location=cfg.location or None,
                api_timeout=self._timeout,
                wait_timeout=self._timeout,
                retry=None,  # ours: RetryPolicy around the whole query
                job_retry=None,
                page_size=self._page_rows,
            )
            rows = list(result)
        except ProviderError:
            raise
        except Exception as exc:
            raise _translate(exc) from None
        log.info(
            "vertex/%s: billing export query for %s..%s (partitions from %s) processed %s bytes, "
            "%d rows",
            self.account,
            start,
            end - timedelta(days=1),
            partition_start,
            getattr(result, "total_bytes_processed", None),
            len(rows),
        )
        return rows

    def _row(
        self,
        row: Any,
        day: date,
        project: str,
        where: str,
        usage: list[UsageRecord],
        costs: list[CostRecord],
    ) -> None:
        service, sku = str(row["service"] or ""), str(row["sku"] or "")
        currency = str(row["currency"] or "").upper()
        if not re.fullmatch(r"[A-Z]{3}", currency):
            raise ParseError(f"{where}: currency {currency[:10]!r} is no ISO 4217 code")
        gross = _money(row["gross"], f"{where} gross")
        credits = _money(row["credits"], f"{where} credits")
        line = classify_sku(sku)
        if line is None and sku not in self._unknown:
            self._unknown.add(sku)
            log.warning(
                "vertex/%s: unknown SKU %r of %r: its cost is kept as cost_type=other",
                self.account,
                sku,
                service,
            )
        token_type = line.token_type if line is not None else ""
        model = line.model if line is not None and token_type else ""
        base = self._cost_line(
            day, project, model, token_type, gross, currency, f"{service}, {sku}"
        )
        if gross:
            costs.append(base)
        if credits:
            line_item = f"{service}, {sku}, credits"
            costs.append(replace(base, cost_type="credit", amount=credits, line_item=line_item))
        unit = str(row["usage_unit"] or "").lower()
        amount = row["usage_amount"]
        if model and unit in TOKEN_UNITS and amount:
            count = as_decimal(amount, f"{where} usage_amount")
            if count != count.to_integral_value() or count < 0:
                raise ParseError(f"{where}: usage_amount {count} is not a token count")
            usage.append(
                UsageRecord(
                    provider=self.type,
                    account=self.account,
                    day=day,
                    project=project,
                    model=model,
                    source=service,
                    **{f"{token_type}_tokens": int(count)},  # type: ignore[arg-type]
                )
            )


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _money(value: Any, where: str) -> Decimal:
    if value is None:
        return Decimal(0)
    if not isinstance(value, Decimal):
        raise ParseError(f"{where}: expected NUMERIC, got {type(value).__name__}")
    return value


def _translate(exc: Exception) -> ProviderError:
    """google-api-core / requests errors -> typed provider errors (no credentials in them)."""
    import requests
    from google.api_core import exceptions as gx

    if isinstance(exc, requests.exceptions.Timeout | gx.DeadlineExceeded | TimeoutError):
        return ProviderTimeout(f"{ENDPOINT}: no response in time ({type(exc).__name__})")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return UpstreamError(f"{ENDPOINT}: {type(exc).__name__}: cannot reach the API")
    if isinstance(exc, gx.GoogleAPICallError):
        status = int(exc.code or 0)
        message = f"{ENDPOINT}: HTTP {status}: {str(exc.message)[:300]}"
        reasons = {str(e.get("reason", "")) for e in exc.errors if isinstance(e, dict)}
        if status == 429 or reasons & {"rateLimitExceeded", "quotaExceeded"}:
            return RateLimitError(message)
        if status in (401, 403):
            return AuthError(
                message + " (the credentials need bigquery.jobs.create and read "
                "access to the billing export dataset)"
            )
        if status >= 500:
            return UpstreamError(message, status)
        return ClientError(message, status or None)
    return ParseError(f"{ENDPOINT}: {type(exc).__name__}: {str(exc)[:300]}")
