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
    rejected: list[Rejection] = field(default_factory=list)
    ignored: int = 0  # spans without GenAI usage (not counted, not an error)


class Invalid(ValueError):
    """A span or event that cannot be counted; the message is its reason."""


def provider_id(value: str) -> str:
    """Our provider id of a GenAI provider value (``x_ai`` -> ``xai``), lower-cased."""
    v = value.strip().lower()
    return PROVIDER_ALIASES.get(v, v)


def first(keys: tuple[str, ...], *where: Mapping[str, Any]) -> Any:
    """The value of the first of ``keys`` present in one of ``where`` (in that order)."""
    for key in keys:
        for attrs in where:
            value = attrs.get(key)
            if value is not None:
                return value
    return None


def count(value: Any, name: str) -> int:
    """A token count: a non-negative integer (an integral double is accepted)."""
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
    if not any(key in attrs for key in USAGE_KEYS):
        return None
    raw_provider = first(PROVIDER_KEYS, attrs, resource)
    if not isinstance(raw_provider, str) or not raw_provider.strip():
        raise Invalid("no gen_ai.provider.name (or gen_ai.system) attribute")
    model = first(MODEL_KEYS, attrs)
    if not isinstance(model, str) or not model.strip():
        raise Invalid("no gen_ai.response.model (or gen_ai.request.model) attribute")
    if len(model) > MAX_LABEL_LENGTH:
        raise Invalid(f"model is longer than {MAX_LABEL_LENGTH} characters")

    def tokens(keys: tuple[str, ...]) -> int:
        value = first(keys, attrs)
        return 0 if value is None else count(value, keys[0])

    total_in, cache_read, cache_write = (
        tokens(INPUT_KEYS),
        tokens(CACHE_READ_KEYS),
        tokens(CACHE_WRITE_KEYS),
    )
    cached = cache_read + cache_write
    return RequestRecord(
        id=span_id,
        time=time,
        provider=provider_id(raw_provider),
        model=model.strip(),
        input_tokens=total_in - cached if total_in >= cached else total_in,
        output_tokens=tokens(OUTPUT_KEYS),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        endpoint=label(first(mapping.endpoint, attrs, resource), "endpoint"),
        tenant=label(first(mapping.tenant, attrs, resource), "tenant"),
        user=user_label(first(mapping.user, attrs, resource)),
        prompt_version=label(first(mapping.prompt_version, attrs, resource), "prompt_version"),
        outcome=label(first(mapping.outcome, attrs, resource), "outcome"),
        retry=any(truthy(first((key,), attrs, resource)) for key in mapping.retry),
    )
