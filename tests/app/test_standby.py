"""A standby replica (exporter.app.App.poll without the account's lock): no provider call,
the leader's data and health from the shared history, a refresh only when it moved.

The election is replaced by one that always loses (another replica holds every lock), so
this runs on one SQLite file in-process; tests/e2e/test_replicas.py runs the real thing:
two processes electing on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from exporter.app import App, build
from exporter.demo.http import Fault
from exporter.demo.openai import FakeOpenAIServer
from exporter.election import AlwaysLeader, poll_job
from tests.conftest import fixed_clock, make_config
from tests.helpers import opened, parse_exposition

# Series each replica has for itself (docs/deployment.md, "What every replica serves").
PER_REPLICA = (
    "aicost_poller_leader",
    "aicost_api_requests_total",
    "aicost_poll_errors_total",
    "aicost_poll_degraded_total",
)


class OtherReplicaLeads:
    """Another replica holds every lock."""

    def __init__(self) -> None:
        self.tried: list[str] = []

    def holds(self, job: str) -> bool:
        self.tried.append(job)
        return False

    def leader(self, job: str) -> bool:
        return False

    def close(self) -> None:
        pass


def shared(app: App) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    samples = parse_exposition(app.rendered.text.decode())
    return {k: v for k, v in samples.items() if not k[0].startswith(PER_REPLICA)}


def test_a_standby_calls_no_provider_and_serves_the_leaders_values(
    tmp_path: Path, fake: FakeOpenAIServer, env: dict[str, str]
) -> None:
    config = make_config(tmp_path, fake.base_url)
    leader = opened(build(config, clock=fixed_clock, env=env))
    standby = opened(build(config, clock=fixed_clock, env=env))
    leader.shared = standby.shared = True  # as with storage.url
    election = OtherReplicaLeads()
    standby.election = election
    for app in (leader, standby):
        app.refresher.settle = 0.01

    leader.poll(leader.pollers[0])  # the backfill
    calls = len(fake.requests)
    assert calls > 0
    standby.poll(standby.pollers[0])
    assert election.tried == [poll_job("openai", "main")]
    assert len(fake.requests) == calls, "the standby called the provider"
    assert standby.refresher.wait_idle(timeout=60) and standby.refresher.runs == 1
    assert shared(standby) == shared(leader)
    assert any(k[0] == "aicost_cost_30d" for k in shared(leader))
    health = standby.health()[0]
    assert health.up and not health.leader and health.poll_duration > 0
    assert health.last_success == leader.health()[0].last_success
    text = standby.rendered.text.decode()
    assert 'aicost_poller_leader{account="main",provider="openai"} 0.0' in text
    assert 'aicost_poller_leader{account="main",provider="openai"} 1.0' in (
        leader.rendered.text.decode()
    )

    standby.poll(standby.pollers[0])  # nothing new: no refresh
    assert standby.refresher.wait_idle(timeout=60) and standby.refresher.runs == 1

    fake.inject(Fault(status=401, times=100))  # the leader's next poll fails
    leader.poll(leader.pollers[0])
    assert leader.refresher.wait_idle(timeout=60)
    assert not leader.health()[0].up
    standby.poll(standby.pollers[0])
    assert standby.refresher.wait_idle(timeout=60) and standby.refresher.runs == 2
    assert not standby.health()[0].up
    assert shared(standby) == shared(leader)
    assert len(fake.requests) > calls and standby.health()[0].requests == {}


def test_a_replica_that_wins_the_lock_again_polls_and_leads(
    tmp_path: Path, fake: FakeOpenAIServer, env: dict[str, str]
) -> None:
    config = make_config(tmp_path, fake.base_url)
    app = opened(build(config, clock=fixed_clock, env=env))
    app.shared = True
    app.election = OtherReplicaLeads()
    app.poll(app.pollers[0])
    assert fake.requests == [] and not app.health()[0].leader
    app.election = AlwaysLeader()  # the lock is free now: this replica wins it
    app.poll(app.pollers[0])
    assert fake.requests and app.health()[0].leader and app.health()[0].up
    status = app.store.poll_status("openai", "main")
    assert status is not None and status.up and status.poll_duration > 0
