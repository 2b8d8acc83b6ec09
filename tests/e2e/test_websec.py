"""--web.config.file in the real process: TLS and basic auth on the demo, reloaded by a
real SIGHUP, and a bad web config refused at start with one clear error."""

from __future__ import annotations

import re
import signal
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from exporter.cli import main
from tests.e2e.process import ExporterProcess
from tests.e2e.stack import Prometheus, wait_until
from tests.exposition.certs import bcrypt_hash, make_pki

pytestmark = pytest.mark.e2e

HEALTHCHECK = Path(__file__).resolve().parents[2] / "deploy" / "docker" / "healthcheck.py"

WEB = """
tls_server_config: {{cert_file: server.crt, key_file: server.key, min_version: TLS12}}
basic_auth_users: {{{user}: '{hash}'}}
"""


def test_demo_over_tls_with_basic_auth_reloads_users_on_sighup(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    web = tmp_path / "web.yml"
    web.write_text(WEB.format(user="prometheus", hash=bcrypt_hash("first")))
    demo = ExporterProcess(
        ["demo", "--days", "3", "--storage.path", str(tmp_path / "demo.db"),
         "--web.config.file", str(web)],
        {}, tmp_path / "demo.log",
    )  # fmt: skip
    base = f"https://127.0.0.1:{demo.port}"
    tls = ssl.create_default_context(cafile=str(pki.ca))
    try:
        with httpx.Client(verify=tls, timeout=5) as c:
            demo.wait_for(
                lambda: c.get(base + "/-/ready", auth=("prometheus", "first")).status_code == 200,
                "the demo to load over TLS",
            )
            scrape = c.get(base + "/metrics", auth=("prometheus", "first"))
            assert scrape.status_code == 200 and "aicost_up{" in scrape.text
            assert c.get(base + "/metrics", auth=("prometheus", "wrong")).status_code == 401
            assert c.get(base + "/-/healthy").status_code == 200
            health = subprocess.run(
                [sys.executable, str(HEALTHCHECK), str(demo.proc.pid)],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
            assert health.returncode == 0, health.stderr  # the image's HEALTHCHECK, over TLS
            web.write_text(WEB.format(user="grafana", hash=bcrypt_hash("second")))
            demo.proc.send_signal(signal.SIGHUP)
            demo.wait_for(
                lambda: c.get(base + "/metrics", auth=("grafana", "second")).status_code == 200,
                "the reloaded users",
            )
            assert c.get(base + "/metrics", auth=("prometheus", "first")).status_code == 401
        log = demo.tail()
        assert f"listening on https://127.0.0.1:{demo.port}/metrics" in log
        assert "basic auth for 1 user(s)" in log
        assert f"web config {web} reloaded" in log
        assert "second" not in log and "$2y$" not in log
    finally:
        demo.stop()


def test_a_bad_web_config_stops_the_start_with_one_clear_error(tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_text("tls_server_config: {cert_file: missing.crt, key_file: missing.key}\n")
    config = tmp_path / "config.yaml"
    config.write_text(f"storage: {{path: {tmp_path / 'h.db'}}}\n")
    done = subprocess.run(
        [sys.executable, "-m", "exporter", "run", "--config", str(config),
         "--web.config.file", str(web), "--web.listen-address", "127.0.0.1:0"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if not line.startswith("ts=")]
    assert errors == [
        f"error: --web.config.file: invalid web config {web}:",
        f"  tls_server_config.cert_file: {tmp_path / 'missing.crt'} is not a readable file",
        f"  tls_server_config.key_file: {tmp_path / 'missing.key'} is not a readable file",
    ]
    assert not (tmp_path / "h.db").exists()  # refused before anything was opened
    checked = subprocess.run(
        [sys.executable, "-m", "exporter", "check-config", str(config),
         "--web.config.file", str(web)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert checked.returncode == 1 and "missing.crt is not a readable file" in checked.stderr


def test_check_config_loads_the_web_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    make_pki(tmp_path)
    web = tmp_path / "web.yml"
    web.write_text(WEB.format(user="prometheus", hash=bcrypt_hash("pw")))
    config = tmp_path / "config.yaml"
    config.write_text(
        f"storage: {{path: {tmp_path / 'h.db'}}}\n"
        "providers: [{type: openai, api_key_env: AICOST_WEBSEC_KEY}]\n"
    )
    monkeypatch.setenv("AICOST_WEBSEC_KEY", "sk-admin-websec")
    assert main(["check-config", str(config), "--web.config.file", str(web)]) == 0
    out = capsys.readouterr().out
    assert f"{web}: OK (TLS on (min TLSv1_2, no client certificates); basic auth for 1 " in out


def readme_https_job() -> str:
    """The README's scrape job for an exporter with TLS and basic auth."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, re.S)
    (block,) = [b for b in blocks if "scheme: https" in b]
    return block


def test_prometheus_scrapes_with_the_readme_config_and_a_wrong_password_is_down(
    tmp_path: Path,
) -> None:
    """The README's scrape config (scheme https, basic_auth, tls_config) with a real
    Prometheus: the right password scrapes, a wrong one is a 401 and up == 0."""
    pki = make_pki(tmp_path)
    web = tmp_path / "web.yml"
    web.write_text(WEB.format(user="prometheus", hash=bcrypt_hash("scrape-pw")))
    (tmp_path / "right").write_text("scrape-pw\n")
    (tmp_path / "wrong").write_text("guess\n")
    demo = ExporterProcess(
        ["demo", "--days", "2", "--storage.path", str(tmp_path / "demo.db"),
         "--web.config.file", str(web)],
        {}, tmp_path / "demo.log",
    )  # fmt: skip

    def job(name: str, password_file: Path) -> dict[str, Any]:
        """The README's https job, with this test's password file and CA."""
        (readme,) = yaml.safe_load(readme_https_job())
        readme["basic_auth"]["password_file"] = str(password_file)
        readme["tls_config"]["ca_file"] = str(pki.ca)
        return {**readme, "job_name": name}

    prometheus = None
    try:
        jobs = [job("ai-cost", tmp_path / "right"), job("intruder", tmp_path / "wrong")]
        prometheus = Prometheus(
            tmp_path, [f"127.0.0.1:{demo.port}"], [], "http://127.0.0.1:9", scrape_configs=jobs
        )

        def scraped() -> bool:
            ups = {r["metric"]["job"]: r["value"][1] for r in prometheus.query("up")}
            exported = prometheus.query('count(aicost_up{job="ai-cost"})')
            return ups == {"ai-cost": "1", "intruder": "0"} and bool(exported)

        wait_until(scraped, "Prometheus scraping over https", 90, prometheus.process)
        targets = httpx.get(prometheus.url + "/api/v1/targets", timeout=5).json()
        errors = {t["labels"]["job"]: t["lastError"] for t in targets["data"]["activeTargets"]}
        assert errors["ai-cost"] == ""
        assert "401 Unauthorized" in errors["intruder"]
    finally:
        if prometheus is not None:
            prometheus.process.stop()
        demo.stop()
