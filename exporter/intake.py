"""The ingest handler: authenticated, size-limited request bodies -> priced records -> store.

The HTTP server (:mod:`exporter.server`) knows only the small :class:`~exporter.server.Ingest`
protocol; the composition root gives it an :class:`Intake`. For each body:

1. the bearer token is checked first (401 without one, 403 for a wrong one), before the
   body is read;
2. the body may be at most ``ingest.max_body_bytes`` (413), after gzip decompression too:
   the decompressor stops at the limit, so a gzip bomb costs no memory;
3. it is parsed (:mod:`exporter.ingest`); a body that holds nothing readable is a 400,
   single bad spans/events are rejected one by one while the good ones are kept;
4. requests older than ``ingest.retention_days`` (their ids may already be forgotten) or
   more than an hour in the future are rejected; the rest are priced with the catalogue at
   their day (USD list price; unknown models: tokens, no cost, logged once) and counted in
   one transaction, each id once (:meth:`~exporter.store.requests.RequestLog.record_requests`).

Nothing here raises into the server: a storage failure is a 503 with ``Retry-After`` (OTLP
senders retry on 503), so malformed or excess input never stops the exporter.
"""

from __future__ import annotations

import hmac
import json
import logging
import sqlite3
import threading
import zlib
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal

from exporter.clock import Clock, utc_now
from exporter.config import IngestConfig, resolve_ingest_token
from exporter.ingest import Parsed, Rejection, events, otlp
from exporter.pricing import Catalogue, UnitPrices
from exporter.records import TOKEN_TYPES, RequestRecord
from exporter.snapshot import IngestRejectKey
from exporter.store import Store
from exporter.store.requests import to_pico

log = logging.getLogger(__name__)

TRACES_PATH = "/v1/traces"
EVENTS_PATH = "/api/v1/events"
FUTURE_SLACK = timedelta(hours=1)
RETRY_AFTER = "5"
MAX_LISTED = 100  # rejected events listed one by one in an events reply

Reply = tuple[int, bytes, str, dict[str, str]]
# per-token prices in pico-USD (input, output, cache read, cache write); UnitPrices when a
# price has more than six decimals per million tokens; None: not in the catalogue
PicoPrices = tuple[int, int, int, int] | UnitPrices | None
PICO_PER_MTOK = Decimal(10) ** 6  # USD per million tokens -> pico-USD per token


def _text(code: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    return code, (message.rstrip() + "\n").encode(), "text/plain; charset=utf-8", headers or {}


class TooLarge(ValueError):
    pass


def gunzip(body: bytes, limit: int) -> bytes:
    """Decompress a gzip body, refusing (:class:`TooLarge`) past ``limit`` bytes of output."""
    d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error as exc:
        raise ValueError(f"Content-Encoding gzip, but the body is not gzip: {exc}") from None
    if len(out) > limit or d.unconsumed_tail:
        raise TooLarge(f"the decompressed body exceeds ingest.max_body_bytes ({limit} bytes)")
    if not d.eof:
        raise ValueError("Content-Encoding gzip, but the gzip stream is truncated")
    return out


class Intake:
    """What ``POST /v1/traces`` and ``POST /api/v1/events`` do (see the module doc)."""

    paths = frozenset({TRACES_PATH, EVENTS_PATH})

    def __init__(
        self,
        config: IngestConfig,
        store: Store,
        catalogue: Catalogue,
        *,
        clock: Clock = utc_now,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.max_body_bytes = config.max_body_bytes
        self.store = store
        self.catalogue = catalogue
        self.clock = clock
        self._token: bytes | None = None
        self._token_problem = ""
        try:
            secret = resolve_ingest_token(config, dict(env) if env is not None else None)
            self._token = secret.value.encode()
        except ValueError as exc:
            self._token_problem = str(exc)
            log.error("%s; every ingest request is refused with 503 until it is fixed", exc)
        self._lock = threading.Lock()
        self._pico: dict[tuple[str, str, date], PicoPrices] = {}
        self.rejected: dict[IngestRejectKey, int] = {}
        self.dirty = threading.Event()  # set when requests were counted or refused

    # ------------------------------------------------------------------ protocol

    def authorize(self, path: str, authorization: str | None) -> Reply | None:
        """None when the bearer token is right; the refusal otherwise."""
        if self._token is None:
            self._count(path, "unavailable")
            return _text(503, f"ingest is not available: {self._token_problem}")
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            self._count(path, "unauthorized")
            return _text(
                401,
                "missing bearer token: send Authorization: Bearer <ingest token>",
                {"WWW-Authenticate": 'Bearer realm="ai-cost-exporter ingest"'},
            )
        if not hmac.compare_digest(given.strip().encode(), self._token):
            self._count(path, "forbidden")
            return _text(403, "wrong bearer token for ingest")
        return None

    def refuse_size(self, path: str, length: int) -> Reply:
        self._count(path, "too_large")
        return _text(
            413, f"body of {length} bytes exceeds ingest.max_body_bytes ({self.max_body_bytes})"
        )

    def handle(self, path: str, content_type: str, content_encoding: str, body: bytes) -> Reply:
        """Decode, check, price and store one authorised body."""
        encoding = content_encoding.strip().lower()
        try:
            if encoding == "gzip":
                body = gunzip(body, self.max_body_bytes)
            elif encoding not in ("", "identity"):
                self._count(path, "unsupported")
                return _text(415, f"Content-Encoding {encoding} is not supported (use gzip)")
        except TooLarge as exc:
            self._count(path, "too_large")
            return _text(413, str(exc))
        except ValueError as exc:
            self._count(path, "bad_body")
            return _text(400, str(exc))
        now = self.clock()
        try:
            if path == TRACES_PATH:
                parsed = otlp.decode(body, content_type, self.config.attributes, now)
            else:
                parsed = events.decode(body)
        except otlp.UnsupportedMedia as exc:
            self._count(path, "unsupported")
            return _text(415, str(exc))
        except (otlp.BadBody, events.BadBody) as exc:
            self._count(path, "bad_body")
            return _text(400, f"cannot read the body: {exc}")
        kept = self._in_window(parsed, now)
        try:
            new = self.store.record_requests([(r, self._price(r)) for r in kept])
        except sqlite3.Error as exc:
            log.error("ingest: cannot store %d request(s): %s", len(kept), exc)
            self._count(path, "storage", len(kept))
            return _text(503, "the history is busy; retry later", {"Retry-After": RETRY_AFTER})
        if parsed.rejected:
            self._count(path, "invalid", sum(1 for r in parsed.rejected if r.reason != _OLD))
            self._count(path, "too_old", sum(1 for r in parsed.rejected if r.reason == _OLD))
        if new:
            self.dirty.set()
        if path == TRACES_PATH:
            payload, kind = otlp.response(parsed.rejected, content_type)
            return 200, payload, kind, {}
        return self._events_reply(parsed, kept, new)

    # ------------------------------------------------------------------ parts

    def _in_window(self, parsed: Parsed, now: datetime) -> list[RequestRecord]:
        oldest = now.date() - timedelta(days=self.config.retention_days - 1)
        latest = now + FUTURE_SLACK
        kept = []
        for i, r in zip(parsed.positions, parsed.records, strict=True):
            if r.day < oldest:
                parsed.rejected.append(Rejection(i, _shown(r.id), _OLD))
            elif r.time > latest:
                parsed.rejected.append(Rejection(i, _shown(r.id), "more than 1h in the future"))
            else:
                kept.append(r)
        return kept

    def _price(self, r: RequestRecord) -> int | None:
        """The request's estimated cost in pico-USD (None: the model has no price)."""
        key = (r.provider, r.model, r.day)
        if key not in self._pico:
            self._pico[key] = self._pico_prices(*key)
        per_token = self._pico[key]
        if per_token is None:
            return None
        if isinstance(per_token, UnitPrices):  # a price with more than six decimals
            return to_pico(per_token.tokens_cost(r))
        pi, po, pr, pw = per_token
        return (
            r.input_tokens * pi
            + r.output_tokens * po
            + r.cache_read_tokens * pr
            + r.cache_write_tokens * pw
        )

    def _pico_prices(self, provider: str, model: str, day: date) -> PicoPrices:
        """Per-token prices in pico-USD as integers (USD per MTok x 1e6), when exact."""
        prices = self.catalogue.prices(provider, model, day)
        if prices is None:
            return None
        pico = [prices.of(t) * PICO_PER_MTOK for t in TOKEN_TYPES]
        if any(p != p.to_integral_value() for p in pico):
            return prices
        pi, po, pr, pw = (int(p) for p in pico)
        return (pi, po, pr, pw)

    def _events_reply(self, parsed: Parsed, kept: list[RequestRecord], new: int) -> Reply:
        rejected = sorted(parsed.rejected, key=lambda r: r.index)
        body = {
            "accepted": len(kept),
            "new": new,
            "duplicates": len(kept) - new,
            "rejected": len(rejected),
            "errors": [
                {"index": r.index, "id": r.id, "reason": r.reason} for r in rejected[:MAX_LISTED]
            ],
        }
        code = 400 if rejected and not kept else 200
        return code, json.dumps(body).encode(), "application/json", {}

    def _count(self, path: str, reason: str, n: int = 1) -> None:
        if n <= 0:
            return
        key = IngestRejectKey("otlp" if path == TRACES_PATH else "events", reason)
        with self._lock:
            self.rejected[key] = self.rejected.get(key, 0) + n
        self.dirty.set()

    def rejected_counts(self) -> dict[IngestRejectKey, int]:
        with self._lock:
            return dict(self.rejected)


_OLD = "older than ingest.retention_days: its id may be forgotten, so it cannot be counted once"


def _shown(record_id: str) -> str:
    """The id as the sender wrote it (events) or the span key (spans)."""
    return record_id.removeprefix("event:")
