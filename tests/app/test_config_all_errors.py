"""Config: every error in one pass, cross-field checks included, each at its YAML path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from exporter.cli import main
from exporter.config import ConfigErrors, validate

DUPLICATE = (
    "providers[2].name: two openai providers share the name 'main' "
    "(providers[0] and providers[2]); give each a distinct `name`"
)


def errors_of(data: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        validate(data)
    return info.value.errors


def test_cross_field_checks_run_when_fields_are_wrong_too() -> None:
    errors = errors_of({
        "currency": "dollars",
        "providers": [
            {"type": "openai", "name": "main", "api_key_env": "A"},
            {"type": "anthropic", "name": "main", "api_key_env": "B"},  # another type: fine
            {"type": "openai", "name": "main", "api_key_env": "C",
             "base_url": "ftp://proxy"},  # its own field error, and a duplicate
        ],
        "budgets": [{"name": "b", "period": "day", "limit": 1},
                    {"name": "b", "period": "fortnight", "limit": 1}],
    })  # fmt: skip
    assert errors == [
        "currency: must be an ISO 4217 code such as USD or EUR",
        "providers[2].base_url: must be an http:// or https:// URL",
        "budgets[1].period: Input should be 'day', 'week' or 'month'",
        DUPLICATE,
        "budgets: budgets[0] and budgets[1] are both named 'b'; budget names must be unique",
    ]


def test_check_config_reports_field_cross_field_and_key_errors_in_one_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AICOST_MISSING_KEY", raising=False)
    monkeypatch.setenv("AICOST_PRESENT_KEY", "sk-admin-present-secret")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "poll": {"interval": "soon"},
        "providers": [
            {"type": "openai", "name": "main", "api_key_env": "AICOST_PRESENT_KEY"},
            {"type": "xai", "name": "grok", "api_key_env": "AICOST_MISSING_KEY"},  # no team_id
            {"type": "openai", "name": "main", "api_key_file": str(tmp_path / "nope")},
        ],
    }))  # fmt: skip
    assert main(["check-config", str(path)]) == 1
    err = capsys.readouterr().err
    lines = [line.strip() for line in err.splitlines()[1:]]
    assert lines == [
        "poll.interval: expected a duration such as 30s, 15m, 1h",
        "providers[1].team_id: Field required",
        DUPLICATE,
        "providers[1]: environment variable AICOST_MISSING_KEY is not set or empty",
        f"providers[2]: cannot read api_key_file {tmp_path / 'nope'}: No such file or directory",
    ]
    assert "sk-admin-present-secret" not in err
