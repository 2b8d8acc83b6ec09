"""Coalesced refreshes: a burst of polls gives one recompute; scrapes keep the old bytes."""

from __future__ import annotations

import threading
from pathlib import Path

from exporter.app import build
from exporter.demo.openai import FakeOpenAIServer
from exporter.exposition import Rendered
from exporter.refresh import Refresher
from tests.conftest import fixed_clock, make_config
from tests.helpers import opened


def test_a_burst_of_requests_runs_the_work_once() -> None:
    calls: list[int] = []
    refresher = opened(Refresher(lambda: calls.append(1), settle=0.2))
    for _ in range(6):  # six accounts finishing their polls together
        refresher.request()
    assert refresher.wait_idle(timeout=30)
    assert calls == [1] and refresher.runs == 1


def test_a_request_during_a_refresh_runs_it_once_more() -> None:
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def work() -> None:
        calls.append(1)
        started.set()
        release.wait(timeout=30)

    refresher = opened(Refresher(work, settle=0.05))
    refresher.request()
    assert started.wait(timeout=30)
    refresher.request()  # the running refresh may have read the store before this poll
    refresher.request()
    release.set()
    assert refresher.wait_idle(timeout=30)
    assert len(calls) == 2


def test_the_refresh_waits_while_polls_are_still_running() -> None:
    calls: list[int] = []
    running = [True]
    refresher = opened(Refresher(lambda: calls.append(1), busy=lambda: running[0], settle=0.01))
    refresher.request()  # the first account finished; others still polling
    assert not refresher.wait_idle(timeout=0.3) and calls == []
    running[0] = False
    refresher.request()  # the last one finished
    assert refresher.wait_idle(timeout=30) and calls == [1]


def test_a_failing_refresh_is_logged_and_the_next_request_retries() -> None:
    outcomes = iter([RuntimeError("boom"), None])

    def work() -> None:
        failure = next(outcomes)
        if failure:
            raise failure

    refresher = opened(Refresher(work, settle=0.01))
    refresher.request()
    assert refresher.wait_idle(timeout=30)
    refresher.request()
    assert refresher.wait_idle(timeout=30) and refresher.runs == 2


def test_scheduled_polls_of_every_account_render_once(
    tmp_path: Path, fake: FakeOpenAIServer, env: dict[str, str]
) -> None:
    providers = [
        {"type": "openai", "name": f"acct{i}", "base_url": fake.base_url,
         "api_key_env": "AICOST_TEST_OPENAI_KEY"}
        for i in range(3)
    ]  # fmt: skip
    app = opened(build(make_config(tmp_path, fake.base_url, providers=providers),
                       clock=fixed_clock, env=env))  # fmt: skip
    app.refresher.settle = 0.5
    assert app.poll_once()  # the backfills (each followed by its own FX refresh, see App.poll)
    renders: list[int] = []
    refresh = app.refresh

    def counted() -> Rendered:
        renders.append(1)
        return refresh()

    app.refresh = counted  # type: ignore[method-assign]
    before = app.rendered
    polls = [threading.Thread(target=app.poll, args=[p]) for p in app.pollers]
    for t in polls:  # as the scheduler runs them: every account at the same start time
        t.start()
    for t in polls:
        t.join(timeout=120)
    assert app.refresher.wait_idle(timeout=120)
    assert len(renders) == 1
    assert app.rendered is not before and b'account="acct2"' in app.rendered.text
