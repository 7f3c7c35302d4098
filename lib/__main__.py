"""Command line: `python -m lib migrate`, `python -m lib sync [--full] [--resource R]` and `python -m lib worker`.

Made for cron and systemd timers: a progress line on stderr (only when it is a terminal, else one line per
resource), a closing summary on stdout, exit 0 on success (or when another sync already runs), 1 on failure
with one clear line why.
"""

from __future__ import annotations

import argparse
import sys
import time

from lib.config import ConfigError, get_settings

SPINNER = "|/-\\"
RESOURCES = ("customers", "subscriptions", "invoices", "payment_methods")


class ProgressLine:
    """Objects written so far per resource, redrawn in place on a terminal; sparse log lines otherwise.

    A full backfill shows a bar against the previous size of the cache (Stripe lists have no total); without
    one, a spinner and the counts.
    """

    def __init__(self, stream=sys.stderr, expected: dict[str, int] | None = None) -> None:  # noqa: ANN001
        self.stream = stream
        self.tty = stream.isatty()
        self.counts: dict[str, int] = {}
        self.expected = {k: v for k, v in (expected or {}).items() if v > 0}
        self.started = time.monotonic()
        self._last = 0.0
        self._spin = 0

    def bar(self) -> str:
        total = sum(self.expected.values())
        if not total:
            return SPINNER[self._spin]
        done = sum(min(n, self.expected.get(r, 0)) for r, n in self.counts.items())
        filled = int(20 * min(1.0, done / total))
        return f"[{'#' * filled}{'.' * (20 - filled)}] {min(99, 100 * done // total):3d}%"

    def __call__(self, resource: str, written: int) -> None:
        self.counts[resource] = written
        now = time.monotonic()
        if now - self._last < (0.1 if self.tty else 10.0):
            return
        self._last = now
        self._spin = (self._spin + 1) % 4
        per = "  ".join(f"{r} {n:,}" for r, n in self.counts.items())
        line = f"{self.bar()} syncing {now - self.started:5.0f}s  {per}"
        if self.tty:
            self.stream.write("\r" + line[:200].ljust(80))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.counts:
            self.stream.write("\r" + " " * 120 + "\r")
            self.stream.flush()


def _cached_counts(resources: list[str] | None) -> dict[str, int]:
    """Rows per resource in the cache now: what a new full backfill is expected to write again."""
    try:
        from lib.db import get_engine
        from lib.sync import _cached_rows

        engine = get_engine()
        return {r: _cached_rows(engine, r) for r in RESOURCES if not resources or r in resources}
    except Exception:  # noqa: BLE001 — no cache yet: no bar, only counts
        return {}


def _first_line(exc: BaseException) -> str:
    """`Type: first line of the message`: one line for cron mail, no SQL or traceback."""
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:300]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib", description="Billing Console cache maintenance")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="bring the cache schema to the newest migration")
    sync = sub.add_parser("sync", help="refresh the cache from Stripe (incremental by default)")
    sync.add_argument("--full", action="store_true", help="backfill every object (resumes an interrupted one)")
    sync.add_argument("--resource", action="append", choices=RESOURCES,
                      help="only this resource (repeatable); default: all")
    sync.add_argument("--quiet", action="store_true", help="no progress line")
    sub.add_parser("worker", help="keep the cache fresh: incremental sync every WORKER_INTERVAL_SECONDS, "
                   "health and metrics on WORKER_METRICS_HOST:WORKER_METRICS_PORT; stops on SIGTERM")
    args = parser.parse_args(argv)

    try:
        settings = get_settings()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.command == "migrate":
        from lib.db import migrate

        try:
            migrate(settings.database_url)
        except Exception as exc:  # noqa: BLE001 — one line, no traceback
            print(f"error: migration failed on {settings.database_kind}: {_first_line(exc)}", file=sys.stderr)
            return 1
        print(f"cache schema is up to date ({settings.database_kind})")
        return 0

    if args.command == "worker":
        from lib.worker import main as worker_main

        return worker_main(settings)

    from lib.sync import run_sync

    bar = None if args.quiet else ProgressLine(expected=_cached_counts(args.resource) if args.full else None)
    try:
        result = run_sync(mode="full" if args.full else "incremental", resources=args.resource, progress=bar)
    except Exception as exc:  # noqa: BLE001 — e.g. the database is unreachable
        if bar:
            bar.close()
        print(f"error: sync could not run ({settings.database_kind} at DATABASE_URL?): {_first_line(exc)}",
              file=sys.stderr)
        return 1
    if bar:
        bar.close()
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if result.status == "failed":
        print(f"error: sync failed: {result.error}", file=sys.stderr)
        print(result.summary())
        return 1
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
