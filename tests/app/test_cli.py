"""The command line, run as a real process: --help, check-config, poll --once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from exporter.demo.openai import FakeOpenAIServer
from exporter.records import FetchResult
from exporter.store import Store
from tests.analytics.test_recommendations import billed, use
from tests.conftest import KEY_ENV

FAKE_SECRET = "not-a-real-key-for-cli-tests-42"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})},
    )  # fmt: skip


@pytest.mark.parametrize("command", ["run", "demo", "check-config", "poll", "recommendations"])
def test_help_for_every_command(command: str) -> None:
    proc = cli(command, "--help")
    assert proc.returncode == 0 and "usage: ai-cost-exporter " + command in proc.stdout


def test_check_config_reports_every_error_and_exits_non_zero(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump(
            {"currency": "usd dollars", "poll": {"intervall": "5m"},
             "providers": [{"type": "openai", "api_key": FAKE_SECRET}]}
        )
    )  # fmt: skip
    proc = cli("check-config", str(path))
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[1:] == [
        "  currency: must be an ISO 4217 code such as USD or EUR",
        "  poll.intervall: unknown key",
        "  providers[0].api_key: admin keys may not be written in the config file; "
        "set api_key_env (name of an environment variable) or api_key_file",
    ]
    assert FAKE_SECRET not in proc.stdout + proc.stderr


def test_check_config_resolves_keys_without_printing_them(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump({"providers": [{"type": "openai", "api_key_env": KEY_ENV}],
                                    "storage": {"path": str(tmp_path / "h.db")}}))  # fmt: skip
    missing = cli("check-config", str(path), env={KEY_ENV: ""})
    assert missing.returncode == 1 and f"{KEY_ENV} is not set" in missing.stderr
    ok = cli("check-config", str(path), env={KEY_ENV: FAKE_SECRET})
    assert ok.returncode == 0 and "OK (1 provider(s): openai/openai)" in ok.stdout
    assert FAKE_SECRET not in ok.stdout + ok.stderr + missing.stdout + missing.stderr


def test_example_config_passes_check_config(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "config.example.yaml"
    # check-config also checks that storage.path can be written; the example's
    # /var/lib/ai-cost-exporter needs root (or the image's volume), so it moves to tmp_path
    text = example.read_text().replace("/var/lib/ai-cost-exporter/", f"{tmp_path}/")
    (tmp_path / "config.yaml").write_text(text)
    proc = cli("check-config", str(tmp_path / "config.yaml"), env={"OPENAI_ADMIN_KEY": FAKE_SECRET})
    assert proc.returncode == 0, proc.stderr


def test_check_config_warns_about_budgets_matching_no_stored_cost(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    from exporter.records import CostRecord, FetchResult
    from exporter.store import Store

    db = tmp_path / "h.db"
    today = datetime.now(UTC).date()  # the subprocess reads the real clock
    row = CostRecord("openai", "openai", today, "proj_a", "gpt-4o", "tokens", Decimal(3))
    store = Store(db)
    store.replace_window("openai", "openai", FetchResult(today, today + timedelta(1), costs=[row]))
    store.close()
    config = {
        "storage": {"path": str(db)},
        "providers": [{"type": "openai", "api_key_env": KEY_ENV}],
        "attribution": [{"match": {"project": "proj_a"}, "team": "search"}],
        "budgets": [
            {"name": "search", "period": "day", "limit": 5, "scope": {"team": "search"}},
            {"name": "typo", "period": "month", "limit": 5, "scope": {"team": "serach"}},
        ],
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    before = db.stat().st_mtime_ns
    proc = cli("check-config", str(path), env={KEY_ENV: FAKE_SECRET})
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stdout.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: budgets[1] (typo): its scope matches no cost in {db} "
        "(last 30 days and this month)"
    ]
    assert db.stat().st_mtime_ns == before  # read only
    # no history yet: nothing to check against, no warning
    config["storage"]["path"] = str(tmp_path / "none.db")
    path.write_text(yaml.safe_dump(config))
    proc = cli("check-config", str(path), env={KEY_ENV: FAKE_SECRET})
    assert proc.returncode == 0 and "warning" not in proc.stdout
    assert not (tmp_path / "none.db").exists()


def test_poll_once_backfills_stores_and_exits(fake: FakeOpenAIServer, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    db = tmp_path / "h.db"
    path.write_text(
        yaml.safe_dump(
            {"storage": {"path": str(db)}, "poll": {"backfill_days": 10},
             "providers": [{"type": "openai", "base_url": fake.base_url, "api_key_env": KEY_ENV}]}
        )
    )  # fmt: skip
    proc = cli("poll", "--config", str(path), "--once", env={KEY_ENV: fake.org.admin_key})
    assert proc.returncode == 0, proc.stderr
    assert "[backfill]" in proc.stderr and fake.org.admin_key not in proc.stderr
    from exporter.store import Store

    store = Store(db)
    assert store.provider_state("openai", "openai")["backfilled_from"] is not None
    store.close()
    failing = cli("poll", "--config", str(path), "--once", env={KEY_ENV: "wrong-key"})
    assert failing.returncode == 1 and "reason=auth" in failing.stderr


def test_recommendations_prints_evidence_and_formulas_from_the_history(tmp_path: Path) -> None:
    today = datetime.now(UTC).date()
    rows = [use(age, today=today) for age in range(1, 31)]
    db = tmp_path / "history.db"
    store = Store(db)
    store.replace_window(
        "openai", "main", FetchResult(today - timedelta(days=60), today, rows, billed(rows))
    )
    store.close()
    path = tmp_path / "config.yaml"
    dismissed = [{"recommendation": "batch", "reason": "chat needs answers now"}]
    path.write_text(
        yaml.safe_dump({"storage": {"path": str(db)}, "recommendations": {"dismissed": dismissed}})
    )
    proc = cli("recommendations", "--config", str(path), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["currency"] == "USD" and out["date"] == today.isoformat()
    by_kind = {r["recommendation"]: r for r in out["recommendations"]}
    assert set(by_kind) == {"batch", "model_downgrade"}
    assert by_kind["batch"]["dismissed"] == "chat needs answers now"
    downgrade = by_kind["model_downgrade"]
    assert downgrade["target"] == "gpt-4o-mini" and downgrade["first_seen"] is None
    assert downgrade["evidence"]["tokens.output"] == str(30 * 100_000)
    assert downgrade["formula"].endswith(f"= {downgrade['monthly']}")
    table = cli("recommendations", "--config", str(path))
    assert table.returncode == 0 and "formula:" in table.stdout
    assert "dismissed: chat needs answers now" in table.stdout


def test_recommendations_without_a_history_says_how_to_get_one(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"storage": {"path": str(tmp_path / "none.db")}}))
    proc = cli("recommendations", "--config", str(path))
    assert proc.returncode == 1 and "no history at" in proc.stderr
    assert "poll --config" in proc.stderr and not (tmp_path / "none.db").exists()
