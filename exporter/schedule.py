"""The APScheduler jobs of a running :class:`~exporter.app.App`, and nothing else.

* ``poll:<type>:<account>`` every ``poll.interval`` (or the account's own
  ``poll_interval``) per account, first run at start;
  one instance at a time, a late run coalesced.
* ``fx`` every ``fx.refresh_interval`` (and at start).
* ``retention`` once a day.
* ``ingest`` every ``ingest.refresh_interval`` when ingest is enabled: re-render with the
  requests counted since (the billed part is refreshed by the polls).

A finished poll asks the app's :class:`~exporter.refresh.Refresher` for a refresh: one
re-conversion and re-render runs after a burst of polls, not one per account.
"""

from __future__ import annotations

from apscheduler.schedulers.background import BackgroundScheduler

from exporter.app import App


def start(app: App) -> BackgroundScheduler:
    """Schedule every job of ``app`` and start the scheduler (stop it with ``shutdown``)."""
    scheduler = BackgroundScheduler(timezone="UTC")
    for poller in app.pollers:
        interval = poller.interval
        scheduler.add_job(
            app.poll,
            "interval",
            args=[poller],
            seconds=interval,
            next_run_time=app.clock(),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=int(interval),
            id=f"poll:{poller.type}:{poller.account}",
        )
    scheduler.add_job(
        app.fx_refresh,
        "interval",
        seconds=app.config.fx.refresh_interval,
        next_run_time=app.clock(),
        max_instances=1,
        coalesce=True,
        id="fx",
    )
    scheduler.add_job(app.prune, "interval", hours=24, id="retention")
    if app.intake is not None:
        scheduler.add_job(
            app.refresh_ingest,
            "interval",
            seconds=app.config.ingest.refresh_interval,
            max_instances=1,
            coalesce=True,
            id="ingest",
        )
    scheduler.start()
    return scheduler
