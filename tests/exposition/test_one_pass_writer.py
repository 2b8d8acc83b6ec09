"""The one-pass writer of render() is byte for byte what prometheus_client writes."""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import CollectorRegistry

from exporter.exposition import _SnapshotCollector, _write_both, render
from exporter.snapshot import Attribution, ProjectInfo, Snapshot
from tests.exposition.test_exposition import seeded_snapshot


def library(snapshot: Snapshot) -> tuple[bytes, bytes]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    return generate_latest(registry), generate_openmetrics(registry)


def test_the_seeded_snapshot_renders_as_the_client_library_writes_it() -> None:
    snapshot = seeded_snapshot()
    rendered = render(snapshot)
    assert (rendered.text, rendered.openmetrics) == library(snapshot)
    assert b"_total{" in rendered.text  # counters are covered too


def test_label_values_that_need_escaping_and_odd_floats() -> None:
    snapshot = seeded_snapshot()
    odd = 'Ops "blue" \\ team\nline two · ü'
    snapshot.governance.project_info = [
        *snapshot.governance.project_info,
        ProjectInfo("openai", "main", "proj_q", odd, Attribution(team=odd)),
    ]
    rendered = render(snapshot)
    assert (rendered.text, rendered.openmetrics) == library(snapshot)
    assert b'project_name="Ops \\"blue\\" \\\\ team\\nline two' in rendered.text
    family = GaugeMetricFamily("x_value", 'help with "quotes" and \\ and\nnewline', labels=["a"])
    for i, value in enumerate((0.0, -1.5, 1e21, 123456789.0, float("inf"), float("nan"), 1e-7)):
        family.add_metric([str(i)], value)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed([family]))
    assert _write_both([family]) == (generate_latest(registry), generate_openmetrics(registry))


class _Fixed:
    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self.families = families

    def collect(self) -> list[GaugeMetricFamily]:
        return self.families

    def describe(self) -> list[GaugeMetricFamily]:
        return []
