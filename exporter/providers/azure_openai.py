"""Azure OpenAI through Azure Cost Management Query -> records.

Reads, for the UTC days ``[start, end)`` of one scope (a subscription or a resource group):

* **cost and quantity per day, meter and resource**: ``POST {scope}/providers/
  Microsoft.CostManagement/query?api-version=...`` with ``granularity: Daily``, the sums of
  the cost column (``Cost``, or ``PreTaxCost`` on legacy EA accounts) and ``UsageQuantity``,
  grouped by ``Meter`` and ``ResourceId`` and filtered to Cognitive Services accounts.
  Rows are positional arrays read by column **name**; ``UsageDate`` is ``yyyyMMdd``;
  ``nextLink`` pages are followed (its path and ``$skiptoken`` sent to the configured
  ``base_url``, so a proxy stays in the path and the token never goes to another host);
  a ``204`` is an empty result. Windows longer than 31 days are split.
* **meters -> model, token type, deployment kind**: :func:`parse_meter` reads names such
  as ``gpt-4o-0806-Inp-glbl Tokens``, ``gpt 4o 1120 cached Inp glbl Tokens`` or
  ``GPT-4o-mini Outp DZ 1M Tokens``. A meter it cannot read keeps its money as
  ``cost_type="other"`` with ``model=""`` on the resource (the meter name is the
  ``line_item``), and is logged once per poll.
* **currency**: every row carries the subscription's billing currency (often EUR). The
  amount is stored in that currency and converted like any other cost; a row without a
  currency fails the poll instead of being read as USD.
* **tokens** (usage rows): ``UsageQuantity`` x the meter's unit (``1M``/``1K`` in the name;
  otherwise 1K tokens, Azure's usual unit of measure for these meters), per resource,
  model and deployment kind. Requests are not in cost data and stay 0.

The deployment kind (``global``, ``data_zone``, ``regional``, with ``_batch`` for batch
deployments) goes to ``service_tier``; the resource (the Azure OpenAI account name, the
last segment of ``ResourceId``) is the ``project``.

Credentials: ``auth: client_secret`` posts the OAuth client-credentials grant to
``{login_url}/{tenant_id}/oauth2/v2.0/token`` for ``https://management.azure.com/.default``;
``auth: azure_identity`` asks azure-identity's ``DefaultAzureCredential`` (the ``[azure]``
extra, imported only then). Tokens are never logged. Throttling is normal here (a few
queries per scope per minute): a 429 honours the wait it names
(``x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after``, else ``Retry-After``) through
the shared :class:`~exporter.providers.http.RetryPolicy`. Produces, e.g.::

    aicost_cost_today{provider="azure_openai",account="azure-prod",project="contoso-aoai",
                      model="gpt-4o-0806",cost_type="tokens",currency="EUR"} 4.12
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit

import httpx

from exporter.config import AzureOpenAIConfig, Secret
from exporter.providers.errors import (
    AuthError,
    ConfigError,
    ParseError,
    ProviderTimeout,
    UpstreamError,
)
from exporter.providers.http import MAX_PAGES, ApiClient, RequestObserver, RetryPolicy
from exporter.providers.parse import as_decimal, json_field
from exporter.records import (
    CostRecord,
    FetchResult,
    ProjectRecord,
    UsageRecord,
    merge_costs,
    merge_usage,
)

log = logging.getLogger(__name__)

TOKEN_SCOPE = "https://management.azure.com/.default"
RESOURCE_TYPE = "microsoft.cognitiveservices/accounts"
QUERY_ENDPOINT = "costmanagement/query"
TOKEN_ENDPOINT = "login/token"
# Cost Management's own wait header first, then the standard one
RETRY_AFTER_HEADERS = ("x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after", "retry-after")
MAX_DAYS = 31  # days per query; longer windows are split
DEFAULT_UNIT = 1000  # tokens per UsageQuantity when the meter name states no unit


# --------------------------------------------------------------------------- meters


@dataclass(frozen=True, slots=True)
class Meter:
    """What an Azure OpenAI meter name means for our records."""

    model: str  # e.g. "gpt-4o-0806": family, then the version Azure puts in the meter
    token_type: str  # input | output | cache_read
    deployment: str  # global | data_zone | regional, "_batch" appended for batch; "" unknown
    unit: int  # tokens per unit of UsageQuantity

    @property
    def batch(self) -> bool:
        return self.deployment.endswith("batch")


# The words of a meter name, lower case, split at spaces, '-' and '_'.
DIRECTION: dict[str, str] = {
    "inp": "input",
    "input": "input",
    "outp": "output",
    "output": "output",
    "out": "output",
}
CACHED: frozenset[str] = frozenset({"cached", "cd", "cache", "cchd"})
DEPLOYMENT: dict[str, str] = {
    "glbl": "global",
    "global": "global",
    "gl": "global",
    "gbl": "global",
    "regnl": "regional",
    "regional": "regional",
    "rgnl": "regional",
    "regn": "regional",
    "dz": "data_zone",
    "datazone": "data_zone",
}
BATCH: frozenset[str] = frozenset({"batch", "bt"})
UNITS: dict[str, int] = {"1k": 1000, "1m": 1_000_000}
NOISE: frozenset[str] = frozenset({"tokens", "token", "tok", "toks"})
_WORDS = re.compile(r"[\s_\-]+")


def parse_meter(name: str) -> Meter | None:
    """``"gpt-4o-0806-Inp-glbl Tokens"`` -> gpt-4o-0806 / input / global / 1000 tokens.

    The direction word (``Inp``/``Outp``) is required; ``cached``/``cd`` before it makes
    the tokens cache reads; ``glbl``/``Gl``/``regnl``/``dz``/``Data Zone`` name the
    deployment kind, ``batch`` a batch deployment; ``1K``/``1M`` the unit. The words left
    over, in order, are the model (a leading version number gets ``gpt-``: ``5.4 mini`` ->
    ``gpt-5.4-mini``). None when no direction or no model word is found.
    """
    words = [w for w in _WORDS.split(name.strip().lower()) if w]
    token_type = ""
    cached = False
    deployment = ""
    batch = False
    unit = DEFAULT_UNIT
    model: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word == "data" and i + 1 < len(words) and words[i + 1] == "zone":
            deployment = "data_zone"
            i += 2
            continue
        if word in DIRECTION and not token_type:
            token_type = DIRECTION[word]
        elif word in CACHED:
            cached = True
        elif word in DEPLOYMENT:
            deployment = DEPLOYMENT[word]
        elif word in BATCH:
            batch = True
        elif word in UNITS:
            unit = UNITS[word]
        elif word not in NOISE:
            model.append(word)
        i += 1
    if not token_type or not model:
        return None
    if cached:
        if token_type != "input":
            return None  # a cached output meter is not something we know how to read
        token_type = "cache_read"
    joined = "-".join(model)
    if joined[0].isdigit():
        joined = "gpt-" + joined
    joined = re.sub(r"^gpt(?=\d)", "gpt-", joined)
    if batch:
        deployment = f"{deployment}_batch" if deployment else "batch"
    return Meter(joined, token_type, deployment, unit)


# --------------------------------------------------------------------------- credentials


class AccessTokenLike(Protocol):
    @property
    def token(self) -> str: ...


class TokenCredential(Protocol):
    """azure-core's credential protocol (``DefaultAzureCredential`` and test fakes)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessTokenLike: ...


def default_credential() -> TokenCredential:
    """azure-identity's ``DefaultAzureCredential`` (lazy import: the ``[azure]`` extra)."""
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError:
        raise ConfigError(
            "auth azure_identity needs the optional extra: "
            "pip install 'ai-cost-exporter[azure]' (azure-identity is not installed)"
        ) from None
    credential: TokenCredential = DefaultAzureCredential()
    return credential


# --------------------------------------------------------------------------- provider


class AzureOpenAIProvider:
    """One Cost Management query per window of up to 31 days, paged by ``nextLink``."""

    type: ClassVar[str] = "azure_openai"

    def __init__(
        self,
        config: AzureOpenAIConfig,
        client: httpx.Client,
        api_key: Secret,
        *,
        retry: RetryPolicy | None = None,
        observer: RequestObserver | None = None,
        page_size: int | None = None,
        credential: TokenCredential | None = None,
    ) -> None:
        """``api_key``: the client secret (``auth: client_secret``); ``page_size``: days
        per query (tests); ``credential``: an azure-core credential to use instead of the
        configured one (tests, or a caller that has one)."""
        self.account = config.account
        self._config = config
        self._client = client
        self._secret = api_key
        self._retry = retry
        self._observe: RequestObserver = observer or (lambda endpoint, code: None)
        self._days = page_size or MAX_DAYS
        self._credential = credential
        self._path = f"/{config.scope}/providers/Microsoft.CostManagement/query"
        self._unknown: set[str] = set()

    # -- public -------------------------------------------------------------------------

    def fetch(self, start: date, end: date) -> FetchResult:
        api = ApiClient(
            self._client,
            self._config.url,
            {"Authorization": f"Bearer {self._token()}"},
            retry=self._retry,
            observer=self._observe,
            error_message=arm_error_message,
            retry_after_headers=RETRY_AFTER_HEADERS,
        )
        self._unknown = set()
        costs: list[CostRecord] = []
        usage: list[UsageRecord] = []
        resources: set[str] = set()
        first = start
        while first < end:
            stop = min(end, first + timedelta(days=self._days))
            for row in self._rows(api, first, stop):
                if not start <= row.day < end:
                    raise ParseError(f"{row.where}: UsageDate {row.day} is outside the query")
                resources.add(row.resource)
                cost, use = self._records(row)
                costs.append(cost)
                if use is not None:
                    usage.append(use)
            first = stop
        if self._unknown:
            log.warning(
                "azure_openai/%s: meters not recognised, kept as cost_type=other: %s",
                self.account,
                ", ".join(sorted(self._unknown)),
            )
        projects = [
            ProjectRecord(self.type, self.account, name, name) for name in sorted(resources)
        ]
        return FetchResult(start, end, merge_usage(usage), merge_costs(costs), projects)

    # -- credentials --------------------------------------------------------------------

    def _token(self) -> str:
        if self._credential is None and self._config.auth == "azure_identity":
            self._credential = default_credential()
        if self._credential is not None:
            try:
                return self._credential.get_token(TOKEN_SCOPE).token
            except Exception as exc:  # azure-identity raises its own ClientAuthenticationError
                raise AuthError(
                    f"azure_openai/{self.account}: no token from azure-identity "
                    f"({type(exc).__name__}); check the identity and its role on the scope"
                ) from None
        return self._client_credentials()

    def _client_credentials(self) -> str:
        cfg = self._config
        url = f"{cfg.login}/{cfg.tenant_id}/oauth2/v2.0/token"
        form = {
            "grant_type": "client_credentials",
            "client_id": cfg.client_id or "",
            "client_secret": self._secret.value,
            "scope": TOKEN_SCOPE,
        }
        try:
            response = self._client.post(url, data=form)
        except httpx.TimeoutException:
            self._observe(TOKEN_ENDPOINT, "timeout")
            raise ProviderTimeout(f"{TOKEN_ENDPOINT}: no response from {cfg.login}") from None
        except httpx.HTTPError as exc:
            self._observe(TOKEN_ENDPOINT, "error")
            raise UpstreamError(
                f"{TOKEN_ENDPOINT}: {type(exc).__name__}: cannot reach {cfg.login}"
            ) from None
        self._observe(TOKEN_ENDPOINT, str(response.status_code))
        body = _json_or_none(response)
        if response.status_code in (400, 401, 403):
            code = body.get("error", "") if isinstance(body, dict) else ""
            raise AuthError(
                f"{TOKEN_ENDPOINT}: HTTP {response.status_code} {code}".rstrip()
                + " (check tenant_id, client_id and the client secret)"
            )
        if response.status_code >= 400:
            raise UpstreamError(
                f"{TOKEN_ENDPOINT}: HTTP {response.status_code}", response.status_code
            )
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise ParseError(f"{TOKEN_ENDPOINT}: the answer has no access_token")
        return token

    # -- query --------------------------------------------------------------------------

    def body(self, start: date, end: date) -> dict[str, Any]:
        """The query for the UTC days ``[start, end)``."""
        cfg = self._config
        return {
            "type": cfg.cost_kind,
            "timeframe": "Custom",
            "timePeriod": {
                "from": f"{start.isoformat()}T00:00:00Z",
                "to": f"{(end - timedelta(days=1)).isoformat()}T23:59:59Z",
            },
            "dataset": {
                "granularity": "Daily",
                "aggregation": {
                    "totalCost": {"name": cfg.cost_column, "function": "Sum"},
                    "totalQuantity": {"name": "UsageQuantity", "function": "Sum"},
                },
                "grouping": [
                    {"type": "Dimension", "name": "Meter"},
                    {"type": "Dimension", "name": "ResourceId"},
                ],
                "filter": {
                    "dimensions": {
                        "name": "ResourceType",
                        "operator": "In",
                        "values": [RESOURCE_TYPE],
                    }
                },
            },
        }

    def _rows(self, api: ApiClient, start: date, end: date) -> Iterator[_Row]:
        body = self.body(start, end)
        path = f"{self._path}?api-version={self._config.api_version}"
        seen: set[str] = set()
        for page_no in range(MAX_PAGES):
            where = f"{QUERY_ENDPOINT} {start}..{end - timedelta(days=1)} page {page_no + 1}"
            page = api.request_json("POST", QUERY_ENDPOINT, path, body=body)
            if page is None:
                return  # 204: no rows
            props = json_field(page, "properties", dict, where)
            yield from _read_rows(props, self._config.cost_column, where)
            link = props.get("nextLink")
            if link is None or link == "":
                return
            if not isinstance(link, str):
                raise ParseError(f"{where}: nextLink must be a string or null")
            path = self._next_path(link, where)
            if path in seen:
                raise ParseError(f"{where}: nextLink repeats a page already read")
            seen.add(path)
        raise ParseError(f"{QUERY_ENDPOINT}: more than {MAX_PAGES} pages")

    def _next_path(self, link: str, where: str) -> str:
        parts = urlsplit(link)
        if parts.path.rstrip("/").lower() != self._path.lower().rstrip("/") or not parts.query:
            raise ParseError(f"{where}: nextLink does not continue this query")
        return f"{self._path}?{parts.query}"

    def _records(self, row: _Row) -> tuple[CostRecord, UsageRecord | None]:
        meter = parse_meter(row.meter)
        if meter is None:
            self._unknown.add(row.meter)
            other = CostRecord(
                self.type, self.account, row.day, row.resource, "", "other", row.cost,
                row.currency, line_item=row.meter, attribution="unattributed",
            )  # fmt: skip
            return other, None
        cost = CostRecord(
            self.type, self.account, row.day, row.resource, meter.model, "tokens", row.cost,
            row.currency, line_item=row.meter, token_type=meter.token_type,
            service_tier=meter.deployment,
        )  # fmt: skip
        # quantities are rounded upstream: a fraction of a token is dropped, never negative
        count = max(0, int(row.quantity * meter.unit))
        usage = UsageRecord(
            self.type, self.account, row.day, row.resource, meter.model, "cost_management",
            batch="true" if meter.batch else "false", service_tier=meter.deployment,
            input_tokens=count if meter.token_type == "input" else 0,
            output_tokens=count if meter.token_type == "output" else 0,
            cache_read_tokens=count if meter.token_type == "cache_read" else 0,
        )  # fmt: skip
        return cost, usage


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True, slots=True)
class _Row:
    day: date
    meter: str
    resource: str
    cost: Decimal
    quantity: Decimal
    currency: str
    where: str


_COST_COLUMNS = ("Cost", "PreTaxCost")


def _read_rows(props: dict[str, Any], cost_column: str, where: str) -> Iterator[_Row]:
    columns = json_field(props, "columns", list, where)
    index: dict[str, int] = {}
    for i, col in enumerate(columns):
        name = col.get("name") if isinstance(col, dict) else None
        if not isinstance(name, str):
            raise ParseError(f"{where}.columns[{i}]: expected an object with a name")
        index[name.lower()] = i
    cost_name = next((c for c in (cost_column, *_COST_COLUMNS) if c.lower() in index), None)
    missing = [
        n for n in ("UsageDate", "Meter", "ResourceId", "Currency") if n.lower() not in index
    ]
    if cost_name is None:
        missing.insert(0, cost_column)
    if missing:
        raise ParseError(f"{where}: columns {', '.join(missing)} missing from the answer")
    assert cost_name is not None
    rows = json_field(props, "rows", list, where)
    for r_no, row in enumerate(rows):
        rwhere = f"{where} rows[{r_no}]"
        if not isinstance(row, list) or len(row) != len(columns):
            raise ParseError(f"{rwhere}: expected an array of {len(columns)} values")

        def cell(name: str, row: list[Any] = row) -> Any:
            return row[index[name.lower()]]

        currency = cell("Currency")
        if not isinstance(currency, str) or not re.fullmatch(r"[A-Za-z]{3}", currency):
            raise ParseError(
                f"{rwhere}: Currency {currency!r} is not an ISO 4217 code; a cost without "
                "its currency is never read as USD"
            )
        quantity = (
            as_decimal(cell("UsageQuantity"), f"{rwhere}.UsageQuantity")
            if "usagequantity" in index
            else Decimal(0)
        )
        meter = cell("Meter")
        resource = cell("ResourceId")
        yield _Row(
            day=_usage_date(cell("UsageDate"), rwhere),
            meter=meter.strip() if isinstance(meter, str) else "",
            resource=_resource_name(resource if isinstance(resource, str) else ""),
            cost=as_decimal(cell(cost_name), f"{rwhere}.{cost_name}"),
            quantity=quantity,
            currency=currency.upper(),
            where=rwhere,
        )


def _usage_date(value: Any, where: str) -> date:
    """``20260301`` (Daily granularity) or ``"2026-03-01T00:00:00"``."""
    text = str(value).strip() if isinstance(value, int | str | Decimal) else ""
    try:
        if re.fullmatch(r"\d{8}", text):
            return datetime.strptime(text, "%Y%m%d").date()
        return datetime.fromisoformat(text).date()
    except ValueError:
        raise ParseError(f"{where}.UsageDate: {text[:30]!r} is not a yyyyMMdd date") from None


def _resource_name(resource_id: str) -> str:
    """The account name at the end of an ARM resource id; ``unassigned`` when empty."""
    name = resource_id.rstrip("/").rsplit("/", 1)[-1].strip()
    return name.lower() or "unassigned"


def arm_error_message(body: Any) -> str:
    """ARM's ``{"error": {"code": ..., "message": ...}}`` as ``"code: message"``."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return ""
    parts = [str(err[k])[:300] for k in ("code", "message") if isinstance(err.get(k), str)]
    return ": ".join(parts)


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
