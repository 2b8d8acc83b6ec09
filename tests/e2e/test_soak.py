"""Soak (bounded, loopback only): the real exporter process polls the demo fakes every 2 s
while random faults are injected, and is scraped 20 times a second over TLS with basic
auth. At the end: the process's RSS growth is reported, no file descriptor leaked, and the
stored and published values equal the fake orgs' truth exactly.

``AICOST_SOAK_SECONDS`` sets the scraping time (default 60 s; e.g. 3600 for an hour).
Deselect with ``-m 'not soak'``.
"""

from __future__ import annotations

import os
import random
import ssl
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from exporter.clock import utc_now
from exporter.demo.anthropic import FakeAnthropicServer, generate_anthropic_org
from exporter.demo.http import FakeHTTPServer, Fault
from exporter.demo.openai import FakeOpenAIServer, generate_org
from exporter.demo.xai import FakeXaiServer, generate_team
from exporter.store import Store
from tests.e2e.process import ExporterProcess
from tests.exposition.certs import bcrypt_hash, make_pki
from tests.helpers import parse_exposition
from tests.oracles import anthropic as anthropic_truth
from tests.oracles import openai as openai_truth
from tests.oracles import xai as xai_truth

pytestmark = [pytest.mark.e2e, pytest.mark.soak]

SECONDS = float(os.environ.get("AICOST_SOAK_SECONDS", "60"))
SCRAPES_PER_SECOND = 20
BACKFILL_DAYS = 20
PASSWORD = "soak-s3cret"
FD_SLACK = 6  # pooled keep-alive connections may differ by a few between two samples
RSS_LIMIT_KB = 64 * 1024  # a gross leak, not noise: the figure itself is reported


def _faults(rng: random.Random) -> Fault:
    kind = rng.choice(["429", "500", "503", "timeout", "truncate", "garbage", "slow"])
    times = rng.randint(1, 3)
    if kind == "429":
        return Fault(status=429, retry_after=rng.choice(["0", "1"]), times=times)
    if kind in ("500", "503"):
        return Fault(status=int(kind), times=times)
    if kind == "timeout":
        return Fault(delay=1.5, times=times)  # above poll.timeout
    if kind == "slow":
        return Fault(delay=0.3, times=times)
    if kind == "truncate":
        return Fault(truncate=True, times=times)
    return Fault(body=b'{"data": [{"object": "bucket"', times=times)


@dataclass
class Orgs:
    today: date
    fakes: dict[str, FakeHTTPServer[Any]] = field(default_factory=dict)
    providers: list[dict[str, str]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def add(self, kind: str, fake: FakeHTTPServer[Any], key: str, **extra: str) -> None:
        self.fakes[kind] = fake
        env = f"AICOST_SOAK_{kind.upper()}_KEY"
        self.env[env] = key
        self.providers.append(
            {"type": kind, "name": f"{kind}-soak", "base_url": fake.base_url,
             "api_key_env": env, **extra}
        )  # fmt: skip

    def truth(self, start: date, end: date) -> dict[str, dict[tuple[str, ...], Decimal]]:
        """Exact cost per provider by the oracles' keys."""
        openai = self.fakes["openai"].org
        anthropic = self.fakes["anthropic"].org
        xai = self.fakes["xai"].org
        return {
            "openai": dict(openai_truth.truth_costs(openai, start, end)),
            "anthropic": dict(anthropic_truth.truth_costs(anthropic, start, end)),
            "xai": dict(xai_truth.truth_costs(xai, start, end)),
        }


@pytest.fixture
def orgs() -> Iterator[Orgs]:
    today = utc_now().date()
    out = Orgs(today)
    with ExitStack() as stack:
        org = generate_org(today=today, days=BACKFILL_DAYS + 5, seed=41)
        out.add("openai", stack.enter_context(FakeOpenAIServer(org)), org.admin_key)
        ant = generate_anthropic_org(today=today, days=BACKFILL_DAYS + 5, seed=41)
        out.add("anthropic", stack.enter_context(FakeAnthropicServer(ant)), ant.admin_key)
        team = generate_team(today=today, days=BACKFILL_DAYS + 5, seed=41)
        fake = stack.enter_context(FakeXaiServer(team))
        out.add("xai", fake, team.management_key, team_id=team.team_id)
        yield out


def _proc_status(pid: int) -> tuple[int, int]:
    """(RSS in kB, open file descriptors) of a process, from /proc."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_soak_under_faults_keeps_memory_fds_and_values(
    orgs: Orgs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pki = make_pki(tmp_path)
    web = tmp_path / "web.yml"
    web.write_text(
        "tls_server_config: {cert_file: server.crt, key_file: server.key}\n"
        f"basic_auth_users: {{prometheus: '{bcrypt_hash(PASSWORD)}'}}\n"
    )
    db = tmp_path / "history.db"
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "storage": {"path": str(db)},
                "poll": {"interval": "2s", "lookback_days": 3, "backfill_days": BACKFILL_DAYS,
                         "timeout": "1s", "max_attempts": 2, "backoff_initial": "50ms",
                         "backoff_max": "200ms", "max_retry_after": "2s"},
                "providers": orgs.providers,
            }
        )
    )  # fmt: skip
    proc = ExporterProcess(
        ["run", "--config", str(config), "--web.config.file", str(web)],
        orgs.env,
        tmp_path / "soak.log",
    )
    base = f"https://127.0.0.1:{proc.port}"
    auth = ("prometheus", PASSWORD)
    tls = ssl.create_default_context(cafile=str(pki.ca))
    stop_faults = threading.Event()
    failures: list[str] = []
    counts: dict[str, int] = defaultdict(int)

    def up_and_polled(c: httpx.Client, after: float) -> bool:
        response = c.get(base + "/metrics", auth=auth)
        if response.status_code != 200:  # 503 while the history loads
            return False
        samples = parse_exposition(response.text)
        ups = [v for (name, _), v in samples.items() if name == "aicost_up"]
        last = [
            v for (name, _), v in samples.items() if name == "aicost_last_success_timestamp_seconds"
        ]
        return len(ups) == 3 and all(v == 1 for v in ups) and all(v > after for v in last)

    def inject() -> None:
        rng = random.Random(7)
        while not stop_faults.wait(0.4):
            fake = orgs.fakes[rng.choice(sorted(orgs.fakes))]
            fake.inject(_faults(rng))
            counts["faults"] += 1

    try:
        with httpx.Client(verify=tls, timeout=10) as c:
            proc.wait_for(lambda: up_and_polled(c, 0), "the first polls", 120)
        injector = threading.Thread(target=inject, name="faults", daemon=True)
        injector.start()
        rss0 = fds0 = 0
        started = time.monotonic()
        c = httpx.Client(verify=tls, timeout=10)
        try:
            n = 0
            while (elapsed := time.monotonic() - started) < SECONDS:
                if n and n % 200 == 0:  # a fresh connection now and then: a new handshake
                    c.close()
                    c = httpx.Client(verify=tls, timeout=10)
                wrong = n % 97 == 0
                r = c.get(base + "/metrics", auth=("prometheus", "wrong") if wrong else auth)
                want = 401 if wrong else 200
                if r.status_code != want:
                    failures.append(f"scrape {n}: HTTP {r.status_code}, expected {want}")
                elif not wrong and n % 20 == 0:
                    parse_exposition(r.text)  # a complete, parseable exposition
                counts["scrapes"] += 1
                n += 1
                if not rss0 and elapsed > min(5.0, SECONDS / 4):
                    rss0, fds0 = _proc_status(proc.proc.pid)
                time.sleep(max(0.0, n / SCRAPES_PER_SECOND - (time.monotonic() - started)))
        finally:
            c.close()
        stop_faults.set()
        injector.join(timeout=5)
        for fake in orgs.fakes.values():
            with fake.lock:
                fake.faults.clear()
        clean_from = time.time() + 1
        with httpx.Client(verify=tls, timeout=10) as c:
            proc.wait_for(lambda: up_and_polled(c, clean_from), "a clean poll of every account", 60)
            samples = parse_exposition(c.get(base + "/metrics", auth=auth).text)
        rss1, _ = _proc_status(proc.proc.pid)
        proc.wait_for(
            lambda: _proc_status(proc.proc.pid)[1] <= fds0 + FD_SLACK,
            f"open fds back to {fds0} (+{FD_SLACK})",
            15,
        )
        fds1 = _proc_status(proc.proc.pid)[1]
        errors = {
            dict(labels)["reason"]
            for (name, labels), v in samples.items()
            if name == "aicost_poll_errors_total" and v > 0
        }
    finally:
        stop_faults.set()
        proc.stop()
    with capsys.disabled():
        print(
            f"\nsoak: {SECONDS:.0f}s, {counts['scrapes']} scrapes, {counts['faults']} faults "
            f"injected (poll error reasons seen: {', '.join(sorted(errors)) or 'none'}); "
            f"RSS {rss0} kB -> {rss1} kB ({rss1 - rss0:+d} kB); fds {fds0} -> {fds1}"
        )
    assert not failures, failures[:5]
    assert rss1 - rss0 < RSS_LIMIT_KB
    assert errors, "no injected fault ever failed a poll: the soak did not test faults"
    # exact values: the history equals the truth, to the last digit
    start, end = orgs.today - timedelta(days=BACKFILL_DAYS), orgs.today + timedelta(days=1)
    store = Store(str(db), read_only=True)
    try:
        stored: dict[str, dict[tuple[str, ...], Decimal]] = defaultdict(
            lambda: defaultdict(Decimal)
        )
        for cost in store.costs_between(start, end):
            key = (cost.model, cost.cost_type)
            stored[cost.provider][key if cost.provider == "xai" else (cost.project, *key)] += (
                cost.amount
            )
    finally:
        store.close()
    truth = orgs.truth(start, end)
    assert {p: dict(v) for p, v in stored.items()} == truth
    # and what /metrics publishes for the last 30 days (all stored complete days) agrees
    month = orgs.truth(start, orgs.today)
    for provider, by_key in month.items():
        published = sum(
            v
            for (name, labels), v in samples.items()
            if name == "aicost_cost_30d" and dict(labels)["provider"] == provider
        )
        assert abs(Decimal(repr(published)) - sum(by_key.values())) < Decimal("1e-6"), provider
