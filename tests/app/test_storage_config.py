"""``storage.url`` (PostgreSQL): the password comes from ``password_env`` or
``password_file``, never from the URL; ``url`` and ``path`` exclude each other; every
problem is reported at once; the password never reaches an error or check-config output."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from exporter.app import StorageError, open_election, open_store, storage_password
from exporter.cli import main
from exporter.config import ConfigErrors, check, validate
from exporter.election import AlwaysLeader
from tests.conftest import KEY_ENV
from tests.postgres import PASSWORD, PostgresServer

SECRET = "s3cr3t-Pg-pass"
PW_ENV = "AICOST_TEST_PG_PASSWORD"
PROVIDER = {"type": "openai", "name": "main", "api_key_env": KEY_ENV}


def errors_of(storage: dict[str, object], **extra: object) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        validate({"storage": storage, "providers": [PROVIDER], **extra})
    return info.value.errors


def test_a_password_in_the_url_is_refused_without_repeating_it() -> None:
    for url in (
        f"postgresql://aicost:{SECRET}@db:5432/aicost",
        f"postgresql://aicost@db/aicost?sslmode=require&password={SECRET}",
    ):
        errors = errors_of({"url": url, "password_env": PW_ENV})
        assert errors == [
            "storage.url: a password may not be written in the URL; remove it and set "
            "storage.password_env (name of an environment variable) or storage.password_file"
        ]
        assert SECRET not in str(errors)


def test_url_and_path_exclude_each_other_and_need_one_password_source() -> None:
    url = "postgresql://aicost@db:5432/aicost"
    assert errors_of({"url": url, "path": "/data/h.db", "password_env": PW_ENV}) == [
        "storage: set either path (SQLite, one process) or url (PostgreSQL, shared by "
        "replicas), not both"
    ]
    assert errors_of({"url": url}) == ["storage: storage.url needs password_env or password_file"]
    assert errors_of({"url": url, "password_env": PW_ENV, "password_file": "/run/pw"}) == [
        "storage: set only one of password_env and password_file"
    ]
    assert errors_of({"path": "/data/h.db", "password_env": PW_ENV}) == [
        "storage: password_env applies to storage.url (PostgreSQL) only"
    ]


def test_every_problem_is_reported_at_once() -> None:
    errors = errors_of({"url": "postgresql://db/", "password_env": SECRET + " x"}, currency="EURO")
    assert errors == [
        "currency: must be an ISO 4217 code such as USD or EUR",
        "storage.url: must be postgresql://user@host[:port]/database; missing a user (user@), "
        "a database (/name)",
        "storage.password_env: must be the NAME of an environment variable (letters, digits, "
        "_), not the password itself",
    ]
    assert SECRET not in str(errors)
    assert errors_of({"url": "mysql://u@db/x", "password_env": PW_ENV}) == [
        "storage.url: must be a postgresql://user@host[:port]/database URL"
    ]


def test_sqlite_stays_the_default_and_elects_nobody(tmp_path: Path) -> None:
    config = validate({"storage": {"path": str(tmp_path / "h.db")}})
    assert config.storage.target == str(tmp_path / "h.db") and not config.storage.postgres
    assert storage_password(config) is None
    store = open_store(config)
    try:
        assert isinstance(open_election(config, store), AlwaysLeader)
    finally:
        store.close()
    default = validate({})
    assert default.storage.url is None and default.storage.path.endswith("history.db")


def test_the_password_comes_from_env_or_file(tmp_path: Path) -> None:
    url = "postgresql://aicost@db:5432/aicost"
    config = validate({"storage": {"url": url, "password_env": PW_ENV}})
    password = storage_password(config, {PW_ENV: SECRET})
    assert password is not None and password.value == SECRET and SECRET not in repr(password)
    with pytest.raises(StorageError, match=f"environment variable {PW_ENV} is not set"):
        storage_password(config, {})
    file = tmp_path / "pw"
    file.write_text(SECRET + "\n")
    by_file = validate({"storage": {"url": url, "password_file": str(file)}})
    found = storage_password(by_file, {})
    assert found is not None and found.value == SECRET
    assert check(by_file.model_copy(update={"providers": []}), {}) == [
        "providers: no provider configured; nothing would be polled"
    ]
    file.write_text("")
    assert f"storage: password_file {file} is empty" in check(by_file, {KEY_ENV: "k"})


def test_a_missing_psycopg_is_one_line_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg -> ImportError
    config = validate({"storage": {"url": "postgresql://aicost@db/aicost", "password_env": PW_ENV}})
    line = (
        "storage.url: PostgreSQL needs psycopg 3, the optional extra: "
        "pip install 'ai-cost-exporter[postgres]'"
    )
    assert check(config, {PW_ENV: SECRET}) == [
        "providers: no provider configured; nothing would be polled",
        line,
    ]
    with pytest.raises(StorageError) as info:
        open_store(config, env={PW_ENV: SECRET})
    assert str(info.value) == line


def write_config(tmp_path: Path, storage: dict[str, object]) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"storage": storage, "providers": [PROVIDER]}))
    return path


def test_check_config_against_a_real_server_never_shows_the_password(
    tmp_path: Path,
    postgres: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-admin-test")
    url = postgres.url(postgres.database())
    path = write_config(tmp_path, {"url": url, "password_env": PW_ENV})

    monkeypatch.setenv(PW_ENV, PASSWORD)
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr()
    assert f"{path}: OK" in out.out and "history on PostgreSQL (storage.url)" in out.out
    assert PASSWORD not in out.out + out.err

    monkeypatch.setenv(PW_ENV, SECRET)  # wrong password: the server refuses it
    assert main(["check-config", str(path)]) == 1
    out = capsys.readouterr()
    assert "authentication failed" in out.err and "check the user in the URL" in out.err
    assert SECRET not in out.out + out.err and PASSWORD not in out.out + out.err

    monkeypatch.delenv(PW_ENV)
    assert main(["check-config", str(path)]) == 1
    out = capsys.readouterr()
    assert f"storage: environment variable {PW_ENV} is not set or empty" in out.err

    inline = write_config(tmp_path, {"url": postgres.url(password=True), "password_env": PW_ENV})
    assert main(["check-config", str(inline)]) == 1
    out = capsys.readouterr()
    assert "storage.url: a password may not be written in the URL" in out.err
    assert PASSWORD not in out.out + out.err


def test_the_composition_root_opens_the_url_with_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """open_store hands Store the URL (no password in it) and the password separately."""
    calls: list[tuple[tuple[object, ...], dict[str, object]]] = []

    def store(*args: object, **kwargs: object) -> object:
        calls.append((args, kwargs))
        return object()

    monkeypatch.setattr("exporter.app.Store", store)
    url = "postgresql://aicost@db:5432/aicost"
    config = validate({"storage": {"url": url, "password_env": PW_ENV}})
    open_store(config, read_only=True, env={PW_ENV: SECRET})
    assert calls == [((url,), {"read_only": True, "password": SECRET})]
    sqlite = validate({"storage": {"path": str(tmp_path / "h.db")}})
    open_store(sqlite)
    assert calls[-1] == ((str(tmp_path / "h.db"),), {"read_only": False})
