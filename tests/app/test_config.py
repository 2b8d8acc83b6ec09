"""Config validation: unknown keys rejected, all errors at once with YAML paths, no secrets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from exporter.config import (
    PROVIDER_TYPES,
    ConfigErrors,
    check,
    load,
    parse_duration,
    resolve_key,
    validate,
)

FAKE_SECRET = "not-a-real-key-0123456789abcdef"


def errors_of(data: object) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        validate(data)
    return info.value.errors


def test_defaults_match_the_contract() -> None:
    config = validate({"providers": [{"type": "openai", "api_key_env": "OPENAI_ADMIN_KEY"}]})
    assert config.listen_address == "0.0.0.0:9877"
    assert config.currency == "USD"
    assert config.poll.interval == 900
    assert config.poll.lookback_days == 3
    assert config.poll.backfill_days == 90
    assert config.storage.retention_days == 400
    assert config.providers[0].account == "openai"
    assert config.providers[0].url == "https://api.openai.com/v1"


def test_all_errors_are_reported_at_once_with_yaml_paths() -> None:
    errors = errors_of(
        {
            "listen_adress": "x",
            "poll": {"interval": "soon", "lookback_days": -1},
            "providers": [
                {"type": "openai", "api_key_env": "K", "region": "eu"},
                {"type": "closedai", "api_key_env": "K"},
            ],
        }
    )
    assert errors == [
        "poll.interval: expected a duration such as 30s, 15m, 1h",
        "poll.lookback_days: Input should be greater than or equal to 0",
        "providers[0].region: unknown key",
        "providers[1].type: unknown or missing provider type; "
        "expected one of " + ", ".join(repr(t) for t in PROVIDER_TYPES),
        "listen_adress: unknown key",
    ]


def test_an_inline_key_is_an_error_that_does_not_echo_the_key() -> None:
    errors = errors_of({"providers": [{"type": "openai", "api_key": FAKE_SECRET}]})
    assert errors == [
        "providers[0].api_key: admin keys may not be written in the config file; "
        "set api_key_env (name of an environment variable) or api_key_file"
    ]
    assert FAKE_SECRET not in "\n".join(errors)


def test_a_key_pasted_into_api_key_env_is_refused_without_echo() -> None:
    errors = errors_of({"providers": [{"type": "openai", "api_key_env": FAKE_SECRET + "-x"}]})
    assert len(errors) == 1 and errors[0].startswith("providers[0].api_key_env: must be the NAME")
    assert FAKE_SECRET not in errors[0]


def test_key_source_is_required_and_exclusive() -> None:
    assert errors_of({"providers": [{"type": "openai"}]}) == [
        "providers[0]: set api_key_env or api_key_file"
    ]
    assert errors_of(
        {"providers": [{"type": "openai", "api_key_env": "A", "api_key_file": "/f"}]}
    ) == ["providers[0]: set only one of api_key_env and api_key_file"]


def test_duplicate_accounts_are_refused() -> None:
    errors = errors_of(
        {
            "providers": [
                {"type": "openai", "api_key_env": "A"},
                {"type": "openai", "api_key_env": "B"},
            ]
        }
    )
    assert errors == [
        "providers[1].name: two openai providers share the name 'openai' "
        "(providers[0] and providers[1]); give each a distinct `name`"
    ]


@pytest.mark.parametrize(
    ("text", "seconds"), [("15m", 900), ("30s", 30), ("1h", 3600), ("1.5h", 5400), (45, 45)]
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_yaml_syntax_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("providers:\n  - type: openai\n   bad: [\n")
    with pytest.raises(ConfigErrors) as info:
        load(path)
    assert info.value.errors[0].startswith("line 3")


def test_resolve_key_from_env_and_file_never_shows_the_value(tmp_path: Path) -> None:
    config = validate({"providers": [{"type": "openai", "api_key_env": "OPENAI_ADMIN_KEY"}]})
    secret = resolve_key(config.providers[0], {"OPENAI_ADMIN_KEY": FAKE_SECRET})
    assert secret.value == FAKE_SECRET
    assert FAKE_SECRET not in repr(secret) and FAKE_SECRET not in str(secret)
    assert check(config, {}) == [
        "providers[openai]: environment variable OPENAI_ADMIN_KEY is not set or empty"
    ]
    key_file = tmp_path / "key"
    key_file.write_text(FAKE_SECRET + "\n")
    config = validate({"providers": [{"type": "openai", "api_key_file": str(key_file)}]})
    assert resolve_key(config.providers[0], {}).value == FAKE_SECRET
    missing = validate({"providers": [{"type": "openai", "api_key_file": str(tmp_path / "no")}]})
    assert "cannot read api_key_file" in check(missing, {})[0]


def test_example_config_is_valid() -> None:
    config = load(Path(__file__).resolve().parents[2] / "config.example.yaml")
    assert config.providers, "the example should show a provider block"


def test_the_commented_examples_in_the_example_config_validate_when_uncommented() -> None:
    """``key: []`` followed by ``#  - ...`` lines: the lines are the commented-out list."""
    text = (Path(__file__).resolve().parents[2] / "config.example.yaml").read_text()
    uncommented: dict[str, list[str]] = {}
    key = None
    for line in text.splitlines():
        if m := re.fullmatch(r"(\w+): \[\]", line):
            key = m.group(1)
            uncommented[key] = []
        elif key and line.startswith("#  "):
            uncommented[key].append(line[1:])
        else:
            key = None
    assert set(uncommented) == {"attribution", "budgets"}
    data = {k: yaml.safe_load("\n".join(lines)) for k, lines in uncommented.items()}
    config = validate(data)
    assert len(config.attribution) == 2 and len(config.budgets) == 3


def test_registry_and_config_union_agree() -> None:
    """The registry is the one list of provider types: each has exactly one config class
    in the union, carrying its own default base URL and its catalogue id."""
    from exporter.config import PROVIDER_CONFIGS, PROVIDER_TYPES
    from exporter.pricing import CATALOGUE_PROVIDER
    from exporter.providers import REGISTRY

    assert list(PROVIDER_TYPES) == list(REGISTRY)
    assert len(set(PROVIDER_TYPES)) == len(PROVIDER_CONFIGS)
    for provider_type, cls in zip(PROVIDER_TYPES, PROVIDER_CONFIGS, strict=True):
        assert REGISTRY[provider_type].type == provider_type
        assert cls.default_base_url.startswith("https://"), provider_type
        assert provider_type in CATALOGUE_PROVIDER
    assert errors_of({"providers": [{"api_key_env": "K"}]}) == [
        "providers[0].type: unknown or missing provider type; expected one of "
        + ", ".join(repr(t) for t in PROVIDER_TYPES)
    ]


def test_anthropic_block_defaults_to_the_public_api_and_rejects_unknown_keys() -> None:
    config = validate({"providers": [{"type": "anthropic", "api_key_env": "ANTHROPIC_ADMIN_KEY"}]})
    provider = config.providers[0]
    assert (provider.type, provider.account) == ("anthropic", "anthropic")
    assert provider.url == "https://api.anthropic.com"
    assert errors_of(
        {"providers": [{"type": "anthropic", "api_key_env": "K", "workspace": "x"}]}
    ) == ["providers[0].workspace: unknown key"]


def test_currency_must_be_one_the_ecb_publishes() -> None:
    assert validate({"currency": "eur"}).currency == "EUR"
    assert validate({"currency": "GBP"}).currency == "GBP"
    (error,) = errors_of({"currency": "XAU"})
    assert error.startswith("currency: XAU has no ECB reference rate; use EUR or one of AUD")
    assert errors_of({"currency": "euro"}) == [
        "currency: must be an ISO 4217 code such as USD or EUR"
    ]
    assert errors_of({"currency": "CYP"})  # quoted in 1999, not any more


def test_fx_settings() -> None:
    fx = validate({"fx": {"base_url": "http://127.0.0.1:8/ecb/", "refresh_interval": "30m"}}).fx
    assert (fx.base_url, fx.refresh_interval) == ("http://127.0.0.1:8/ecb", 1800)
    assert errors_of({"fx": {"base_url": "ftp://x"}}) == [
        "fx.base_url: must be an http:// or https:// URL"
    ]
