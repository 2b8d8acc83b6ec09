"""YAML configuration -> validated settings.

* Unknown keys are rejected, and **all** problems are reported at once, each with its YAML
  path (``providers[0].base_url: ...``).
* Admin keys come only from ``api_key_env`` (the name of an environment variable) or
  ``api_key_file`` (a path). A key written inline is an error. No error message ever
  contains a configured value that could be a secret.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args
from urllib.parse import parse_qs, urlsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    field_validator,
    model_validator,
)

from exporter.fx.ecb import supported_currencies
from exporter.pricing import PROVIDERS, ModelMaps, load_maps

DEFAULT_LISTEN_ADDRESS = "0.0.0.0:9877"
DEFAULT_STORAGE_PATH = "/var/lib/ai-cost-exporter/history.db"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ACCOUNT_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_TEAM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_BUDGET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$")
_POOL_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_POOL = re.compile(rf"^{_POOL_SEGMENT}(/{_POOL_SEGMENT})*$")


def parse_duration(value: Any) -> float:
    """``"15m"`` -> 900.0 seconds. Plain numbers are seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 15m, 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ValueError("expected a duration such as 30s, 15m, 1h")
    if seconds <= 0:
        raise ValueError("must be greater than zero")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


def env_var_name(value: str | None, secret: str) -> str | None:
    """``value`` when it is the NAME of an environment variable (never the secret)."""
    if value is not None and not _ENV_NAME.match(value):
        raise ValueError(
            "must be the NAME of an environment variable (letters, digits, _), "
            f"not the {secret} itself"
        )
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


_POSTGRES_SCHEMES = ("postgresql", "postgres")


def postgres_url(value: str) -> str:
    """``postgresql://user@host[:port]/db`` (query options allowed); a password in it is
    refused. Errors never repeat the URL (it may carry a password)."""
    parts = urlsplit(value)
    if parts.scheme not in _POSTGRES_SCHEMES:
        raise ValueError("must be a postgresql://user@host[:port]/database URL")
    try:
        parts.port  # noqa: B018  # raises ValueError on a bad port
    except ValueError:
        raise ValueError("the port must be a number from 0 to 65535") from None
    if parts.password is not None or "password" in parse_qs(parts.query):
        raise ValueError(
            "a password may not be written in the URL; remove it and set "
            "storage.password_env (name of an environment variable) or storage.password_file"
        )
    missing = [
        what
        for what, present in (
            ("a user (user@)", parts.username),
            ("a host", parts.hostname),
            ("a database (/name)", parts.path.strip("/")),
        )
        if not present
    ]
    if missing:
        raise ValueError(
            f"must be postgresql://user@host[:port]/database; missing {', '.join(missing)}"
        )
    return value


class StorageConfig(_Strict):
    """SQLite ``path`` (the default) or a PostgreSQL ``url`` shared by replicas
    (docs/deployment.md), its password from ``password_env`` or ``password_file``."""

    path: str = DEFAULT_STORAGE_PATH
    url: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    retention_days: int = Field(400, ge=35, le=3650)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else postgres_url(value)

    @field_validator("password_env")
    @classmethod
    def _password_env(cls, value: str | None) -> str | None:
        return env_var_name(value, "password")

    @model_validator(mode="after")
    def _one_target(self) -> StorageConfig:
        sources = [k for k in ("password_env", "password_file") if getattr(self, k) is not None]
        if self.url is None:
            if sources:
                raise ValueError(f"{sources[0]} applies to storage.url (PostgreSQL) only")
            return self
        if "path" in self.model_fields_set:
            raise ValueError(
                "set either path (SQLite, one process) or url (PostgreSQL, shared by "
                "replicas), not both"
            )
        if not sources:
            raise ValueError("storage.url needs password_env or password_file")
        if len(sources) > 1:
            raise ValueError("set only one of password_env and password_file")
        return self

    @property
    def postgres(self) -> bool:
        return self.url is not None

    @property
    def target(self) -> str:
        """What the store opens: the PostgreSQL URL (no password) or the SQLite path."""
        return self.url if self.url is not None else self.path


class PollConfig(_Strict):
    interval: Duration = 900.0
    lookback_days: int = Field(3, ge=0, le=31)
    backfill_days: int = Field(90, ge=1, le=730)
    timeout: Duration = 30.0
    max_attempts: int = Field(4, ge=1, le=10)
    backoff_initial: Duration = 1.0
    backoff_max: Duration = 60.0
    max_retry_after: Duration = 300.0
    # API keys (inactive-key detection) are listed at most this often, not on every poll
    # (OpenAI: one request per project); the stored keys are kept in between.
    api_keys_interval: Duration = Field(86400.0, ge=0)


class FxConfig(_Strict):
    base_url: str = "https://www.ecb.europa.eu/stats/eurofxref"
    refresh_interval: Duration = 3600.0

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")


class BatchRuleConfig(_Strict):
    """Steady synchronous traffic on a batch-capable model (see docs/recommendations.md)."""

    min_active_days: int = Field(20, ge=1, le=30)
    max_variation: float = Field(0.5, gt=0)


class DowngradeRuleConfig(_Strict):
    min_days: int = Field(7, ge=1, le=30)


class CrossProviderRuleConfig(_Strict):
    min_route_share: float = Field(0.05, ge=0, lt=1)


class InactiveKeysConfig(_Strict):
    min_prior_spend: Decimal = Field(Decimal(10), ge=0)
    max_recent_share: float = Field(0.01, ge=0, lt=1)


RECOMMENDATION_KINDS: tuple[str, ...] = (
    "batch",
    "model_downgrade",
    "cross_provider",
    "inactive_key",
)


class Dismissal(_Strict):
    """Stop publishing the recommendations it matches; every field given must be equal."""

    recommendation: Literal["batch", "model_downgrade", "cross_provider", "inactive_key"]
    reason: str = Field(min_length=1)
    provider: str | None = None
    account: str | None = None
    project: str | None = None
    model: str | None = None
    target: str | None = None
    api_key: str | None = None


class RecommendationsConfig(_Strict):
    enabled: bool = True
    min_monthly_saving: Decimal = Field(Decimal(1), ge=0)
    max_series: int = Field(50, ge=1, le=10_000)
    batch: BatchRuleConfig = BatchRuleConfig()
    model_downgrade: DowngradeRuleConfig = DowngradeRuleConfig()
    cross_provider: CrossProviderRuleConfig = CrossProviderRuleConfig()
    inactive_keys: InactiveKeysConfig = InactiveKeysConfig()
    # Overrides of the packaged maps in exporter/data/ (see docs/recommendations.md).
    alternatives: dict[str, dict[str, str]] = Field(default_factory=dict)
    equivalence: dict[str, dict[str, str | list[str]] | None] = Field(default_factory=dict)
    batch_models: dict[str, list[str]] = Field(default_factory=dict)
    dismissed: list[Dismissal] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_providers(self) -> RecommendationsConfig:
        used = set(self.alternatives) | set(self.batch_models)
        for routes in self.equivalence.values():
            used |= set(routes or {})
        unknown = sorted(used - set(PROVIDERS))
        if unknown:
            raise ValueError(
                f"unknown provider id(s) {', '.join(unknown)}; expected one of "
                + ", ".join(PROVIDERS)
            )
        self.maps()  # raises on conflicting equivalence groups
        return self

    def maps(self) -> ModelMaps:
        """The packaged model maps with this config's overrides applied."""
        return load_maps(self.alternatives, self.equivalence, self.batch_models)


# Whole days a provider's complete cost data normally trails real time (cloud billing
# pipelines lag; the direct APIs do not). `data_lag_days` on a provider overrides it. The
# poller moves the watermark back by it and the stale-data alert allows it.
DEFAULT_DATA_LAG_DAYS: dict[str, int] = {"azure_openai": 2, "bedrock": 1, "vertex": 1, "gemini": 1}


def optional_url(value: str) -> str:
    """``""`` (use the default) or an http(s) URL without its trailing slash."""
    if value and not re.match(r"^https?://[^\s/]+", value):
        raise ValueError("must be an http:// or https:// URL")
    return value.rstrip("/")


class ProviderConfig(_Strict):
    """Settings every provider shares. Each provider type subclasses it with its ``type``
    and the ``default_base_url`` its API answers on."""

    default_base_url: ClassVar[str] = ""

    type: str
    name: str = ""
    base_url: str = ""
    api_key_env: str | None = None
    api_key_file: str | None = None
    # This account's poll interval when it differs from poll.interval (a paid API).
    poll_interval: Duration | None = None
    # Any attempt to write the key inline lands here and is refused without echoing it.
    api_key: Any = Field(None, exclude=True, repr=False)
    data_lag_days: int | None = Field(None, ge=0, le=7)

    @field_validator("api_key", mode="before")
    @classmethod
    def _no_inline_key(cls, value: Any) -> Any:
        if value is not None:
            raise ValueError(
                "admin keys may not be written in the config file; "
                "set api_key_env (name of an environment variable) or api_key_file"
            )
        return value

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        return env_var_name(value, "key")

    @field_validator("name")
    @classmethod
    def _account_name(cls, value: str) -> str:
        if value and not _ACCOUNT_NAME.match(value):
            raise ValueError(
                "must be lower case letters, digits, '.', '_' or '-' (it becomes the "
                "`account` label)"
            )
        return value

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return optional_url(value)

    @model_validator(mode="after")
    def _one_key_source(self) -> ProviderConfig:
        if self.api_key_env is None and self.api_key_file is None:
            raise ValueError("set api_key_env or api_key_file")
        if self.api_key_env is not None and self.api_key_file is not None:
            raise ValueError("set only one of api_key_env and api_key_file")
        return self

    @property
    def account(self) -> str:
        return self.name or self.type

    @property
    def url(self) -> str:
        return self.base_url or self.default_base_url

    @property
    def expected_lag_days(self) -> int:
        """``data_lag_days``, else the provider type's default (:data:`DEFAULT_DATA_LAG_DAYS`)."""
        if self.data_lag_days is not None:
            return self.data_lag_days
        return DEFAULT_DATA_LAG_DAYS.get(self.type, 0)

    @property
    def uses_key(self) -> bool:
        """Whether a secret is read from ``api_key_env``/``api_key_file`` for this provider."""
        return True

    def missing_extra(self) -> str | None:
        """The ``pip install`` extra this provider needs and the install lacks, or None."""
        return None

    def credential_problems(self) -> list[str]:
        """Run-time problems of credentials read another way than ``api_key_*``."""
        return []


class OpenAIConfig(ProviderConfig):
    """OpenAI organisation usage and cost APIs (paths below it start at /organization/)."""

    default_base_url: ClassVar[str] = "https://api.openai.com/v1"
    type: Literal["openai"]


class AnthropicConfig(ProviderConfig):
    """Anthropic Admin API usage and cost reports (paths /v1/organizations/...)."""

    default_base_url: ClassVar[str] = "https://api.anthropic.com"
    type: Literal["anthropic"]


class XAIConfig(ProviderConfig):
    """xAI Management API: billing paths take the team id (xAI Console -> team settings)."""

    default_base_url: ClassVar[str] = "https://management-api.x.ai"
    type: Literal["xai"]
    team_id: str

    @field_validator("team_id")
    @classmethod
    def _team_id(cls, value: str) -> str:
        if not _TEAM_ID.match(value):
            raise ValueError(
                "must be the xAI team id (letters, digits, '-' and '_'), as shown in the "
                "xAI Console team settings"
            )
        return value


_AZURE_SCOPE = re.compile(
    r"^subscriptions/[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
    r"(/resourceGroups/[A-Za-z0-9._()-]{1,90})?$"
)
_AZURE_ID = re.compile(
    r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"
)
_AZURE_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")


class AzureOpenAIConfig(ProviderConfig):
    """Azure Cost Management Query API for the Azure OpenAI accounts of a subscription.

    ``auth: client_secret`` (default) gets a bearer token by the OAuth client-credentials
    flow at ``login_url`` with ``tenant_id``, ``client_id`` and the client secret from
    ``api_key_env``/``api_key_file``; ``auth: azure_identity`` uses azure-identity's
    ``DefaultAzureCredential`` (managed identity, workload identity, Azure CLI; the
    ``[azure]`` extra) and takes no secret here.
    """

    default_base_url: ClassVar[str] = "https://management.azure.com"
    default_login_url: ClassVar[str] = "https://login.microsoftonline.com"
    extra: ClassVar[str] = "azure"
    type: Literal["azure_openai"]
    scope: str  # subscriptions/<id> or subscriptions/<id>/resourceGroups/<name>
    auth: Literal["client_secret", "azure_identity"] = "client_secret"
    tenant_id: str | None = None
    client_id: str | None = None
    login_url: str = ""
    api_version: str = "2023-03-01"
    cost_kind: Literal["ActualCost", "AmortizedCost"] = "ActualCost"
    cost_column: Literal["Cost", "PreTaxCost"] = "Cost"  # PreTaxCost on legacy EA accounts

    @field_validator("scope")
    @classmethod
    def _scope(cls, value: str) -> str:
        value = value.strip("/")
        if not _AZURE_SCOPE.match(value):
            raise ValueError(
                "must be subscriptions/<subscription id> or "
                "subscriptions/<subscription id>/resourceGroups/<name>"
            )
        return value

    @field_validator("tenant_id", "client_id")
    @classmethod
    def _guid(cls, value: str | None) -> str | None:
        if value is not None and not _AZURE_ID.match(value):
            raise ValueError("must be a GUID (Entra ID -> App registrations -> Overview)")
        return value

    @field_validator("login_url")
    @classmethod
    def _login_url(cls, value: str) -> str:
        return optional_url(value)

    @field_validator("api_version")
    @classmethod
    def _api_version(cls, value: str) -> str:
        if not _AZURE_API_VERSION.match(value):
            raise ValueError("must be a Cost Management api-version such as 2023-03-01")
        return value

    @model_validator(mode="after")
    def _one_key_source(self) -> AzureOpenAIConfig:
        has_key = self.api_key_env is not None or self.api_key_file is not None
        if self.auth == "azure_identity":
            if has_key:
                raise ValueError(
                    "auth azure_identity takes no secret: remove api_key_env/api_key_file "
                    "(or use auth: client_secret)"
                )
            return self
        missing = [n for n in ("tenant_id", "client_id") if getattr(self, n) is None]
        if not has_key:
            missing.append("api_key_env or api_key_file (the client secret)")
        if missing:
            raise ValueError("auth client_secret needs " + ", ".join(missing))
        if self.api_key_env is not None and self.api_key_file is not None:
            raise ValueError("set only one of api_key_env and api_key_file")
        return self

    @property
    def login(self) -> str:
        return self.login_url or self.default_login_url

    @property
    def uses_key(self) -> bool:
        return self.auth == "client_secret"

    def missing_extra(self) -> str | None:
        """azure-identity is needed only for ``auth: azure_identity``."""
        if self.auth != "azure_identity":
            return None
        return None if _importable("azure.identity") else self.extra


def _importable(module: str) -> bool:
    from importlib.util import find_spec

    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):
        return False


_AWS_ACCOUNT = re.compile(r"^\d{12}$")
_AWS_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_AWS_PROFILE = re.compile(r"^[A-Za-z0-9_.+-]{1,64}$")
_BQ_TABLE = re.compile(
    r"^[a-z][a-z0-9-]{4,62}[a-z0-9]\.[A-Za-z0-9_]{1,1024}\.[A-Za-z0-9_]{1,1024}$"
)
_GCP_PROJECT = re.compile(r"^[a-z][a-z0-9-]{4,62}[a-z0-9]$")


class _CloudChainConfig(ProviderConfig):
    """A cloud provider read through its SDK (an optional extra) with the cloud's own
    credential chain: no ``api_key_*``; ``credentials_file`` optional."""

    extra: ClassVar[str] = ""
    requires: ClassVar[tuple[str, ...]] = ()  # modules of the extra
    credentials_file: str | None = None

    @model_validator(mode="after")
    def _one_key_source(self) -> _CloudChainConfig:
        if self.api_key_env is not None or self.api_key_file is not None:
            raise ValueError(
                f"{self.type} takes no admin key: it reads its cloud's credential chain "
                "(see credentials_file)"
            )
        return self

    @property
    def uses_key(self) -> bool:
        return False

    def missing_extra(self) -> str | None:
        return None if all(_importable(m) for m in self.requires) else self.extra

    def credential_problems(self) -> list[str]:
        if not self.credentials_file:
            return []
        try:
            Path(self.credentials_file).read_bytes()
        except OSError as exc:
            return [
                f"providers[{self.account}]: cannot read credentials_file "
                f"{self.credentials_file}: {exc.strerror}"
            ]
        return []


class BedrockConfig(_CloudChainConfig):
    """AWS Bedrock: Cost Explorer GetCostAndUsage (cost; ``base_url`` is its endpoint) and
    CloudWatch ``AWS/Bedrock`` (tokens), through boto3 (extra ``aws``). Credentials come
    from the standard AWS chain (environment, ``profile``, shared files, role)."""

    default_base_url: ClassVar[str] = "https://ce.us-east-1.amazonaws.com"
    extra: ClassVar[str] = "aws"
    requires: ClassVar[tuple[str, ...]] = ("boto3",)
    type: Literal["bedrock"]
    # Cost Explorer bills USD 0.01 per request and refreshes a few times a day: hourly.
    poll_interval: Duration | None = 3600.0
    account_id: str
    region: str = "us-east-1"
    cloudwatch_url: str = ""
    profile: str | None = None

    @field_validator("account_id")
    @classmethod
    def _account_id(cls, value: str) -> str:
        if not _AWS_ACCOUNT.match(value):
            raise ValueError("must be the 12-digit AWS account id (quote it in YAML)")
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not _AWS_REGION.match(value):
            raise ValueError("must be an AWS region such as us-east-1")
        return value

    @field_validator("profile")
    @classmethod
    def _profile(cls, value: str | None) -> str | None:
        if value is not None and not _AWS_PROFILE.match(value):
            raise ValueError("must be the NAME of a profile in the AWS config/credentials file")
        return value

    @field_validator("cloudwatch_url")
    @classmethod
    def _cw_url(cls, value: str) -> str:
        return optional_url(value)

    @property
    def monitoring_url(self) -> str:
        return self.cloudwatch_url or f"https://monitoring.{self.region}.amazonaws.com"


class VertexConfig(_CloudChainConfig):
    """Google Vertex AI and the Gemini API: the Cloud Billing export table in BigQuery
    (``base_url`` is the BigQuery API endpoint), through google-cloud-bigquery (extra
    ``gcp``). Credentials: Application Default Credentials or a service-account file."""

    default_base_url: ClassVar[str] = "https://bigquery.googleapis.com"
    extra: ClassVar[str] = "gcp"
    requires: ClassVar[tuple[str, ...]] = ("google.cloud.bigquery",)
    type: Literal["vertex"]
    billing_table: str
    query_project: str = ""
    location: str = ""
    services: tuple[str, ...] = ("Vertex AI", "Gemini API")
    partition_slack_days: int = Field(5, ge=0, le=31)
    anonymous: bool = False

    @field_validator("billing_table")
    @classmethod
    def _table(cls, value: str) -> str:
        if not _BQ_TABLE.match(value):
            raise ValueError(
                "must be PROJECT.DATASET.TABLE of the Cloud Billing export, e.g. "
                "my-proj.billing.gcp_billing_export_v1_011702_58A742_BQB4E8"
            )
        return value

    @field_validator("query_project")
    @classmethod
    def _project(cls, value: str) -> str:
        if value and not _GCP_PROJECT.match(value):
            raise ValueError("must be a Google Cloud project id")
        return value

    @model_validator(mode="after")
    def _anonymous_needs_endpoint(self) -> VertexConfig:
        if self.anonymous and not self.base_url:
            raise ValueError("anonymous: true is only for a proxy or fake set in base_url")
        if self.anonymous and self.credentials_file:
            raise ValueError("set only one of anonymous and credentials_file")
        return self

    @property
    def job_project(self) -> str:
        return self.query_project or self.billing_table.split(".", 1)[0]


# The config model of each provider type: the `type` tag selects the model (unknown keys
# of that provider are then rejected). `exporter.providers.REGISTRY` has the same types
# (a test holds them equal); adding a provider adds its config class here.
AnyProviderConfig = Annotated[
    OpenAIConfig | AnthropicConfig | XAIConfig | AzureOpenAIConfig | BedrockConfig | VertexConfig,
    Field(discriminator="type"),
]
PROVIDER_CONFIGS: tuple[type[ProviderConfig], ...] = get_args(get_args(AnyProviderConfig)[0])
PROVIDER_TYPES: tuple[str, ...] = tuple(
    get_args(c.model_fields["type"].annotation)[0] for c in PROVIDER_CONFIGS
)


# --------------------------------------------------------------------------- governance


@dataclass(frozen=True)
class Matcher:
    """One selector value: exact strings (any of them) or an anchored regular expression.

    YAML forms: ``team: search`` (exact), ``team: [search, ads]`` (any of),
    ``model: {regex: "gpt-4o.*"}`` (the whole value must match, as in PromQL).
    """

    values: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None

    def matches(self, value: str, *, hierarchical: bool = False) -> bool:
        """``hierarchical``: an exact value also matches its descendants (``eng`` ->
        ``eng/search``), so a pool selector rolls a subtree up."""
        if self.pattern is not None:
            return self.pattern.fullmatch(value) is not None
        if value in self.values:
            return True
        return hierarchical and any(value.startswith(v + "/") for v in self.values)


def parse_matcher(value: Any) -> Matcher:
    if isinstance(value, Matcher):
        return value
    if isinstance(value, str):
        return Matcher(values=(value.strip(),))
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return Matcher(values=tuple(v.strip() for v in value))
    if isinstance(value, dict) and set(value) == {"regex"} and isinstance(value["regex"], str):
        try:
            return Matcher(pattern=re.compile(value["regex"]))
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
    raise ValueError("expected a string, a non-empty list of strings, or {regex: PATTERN}")


Selector = Annotated[Matcher, PlainValidator(parse_matcher)]


def _label_value(value: str) -> str:
    if any(c in value for c in "\n\r\t"):
        raise ValueError("must not contain tabs or line breaks")
    return value


class AttributionMatch(_Strict):
    """Which projects a rule applies to; all given selectors must match (none: every project)."""

    provider: Selector | None = None
    account: Selector | None = None
    project: Selector | None = None  # the provider's project / workspace id
    project_name: Selector | None = None  # the display name the provider reports


class AttributionRule(_Strict):
    """Labels for matching projects. Each label is taken from the FIRST rule that matches
    the project and sets it, so a rule may set only some labels (e.g. just `environment`)."""

    match: AttributionMatch = AttributionMatch()
    team: str | None = None
    pool: str | None = None  # a path, e.g. eng/search; budgets on `eng` roll it up
    cost_owner: str | None = None
    environment: str | None = None

    @field_validator("team", "cost_owner", "environment")
    @classmethod
    def _labels(cls, value: str | None) -> str | None:
        return None if value is None else _label_value(value)

    @field_validator("pool")
    @classmethod
    def _pool(cls, value: str | None) -> str | None:
        if value is not None and not _POOL.match(value):
            raise ValueError(
                "must be a path of names separated by '/', e.g. eng/search "
                "(letters, digits, '_', '.', '-')"
            )
        return value

    @model_validator(mode="after")
    def _sets_something(self) -> AttributionRule:
        if all(v is None for v in (self.team, self.pool, self.cost_owner, self.environment)):
            raise ValueError("set at least one of team, pool, cost_owner, environment")
        return self


class BudgetScope(_Strict):
    """Which cost a budget counts; all given selectors must match (none: all cost).

    ``team``, ``pool`` and ``environment`` come from the project's attribution; an exact
    ``pool`` also matches the pools below it."""

    provider: Selector | None = None
    account: Selector | None = None
    project: Selector | None = None
    model: Selector | None = None
    team: Selector | None = None
    pool: Selector | None = None
    environment: Selector | None = None


DEFAULT_THRESHOLDS: tuple[Decimal, ...] = (Decimal("0.5"), Decimal("0.8"), Decimal("1.0"))


class BudgetConfig(_Strict):
    name: str
    period: Literal["day", "week", "month"]  # UTC; weeks are ISO weeks (Monday first)
    limit: Decimal = Field(gt=0)  # in the accounting currency (`currency`)
    scope: BudgetScope = BudgetScope()
    thresholds: tuple[Decimal, ...] = DEFAULT_THRESHOLDS  # fractions of `limit`

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _BUDGET_NAME.match(value):
            raise ValueError(
                "must start with a letter or digit and use letters, digits, '_', '.', ':', "
                "'-' (it becomes the `budget` label)"
            )
        return value

    @field_validator("limit", mode="before")
    @classmethod
    def _exact_limit(cls, value: Any) -> Any:
        # YAML 50.1 arrives as a float; read it the way it was written, not as its binary value
        return str(value) if isinstance(value, float) else value

    @field_validator("thresholds", mode="before")
    @classmethod
    def _exact_thresholds(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [str(v) if isinstance(v, float) else v for v in value]
        return value

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, value: tuple[Decimal, ...]) -> tuple[Decimal, ...]:
        if not value:
            raise ValueError("give at least one threshold, e.g. [0.8, 1.0]")
        if any(not Decimal(0) < t <= Decimal(10) for t in value):
            raise ValueError("each threshold is a fraction of the limit, > 0 and <= 10")
        if len(set(value)) != len(value):
            raise ValueError("thresholds must be distinct")
        return tuple(sorted(value))


class IngestAttributes(_Strict):
    """Span/resource attribute keys each request dimension is read from, first match wins
    (each key is looked up on the span, then on its resource)."""

    endpoint: tuple[str, ...] = ("aicost.endpoint", "http.route", "service.name")
    tenant: tuple[str, ...] = ("aicost.tenant", "tenant.id")
    user: tuple[str, ...] = ("enduser.id", "user.id")
    prompt_version: tuple[str, ...] = ("aicost.prompt_version",)
    outcome: tuple[str, ...] = ("aicost.outcome",)
    # true when a key holds boolean true (or "true") or a number above 0
    retry: tuple[str, ...] = ("aicost.retry", "http.request.resend_count")


class IngestConfig(_Strict):
    """Request-level usage pushed by applications: ``POST /v1/traces`` (OTLP/HTTP GenAI
    spans) and ``POST /api/v1/events`` (JSON events). Off unless ``enabled``."""

    enabled: bool = False
    token_env: str | None = None  # name of the environment variable holding the bearer token
    token_file: str | None = None
    max_tenants: int = Field(20, ge=1, le=10_000)
    max_endpoints: int = Field(100, ge=1, le=10_000)
    max_prompt_versions: int = Field(50, ge=1, le=10_000)
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    retention_days: int = Field(35, ge=1, le=3650)  # raw events; daily roll-ups as storage
    refresh_interval: Duration = Field(15.0, ge=1.0)  # how often new requests reach /metrics
    attributes: IngestAttributes = IngestAttributes()

    @field_validator("token_env")
    @classmethod
    def _token_env_name(cls, value: str | None) -> str | None:
        return env_var_name(value, "token")

    @model_validator(mode="after")
    def _one_token_source(self) -> IngestConfig:
        if self.token_env is not None and self.token_file is not None:
            raise ValueError("set only one of token_env and token_file")
        if self.enabled and self.token_env is None and self.token_file is None:
            raise ValueError(
                "ingest is enabled: set token_env or token_file (every ingest request "
                "must carry that bearer token)"
            )
        return self


WindowName = Literal["today", "yesterday", "7d", "30d", "month_to_date"]
ALL_WINDOWS: tuple[WindowName, ...] = ("today", "yesterday", "7d", "30d", "month_to_date")


class MetricsConfig(_Strict):
    """Which per-stream families ``/metrics`` carries (cardinality; see docs/scale.md).

    The defaults keep every family, as the shipped dashboards and alerts read them; a large
    organisation trims them here (e.g. ``windows: [today, yesterday, month_to_date, 30d]``,
    ``token_types: false``, ``stream_ratios: false``: 11 series per stream instead of 40).
    """

    # windows of aicost_cost_*, aicost_requests_* and aicost_tokens_* (prev_7d goes with 7d)
    windows: list[WindowName] = Field(
        default_factory=lambda: list(ALL_WINDOWS),
        min_length=1,
    )
    token_types: bool = True  # aicost_tokens_<window> per token_type (4 series per window)
    stream_ratios: bool = True  # aicost_cache_hit_ratio, _cost_per_1k_tokens, _cost_per_request

    @field_validator("windows")
    @classmethod
    def _distinct(cls, value: list[WindowName]) -> list[WindowName]:
        if len(set(value)) != len(value):
            raise ValueError("each window at most once")
        return value


class Config(_Strict):
    listen_address: str = DEFAULT_LISTEN_ADDRESS
    currency: str = "USD"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    storage: StorageConfig = StorageConfig()
    poll: PollConfig = PollConfig()
    fx: FxConfig = FxConfig()
    recommendations: RecommendationsConfig = RecommendationsConfig()
    providers: list[AnyProviderConfig] = Field(default_factory=list)
    attribution: list[AttributionRule] = Field(default_factory=list)
    budgets: list[BudgetConfig] = Field(default_factory=list)
    ingest: IngestConfig = IngestConfig()
    metrics: MetricsConfig = MetricsConfig()

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        return currency_code(value)

    @field_validator("listen_address")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen_address(value)
        return value

    @model_validator(mode="after")
    def _unique_accounts(self) -> Config:
        seen: set[tuple[str, str]] = set()
        for p in self.providers:
            key = (p.type, p.account)
            if key in seen:
                raise ValueError(
                    f"two {p.type} providers share the name {p.account!r}; "
                    "give each a distinct `name`"
                )
            seen.add(key)
        return self

    @field_validator("budgets")
    @classmethod
    def _unique_budgets(cls, value: list[BudgetConfig]) -> list[BudgetConfig]:
        names = [b.name for b in value]
        for i, name in enumerate(names):
            if name in names[:i]:
                first = names.index(name)
                raise ValueError(
                    f"budgets[{first}] and budgets[{i}] are both named {name!r}; "
                    "budget names must be unique"
                )
        return value


def currency_code(value: str) -> str:
    """An upper-case ISO 4217 code the ECB publishes a rate for (or EUR); else ValueError."""
    if not re.fullmatch(r"[A-Za-z]{3}", value):
        raise ValueError("must be an ISO 4217 code such as USD or EUR")
    supported = supported_currencies()
    if value.upper() not in supported:
        raise ValueError(
            f"{value.upper()} has no ECB reference rate; use EUR or one of "
            + ", ".join(sorted(supported - {"EUR"}))
        )
    return value.upper()


def parse_listen_address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("expected HOST:PORT, e.g. 0.0.0.0:9877")
    return host.strip("[]") or "0.0.0.0", int(port)


class ConfigErrors(Exception):
    """All problems found in a config file, one line each. ``data`` is what the YAML
    parsed to (None when it did not parse), for the checks that run on it regardless."""

    def __init__(self, source: str, errors: list[str], data: Any = None) -> None:
        self.source = source
        self.errors = errors
        self.data = data
        super().__init__(f"{source}: {len(errors)} error(s)\n" + "\n".join(errors))


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after[_one_key_source()]",):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _format(err: Mapping[str, Any]) -> str:
    loc = tuple(
        p
        for i, p in enumerate(err["loc"])
        if not (isinstance(p, str) and p.startswith("function-"))
        and not _is_union_tag(err["loc"], i)
    )
    message = err["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if err["type"] == "extra_forbidden":
        message = "unknown key"
    elif err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc = (*loc, "type")
        expected = ", ".join(repr(t) for t in PROVIDER_TYPES)
        message = f"unknown or missing provider type; expected one of {expected}"
    return f"{_path(loc)}: {message}"


def _is_union_tag(loc: tuple[int | str, ...], i: int) -> bool:
    """``providers.0.openai.base_url``: the ``openai`` is pydantic's union tag, not a key."""
    return i >= 2 and loc[i - 2] == "providers" and isinstance(loc[i - 1], int)


def validate(data: Any, source: str = "config") -> Config:
    """Validate parsed YAML; raise :class:`ConfigErrors` listing every problem."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigErrors(source, ["(top level): expected a mapping of settings"], data)
    cross = cross_field_errors(data)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        # include_input=False: messages never carry the offending value (it may be a key)
        errors = [_format(e) for e in exc.errors(include_input=False, include_url=False)]
        # the model's own cross-field checks run only when every field is valid; the raw
        # ones above ran on whatever parsed and carry the YAML path, so they replace them
        errors = [e for e in errors if not _is_cross_field(e)] + cross
        raise ConfigErrors(source, list(dict.fromkeys(errors)), data) from None


def _is_cross_field(error: str) -> bool:
    return "share the name" in error or "are both named" in error


def _entries(data: dict[str, Any], key: str) -> list[tuple[int, dict[str, Any]]]:
    value = data.get(key)
    if not isinstance(value, list):
        return []
    return [(i, item) for i, item in enumerate(value) if isinstance(item, dict)]


def cross_field_errors(data: dict[str, Any]) -> list[str]:
    """Checks across entries (duplicate provider accounts and budget names), run on the
    parsed YAML whatever else is wrong with it, each reported at its YAML path."""
    errors = []
    accounts: dict[tuple[str, str], int] = {}
    for i, p in _entries(data, "providers"):
        kind, name = p.get("type"), p.get("name") or p.get("type")
        if not isinstance(kind, str) or not isinstance(name, str):
            continue
        key = (kind.strip(), name.strip())
        if key in accounts:
            errors.append(
                f"providers[{i}].name: two {key[0]} providers share the name {key[1]!r} "
                f"(providers[{accounts[key]}] and providers[{i}]); give each a distinct `name`"
            )
        accounts.setdefault(key, i)
    names: dict[str, int] = {}
    for i, b in _entries(data, "budgets"):
        name = b.get("name")
        if not isinstance(name, str):
            continue
        if name.strip() in names:
            first = names[name.strip()]
            errors.append(
                f"budgets: budgets[{first}] and budgets[{i}] are both named {name.strip()!r}; "
                "budget names must be unique"
            )
        names.setdefault(name.strip(), i)
    return errors


def raw_key_problems(data: Any, env: dict[str, str] | None = None) -> list[str]:
    """:func:`check`'s key problems for a file that did not validate: each provider entry
    whose key source parsed is checked, so one pass reports everything."""
    if not isinstance(data, dict):
        return []
    problems = []
    for i, p in _entries(data, "providers"):
        env_name, file = p.get("api_key_env"), p.get("api_key_file")
        if isinstance(env_name, str) and _ENV_NAME.match(env_name.strip()) and file is None:
            source: tuple[str | None, str | None] = (env_name.strip(), None)
        elif isinstance(file, str) and env_name is None:
            source = (None, file.strip())
        else:
            continue  # the field errors already say what is wrong with it
        try:
            _read_key(f"providers[{i}]", *source, env)
        except ValueError as exc:
            problems.append(str(exc))
    return problems


def load(path: str | Path) -> Config:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigErrors(source, [f"cannot read the file: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigErrors(
            source, [f"cannot read the file: not UTF-8 text (byte {exc.start})"]
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigErrors(source, [yaml_problem(exc)]) from None
    return validate(data, source)


def yaml_problem(exc: yaml.YAMLError) -> str:
    """Where and what a YAML syntax error is, without quoting the file's content."""
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    return f"{where}{getattr(exc, 'problem', None) or 'invalid YAML'}"


@dataclass(frozen=True)
class Secret:
    """A resolved credential. ``repr``/``str`` never show the value."""

    value: str

    def __repr__(self) -> str:
        return "Secret(****)"

    __str__ = __repr__


def resolve_key(provider: ProviderConfig, env: dict[str, str] | None = None) -> Secret:
    """Read the admin key from the environment or a file; errors never include the key."""
    where = f"providers[{provider.account}]"
    return _read_key(where, provider.api_key_env, provider.api_key_file, env)


def _read_key(
    where: str,
    env_name: str | None,
    file: str | None,
    env: dict[str, str] | None,
    what: str = "api_key",
) -> Secret:
    """A secret from the environment variable ``env_name`` or the file ``file`` (``what``:
    the config keys' stem in messages, ``api_key`` or ``token``)."""
    environ = os.environ if env is None else env
    if env_name is not None:
        value = environ.get(env_name, "").strip()
        if not value:
            raise ValueError(f"{where}: environment variable {env_name} is not set or empty")
        return Secret(value)
    if file is None:
        raise ValueError(f"{where}: set {what}_env or {what}_file")
    try:
        value = Path(file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"{where}: cannot read {what}_file {file}: {exc.strerror}") from None
    if not value:
        raise ValueError(f"{where}: {what}_file {file} is empty")
    return Secret(value)


def check(config: Config, env: dict[str, str] | None = None) -> list[str]:
    """Problems that only show at run time (missing env vars, unreadable key files)."""
    problems = []
    if not config.providers and not config.ingest.enabled:
        problems.append("providers: no provider configured; nothing would be polled")
    for provider in config.providers:
        extra = provider.missing_extra()
        if extra is not None:
            problems.append(
                f"providers[{provider.account}]: the {provider.type} provider needs the "
                f"optional extra: pip install 'ai-cost-exporter[{extra}]'"
            )
        problems.extend(provider.credential_problems())
        if not provider.uses_key:
            continue
        try:
            resolve_key(provider, env)
        except ValueError as exc:
            problems.append(str(exc))
    problems.extend(storage_check(config.storage, env))
    if config.ingest.enabled:
        try:
            resolve_ingest_token(config.ingest, env)
        except ValueError as exc:
            problems.append(str(exc))
    return problems


def resolve_storage_password(
    storage: StorageConfig, env: dict[str, str] | None = None
) -> Secret | None:
    """The PostgreSQL password (None for SQLite); errors never include the password."""
    if storage.url is None:
        return None
    return _read_key("storage", storage.password_env, storage.password_file, env, "password")


def storage_check(storage: StorageConfig, env: dict[str, str] | None = None) -> list[str]:
    """Run-time problems of a PostgreSQL ``storage.url``: psycopg missing, password unset."""
    if storage.url is None:
        return []
    problems = []
    try:
        import psycopg  # noqa: F401
    except ImportError:
        problems.append(POSTGRES_EXTRA)
    try:
        resolve_storage_password(storage, env)
    except ValueError as exc:
        problems.append(str(exc))
    return problems


POSTGRES_EXTRA = (
    "storage.url: PostgreSQL needs psycopg 3, the optional extra: "
    "pip install 'ai-cost-exporter[postgres]'"
)


def resolve_ingest_token(ingest: IngestConfig, env: dict[str, str] | None = None) -> Secret:
    """The bearer token ingest requests must carry; errors never include the token."""
    return _read_key("ingest", ingest.token_env, ingest.token_file, env, what="token")
