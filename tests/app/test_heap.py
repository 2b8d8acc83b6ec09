"""A refresh runs with the cyclic collector paused and freezes what survives it."""

from __future__ import annotations

import gc
from datetime import date

from exporter.heap import collect_daily, refresh_heap


def test_refresh_pauses_the_collector_and_freezes_the_survivors() -> None:
    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    kept = [[i] for i in range(1000)]  # young, tracked objects
    with refresh_heap():
        assert not gc.isenabled()
        with refresh_heap():  # nested (a render inside a refresh): still paused after it
            pass
        assert not gc.isenabled()
    assert gc.isenabled()
    assert gc.get_freeze_count() >= frozen + len(kept)
    gc.unfreeze()


def test_the_frozen_heap_is_collected_once_a_day() -> None:
    assert collect_daily(date(2031, 1, 1))
    assert not collect_daily(date(2031, 1, 1))
    assert collect_daily(date(2031, 1, 2))
    gc.unfreeze()
