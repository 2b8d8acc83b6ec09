"""``backfill``: the stored history as OpenMetrics for ``promtool tsdb create-blocks-from
openmetrics``, so Grafana shows the whole history on the day the exporter is installed.

For every UTC day D of ``[from, to]`` the exporter's own analytics compute the snapshot it
publishes on day D (windows ``today`` = all of D, ``yesterday`` = D-1, ``7d``, ``30d``,
``month_to_date``; the month-end forecast; ``aicost_project_info``) from the stored rows,
the exporter's own renderer turns it into metric families, and each sample is written with
the timestamp **00:00 UTC of D** (one sample per series and day). So at noon of D+1,
``last_over_time(aicost_cost_yesterday[1d])`` is the stored cost of D, and a trend panel
that reads ``last_over_time(X[1d])`` draws the backfilled days and then the live scrapes
without a seam. Values only change once a day (the history is daily), which is why one
sample a day is enough: a year of 10k streams is ~365 x 300k samples.

Series carry ``job`` (``--job``, default ``ai-cost-exporter``, the job name of the shipped
scrape config) and, when given, ``instance``, like scraped series do.

Output: ``DIR/aicost-backfill-YYYY-MM.om``, one file per month, each strict OpenMetrics
(each family once, each series' samples together and in time order, ``# EOF`` last). The
default ``to`` is today (its sample at 00:00 UTC holds the day as stored so far), so the
backfilled lines reach the first live scrape without a gap.
"""

from __future__ import annotations

import heapq
import math
import tempfile
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import IO

from prometheus_client.core import Metric

from exporter.analytics.attribution import project_infos
from exporter.analytics.forecast import RUN_RATE_DAYS, month_end_forecasts
from exporter.analytics.windows import compute_windows, history_start
from exporter.clock import midnight_ts
from exporter.config import Config
from exporter.exposition import families
from exporter.records import CostRecord, UsageRecord
from exporter.snapshot import Governance, Snapshot
from exporter.store import Store

WINDOWS = ("today", "yesterday", "7d", "30d", "month_to_date")
FAMILIES: tuple[str, ...] = (
    *(f"aicost_cost_{w}" for w in WINDOWS),
    *(f"aicost_tokens_{w}" for w in WINDOWS),
    *(f"aicost_requests_{w}" for w in WINDOWS),
    "aicost_cost_forecast_month_end",
    "aicost_project_info",
)
DEFAULT_JOB = "ai-cost-exporter"


@dataclass(frozen=True)
class BackfillResult:
    paths: tuple[Path, ...]  # one OpenMetrics file per month
    first: date
    last: date
    samples: int
    series: int


def _lookback(day: date) -> date:
    """The oldest day the snapshot of ``day`` reads (windows and the forecast)."""
    return min(history_start(day), day.replace(day=1), day - timedelta(days=RUN_RATE_DAYS))


def snapshots(
    config: Config, store: Store, first: date, last: date
) -> Iterator[tuple[date, Snapshot]]:
    """The published snapshot of every day ``first`` .. ``last`` (windows, forecasts,
    attribution), one day at a time from rows read once."""
    start, end = _lookback(first), last + timedelta(days=1)
    costs, withheld = store.converted_costs_between(start, end, config.currency)
    usage = store.usage_between(start, end)
    projects = store.projects()
    by_day_cost: dict[date, list[CostRecord]] = defaultdict(list)
    by_day_withheld: dict[date, list[CostRecord]] = defaultdict(list)
    by_day_usage: dict[date, list[UsageRecord]] = defaultdict(list)
    for c in costs:
        by_day_cost[c.day].append(c)
    for c in withheld:
        by_day_withheld[c.day].append(c)
    for u in usage:
        by_day_usage[u.day].append(u)
    day = first
    while day <= last:
        span = [_lookback(day) + timedelta(days=i) for i in range((day - _lookback(day)).days + 1)]
        c_rows = [c for d in span for c in by_day_cost.get(d, ())]
        u_rows = [u for d in span for u in by_day_usage.get(d, ())]
        w_rows = [c for d in span for c in by_day_withheld.get(d, ())]
        window_start = history_start(day)
        totals = compute_windows(
            day,
            [u for u in u_rows if u.day >= window_start],
            [c for c in c_rows if c.day >= window_start],
            [c for c in w_rows if c.day >= window_start],
        )
        recent: list[CostRecord | UsageRecord] = [
            *[c for c in c_rows if c.day >= window_start],
            *u_rows,
        ]
        governance = Governance(
            currency=config.currency,
            project_info=project_infos(config.attribution, projects, recent),
            forecasts=month_end_forecasts(c_rows, day),
        )
        yield day, Snapshot(totals=totals, governance=governance)
        day += timedelta(days=1)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _sample_lines(metric: Metric, extra: Sequence[tuple[str, str]], ts: int) -> Iterator[str]:
    for s in metric.samples:
        pairs = [*extra, *sorted(s.labels.items())]
        labels = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
        yield f"{s.name}{{{labels}}} {_number(s.value)} {ts}\n"


def _series(line: str) -> str:
    """The series of a sample line (name and labels): what OpenMetrics groups by."""
    return line.rsplit(" ", 2)[0]


class _FamilyRuns:
    """Sample lines of one family, grouped by series on the way out: lines arrive in time
    order (day by day); sorted runs of at most ``chunk`` lines go to disk and are merged
    by series (stable, so each series keeps its time order). Memory stays bounded for a
    year of a large org."""

    def __init__(self, tmp: Path, name: str, chunk: int) -> None:
        self._tmp, self._name, self._chunk = tmp, name, chunk
        self._buffer: list[str] = []
        self._runs: list[Path] = []

    def add(self, line: str) -> None:
        self._buffer.append(line)
        if len(self._buffer) >= self._chunk:
            self._spill()

    def _spill(self) -> None:
        path = self._tmp / f"{self._name}.{len(self._runs)}"
        path.write_text("".join(sorted(self._buffer, key=_series)), encoding="utf-8")
        self._runs.append(path)
        self._buffer = []

    def write_to(self, out: IO[str]) -> None:
        if self._buffer:
            self._spill()
        files = [open(p, encoding="utf-8") for p in self._runs]
        try:
            out.writelines(heapq.merge(*files, key=_series))
        finally:
            for f in files:
                f.close()


def write_backfill(
    config: Config,
    store: Store,
    output: Path,
    first: date,
    last: date,
    *,
    job: str = DEFAULT_JOB,
    instance: str = "",
    chunk: int = 500_000,
) -> BackfillResult:
    """Write ``output/aicost-backfill-YYYY-MM.om``, one file per month of ``first`` ..
    ``last``: promtool reads its whole input once per block it cuts, so a month per file
    (a block per file with ``--max-block-duration=744h``) reads each sample once."""
    if last < first:
        raise ValueError(f"--from {first} is after --to {last}")
    output.mkdir(parents=True, exist_ok=True)
    extra = [("job", job), *([("instance", instance)] if instance else [])]
    wanted = set(FAMILIES)
    samples = 0
    series: set[str] = set()
    meta: dict[str, tuple[str, str]] = {}
    paths: list[Path] = []
    with tempfile.TemporaryDirectory(dir=output, prefix=".backfill-") as tmp:
        parts: dict[str, _FamilyRuns] = {}
        month = first.replace(day=1)

        def flush() -> None:
            target = output / file_name(month)
            with open(target, "w", encoding="utf-8") as out:
                for name in FAMILIES:
                    if name in parts:
                        kind, doc = meta[name]
                        out.write(f"# HELP {name} {_escape(doc)}\n# TYPE {name} {kind}\n")
                        parts[name].write_to(out)
                out.write("# EOF\n")
            paths.append(target)
            parts.clear()

        for day, snapshot in snapshots(config, store, first, last):
            if day.replace(day=1) != month:
                flush()
                month = day.replace(day=1)
            ts = midnight_ts(day)
            for metric in families(snapshot):
                if metric.name not in wanted:
                    continue
                meta.setdefault(metric.name, (metric.type, metric.documentation))
                runs = parts.setdefault(
                    metric.name, _FamilyRuns(Path(tmp), f"{month:%Y-%m}.{metric.name}", chunk)
                )
                for line in _sample_lines(metric, extra, ts):
                    runs.add(line)
                    series.add(_series(line))
                    samples += 1
        flush()
    return BackfillResult(tuple(paths), first, last, samples, len(series))


def file_name(month: date) -> str:
    return f"aicost-backfill-{month:%Y-%m}.om"


def load_commands(result: BackfillResult, retention_days: int) -> str:
    """How to load the files (printed after a backfill; docs/finops.md explains each step)."""
    out = result.paths[0].parent
    return (
        f"wrote {len(result.paths)} file(s) to {out} ({result.series} series, "
        f"{result.samples} samples, {result.first} .. {result.last})\n"
        "load them (docs/finops.md):\n"
        f"  for f in {out}/aicost-backfill-*.om; do\n"
        "    promtool tsdb create-blocks-from openmetrics --max-block-duration=744h "
        f'"$f" {out}/blocks\n'
        "  done\n"
        f"  mv {out}/blocks/* /var/lib/prometheus/metrics2/   # Prometheus' --storage.tsdb.path\n"
        f"  prometheus ... --storage.tsdb.retention.time={retention_days}d"
        "   # keep blocks that old\n"
    )
