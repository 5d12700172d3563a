"""``kiosk sync``: push the outbox to the county hub and pull its changes, now.

When the daemon runs, its sync worker does it (the daemon owns the database) and the command
prints the report; otherwise the command syncs by itself.

Exit codes: 0 the outbox was pushed and the change feed pulled to its end; 1 the sync did not
complete (hub unreachable, refused, or answered nonsense: the report says which; nothing is
lost, the next sync goes on from there); 3 no hub configured or its token unreadable; 4 the
database cannot be used.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from kiosk import exitcodes
from kiosk.app import App
from kiosk.config.settings import HubSettings
from kiosk.control_client import DaemonError, daemon_for
from sync.client import HubClient, HubNotConfigured, read_token
from sync.clock import SystemClock
from sync.syncer import Syncer, SyncOptions, SyncReport

# A technician at the command line wants an answer within a minute, not the daemon's
# patient retries: fewer attempts, shorter waits.
CLI_ATTEMPTS = 3
CLI_RETRY_MAX_S = 10.0
# The daemon's syncer keeps its own patient pacing; a first sync may download the county.
DAEMON_WAIT_S = 600.0


def register(sub: argparse._SubParsersAction, t: Callable[..., str]) -> None:
    p = sub.add_parser("sync", help=t("sync.cli.help"), description=t("sync.cli.help"),
                       epilog=t("sync.cli.example"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help=t("cli.opt.json"))
    p.set_defaults(handler=_sync)


def options(hub: HubSettings, *, attempts: int = 6, retry_max_s: float | None = None
            ) -> SyncOptions:
    """The syncer's pacing from the ``[hub]`` section."""
    return SyncOptions(
        batch_size=hub.batch_size, page_size=hub.page_size,
        retry_initial_s=hub.retry_initial_ms / 1000,
        retry_max_s=min(hub.retry_max_s, retry_max_s or hub.retry_max_s),
        retry_after_max_s=float(hub.retry_after_max_s), attempts=attempts,
        sync_interval_s=float(hub.sync_interval_s),
        probe_interval_s=float(hub.probe_interval_s))


def client_for(hub: HubSettings, device_id: str) -> HubClient:
    """A :class:`HubClient` for the ``[hub]`` section; :class:`HubNotConfigured` when the
    section names no hub or its token cannot be read."""
    if not hub.enabled:
        raise HubNotConfigured("no [hub] url in the config", code="no_hub", retryable=False)
    if hub.token_file is None:
        raise HubNotConfigured("no [hub] token_file in the config", code="no_token",
                               retryable=False, path="")
    return HubClient(
        hub.url, device_id, read_token(hub.token_file), clock=SystemClock(),
        ca_file=hub.ca_file, client_cert=hub.client_cert, client_key=hub.client_key,
        timeout=(hub.connect_timeout_ms / 1000, hub.read_timeout_ms / 1000))


def _via_daemon(app: App) -> int | None:
    """Ask the running daemon to sync now; None when no daemon runs."""
    client = daemon_for(app)
    if client is None:
        return None
    with client:
        try:
            report = client.request("sync", timeout=DAEMON_WAIT_S)
        except DaemonError as exc:
            if exc.code != "no_hub":
                raise
            if app.json:
                app.emit_json({"ok": False, "error": {"code": "no_hub",
                                                      "detail": exc.params.get("detail")}})
            else:
                app.warn(exc.message_key, **exc.params)
            return exitcodes.CONFIG
    if app.json:
        app.emit_json(report)
    else:
        print_report(app, report)
    return exitcodes.OK if report["ok"] else exitcodes.REFUSED


def _sync(app: App) -> int:
    routed = _via_daemon(app)
    if routed is not None:
        return routed
    settings = app.settings()
    try:
        client = client_for(settings.hub, settings.device.id)
    except HubNotConfigured as exc:
        if app.json:
            app.emit_json({"ok": False, "error": {"code": exc.code, "detail": str(exc)}})
        else:
            app.warn(exc.message_key, **exc.params)
        return exitcodes.CONFIG
    with app.open_cache() as cache, client:
        syncer = Syncer(cache, client, options=options(
            settings.hub, attempts=CLI_ATTEMPTS, retry_max_s=CLI_RETRY_MAX_S))
        report = syncer.run_once()
    if app.json:
        app.emit_json(report.as_dict())
    else:
        _print(app, report)
    return exitcodes.OK if report.ok else exitcodes.REFUSED


def print_report(app: App, report: dict) -> None:
    """A report as the daemon sends it (:meth:`SyncReport.as_dict` with the error's params)."""
    app.say("sync.cli.pushed", sent=report["sent"], acknowledged=report["acknowledged"],
            duplicates=report["duplicates"], batches=report["batches"])
    if report["bootstrapped"]:
        app.say("sync.cli.snapshot", rows=report["snapshot_rows"])
    app.say("sync.cli.pulled", changes=report["pulled"], pages=report["pages"])
    if report["held_back"] > 0:
        app.say("sync.cli.held_back", count=report["held_back"])
    for f in report["flagged"]:
        app.say("sync.cli.flagged", seq=f.get("seq"), outcome=f.get("outcome"),
                code=f.get("code") or "-", message=f.get("message") or "")
    app.say("sync.cli.queue", depth=report["queue_depth"])
    error = report.get("error")
    if error is not None:
        app.warn(error["message_key"], **(error.get("params") or {"detail": error["detail"]}))
        app.warn("sync.cli.failed")
    else:
        app.say("sync.cli.done", seconds=f"{report['seconds']:.1f}")


def _print(app: App, report: SyncReport) -> None:
    app.say("sync.cli.pushed", sent=report.sent, acknowledged=report.acknowledged,
            duplicates=report.duplicates, batches=report.batches)
    if report.bootstrapped:
        app.say("sync.cli.snapshot", rows=report.snapshot_rows)
    app.say("sync.cli.pulled", changes=report.pulled, pages=report.pages)
    if report.held_back > 0:
        app.say("sync.cli.held_back", count=report.held_back)
    for f in report.flagged:
        app.say("sync.cli.flagged", seq=f.get("seq"), outcome=f.get("outcome"),
                code=f.get("code") or "-", message=f.get("message") or "")
    app.say("sync.cli.queue", depth=report.queue_depth)
    if report.error is not None:
        app.warn(report.error.message_key, **report.error.params)
        app.warn("sync.cli.failed")
    else:
        app.say("sync.cli.done", seconds=f"{report.seconds:.1f}")
