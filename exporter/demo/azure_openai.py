"""A fake Azure subscription and a loopback server speaking Entra ID and Cost Management.

What is faked (reference ``provider-apis.md`` §6 and ``docs/providers/azure_openai.md``):

* ``POST /{tenant}/oauth2/v2.0/token``: the OAuth client-credentials grant (form body:
  ``grant_type=client_credentials``, ``client_id``, ``client_secret``, ``scope`` ending in
  ``/.default``); a wrong client or secret gets Entra's ``400``/``401`` error body
  (``{"error": "invalid_client", "error_description": "AADSTS...", ...}``).
* ``POST /subscriptions/{id}[/resourceGroups/{rg}]/providers/Microsoft.CostManagement/
  query?api-version=...``: a bearer token it issued is required (401
  ``InvalidAuthenticationToken``); a missing or unknown ``api-version`` is refused with
  400 (``MissingApiVersionParameter`` / ``InvalidApiVersionParameter``) as ARM does. The
  body must be a ``Custom`` timeframe with ``timePeriod``, ``granularity`` ``Daily`` or
  ``None``, Sum aggregations of known columns, at most two ``Dimension`` groupings and an
  optional ``ResourceType`` ``In`` filter. The answer has positional ``rows`` aligned to
  ``columns`` (aggregations, ``UsageDate`` as ``yyyyMMdd``, the groupings, ``Currency``),
  ``nextLink`` with a ``$skiptoken`` after :attr:`FakeAzureSubscription.page_rows` rows
  (the same body is posted to it), and ``204`` with no body for an empty result.
* Throttling: after :attr:`FakeAzureSubscription.queries_per_window` queries the next one
  gets ``429`` with ``Retry-After`` and the ``x-ms-ratelimit-microsoft.costmanagement-qpu-*``
  headers, and the window starts over (a client that waits is served again).

The truth is :class:`AzureCostRow`: cost in the subscription's billing currency, quantity
in the meter's unit, and what the meter means (model, token type, tokens), never sent.
Everything here is synthetic.
"""

from __future__ import annotations

import base64
import json
import random
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from urllib.parse import parse_qsl, quote

from exporter.demo.http import ApiError, FakeHTTPServer, Query, Response, json_response

DEFAULT_SUBSCRIPTION = "6a3e0c7e-1f2b-4c11-9d7a-00000000a0a1"
DEFAULT_TENANT = "0b9e2f4c-7d31-4e5a-8c6b-00000000b0b1"
DEFAULT_CLIENT_ID = "5c1d8e2a-3f4b-4a6c-9e7d-00000000c0c1"
DEFAULT_CLIENT_SECRET = "fake-azure-client-secret-for-tests"  # deliberately not secret-shaped
API_VERSIONS = ("2023-03-01", "2023-11-01", "2024-08-01", "2025-03-01")
AGGREGATION_COLUMNS = ("Cost", "PreTaxCost", "CostUSD", "UsageQuantity")
DIMENSIONS = (
    "Meter",
    "MeterCategory",
    "MeterSubCategory",
    "ResourceId",
    "ResourceGroupName",
    "ResourceType",
    "ServiceName",
)
QUERY_TYPES = ("Usage", "ActualCost", "AmortizedCost")
RESOURCE_TYPE = "microsoft.cognitiveservices/accounts"
TOKEN_SCOPE = "https://management.azure.com/.default"


# --------------------------------------------------------------------------- truth model


@dataclass
class AzureCostRow:
    """One day of one meter on one resource. The last four fields are truth, never sent."""

    day: date
    resource_id: str  # ARM id, lower case as Cost Management reports it
    meter: str  # the Meter dimension, verbatim
    cost: Decimal  # in the subscription's billing currency, exact
    quantity: Decimal  # in the meter's unit of measure (1K or 1M tokens, hours)
    model: str = ""  # what the meter is: "" for a non-token meter
    token_type: str = ""  # input | output | cache_read
    tokens: int = 0
    deployment: str = ""  # global | data_zone | regional (+ "_batch")

    @property
    def resource_group(self) -> str:
        parts = self.resource_id.split("/")
        return parts[4] if len(parts) > 4 else ""


@dataclass
class FakeAzureSubscription:
    """A fake subscription: Azure OpenAI cost rows plus the app registration that reads them."""

    subscription_id: str = DEFAULT_SUBSCRIPTION
    tenant_id: str = DEFAULT_TENANT
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    currency: str = "EUR"  # the billing currency of the subscription
    rows: list[AzureCostRow] = field(default_factory=list)
    page_rows: int = 1000  # rows per page before a nextLink (Cost Management uses 1000-5000)
    queries_per_window: int = 0  # 0: never throttle; else a 429 after this many queries
    retry_after: int = 30
    standard_retry_after: bool = True  # False: only the x-ms-...-qpu-retry-after header
    empty_status: int = 204  # 204 (no body) or 200 with no rows for an empty result
    tokens_issued: set[str] = field(default_factory=set)
    queries_in_window: int = 0

    def scale_day(self, day: date, factor: Decimal | int | str) -> None:
        """Revise one day's cost and quantity (the list is replaced, never edited in place)."""
        f = Decimal(factor)
        self.rows = [
            replace(r, cost=r.cost * f, quantity=r.quantity * f) if r.day == day else r
            for r in self.rows
        ]


# --------------------------------------------------------------------------- query


@dataclass(frozen=True)
class _Query:
    kind: str
    start: date
    end: date  # inclusive: Cost Management's "to" is the last instant asked for
    daily: bool
    aggregations: tuple[str, ...]  # column names, in the order of the body
    groupings: tuple[str, ...]
    resource_types: frozenset[str] | None


def _bad(code: str, message: str, status: int = 400) -> ApiError:
    return ApiError(status, message, code=code)


def _instant(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise _bad("BadRequest", f"timePeriod.{name} must be an ISO 8601 date-time")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _bad("BadRequest", f"timePeriod.{name}: cannot parse {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_query(body: bytes) -> _Query:
    """Validate a query body the way the fake understands it; 400 on anything else."""
    try:
        data = json.loads(body or b"null")
    except ValueError:
        raise _bad("BadRequest", "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise _bad("BadRequest", "The query definition is required.")
    if data.get("type") not in QUERY_TYPES:
        raise _bad("BadRequest", f"type must be one of {', '.join(QUERY_TYPES)}")
    if data.get("timeframe") != "Custom":
        raise _bad("BadRequest", "the fake answers timeframe Custom only")
    period = data.get("timePeriod")
    if not isinstance(period, dict):
        raise _bad("BadRequest", "timePeriod is required when timeframe is Custom")
    start = _instant(period.get("from"), "from")
    end = _instant(period.get("to"), "to")
    if end < start:
        raise _bad("BadRequest", "timePeriod.to must not be before timePeriod.from")
    if (end - start).days > 366:
        raise _bad("BadRequest", "The time period of a query must not exceed one year.")
    dataset = data.get("dataset")
    if not isinstance(dataset, dict):
        raise _bad("BadRequest", "dataset is required")
    granularity = dataset.get("granularity", "None")
    if granularity not in ("Daily", "None"):
        raise _bad("BadRequest", f"granularity {granularity!r} is not supported")
    aggregation = dataset.get("aggregation")
    if not isinstance(aggregation, dict) or not aggregation:
        raise _bad("BadRequest", "dataset.aggregation is required")
    columns = []
    for alias, spec in aggregation.items():
        if not isinstance(spec, dict) or spec.get("function") != "Sum":
            raise _bad("BadRequest", f"aggregation {alias}: only function Sum is supported")
        if spec.get("name") not in AGGREGATION_COLUMNS:
            raise _bad("BadRequest", f"aggregation {alias}: unknown column {spec.get('name')!r}")
        columns.append(str(spec["name"]))
    grouping = dataset.get("grouping", [])
    if not isinstance(grouping, list) or len(grouping) > 2:
        raise _bad("BadRequest", "dataset.grouping takes at most 2 groupings")
    dims = []
    for g in grouping:
        if (
            not isinstance(g, dict)
            or g.get("type") != "Dimension"
            or g.get("name") not in DIMENSIONS
        ):
            raise _bad("BadRequest", f"grouping {g!r}: expected a known Dimension")
        dims.append(str(g["name"]))
    types: frozenset[str] | None = None
    flt = dataset.get("filter")
    if flt is not None:
        dim = flt.get("dimensions") if isinstance(flt, dict) else None
        if (
            not isinstance(dim, dict)
            or dim.get("name") != "ResourceType"
            or dim.get("operator") != "In"
            or not isinstance(dim.get("values"), list)
        ):
            raise _bad("BadRequest", "the fake filters on ResourceType In [...] only")
        types = frozenset(str(v).lower() for v in dim["values"])
    return _Query(
        str(data["type"]),
        start.date(),
        end.date(),
        granularity == "Daily",
        tuple(columns),
        tuple(dims),
        types,
    )


def _dimension(row: AzureCostRow, name: str) -> str:
    return {
        "Meter": row.meter,
        "MeterCategory": "Cognitive Services",
        "MeterSubCategory": "Azure OpenAI",
        "ResourceId": row.resource_id,
        "ResourceGroupName": row.resource_group,
        "ResourceType": RESOURCE_TYPE,
        "ServiceName": "Cognitive Services",
    }[name]


def query_rows(
    sub: FakeAzureSubscription, q: _Query, resource_group: str | None
) -> tuple[list[dict[str, str]], list[list[Any]]]:
    """(columns, rows) of a parsed query over the subscription (or one resource group)."""
    sums: dict[tuple[Any, ...], list[Decimal]] = {}
    for r in sub.rows:
        if not q.start <= r.day <= q.end:
            continue
        if resource_group is not None and r.resource_group != resource_group.lower():
            continue
        if q.resource_types is not None and RESOURCE_TYPE not in q.resource_types:
            continue
        key = (
            int(r.day.strftime("%Y%m%d")) if q.daily else None,
            *(_dimension(r, d) for d in q.groupings),
        )
        values = sums.setdefault(key, [Decimal(0)] * len(q.aggregations))
        for i, name in enumerate(q.aggregations):
            values[i] += r.quantity if name == "UsageQuantity" else r.cost
    columns = [{"name": n, "type": "Number"} for n in q.aggregations]
    if q.daily:
        columns.append({"name": "UsageDate", "type": "Number"})
    columns += [{"name": d, "type": "String"} for d in q.groupings]
    columns.append({"name": "Currency", "type": "String"})
    rows = []
    for key in sorted(sums, key=lambda k: tuple(str(x) for x in k)):
        day, *dims = key
        rows.append([*sums[key], *([day] if q.daily else []), *dims, sub.currency])
    return columns, rows


def _skiptoken(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _offset(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        kind, _, number = text.partition(":")
        if kind != "offset":
            raise ValueError(text)
        return int(number)
    except ValueError:
        raise _bad("BadRequest", "The $skiptoken is not valid.") from None


# --------------------------------------------------------------------------- server


class FakeAzureServer(FakeHTTPServer[FakeAzureSubscription]):
    """Serves a :class:`FakeAzureSubscription`: ``base_url`` is both the ARM root and the
    Entra ID login root (``login_url``)."""

    name = "fake-azure"

    @property
    def subscription(self) -> FakeAzureSubscription:
        return self.org

    def error_body(self, err: ApiError) -> dict[str, Any]:
        """ARM's error shape: ``{"error": {"code", "message"}}``."""
        defaults = {401: "InvalidAuthenticationToken", 404: "NotFound", 429: "429"}
        code = err.code or defaults.get(err.status, "InternalServerError")
        return {"error": {"code": code, "message": err.message}}

    def fault_error(self, status: int) -> ApiError:
        message = (
            "Too many requests. Please retry."
            if status == 429
            else "An error occurred in the fake Cost Management service."
        )
        return ApiError(status, message)

    def _dispatch(
        self, method: str, path: str, query: Query, headers: dict[str, str], body: bytes
    ) -> Response:
        try:
            with self.lock:
                if path.endswith("/oauth2/v2.0/token"):
                    return self._token(method, path, body)
                return self._query(method, path, query, headers, body)
        except ApiError as err:
            return self.error_response(err)

    # -- Entra ID

    def _token(self, method: str, path: str, body: bytes) -> Response:
        sub = self.subscription
        form = dict(parse_qsl(body.decode("utf-8", "replace")))
        tenant = path.split("/")[1]

        def refuse(status: int, error: str, description: str) -> Response:
            return json_response(
                status,
                {"error": error, "error_description": description, "error_codes": [7000215]},
            )

        if method != "POST":
            return refuse(405, "invalid_request", "AADSTS900561: The endpoint only accepts POST.")
        if tenant != sub.tenant_id:
            return refuse(400, "invalid_tenant", f"AADSTS90002: Tenant '{tenant}' not found.")
        if form.get("grant_type") != "client_credentials":
            return refuse(400, "unsupported_grant_type", "AADSTS70003: grant type not supported")
        if not str(form.get("scope", "")).endswith("/.default"):
            return refuse(400, "invalid_scope", "AADSTS1002012: scope must end in /.default")
        if form.get("client_id") != sub.client_id:
            return refuse(400, "unauthorized_client", "AADSTS700016: Application not found.")
        if form.get("client_secret") != sub.client_secret:
            return refuse(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
        token = f"fake-arm-token-{len(sub.tokens_issued) + 1}"
        sub.tokens_issued.add(token)
        return json_response(
            200,
            {
                "token_type": "Bearer",
                "expires_in": 3599,
                "ext_expires_in": 3599,
                "access_token": token,
            },
        )

    # -- Cost Management

    def _query(
        self, method: str, path: str, query: Query, headers: dict[str, str], body: bytes
    ) -> Response:
        sub = self.subscription
        parts = path.rstrip("/").split("/")
        # /subscriptions/{id}[/resourceGroups/{rg}]/providers/Microsoft.CostManagement/query
        tail = [p.lower() for p in parts[-3:]]
        if tail != ["providers", "microsoft.costmanagement", "query"] or parts[1:2] != [
            "subscriptions"
        ]:
            raise ApiError(404, f"No route for {path} (fake Cost Management).")
        scope = parts[2:-3]
        version = query.one("api-version")
        if version is None:
            raise _bad(
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        if version not in API_VERSIONS:
            raise _bad(
                "InvalidApiVersionParameter",
                f"The api-version '{version}' is invalid. The supported versions are "
                f"'{','.join(API_VERSIONS)}'.",
            )
        self._authorize(headers.get("authorization"))
        if scope[0].lower() != sub.subscription_id:
            raise _bad(
                "SubscriptionNotFound", f"The subscription '{scope[0]}' could not be found.", 404
            )
        resource_group = None
        if len(scope) == 3 and scope[1].lower() == "resourcegroups":
            resource_group = scope[2]
        elif len(scope) != 1:
            raise ApiError(404, f"No route for {path} (fake Cost Management).")
        if method != "POST":
            raise ApiError(405, f"The requested resource does not support http method '{method}'.")
        if sub.queries_per_window:
            if sub.queries_in_window >= sub.queries_per_window:
                sub.queries_in_window = 0
                err = ApiError(429, "Too many requests. Please retry.")
                err.headers.update(self._qpu_headers(sub))
                raise err
            sub.queries_in_window += 1
        q = parse_query(body)
        columns, rows = query_rows(sub, q, resource_group)
        token = query.one("$skiptoken")
        offset = _offset(token) if token else 0
        if not rows and offset == 0 and sub.empty_status == 204:
            return Response(204, b"", {})
        page = rows[offset : offset + sub.page_rows]
        following = offset + sub.page_rows
        next_link = (
            f"{self.base_url}{quote(path)}?api-version={version}&$skiptoken={_skiptoken(following)}"
            if following < len(rows)
            else None
        )
        payload = {
            "id": f"{path.rsplit('/', 1)[0]}/query/00000000-fake-query",
            "name": "00000000-fake-query",
            "type": "Microsoft.CostManagement/query",
            "properties": {"nextLink": next_link, "columns": columns, "rows": page},
        }
        return json_response(200, payload)

    def _authorize(self, header: str | None) -> None:
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _bad(
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
                401,
            )
        if token.strip() not in self.subscription.tokens_issued:
            raise _bad("InvalidAuthenticationToken", "The access token is invalid.", 401)

    @staticmethod
    def _qpu_headers(sub: FakeAzureSubscription) -> dict[str, str]:
        prefix = "x-ms-ratelimit-microsoft.costmanagement-qpu"
        headers = {
            f"{prefix}-retry-after": str(sub.retry_after),
            f"{prefix}-consumed": str(sub.queries_per_window),
            f"{prefix}-remaining": "0",
        }
        if sub.standard_retry_after:
            headers["Retry-After"] = str(sub.retry_after)
        return headers


# --------------------------------------------------------------------------- generated subscription

THOUSAND = Decimal(1000)
MILLION = Decimal(1_000_000)

# USD per 1M tokens of Azure OpenAI's global deployments: (input, cached input, output).
# Data zone and regional deployments cost more (the uplift below).
PRICES_PER_MTOK: dict[str, tuple[Decimal, Decimal, Decimal]] = {
    "gpt-4o-0806": (Decimal("2.50"), Decimal("1.25"), Decimal("10.00")),
    "gpt-4o-mini-0718": (Decimal("0.15"), Decimal("0.075"), Decimal("0.60")),
}
UPLIFT: dict[str, Decimal] = {
    "global": Decimal(1),
    "data_zone": Decimal("1.1"),
    "regional": Decimal("1.1"),
}
PTU_PRICE_PER_HOUR = Decimal("1.00")  # a provisioned deployment, billed per hour (no tokens)

# The meter names of each (model, deployment, token type): in the mixed formats seen in
# real cost data (hyphenated, spaced, "1M Tokens" suffix, abbreviated).
METERS: dict[tuple[str, str, str], tuple[str, int]] = {
    ("gpt-4o-0806", "regional", "input"): ("gpt-4o-0806-Inp-regnl Tokens", 1000),
    ("gpt-4o-0806", "regional", "cache_read"): ("gpt 4o 0806 cached Inp regnl Tokens", 1000),
    ("gpt-4o-0806", "regional", "output"): ("gpt-4o-0806-Outp-regnl Tokens", 1000),
    ("gpt-4o-mini-0718", "data_zone", "input"): ("GPT-4o-mini-0718 Inp DZ 1M Tokens", 1_000_000),
    ("gpt-4o-mini-0718", "data_zone", "cache_read"): (
        "4o mini 0718 cd Inp DZ 1M Tokens",
        1_000_000,
    ),
    ("gpt-4o-mini-0718", "data_zone", "output"): ("GPT-4o-mini-0718 Outp DZ 1M Tokens", 1_000_000),
}
PTU_METER = "Provisioned Managed Global Hour"

# (resource, model, deployment, weekday requests, input per request, output per request,
#  cached share of input)
_TRAFFIC: tuple[tuple[str, str, str, int, int, int, float], ...] = (
    ("contoso-aoai-swc", "gpt-4o-0806", "regional", 250, 2400, 380, 0.15),
    ("contoso-aoai-swc", "gpt-4o-mini-0718", "data_zone", 3000, 1500, 200, 0.3),
    ("contoso-aoai-eus2", "gpt-4o-0806", "regional", 80, 3000, 500, 0.1),
)
_RESOURCE_GROUP = "rg-ai-prod"


def resource_id(subscription: str, name: str, group: str = _RESOURCE_GROUP) -> str:
    return (
        f"/subscriptions/{subscription}/resourcegroups/{group}/providers/"
        f"microsoft.cognitiveservices/accounts/{name}"
    )


def _round(value: Decimal, places: str) -> Decimal:
    return value.quantize(Decimal(places), rounding=ROUND_HALF_EVEN)


def token_row(
    sub: str,
    day: date,
    resource: str,
    model: str,
    deployment: str,
    token_type: str,
    tokens: int,
    eur_per_usd: Decimal,
) -> AzureCostRow:
    """A token meter's row: cost = tokens x price (x the billing-currency rate), exact."""
    meter, unit = METERS[(model, deployment, token_type)]
    index = {"input": 0, "cache_read": 1, "output": 2}[token_type]
    usd = tokens * PRICES_PER_MTOK[model][index] * UPLIFT[deployment] / MILLION
    return AzureCostRow(
        day,
        resource_id(sub, resource),
        meter,
        usd * eur_per_usd,
        Decimal(tokens) / unit,
        model,
        token_type,
        tokens,
        deployment,
    )


def generate_subscription(
    *,
    today: date,
    days: int = 90,
    seed: int = 0,
    currency: str = "EUR",
    rate: Decimal = Decimal("0.92"),
) -> FakeAzureSubscription:
    """Two Azure OpenAI accounts (GPT-4o regional, GPT-4o mini data zone) and one PTU
    deployment on ``today - days + 1`` .. ``today``; deterministic.

    ``currency`` is the billing currency; ``rate`` the billing-currency units per USD that
    Azure applied to its USD price list (1 for USD). Weekdays busier than weekends, today
    partial (40 %), token counts whole multiples of the meter's quantity precision.
    """
    if days < 1:
        raise ValueError("days must be >= 1")
    per_usd = Decimal(1) if currency == "USD" else rate
    rng = random.Random(seed)
    sub = DEFAULT_SUBSCRIPTION
    rows: list[AzureCostRow] = []
    first = today - timedelta(days=days - 1)
    for index in range(days):
        day = first + timedelta(days=index)
        factor = (0.4 if day.weekday() >= 5 else 1.0) * (1 + 0.2 * index / max(1, days - 1))
        factor *= 0.4 if day == today else rng.uniform(0.85, 1.15)
        for resource, model, deployment, requests, inp, out, cached in _TRAFFIC:
            n = round(requests * factor)
            if n == 0:
                continue
            total_in = round(n * inp * rng.uniform(0.9, 1.1))
            cache = round(total_in * cached)
            counts = {
                "input": total_in - cache,
                "cache_read": cache,
                "output": round(n * out * rng.uniform(0.9, 1.1)),
            }
            for token_type, count in counts.items():
                if count:
                    rows.append(
                        token_row(sub, day, resource, model, deployment, token_type, count, per_usd)
                    )
        hours = Decimal(24) if day != today else Decimal(13)
        rows.append(
            AzureCostRow(
                day,
                resource_id(sub, "contoso-aoai-ptu"),
                PTU_METER,
                hours * PTU_PRICE_PER_HOUR * per_usd,
                hours,
            )
        )
    return FakeAzureSubscription(currency=currency, rows=rows)
