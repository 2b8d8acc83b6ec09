"""Command line: ``ai-cost-exporter {run,demo,check-config,poll,recommendations,fx}``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from exporter import __version__
from exporter.config import (
    DEFAULT_LISTEN_ADDRESS,
    Config,
    ConfigErrors,
    check,
    currency_code,
    load,
    parse_listen_address,
)

log = logging.getLogger("exporter")

LOG_LEVELS = ("debug", "info", "warning", "error")


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s",
        stream=sys.stderr,
    )
    # httpx logs every request URL at INFO; ours are enough.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ai-cost-exporter",
        description="Prometheus exporter for AI API spend, read from the providers' "
        "organisation usage and cost APIs.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser, *, listen: bool = True) -> None:
        p.add_argument(
            "--log.level",
            dest="log_level",
            choices=LOG_LEVELS,
            default=None,
            help="log level (default: the config's log_level, else info)",
        )
        if listen:
            p.add_argument(
                "--web.listen-address",
                dest="listen_address",
                default=None,
                help=f"HOST:PORT to serve /metrics on (default: the config's "
                f"listen_address, else {DEFAULT_LISTEN_ADDRESS})",
            )

    run = sub.add_parser(
        "run",
        help="run the exporter (poll on a schedule, serve /metrics)",
        description="Run the exporter: backfill on first start, poll every poll.interval, "
        "serve /metrics.",
    )
    run.add_argument(
        "--config",
        "--config.file",
        dest="config",
        required=True,
        help="path of the YAML config file",
    )
    common(run)

    demo = sub.add_parser(
        "demo",
        help="run against built-in simulated OpenAI, Anthropic, xAI and Azure OpenAI accounts "
        "(no keys, no network)",
        description="Start simulated OpenAI and Anthropic organisations, an xAI team and an "
        "Azure subscription (GPT-4o on Azure OpenAI beside OpenAI's own) on loopback HTTP "
        "(the real provider code polls them) with ~90 days of traffic, and serve "
        "/metrics.",
    )
    demo.add_argument("--days", type=int, default=90, help="days of simulated history (90)")
    demo.add_argument("--seed", type=int, default=7, help="random seed of the traffic (7)")
    demo.add_argument(
        "--storage.path",
        dest="storage_path",
        default=None,
        help="SQLite file (default: a fresh temporary directory)",
    )
    common(demo)

    chk = sub.add_parser(
        "check-config",
        help="validate a config file and exit (non-zero on errors)",
        description="Validate a config file: report every error with its YAML path, and "
        "check that each provider's key can be read (the key itself is never printed).",
    )
    chk.add_argument("file", help="path of the YAML config file")

    poll = sub.add_parser(
        "poll",
        help="run one poll cycle (backfill included) and exit",
        description="Poll every configured provider once (backfilling on first use), "
        "store the result and exit. For cron, debugging and tests.",
    )
    poll.add_argument(
        "--config",
        "--config.file",
        dest="config",
        required=True,
        help="path of the YAML config file",
    )
    poll.add_argument(
        "--once",
        action="store_true",
        required=True,
        help="poll once and exit (required; the only mode)",
    )
    common(poll, listen=False)

    recs = sub.add_parser(
        "recommendations",
        help="print savings recommendations from the stored history and exit",
        description="Compute the savings recommendations (batch, cheaper model, cheaper "
        "provider route, inactive API keys) from the SQLite history, without polling, and "
        "print each with its evidence and formula.",
    )
    recs.add_argument(
        "--config",
        "--config.file",
        dest="config",
        required=True,
        help="path of the YAML config file (its storage.path is read)",
    )
    recs.add_argument(
        "--format",
        dest="format",
        choices=("table", "json"),
        default="table",
        help="output format (default: table)",
    )
    common(recs, listen=False)
    fx = sub.add_parser(
        "fx",
        help="print the ECB rate used for a day, and the audit trail of its costs",
        description="Print the rate the exporter uses to convert costs of a UTC day to the "
        "accounting currency, and where it came from (cached ECB file, bundled history or "
        "identity). Reads the rate cache and stored costs of --config; makes no network "
        "request.",
    )
    fx.add_argument("--date", required=True, type=_day, help="the UTC day, YYYY-MM-DD")
    fx.add_argument(
        "--config",
        "--config.file",
        dest="config",
        default=None,
        help="YAML config file: its storage (cached rates, stored costs) and currency "
        "(default: none; only the bundled ECB history)",
    )
    fx.add_argument(
        "--currency",
        default=None,
        help="accounting currency to convert to (default: the config's currency, else USD)",
    )
    fx.add_argument(
        "--base",
        default=None,
        help="billing currency to convert from (default: each currency of the stored costs, "
        "else USD)",
    )
    fx.add_argument(
        "--costs",
        action="store_true",
        help="also list every stored cost row of that day with its audit trail: source "
        "amount and currency, rate, rate date, rate source, converted amount",
    )
    return parser


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {text!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {
        "run": cmd_run,
        "demo": cmd_demo,
        "check-config": cmd_check_config,
        "poll": cmd_poll,
        "recommendations": cmd_recommendations,
        "fx": cmd_fx,
    }[args.command]
    return handler(args)


def _load(path: str) -> Config | None:
    try:
        return load(path)
    except ConfigErrors as exc:
        print(f"error: invalid config {exc.source}:", file=sys.stderr)
        for line in exc.errors:
            print(f"  {line}", file=sys.stderr)
        return None


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(args.file)
    if config is None:
        return 1
    problems = check(config)
    if problems:
        print(f"error: {args.file}: the config is valid but cannot run:", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    for line in budget_warnings(config):
        print(f"warning: {line}")
    names = ", ".join(f"{p.type}/{p.account}" for p in config.providers)
    print(f"{args.file}: OK ({len(config.providers)} provider(s): {names})")
    print(series_line(config))
    return 0


def series_line(config: Config) -> str:
    """The per-stream series ``/metrics`` will carry for the stored streams (read only)."""
    import sqlite3

    from exporter.analytics.cardinality import expected_series, series_per_stream
    from exporter.app import open_store

    m = config.metrics
    per = series_per_stream(m)
    options = (
        f"metrics.windows=[{', '.join(m.windows)}], token_types={str(m.token_types).lower()}, "
        f"stream_ratios={str(m.stream_ratios).lower()}"
    )
    path = Path(config.storage.path)
    if not path.is_file():
        return f"series: {per} per model stream ({options}); no history at {path} yet"
    try:
        store = open_store(config, read_only=True)
        try:
            model, tool = store.stream_kinds()
        finally:
            store.close()
    except sqlite3.Error as exc:
        return f"series: {per} per model stream ({options}); cannot count streams in {path} ({exc})"
    total = expected_series(m, model, tool)
    return (
        f"series: ~{total} per-stream series expected from {model + tool} stored stream(s) "
        f"({per} per model stream; {options})"
    )


def budget_warnings(config: Config) -> list[str]:
    """Budgets whose scope matches no stored cost, when the history exists (read only).

    Warnings, not errors: a budget may be written before its workload starts."""
    path = Path(config.storage.path)
    if not config.budgets or not path.is_file():
        return []
    import sqlite3

    from exporter.analytics.build import load_governance, load_history
    from exporter.app import open_store
    from exporter.clock import utc_now

    try:
        store = open_store(config, read_only=True)
        try:
            today = utc_now().date()
            usage, costs, _withheld = load_history(store, today, config.currency)
            gov = load_governance(config, store, today, usage, costs)
        finally:
            store.close()
    except sqlite3.Error as exc:
        return [f"storage.path: cannot read {path} to check budget scopes ({exc})"]
    index = {b.name: i for i, b in enumerate(config.budgets)}
    return [
        f"budgets[{index[b.name]}] ({b.name}): its scope matches no cost in {path} "
        "(last 30 days and this month)"
        for b in gov.budgets
        if not b.matched
    ]


def cmd_poll(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 1
    _setup_logging(args.log_level or config.log_level)
    from exporter.app import build

    app = build(config)
    try:
        ok = app.poll_once()
    finally:
        app.stop()
    return 0 if ok else 1


def cmd_recommendations(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 1
    _setup_logging(args.log_level or config.log_level)
    from exporter.analytics.build import find_recommendations
    from exporter.app import open_history
    from exporter.clock import utc_now
    from exporter.report import as_dicts, to_json, to_table

    path = config.storage.path
    if not Path(path).is_file():
        print(
            f"error: no history at {path}; run `ai-cost-exporter poll --config "
            f"{args.config} --once` (or the exporter) first",
            file=sys.stderr,
        )
        return 1
    today = utc_now().date()
    rec = config.recommendations
    history = open_history(config)
    try:
        findings = find_recommendations(history.store, config, today, history.catalogue, rec.maps())
        first_seen = history.store.recommendation_first_seen()
    finally:
        history.close()
    rows = as_dicts(
        findings.recommendations,
        currency=config.currency,
        first_seen=first_seen,
        dismissed=rec.dismissed,
    )
    render = to_json if args.format == "json" else to_table
    sys.stdout.write(render(rows, today=today, currency=config.currency))
    return 0


def cmd_fx(args: argparse.Namespace) -> int:
    from exporter.app import open_history
    from exporter.config import StorageConfig
    from exporter.fx.ecb import IDENTITY
    from exporter.fx.rates import FxError

    config = _load(args.config) if args.config else Config()
    if config is None:
        return 1
    try:
        if args.currency:
            config = config.model_copy(update={"currency": currency_code(args.currency)})
        base = currency_code(args.base) if args.base else None
    except ValueError as exc:
        print(f"error: --currency/--base: {exc}", file=sys.stderr)
        return 2
    if args.config and not Path(config.storage.path).exists():
        print(f"error: no history at {config.storage.path} (storage.path)", file=sys.stderr)
        return 1
    if not args.config:  # no history: the bundled ECB rates only
        config = config.model_copy(update={"storage": StorageConfig(path=":memory:")})
    history = open_history(config)
    store, fx = history.store, history.fx
    status = 0
    try:
        for currency in [base] if base else sorted(fx.source_currencies()):
            try:
                rate = fx.rate(currency, config.currency, args.date)
            except FxError as exc:
                print(f"{args.date} {currency}->{config.currency}: no rate ({exc.reason}): {exc}")
                status = 1
                continue
            if rate.source == IDENTITY:
                print(f"{args.date} 1 {currency} = 1 {currency} (same currency, source identity)")
                continue
            print(
                f"{args.date} 1 {currency} = {rate.value} {config.currency} "
                f"(ECB rate of {rate.rate_date}, source {rate.source}, {rate.status}; "
                f"{rate.explain()})"
            )
        if args.costs:
            if not args.config:
                print("no --config: no stored costs to list", file=sys.stderr)
                return 2
            print_audit(store.cost_audit(args.date))
    finally:
        history.close()
    return status


AUDIT_COLUMNS = (
    ("provider", "provider"), ("account", "account"), ("project", "project"),
    ("model", "model"), ("cost_type", "cost_type"), ("amount", "source_amount"),
    ("currency", "source_currency"), ("fx_rate", "rate"), ("fx_rate_date", "rate_date"),
    ("fx_source", "rate_source"), ("fx_status", "status"), ("fx_amount", "converted"),
    ("fx_currency", "converted_currency"),
)  # fmt: skip


def print_audit(rows: list[dict[str, object]]) -> None:
    """The stored cost rows of a day, one line each, in aligned columns."""
    if not rows:
        print("no stored cost rows for that day")
        return
    table = [[title for _, title in AUDIT_COLUMNS]]
    for row in rows:
        cells = [row[column] for column, _ in AUDIT_COLUMNS]
        if row["fx_status"] == "error":
            cells[-3] = f"error:{row['fx_error']}"
        table.append(["-" if c is None or c == "" else str(c) for c in cells])
    widths = [max(len(line[i]) for line in table) for i in range(len(AUDIT_COLUMNS))]
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


def cmd_run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 1
    _setup_logging(args.log_level or config.log_level)
    for problem in check(config):
        log.warning("%s", problem)
    return serve(config, args.listen_address or config.listen_address)


def serve(config: Config, listen_address: str, env: dict[str, str] | None = None) -> int:
    """Start the HTTP server first (healthy, not ready), then load the store and poll."""
    from exporter import schedule
    from exporter.app import build
    from exporter.server import MetricsServer

    try:
        host, port = parse_listen_address(listen_address)
    except ValueError as exc:
        print(f"error: --web.listen-address: {exc}", file=sys.stderr)
        return 2
    try:
        server = MetricsServer((host, port))
    except OSError as exc:
        print(f"error: cannot listen on {listen_address}: {exc.strerror}", file=sys.stderr)
        return 1
    server.start()
    log.info("listening on http://%s:%d/metrics", host, server.port)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    app = build(config, env=env)
    server.source = app
    scheduler = schedule.start(app)
    try:
        stop.wait()
    finally:
        log.info("shutting down")
        scheduler.shutdown(wait=False)
        app.stop()
        server.stop()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from exporter.clock import utc_now
    from exporter.demo.orgs import DEMO_GOVERNANCE, running_demo

    _setup_logging(args.log_level or "info")
    storage = args.storage_path or str(Path(tempfile.mkdtemp(prefix="aicost-demo-")) / "demo.db")
    with running_demo(utc_now().date(), args.days, args.seed) as orgs:
        env: dict[str, str] = {}
        for org in orgs:
            log.info("demo: %s (%d days of traffic)", org.description, args.days)
            env.update(org.env)
        config = Config.model_validate(
            {
                "storage": {"path": storage},
                "poll": {"interval": "5m", "backfill_days": args.days},
                "providers": [org.provider for org in orgs],
                **DEMO_GOVERNANCE,
            }
        )
        return serve(config, args.listen_address or DEFAULT_LISTEN_ADDRESS, env=env)


if __name__ == "__main__":
    raise SystemExit(main())
