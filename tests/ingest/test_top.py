"""``ai-cost-exporter top`` reads the ingested requests from SQLite (read only)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from exporter.cli import main
from exporter.clock import utc_now
from tests.ingest.senders import TOKEN, TOKEN_ENV, event, list_price, ndjson, running


def test_top_prints_the_dearest_users_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = utc_now()
    t = now - timedelta(minutes=1)
    with running(tmp_path, lambda: now) as ex:
        r = ex.post(
            "/api/v1/events",
            ndjson(
                [
                    event("1", t, user="alice", input_tokens=50_000),
                    event("2", t, user="bob"),
                    event("3", t, user="bob"),
                    event("4", t - timedelta(days=9), user="carol", input_tokens=900_000),
                ]
            ),
            "application/json",
        )
        assert r.json()["new"] == 4
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "storage": {"path": str(tmp_path / "history.db")},
        "ingest": {"enabled": True, "token_env": TOKEN_ENV},
    }))  # fmt: skip
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    assert main(["top", "--config", str(config), "--by", "user", "--days", "7"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[0] == "user"
    assert [line.split()[0] for line in out[2:]] == ["alice", "bob"]  # carol is 9 days old
    alice = list_price("openai", "gpt-4o-mini", 50_000, 200, when=t)
    assert out[2].split()[1] == str(alice.quantize(Decimal("0.000001")))
    assert out[3].split()[2] == "2"
    assert main(["top", "--config", str(config), "--by", "tenant", "--days", "30"]) == 0
    assert capsys.readouterr().out.splitlines()[2].split()[::2] == ["unknown", "4", "0"]
