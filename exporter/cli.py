"""Command line: ``ai-cost-exporter {run,demo,check-config,poll,recommendations,fx,top,
focus,report,backfill,whatif}``."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import yaml

from exporter import __version__
from exporter.config import (
    DEFAULT_LISTEN_ADDRESS,
    Config,
    ConfigErrors,
    check,
    currency_code,
    load,
    parse_listen_address,
    raw_key_problems,
)
from exporter.webconfig import WebConfig, WebConfigError
from exporter.webconfig import load as load_web_config

if TYPE_CHECKING:
    from exporter.app import History

log = logging.getLogger("exporter")

LOG_LEVELS = ("debug", "info", "warning", "error")


LOG_FORMAT = "ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s"


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format=LOG_FORMAT,
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
            p.add_argument(
                "--web.config.file",
                dest="web_config_file",
                default=None,
                metavar="FILE",
                help="web config in the Prometheus exporter-toolkit format: TLS "
                "(tls_server_config), basic auth (basic_auth_users, bcrypt hashes) and "
                "response headers for every endpoint but /-/healthy; re-read on SIGHUP "
                "(default: none, plain HTTP without auth)",
            )

    run = sub.add_parser(
        "run",
        help="run the exporter (poll on a schedule, serve /metrics)",
        description="Run the exporter: backfill on first start, poll every poll.interval, "
        "serve /metrics (from a serving process of its own, so scrapes never wait on a "
        "refresh; it stops with the exporter).",
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
        "/metrics. With the extras [aws] and [gcp] installed it adds an AWS Bedrock account "
        "(Cost Explorer + CloudWatch) and a BigQuery billing export (Vertex AI, Gemini API): "
        "Claude Sonnet 4.5 on three routes at different prices.",
    )
    demo.add_argument(
        "--days", type=_demo_days, default=90, help="days of simulated history, 1-730 (90)"
    )
    demo.add_argument("--seed", type=int, default=7, help="random seed of the traffic (7)")
    demo.add_argument(
        "--storage.path",
        dest="storage_path",
        default=None,
        help="SQLite file, kept after the demo (default: one in a temporary directory, "
        "removed on exit; its path is printed at start)",
    )
    common(demo)

    chk = sub.add_parser(
        "check-config",
        help="validate a config file and exit (non-zero on errors)",
        description="Validate a config file: report every error with its YAML path, and "
        "check that each provider's key can be read (the key itself is never printed), "
        "that a cloud provider's optional extra is installed (bedrock: [aws], vertex: [gcp]) "
        "and that storage.path can be opened read-write (nothing is created or changed). "
        "The last line estimates the /metrics series of the stored streams: per stream "
        "(metrics.*) plus the always-on roll-ups per model, project and account.",
    )
    chk.add_argument("file", help="path of the YAML config file")
    chk.add_argument(
        "--web.config.file",
        dest="web_config_file",
        default=None,
        metavar="FILE",
        help="also check this web config (TLS, basic auth, headers; certificates loaded)",
    )

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
    top = sub.add_parser(
        "top",
        help="print the top spenders by user, tenant or endpoint from ingested requests",
        description="Read the requests ingested from applications (POST /v1/traces, "
        "/api/v1/events) from the SQLite history and print the top spenders of the last "
        "--days UTC days (today included) by estimated cost. User-level detail stays here, "
        "out of Prometheus.",
    )
    top.add_argument(
        "--config",
        "--config.file",
        dest="config",
        required=True,
        help="path of the YAML config file (its storage.path and currency are read)",
    )
    top.add_argument(
        "--by",
        choices=("user", "tenant", "endpoint"),
        default="user",
        help="what to group by (default: user)",
    )
    top.add_argument(
        "--days", type=int, default=7, help="UTC days to include, today included (default: 7)"
    )
    top.add_argument("--limit", type=int, default=20, help="lines to print (default: 20)")
    common(top, listen=False)
    add_finops_parsers(sub, common)
    return parser


def _demo_days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of days, got {text!r}") from None
    if not 1 <= days <= 730:
        raise argparse.ArgumentTypeError(f"must be between 1 and 730 days, got {days}")
    return days


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
        "focus": cmd_focus,
        "report": cmd_report,
        "backfill": cmd_backfill,
        "whatif": cmd_whatif,
        "top": cmd_top,
    }[args.command]
    return handler(args)


def _load(path: str, *, with_keys: bool = False) -> Config | None:
    """The validated config, or None after printing every error; ``with_keys`` adds the
    key problems of the provider entries that parsed (check-config: one pass for all)."""
    try:
        return load(path)
    except ConfigErrors as exc:
        _print_errors(
            f"error: invalid config {exc.source}:",
            exc.errors + (raw_key_problems(exc.data) if with_keys else []),
        )
        return None


def _print_errors(headline: str, errors: list[str]) -> None:
    print(headline, file=sys.stderr)
    for line in errors:
        print(f"  {line}", file=sys.stderr)


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(args.file, with_keys=True)
    web = _load_web(args.web_config_file)
    if config is None or web is False:
        return 1
    from exporter.app import storage_problems

    problems = check(config) + storage_problems(config, write=True)
    if problems:
        print(f"error: {args.file}: the config is valid but cannot run:", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    for line in budget_warnings(config) + list(web.warnings if web else ()):
        print(f"warning: {line}")
    names = ", ".join(f"{p.type}/{p.account}" for p in config.providers)
    print(f"{args.file}: OK ({len(config.providers)} provider(s): {names})")
    if web is not None:
        print(f"{args.web_config_file}: OK ({web.describe()})")
    print(series_line(config))
    return 0


def series_line(config: Config) -> str:
    """The series ``/metrics`` will carry for the stored streams (read only): per stream
    (``metrics.*``) and the always-on roll-ups."""
    import sqlite3

    from exporter.analytics.cardinality import (
        Groups,
        expected_series,
        rollup_series,
        series_per_stream,
    )
    from exporter.app import open_store
    from exporter.store import StorageError

    m = config.metrics
    per = series_per_stream(m)
    options = (
        f"metrics.windows=[{', '.join(m.windows)}], token_types={str(m.token_types).lower()}, "
        f"stream_ratios={str(m.stream_ratios).lower()}"
    )
    if config.storage.url is not None:  # not opened here: check-config reads no server data
        return f"series: {per} per model stream ({options}); history on PostgreSQL (storage.url)"
    path = Path(config.storage.path)
    if not path.is_file():
        return f"series: {per} per model stream ({options}); no history at {path} yet"
    try:
        store = open_store(config, read_only=True)
        try:
            streams = list(store.streams_first_seen(date.min))
        finally:
            store.close()
    except (sqlite3.Error, StorageError) as exc:  # e.g. a history still in an older format
        return f"series: {per} per model stream ({options}); cannot count streams in {path} ({exc})"
    tool = sum(1 for s in streams if not s.model)
    stream_series = expected_series(m, len(streams) - tool, tool)
    groups = Groups.of(streams)
    rollups = rollup_series(groups)
    return (
        f"series: ~{stream_series + rollups} expected from {len(streams)} stored stream(s): "
        f"~{stream_series} per-stream ({per} per model stream; {options}) + ~{rollups} "
        f"roll-up ({groups.models + groups.tool_models} model(s), {groups.projects} "
        f"project(s), {groups.accounts} account(s))"
    )


def _load_web(path: str | None) -> WebConfig | Literal[False] | None:
    """The web config at ``path`` (None without one); False after printing its errors."""
    if path is None:
        return None
    try:
        return load_web_config(path)
    except WebConfigError as exc:
        _print_errors(f"error: --web.config.file: invalid web config {exc.source}:", exc.errors)
        return False


def budget_warnings(config: Config) -> list[str]:
    """Budgets whose scope matches no stored cost, when the history exists (read only).

    Warnings, not errors: a budget may be written before its workload starts."""
    path = Path(config.storage.path)
    if not config.budgets or not path.is_file():
        return []
    import sqlite3

    from exporter.analytics.build import load_governance, load_history
    from exporter.app import StorageError, open_store
    from exporter.clock import utc_now

    try:
        store = open_store(config, read_only=True)
        try:
            today = utc_now().date()
            usage, costs, _withheld = load_history(store, today, config.currency)
            gov = load_governance(config, store, today, usage, costs)
        finally:
            store.close()
    except (sqlite3.Error, StorageError) as exc:
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
    from exporter.app import StorageError, build

    try:
        app = build(config)
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
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
    from exporter.app import StorageError, open_history, open_store
    from exporter.clock import utc_now
    from exporter.report import as_dicts, to_json, to_table

    path = config.storage.path
    if config.storage.url is None and not Path(path).exists():  # PostgreSQL: open tells
        print(
            f"error: no history at {path} (storage.path); run `ai-cost-exporter poll --config "
            f"{args.config} --once` (or the exporter) first",
            file=sys.stderr,
        )
        return 1
    today = utc_now().date()
    rec = config.recommendations
    try:  # read-only: the history may belong to the running exporter or a read-only mount
        history = open_history(config, store=open_store(config, read_only=True))
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
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
    from exporter.app import StorageError, open_history, open_store
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
    if args.config and config.storage.url is None and not Path(config.storage.path).exists():
        print(f"error: no history at {config.storage.path} (storage.path)", file=sys.stderr)
        return 1
    if not args.config:  # no history: the bundled ECB rates only
        config = config.model_copy(update={"storage": StorageConfig(path=":memory:")})
        history = open_history(config)
    else:
        try:  # read-only: the history may belong to the running exporter
            history = open_history(config, store=open_store(config, read_only=True))
        except StorageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
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


def cmd_top(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 1
    if args.days < 1 or args.limit < 1:
        print("error: --days and --limit must be at least 1", file=sys.stderr)
        return 2
    _setup_logging(args.log_level or "warning")
    from datetime import timedelta

    from exporter.analytics.build import usd_rate
    from exporter.analytics.unit_economics import top_spenders
    from exporter.app import open_history, open_store
    from exporter.clock import utc_now

    if config.storage.url is None and not Path(config.storage.path).is_file():
        print(f"error: no history at {config.storage.path} (storage.path)", file=sys.stderr)
        return 1
    today = utc_now().date()
    start = today - timedelta(days=args.days - 1)
    history = open_history(config, store=open_store(config, read_only=True))
    try:
        days = history.store.request_users if args.by == "user" else history.store.request_days
        rows = days(start, today + timedelta(days=1))
        spenders = top_spenders(rows, args.by, usd_rate(history.fx, config.currency))
    finally:
        history.close()
    if not spenders:
        print(f"no ingested requests from {start} to {today}")
        return 0
    cur = config.currency
    table = [[args.by, f"estimated_cost_{cur}", "requests", "tokens", "unpriced_requests"]]
    for s in spenders[: args.limit]:
        cost = "no rate" if s.cost is None else f"{s.cost.quantize(Decimal('0.000001'))}"
        table.append([s.value or "-", cost, str(s.requests), str(s.tokens), str(s.unpriced)])
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    print(f"top {args.by}s by estimated cost, {start} to {today} (UTC)")
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 1
    _setup_logging(args.log_level or config.log_level)
    for problem in check(config):
        log.warning("%s", problem)
    return serve(
        config, args.listen_address or config.listen_address, web_config_file=args.web_config_file
    )


def serve(
    config: Config,
    listen_address: str,
    env: dict[str, str] | None = None,
    web_config_file: str | None = None,
    on_ready: Callable[[int], object] | None = None,
) -> int:
    """Start the serving process first (healthy, not ready), then load the store and
    poll; every rendering is published to it (exporter.serving)."""
    from exporter import schedule
    from exporter.app import StorageError, build
    from exporter.serving import ServingProcess

    try:
        host, port = parse_listen_address(listen_address)
    except ValueError as exc:
        print(f"error: --web.listen-address: {exc}", file=sys.stderr)
        return 2
    web = _load_web(web_config_file)
    if web is False:
        return 1
    stop = threading.Event()
    server = ServingProcess((host, port), web_config_file, log_format=LOG_FORMAT, on_exit=stop.set)
    try:
        server.start()
    except OSError as exc:
        print(
            f"error: cannot listen on {listen_address}: {exc.strerror}; choose another "
            "HOST:PORT with --web.listen-address (or listen_address in the config)",
            file=sys.stderr,
        )
        return 1
    for warning in web.warnings if web else ():
        log.warning("web config %s: %s", web_config_file, warning)
    if web is not None:
        log.info("web config %s: %s", web_config_file, web.describe())
    shown = f"[{host}]" if ":" in host else host
    log.info("listening on %s://%s:%d/metrics", server.scheme, shown, server.port)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    # not in the handler itself: it may interrupt this thread while it holds the send lock
    signal.signal(signal.SIGHUP, lambda *_: threading.Thread(target=server.reload_web).start())
    try:
        app = build(config, env=env)
    except StorageError as exc:
        server.stop()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if app.intake is not None:
        server.attach_ingest(app.intake)
    app.on_render = lambda rendered: server.publish(rendered, app.health())
    server.publish(app.rendered, app.health())  # ready from here on
    if on_ready is not None:
        on_ready(server.port)
    scheduler = schedule.start(app)
    try:
        stop.wait()
    finally:
        log.info("shutting down")
        scheduler.shutdown(wait=False)
        try:
            app.stop()
        finally:
            server.stop()
    return 1 if server.failed else 0


DEMO_CONFIG_MARK = "# written by `ai-cost-exporter demo` for recommendations/fx --config\n"


def cmd_demo(args: argparse.Namespace) -> int:
    from exporter.clock import utc_now
    from exporter.demo import apps
    from exporter.demo.orgs import DEMO_GOVERNANCE, running_demo

    _setup_logging(args.log_level or "info")
    with ExitStack() as stack:
        if args.storage_path:
            storage = Path(args.storage_path)
        else:  # removed on exit, whatever happens
            storage = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="aicost-demo-")))
            storage = storage / "demo.db"
        orgs = stack.enter_context(running_demo(utc_now().date(), args.days, args.seed))
        env: dict[str, str] = {}
        for org in orgs:
            log.info("demo: %s (%d days of traffic)", org.description, args.days)
            env.update(org.env)
        # a simulated application reports its requests (the Unit economics dashboard)
        env[apps.TOKEN_ENV] = secrets.token_urlsafe(24)
        data = {
            "storage": {"path": str(storage)},
            "poll": {"interval": "5m", "backfill_days": args.days},
            "providers": [org.provider for org in orgs],
            "ingest": {"enabled": True, "token_env": apps.TOKEN_ENV},
            **DEMO_GOVERNANCE,
        }
        config = Config.model_validate(data)
        config_path = storage.with_name(storage.name + ".demo.yaml")
        if config_path.exists() and not config_path.read_text().startswith(DEMO_CONFIG_MARK):
            print(f"error: {config_path} exists and was not written by the demo; "
                  "choose another --storage.path", file=sys.stderr)  # fmt: skip
            return 1
        config_path.parent.mkdir(parents=True, exist_ok=True)
        text = DEMO_CONFIG_MARK + yaml.safe_dump(data, sort_keys=False)
        config_path.write_text(text, encoding="utf-8")
        log.info(
            "demo: history at %s%s; inspect it with `ai-cost-exporter recommendations "
            "--config %s` or `ai-cost-exporter fx --config %s --date YYYY-MM-DD`",
            storage,
            "" if args.storage_path else " (removed on exit; --storage.path keeps one)",
            config_path,
            config_path,
        )
        app_days = min(args.days, config.ingest.retention_days)

        def report(port: int) -> None:
            apps.start_app(port, env[apps.TOKEN_ENV], utc_now().date(), app_days, args.seed)

        return serve(
            config,
            args.listen_address or DEFAULT_LISTEN_ADDRESS,
            env=env,
            web_config_file=args.web_config_file,
            on_ready=report,
        )
    return 0  # unreachable: serve returns inside the stack (mypy needs an exit here)


# --------------------------------------------------------------------------- FinOps
# focus, report, backfill, whatif: read the history at storage.path read-only, no network
# (exporter/finops/; docs/finops.md).


def _month(text: str) -> date:
    try:
        return date.fromisoformat(f"{text}-01")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM, got {text!r}") from None


def add_finops_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: Callable[..., None],
) -> None:
    def config_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--config",
            "--config.file",
            dest="config",
            required=True,
            help="path of the YAML config file (its storage.path is read, never written)",
        )

    focus = sub.add_parser(
        "focus",
        help="export the stored costs as FOCUS 1.2 rows (CSV or JSON lines)",
        description="Export the stored costs of [--from, --to] as FOCUS 1.2 rows (FinOps "
        "Open Cost and Usage Specification): one row per provider, account, project, model, "
        "cost type and UTC day, in the billing currency, with the accounting-currency amount "
        "and its FX audit in x_ columns. Reads the history read-only; no network.",
    )
    config_arg(focus)
    focus.add_argument("--from", dest="start", required=True, type=_day, metavar="YYYY-MM-DD",
                       help="first UTC day, YYYY-MM-DD")  # fmt: skip
    focus.add_argument("--to", dest="end", required=True, type=_day, metavar="YYYY-MM-DD",
                       help="last UTC day (inclusive), YYYY-MM-DD")  # fmt: skip
    focus.add_argument("--format", choices=("csv", "jsonl"), default="csv",
                       help="output format (default: csv)")  # fmt: skip
    focus.add_argument(
        "--output", default=None, metavar="FILE", help="file to write (default: stdout)"
    )
    common(focus, listen=False)

    report = sub.add_parser(
        "report",
        help="showback/chargeback of a month in the accounting currency",
        description="Cost of one month in the accounting currency by team, pool, project, "
        "environment, provider or model, with each row's share, the previous month and the "
        "change. Unattributed cost is the row 'unassigned'; the rows add up to the month's "
        "stored cost. Reads the history read-only; no network.",
    )
    config_arg(report)
    report.add_argument(
        "--month", required=True, type=_month, metavar="YYYY-MM", help="the month, YYYY-MM"
    )
    report.add_argument("--by", required=True, choices=FINOPS_BY,
                        help="what to group by")  # fmt: skip
    report.add_argument("--format", choices=("csv", "json", "table"), default="table",
                        help="output format (default: table)")  # fmt: skip
    common(report, listen=False)

    backfill = sub.add_parser(
        "backfill",
        help="write the stored history as OpenMetrics for promtool (Prometheus backfill)",
        description="Write DIR/aicost-backfill-YYYY-MM.om (one OpenMetrics file per month): "
        "the series the exporter publishes "
        "(cost, token and request windows, month-end forecasts, aicost_project_info) as "
        "they would have been scraped on each day of the stored history, one sample a day "
        "at 00:00 UTC, for `promtool tsdb create-blocks-from openmetrics`. Reads the history "
        "read-only; no network.",
    )
    config_arg(backfill)
    backfill.add_argument("--output", required=True, metavar="DIR", help="directory to write into")
    backfill.add_argument("--from", dest="start", type=_day, default=None, metavar="D",
                          help="first UTC day (default: the oldest stored day)")  # fmt: skip
    backfill.add_argument("--to", dest="end", type=_day, default=None, metavar="D",
                          help="last UTC day (default: today, as stored so far)")  # fmt: skip
    backfill.add_argument("--job", default="ai-cost-exporter",
                          help="job label of the series (default: ai-cost-exporter, the "
                          "shipped scrape config's job)")  # fmt: skip
    backfill.add_argument("--instance", default="",
                          help="instance label of the series: the exporter's scrape target, "
                          "so backfilled and scraped series are one (default: none)")  # fmt: skip
    common(backfill, listen=False)

    whatif = sub.add_parser(
        "whatif",
        help="project the monthly spend of a scenario (scale projects/models, swap models)",
        description="A monthly projection (the 30-day run rate) of the current spend and "
        "of a scenario: --scale project=ID:FACTOR, --scale model=NAME:FACTOR, --swap "
        "FROM_MODEL:TO_MODEL (observed tokens priced per token type at TO's catalogue "
        "price). Reads the history read-only; no network.",
    )
    config_arg(whatif)
    whatif.add_argument("--scale", action="append", default=[], metavar="KIND=NAME:FACTOR",
                        help="project=ID:FACTOR or model=NAME:FACTOR (repeatable)")  # fmt: skip
    whatif.add_argument("--swap", action="append", default=[], metavar="FROM_MODEL:TO_MODEL",
                        help="price FROM's tokens at TO's list prices (repeatable)")  # fmt: skip
    whatif.add_argument("--format", choices=("json", "table"), default="table",
                        help="output format (default: table)")  # fmt: skip
    common(whatif, listen=False)


FINOPS_BY = ("team", "pool", "project", "environment", "provider", "model")


def _finops_config(args: argparse.Namespace) -> Config | None:
    config = _load(args.config)
    if config is None:
        return None
    _setup_logging(args.log_level or config.log_level)
    if config.storage.url is None and not Path(config.storage.path).is_file():
        print(f"error: no history at {config.storage.path} (storage.path of {args.config}); "
              f"run `ai-cost-exporter poll --config {args.config} --once` first",
              file=sys.stderr)  # fmt: skip
        return None
    return config


@contextmanager
def _read_only_history(args: argparse.Namespace) -> Iterator[History | None]:
    """The history of ``--config`` opened read-only (None after printing why not)."""
    config = _finops_config(args)
    if config is None:
        yield None
        return
    from exporter.app import open_history_read_only

    history = open_history_read_only(config)
    try:
        yield history
    finally:
        history.close()


def cmd_focus(args: argparse.Namespace) -> int:
    from exporter.app import usd_catalogue
    from exporter.finops.focus import focus_rows, write

    if args.end < args.start:
        print(f"error: --to {args.end} is before --from {args.start}", file=sys.stderr)
        return 2
    with _read_only_history(args) as history:
        if history is None:
            return 1
        end = args.end + timedelta(days=1)
        rows = focus_rows(history.config, history.store, usd_catalogue(), args.start, end)
        if not args.output:
            try:
                write(rows, sys.stdout, args.format)
                sys.stdout.flush()
            except BrokenPipeError:  # `| head`: the reader has all it wanted
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        with open(args.output, "w", encoding="utf-8", newline="") as out:
            n = write(rows, out, args.format)
        print(f"wrote {n} FOCUS rows to {args.output}", file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from exporter.finops.report import build_report, to_csv, to_json, to_table

    with _read_only_history(args) as history:
        if history is None:
            return 1
        report = build_report(history.config, history.store, args.month, args.by)
    render = {"csv": to_csv, "json": to_json, "table": to_table}[args.format]
    sys.stdout.write(render(report))
    if report.withheld and args.format != "table":
        print(f"warning: {report.withheld} cost row(s) have no {report.currency} rate and "
              "are left out of the report", file=sys.stderr)  # fmt: skip
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    from exporter.clock import utc_now
    from exporter.finops.backfill import load_commands, write_backfill

    with _read_only_history(args) as history:
        if history is None:
            return 1
        config = history.config
        first = args.start or history.store.first_day()
        if first is None:
            print(f"error: {config.storage.path} holds no cost or usage rows", file=sys.stderr)
            return 1
        last = args.end or utc_now().date()
        try:
            result = write_backfill(config, history.store, Path(args.output), first, last,
                                    job=args.job, instance=args.instance)  # fmt: skip
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    sys.stdout.write(load_commands(result, config.storage.retention_days))
    return 0


def cmd_whatif(args: argparse.Namespace) -> int:
    from exporter.clock import utc_now
    from exporter.finops.whatif import ScenarioError, parse_scale, parse_swap, to_json, to_table
    from exporter.finops.whatif import what_if as project_scenario
    from exporter.fx.rates import FxError

    with _read_only_history(args) as history:
        if history is None:
            return 1
        currency = history.config.currency
        try:
            scales = [parse_scale(s) for s in args.scale]
            swaps = [parse_swap(s) for s in args.swap]
            result = project_scenario(history.store, currency, history.catalogue,
                                      utc_now().date(), scales, swaps)  # fmt: skip
        except ScenarioError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except FxError as exc:
            print(f"error: catalogue prices cannot be converted to {currency}: {exc}",
                  file=sys.stderr)  # fmt: skip
            return 1
    sys.stdout.write((to_json if args.format == "json" else to_table)(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
