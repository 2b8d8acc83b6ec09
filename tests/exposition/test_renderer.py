"""The Renderer keeps the text of unchanged per-account parts and writes the same bytes."""

from __future__ import annotations

import copy
import gzip
from decimal import Decimal

from exporter.analytics.rollups import compute_rollups
from exporter.exposition import Renderer, render
from exporter.snapshot import CostKey, Snapshot
from tests.exposition.test_exposition import TODAY, seeded_snapshot


def with_other_account(snapshot: Snapshot) -> Snapshot:
    out = copy.deepcopy(snapshot)
    for window, cost in out.totals.cost.items():
        cost[CostKey("openai", "zz-second", "p", "gpt-4o", "tokens", "USD")] = Decimal("1.25")
        out.totals.cost[window] = dict(sorted(cost.items()))
    return out


def test_a_second_render_reuses_every_unchanged_part_and_writes_the_same_bytes() -> None:
    renderer = Renderer()
    first = with_other_account(seeded_snapshot())
    assert renderer(first) == render(first)
    written = renderer.written
    assert renderer(first) == render(first) and renderer.written == written

    second = copy.deepcopy(first)  # one account's cost changes in every cost window
    key = CostKey("openai", "zz-second", "p", "gpt-4o", "tokens", "USD")
    for cost in second.totals.cost.values():
        cost[key] = Decimal("2.5")
    got = renderer(second)
    assert got == render(second)
    assert renderer.written == written + len(second.totals.cost)  # only those parts
    assert b'account="zz-second",cost_type="tokens",currency="USD",model="gpt-4o"' in got.text
    assert gzip.decompress(got.text_gzip) == got.text
    assert gzip.decompress(got.openmetrics_gzip) == got.openmetrics
    assert got.openmetrics.endswith(b"# EOF\n") and got.openmetrics.count(b"# EOF") == 1


def test_roll_up_parts_are_kept_per_account() -> None:
    """The roll-up families (keys carry provider and account, some paired with labels) are
    written per account part: changing one account's model cost rewrites that part only,
    and the bytes equal a fresh render's."""
    renderer = Renderer()
    first = with_other_account(seeded_snapshot())
    first.rollups = compute_rollups(TODAY, first.totals)
    renderer(first)
    written = renderer.written
    second = copy.deepcopy(first)
    changed = 0
    for cost in second.rollups.model.cost.values():
        for key in cost:
            if key[0].account == "zz-second":
                cost[key] += Decimal(1)
                changed += 1
    assert changed  # the other account has model roll-ups in every cost window
    got = renderer(second)
    assert got == render(second)
    assert renderer.written == written + len(second.rollups.model.cost)  # one part a window
    assert b'aicost_model_cost_30d{account="zz-second"' in got.text
