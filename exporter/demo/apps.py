"""A simulated application for ``demo``: request events posted to the exporter's own
``POST /api/v1/events`` over loopback HTTP, as an application without OpenTelemetry would.

Three endpoints of one product (``/summarize``, ``/chat``, ``/search``) serve a few
tenants over the last days (at most the raw-event retention). ``/summarize`` switched from
prompt ``summarizer_v3`` to ``summarizer_v4`` four days ago, and v4 uses 22 % more tokens
(input, cached and output alike, so a request costs about 22 % more); ``/chat`` retries
about one request in eight; outcomes are mostly ``success``. The model is the demo OpenAI
org's, so every Unit economics panel has data (the estimate against the demo bill too).
"""

from __future__ import annotations

import logging
import random
import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

log = logging.getLogger(__name__)

TOKEN_ENV = "AICOST_DEMO_INGEST_TOKEN"
MODEL = "gpt-4o-mini-2024-07-18"
TENANTS = ("acme", "globex", "initech", "umbrella", "hooli")
ENDPOINTS = {  # endpoint -> (requests per day, input tokens, output tokens, retry share)
    "/summarize": (120, 2400, 300, 0.02),
    "/chat": (200, 900, 250, 0.12),
    "/search": (80, 1500, 120, 0.03),
}
SWITCH_DAYS_AGO = 4  # summarizer_v4 replaced summarizer_v3


def app_events(today: date, days: int, seed: int) -> list[dict[str, Any]]:
    """The events of ``days`` days up to now (deterministic for a seed)."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    out: list[dict[str, Any]] = []
    for back in range(days - 1, -1, -1):
        day = today - timedelta(days=back)
        for endpoint, (per_day, tokens_in, tokens_out, retry_share) in ENDPOINTS.items():
            version = "v1"
            if endpoint == "/summarize":
                version = "summarizer_v4" if back < SWITCH_DAYS_AGO else "summarizer_v3"
            scale = 1.22 if version == "summarizer_v4" else 1.0
            for i in range(per_day):
                t = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
                    seconds=rng.randrange(86_400)
                )
                if t > now:
                    continue
                cached = int(tokens_in * scale * 0.4) if rng.random() < 0.5 else 0
                out.append({
                    "id": f"demo-{day}-{endpoint}-{i}",
                    "time": t.isoformat(),
                    "provider": "openai",
                    "model": MODEL,
                    "input_tokens": int(tokens_in * scale * rng.uniform(0.9, 1.1)),
                    "output_tokens": int(tokens_out * scale * rng.uniform(0.7, 1.3)),
                    "cache_read_tokens": cached,
                    "endpoint": endpoint,
                    "tenant": rng.choice(TENANTS),
                    "user": f"user-{rng.randrange(40)}",
                    "prompt_version": version,
                    "outcome": "success" if rng.random() < 0.93 else "error",
                    "retry": rng.random() < retry_share,
                })  # fmt: skip
    return out


def post_events(url: str, token: str, events: list[dict[str, Any]], batch: int = 500) -> int:
    """POST ``events`` in batches to ``url``; the number the exporter counted as new."""
    new = 0
    with httpx.Client(timeout=30) as client:
        for i in range(0, len(events), batch):
            reply = client.post(
                url, json=events[i : i + batch], headers={"Authorization": f"Bearer {token}"}
            )
            reply.raise_for_status()
            new += int(reply.json()["new"])
    return new


def start_app(port: int, token: str, today: date, days: int, seed: int) -> threading.Thread:
    """Post the simulated application's requests to the exporter on ``port`` (a thread)."""

    def run() -> None:
        events = app_events(today, days, seed)
        try:
            new = post_events(f"http://127.0.0.1:{port}/api/v1/events", token, events)
        except httpx.HTTPError as exc:
            log.warning("demo: the simulated application could not report: %s", exc)
            return
        log.info("demo: a simulated application reported %d requests (POST /api/v1/events)", new)

    thread = threading.Thread(target=run, name="demo-app", daemon=True)
    thread.start()
    return thread
