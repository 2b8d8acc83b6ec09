"""GenAI span attributes -> :class:`~exporter.records.RequestRecord`.

Both generations of the OpenTelemetry GenAI attribute names are read (the conventions are
still "Development" status): the provider from ``gen_ai.provider.name`` or ``gen_ai.system``,
the model from ``gen_ai.response.model`` else ``gen_ai.request.model``, and the usage from
the current and older token attribute names. The attribution dimensions (endpoint, tenant,
user, prompt version, outcome, retry) come from the keys configured in
``ingest.attributes``, each looked up on the span first and then on its resource.

Token types are disjoint like the billed ones: the conventions say
``gen_ai.usage.input_tokens`` SHOULD include cached tokens, so the uncached input is input
minus cache read minus cache write. A sender that reports fewer input tokens than cached
ones follows the Anthropic API's meaning instead (input excludes the cache); its input is
then taken as the uncached input as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from exporter.config import IngestAttributes
from exporter.records import UNKNOWN, RequestRecord

# GenAI provider values (gen_ai.provider.name / gen_ai.system) -> our provider ids.
PROVIDER_ALIASES: dict[str, str] = {
    "x_ai": "xai",
    "aws.bedrock": "bedrock",
    "azure.ai.openai": "azure_openai",
    "az.ai.openai": "azure_openai",
    "gcp.vertex_ai": "vertex",
    "gcp.gemini": "gemini",
}

PROVIDER_KEYS = ("gen_ai.provider.name", "gen_ai.system")
MODEL_KEYS = ("gen_ai.response.model", "gen_ai.request.model")
INPUT_KEYS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
OUTPUT_KEYS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
CACHE_READ_KEYS = ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens")
CACHE_WRITE_KEYS = (
    "gen_ai.usage.cache_write.input_tokens",
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
)
USAGE_KEYS = INPUT_KEYS + OUTPUT_KEYS + CACHE_READ_KEYS + CACHE_WRITE_KEYS
USAGE_SET = frozenset(USAGE_KEYS)
_EMPTY: Mapping[str, Any] = {}

MAX_LABEL_LENGTH = 128  # longer attribution values are refused, not truncated
MAX_ID_LENGTH = 256


@dataclass(frozen=True)
class Rejection:
    """One span or event that was refused: its position in the body, its id, and why."""

    index: int
    id: str
    reason: str


@dataclass
class Parsed:
    """What a body held: the request records, and the spans/events refused."""

    records: list[RequestRecord] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)  # each record's index in the body
    rejected: list[Rejection] = field(default_factory=list)
    ignored: int = 0  # spans without GenAI usage (not counted, not an error)

    def add(self, index: int, record: RequestRecord) -> None:
        self.records.append(record)
        self.positions.append(index)


class Invalid(ValueError):
    """A span or event that cannot be counted; the message is its reason."""


_WANTED: dict[IngestAttributes, frozenset[str]] = {}


def wanted_keys(mapping: IngestAttributes) -> frozenset[str]:
    """Every span attribute key :func:`span_record` reads under ``mapping``."""
    if mapping not in _WANTED:
        dims = (mapping.endpoint, mapping.tenant, mapping.user, mapping.prompt_version,
                mapping.outcome, mapping.retry)  # fmt: skip
        keys = PROVIDER_KEYS + MODEL_KEYS + USAGE_KEYS + tuple(k for d in dims for k in d)
        _WANTED[mapping] = frozenset(keys)
    return _WANTED[mapping]


def provider_id(value: str) -> str:
    """Our provider id of a GenAI provider value (``x_ai`` -> ``xai``), lower-cased."""
    if value in _KNOWN:
        return _KNOWN[value]
    v = value.strip().lower()
    return PROVIDER_ALIASES.get(v, v)


_KNOWN = {**{p: p for p in ("openai", "anthropic", "xai", "bedrock", "azure_openai", "vertex",
                            "gemini")}, **PROVIDER_ALIASES}  # fmt: skip


def first(keys: tuple[str, ...], attrs: Mapping[str, Any], resource: Mapping[str, Any]) -> Any:
    """The value of the first of ``keys`` on the span, else on its resource."""
    for key in keys:
        value = attrs.get(key)
        if value is None:
            value = resource.get(key)
        if value is not None:
            return value
    return None


def count(value: Any, name: str) -> int:
    """A token count: a non-negative integer (an integral double is accepted)."""
    if type(value) is int and value >= 0:  # the common case, first
        return value
    if isinstance(value, bool) or value is None:
        raise Invalid(f"{name} must be a non-negative integer, got {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise Invalid(f"{name} must be a whole number, got {value!r}")
        value = int(value)
    if not isinstance(value, int):
        raise Invalid(f"{name} must be a non-negative integer, got {type(value).__name__}")
    if value < 0:
        raise Invalid(f"{name} must not be negative, got {value}")
    return value


def label(value: Any, name: str) -> str:
    """An attribution value: a short string (numbers are written out), or unknown."""
    if type(value) is str and 0 < len(value) <= MAX_LABEL_LENGTH:  # the common case, first
        return value
    if value is None or value == "":
        return UNKNOWN
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Invalid(f"{name} must be a string, got {type(value).__name__}")
    text = str(value)
    if len(text) > MAX_LABEL_LENGTH:
        raise Invalid(f"{name} is longer than {MAX_LABEL_LENGTH} characters")
    return text


def user_label(value: Any) -> str:
    """The end user (kept in SQLite for ``top``, never a label): empty when unknown."""
    return "" if value is None or value == "" else label(value, "user")


def truthy(value: Any) -> bool:
    """A retry marker: boolean true, the string "true", or a number above 0."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value > 0
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return False


def span_record(
    span_id: str,
    time: datetime,
    attrs: Mapping[str, Any],
    resource: Mapping[str, Any],
    mapping: IngestAttributes,
) -> RequestRecord | None:
    """The request of one span; None when it carries no GenAI usage; :class:`Invalid` when
    it does but cannot be counted (no model, negative tokens, ...)."""
    if attrs.keys().isdisjoint(USAGE_SET):
        return None
    raw_provider = first(PROVIDER_KEYS, attrs, resource)
    if not isinstance(raw_provider, str) or not raw_provider.strip():
        raise Invalid("no gen_ai.provider.name (or gen_ai.system) attribute")
    model = first(MODEL_KEYS, attrs, _EMPTY)
    if not isinstance(model, str) or not model.strip():
        raise Invalid("no gen_ai.response.model (or gen_ai.request.model) attribute")
    if len(model) > MAX_LABEL_LENGTH:
        raise Invalid(f"model is longer than {MAX_LABEL_LENGTH} characters")
    total_in, output, cache_read, cache_write = (
        0 if (v := first(keys, attrs, _EMPTY)) is None else count(v, keys[0])
        for keys in (INPUT_KEYS, OUTPUT_KEYS, CACHE_READ_KEYS, CACHE_WRITE_KEYS)
    )
    cached = cache_read + cache_write
    retry = False
    for key in mapping.retry:
        if truthy(first((key,), attrs, resource)):
            retry = True
            break
    return RequestRecord(
        span_id,
        time,
        provider_id(raw_provider),
        model.strip(),
        total_in - cached if total_in >= cached else total_in,
        output,
        cache_read,
        cache_write,
        label(first(mapping.endpoint, attrs, resource), "endpoint"),
        label(first(mapping.tenant, attrs, resource), "tenant"),
        user_label(first(mapping.user, attrs, resource)),
        label(first(mapping.prompt_version, attrs, resource), "prompt_version"),
        label(first(mapping.outcome, attrs, resource), "outcome"),
        retry,
    )
