"""One sync run: backfill and Events API refresh of each resource in its own thread under the sync lock,
recorded in `sync_runs` (`run_sync`)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from sqlalchemy import Connection, Delete, Engine, Update, delete, func, select, update

from lib import gateway as gw
from lib.config import Settings, get_settings
from lib.db import ensure_migrated, retry_transaction
from lib.models import from_ts, utcnow
from lib.sync.endpoints import sync_webhook_endpoints
from lib.sync.events import EVENT_TYPES, apply_events, prepare_events
from lib.sync.fetch import LIST_PARAMS, LIST_PATHS, Declines, ProductNames, complete, expanded_cards
from lib.sync.history import fetch_history, history_done
from lib.sync.lock import LockHeld, heartbeat, holder_name, sync_lock
from lib.sync.sql import LINES, RESOURCES, RUNS, TABLES, Obj, _set_state, _touch_state, get_state
from lib.sync.writer import PageWriter, _start_page

Progress = Callable[[str, int], None]

EVENT_RETENTION = timedelta(days=30)


class SyncMode(StrEnum):
    """What a run does: `full` backfills every resource (resuming an interrupted backfill); `incremental`
    applies events since each resource's cursor."""

    FULL = "full"
    INCREMENTAL = "incremental"


# How a run ended (`sync_runs.status` also holds "running" while one is under way).
RunStatus = Literal["succeeded", "failed", "skipped"]


class SyncError(Exception):
    """A sync step failed; the message is one sentence that says what to do."""


@dataclass
class SyncResult:
    status: RunStatus
    counts: dict[str, int] = field(default_factory=dict)  # objects written per resource
    requests: int = 0
    seconds: float = 0.0
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    fetched: dict[str, int] = field(default_factory=dict)  # objects received per resource
    run_id: int | None = None
    timing: dict[str, float] = field(default_factory=dict)  # seconds spent fetching / writing, all threads

    @property
    def ok(self) -> bool:
        return self.status in ("succeeded", "skipped")

    def summary(self) -> str:
        """One line for the CLI and the Sync page."""
        if self.status == "skipped":
            return f"skipped: {self.error}"
        per = ", ".join(f"{r} {n:,}" for r, n in self.counts.items()) or "nothing written"
        line = f"{self.status}: {per}; {self.requests:,} requests in {self.seconds:.1f} s"
        return line + (f" — {self.error}" if self.error else "")


class _Run:
    """State shared by the resource workers of one run."""

    def __init__(self, engine: Engine, settings: Settings, holder: str) -> None:
        self.engine = engine
        self.settings = settings
        self.holder = holder
        self.counts: dict[str, int] = {}
        self.fetched: dict[str, int] = {}
        self.notes: list[str] = []
        self.updates: queue.SimpleQueue[tuple[str, int]] = queue.SimpleQueue()
        self.stop = threading.Event()
        self.cancel: threading.Event | None = None  # set by the caller (the worker on SIGTERM): stop soon
        self.write_lock = threading.Lock()  # one writer per process: short transactions, no SQLite busy-snapshot
        self.writer = PageWriter(engine, on_written=lambda resource, n: self.add(resource, n, 0))  # under the lock
        self.products = ProductNames(settings)
        self.declines = Declines(settings, check=self.check)
        self._last_beat = 0.0
        self._newest: tuple[str | None, int, int] | None = None
        self.timing: dict[str, float] = {"fetch": 0.0, "write": 0.0}
        self._newest_lock = threading.Lock()

    def add(self, resource: str, written: int, fetched: int) -> None:
        self.counts[resource] = self.counts.get(resource, 0) + written
        self.fetched[resource] = self.fetched.get(resource, 0) + fetched
        self.updates.put((resource, self.counts[resource]))
        if time.monotonic() - self._last_beat > 15:
            self._last_beat = time.monotonic()
            heartbeat(self.engine, self.holder)

    def newest_event(self) -> tuple[str | None, int, int]:
        """(id and created of the newest event, Stripe's clock), asked once per run: event cursors start there
        after a backfill, and the clock tells whether a cursor is past the 30-day retention."""
        with self._newest_lock:
            if self._newest is None:
                page = gw.list_page("/v1/events", {"limit": 1}, settings=self.settings)
                ev = page.data[0] if page.data else None
                created = int(ev["created"]) if ev else 0
                self._newest = (ev["id"] if ev else None, created, max(page.server_time, created))
            return self._newest

    def stripe_time(self, response_time: int) -> int:
        """The version of a fetched state: Stripe's clock. The `Date` of the response, but never before the
        newest event seen (a clock that runs ahead of ours — a sandbox's advanced clock — stays ordered)."""
        return max(response_time, self.newest_event()[1])

    def check(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            self.stop.set()
            raise SyncError("stopped: the process is shutting down (the next run resumes from the last page)")
        if self.stop.is_set():
            raise SyncError("stopped because another resource failed")


def _backfill_list(run: _Run, resource: str, state: dict[str, Any]) -> None:
    """Page through a list endpoint from the committed cursor, one transaction per page."""
    cursor = state.get("backfill_cursor")
    path, extra = LIST_PATHS[resource], LIST_PARAMS.get(resource, {})
    if resource == "invoices":
        run.declines.start()  # side by side with the invoice pages
    while True:
        run.check()
        params = {**extra, **({"starting_after": cursor} if cursor else {})}
        started = time.monotonic()
        page = gw.list_page(path, params, settings=run.settings)
        for obj in page.data:
            complete(resource, obj, run.settings, run.declines)
        names = run.products.resolve(page.data) if resource == "subscriptions" else None
        cards = expanded_cards(resource, page.data)
        cursor = page.data[-1]["id"] if page.data else cursor
        fetched_at = time.monotonic()
        version = run.stripe_time(page.server_time)
        with run.write_lock:
            run.writer.write(resource, page.data, version, cursor=cursor, product_names=names)
            if cards:  # default cards expanded into the page: the pages show them before pass 2
                run.writer.write("payment_methods", cards, version)
        run.timing["fetch"] += fetched_at - started
        run.timing["write"] += time.monotonic() - fetched_at
        run.add(resource, 0, len(page.data))
        if not page.has_more or not page.data:
            return


def _customer_cards(run: _Run, cid: str) -> tuple[list[Obj], int]:
    """Every card of one customer (Stripe lists them per customer only), at low priority; Stripe's clock."""
    run.check()
    pms: list[Obj] = []
    server_time = 0
    with gw.low_priority():
        try:
            for pm_page in gw.iter_pages(f"/v1/customers/{cid}/payment_methods", settings=run.settings):
                pms.extend(pm_page.data)
                server_time = pm_page.server_time
        except gw.NotFound:  # deleted since the customers page: its cards went with it
            pass
    return pms, server_time or int(time.time())


def _backfill_payment_methods(run: _Run, state: dict[str, Any]) -> None:
    """Pass 2: every customer's complete card list, walking the cached customers in id order.

    Up to `card_concurrency` customers are fetched at once (a 429 or 5xx retried for one customer never
    holds up the others); results are written in id order, each run of finished customers in one transaction
    with the cursor after its last customer, so an interrupted pass resumes where its writes stopped."""
    cust = TABLES["customers"]
    cursor = state.get("backfill_cursor")
    width = run.settings.card_concurrency
    window: deque[tuple[str, Future[tuple[list[Obj], int]]]] = deque()
    queued = cursor  # the last customer id handed to a fetch
    exhausted = False
    with ThreadPoolExecutor(max_workers=width, thread_name_prefix="sync-cards") as pool:
        try:
            while True:
                run.check()
                if not exhausted and len(window) < 4 * width:
                    q = select(cust.c.id).where(cust.c.deleted.is_(False)).order_by(cust.c.id).limit(4 * width)
                    if queued:
                        q = q.where(cust.c.id > queued)
                    with run.engine.connect() as conn:
                        ids = list(conn.execute(q).scalars())
                    exhausted = not ids
                    window.extend((cid, pool.submit(_customer_cards, run, cid)) for cid in ids)
                    queued = ids[-1] if ids else queued
                if not window:
                    return
                wait([window[0][1]], timeout=0.2)
                done: list[tuple[str, list[Obj], int]] = []
                while window and window[0][1].done():
                    cid, fut = window.popleft()
                    pms, server_time = fut.result()
                    done.append((cid, pms, server_time))
                if done:
                    pms = [pm for _, batch, _ in done for pm in batch]
                    version = run.stripe_time(min(t for _, _, t in done))
                    with run.write_lock:
                        run.writer.write("payment_methods", pms, version, cursor=done[-1][0])
                    run.add("payment_methods", 0, len(pms))
        except BaseException:
            run.stop.set()  # fetches already running see it before their next customer
            for _, fut in window:
                fut.cancel()
            raise


def card_pass_progress(engine: Engine) -> tuple[int, int, bool]:
    """Pass 2's progress: (customers whose complete card list is cached by the current or last card backfill,
    customers cached, whether that backfill is complete)."""
    state = get_state(engine, "payment_methods")
    cust = TABLES["customers"]
    with engine.connect() as conn:
        total = int(conn.execute(select(func.count()).select_from(cust).where(cust.c.deleted.is_(False)))
                    .scalar() or 0)
        if state.get("backfill_completed_at") is not None:
            return total, total, True
        cursor = state.get("backfill_cursor")
        if state.get("backfill_started_at") is None or not cursor:
            return 0, total, False
        done = int(conn.execute(select(func.count()).select_from(cust).where(
            cust.c.deleted.is_(False), cust.c.id <= cursor)).scalar() or 0)
    return done, total, False


def _sweep(conn: Connection, resource: str, started: datetime) -> int:
    """After a complete backfill: what Stripe no longer lists is gone (deleted customers, detached cards,
    deleted drafts). Rows seen by this backfill have `synced_at` >= its start."""
    table = TABLES[resource]
    stmt: Update | Delete
    if resource == "customers":
        stmt = update(table).where(table.c.deleted.is_(False), table.c.synced_at < started).values(deleted=True)
    elif resource == "payment_methods":
        stmt = update(table).where(table.c.customer_id.is_not(None), table.c.synced_at < started).values(
            customer_id=None)
    elif resource == "invoices":
        gone = select(table.c.id).where(table.c.status == "draft", table.c.synced_at < started)
        conn.execute(delete(LINES).where(LINES.c.invoice_id.in_(gone)))
        stmt = delete(table).where(table.c.status == "draft", table.c.synced_at < started)
    else:
        return 0
    n = conn.execute(stmt).rowcount or 0
    if resource == "customers" and n:
        conn.execute(update(TABLES["subscriptions"]).where(
            TABLES["subscriptions"].c.customer_id.in_(select(table.c.id).where(table.c.deleted.is_(True))),
            TABLES["subscriptions"].c.status.not_in(("canceled", "incomplete_expired")),
            TABLES["subscriptions"].c.synced_at < started).values(status="canceled"))
    return n


def _cached_rows(engine: Engine, resource: str) -> int:
    table = TABLES[resource]
    q = select(func.count()).select_from(table)
    if resource == "customers":
        q = q.where(table.c.deleted.is_(False))
    with engine.connect() as conn:
        return int(conn.execute(q).scalar() or 0)


def backfill(run: _Run, resource: str, *, restart: bool) -> None:
    """Full backfill of one resource: resume an unfinished one, else start anew (and seed its event cursor)."""
    state = get_state(run.engine, resource)
    in_progress = state.get("backfill_started_at") is not None and state.get("backfill_completed_at") is None
    if not in_progress or restart:
        event_id, event_created, stripe_now = run.newest_event()
        with run.write_lock, run.engine.begin() as conn:
            _touch_state(conn, resource)
            _set_state(conn, resource, backfill_cursor=None, backfill_started_at=utcnow(),
                       backfill_completed_at=None, event_cursor=event_id,
                       event_cursor_created=from_ts(event_created if event_id else stripe_now))
        state = get_state(run.engine, resource)
    elif state.get("backfill_cursor"):
        run.notes.append(f"{resource}: resuming the interrupted backfill after {state['backfill_cursor']}")
    had = _cached_rows(run.engine, resource)
    before = run.fetched.get(resource, 0)
    if resource == "payment_methods":
        _backfill_payment_methods(run, state)
    else:
        _backfill_list(run, resource, state)
    with run.write_lock:
        run.writer.flush(resource)  # its last page is committed before the backfill is marked complete
    fetched_now = run.fetched.get(resource, 0) - before
    if fetched_now == 0 and had > 0 and not state.get("backfill_cursor") and resource != "payment_methods":
        raise SyncError(
            f"Stripe listed no {resource.replace('_', ' ')} although the cache holds {had:,}: the API key may "
            "belong to another account or lack read permission. Nothing was removed; check STRIPE_API_KEY."
        )
    with run.write_lock, run.engine.begin() as conn:
        _touch_state(conn, resource)
        swept = _sweep(conn, resource, state["backfill_started_at"])
        _set_state(conn, resource, backfill_cursor=None, backfill_completed_at=utcnow())
    if swept:
        run.notes.append(f"{resource}: {swept:,} no longer in Stripe, marked gone")


def incremental(run: _Run, resource: str) -> None:
    """Apply this resource's events since its cursor, oldest first; a cursor past retention → backfill."""
    state = get_state(run.engine, resource)
    if state.get("backfill_completed_at") is None:
        run.notes.append(f"{resource}: no completed backfill yet, running one")
        return backfill(run, resource, restart=False)
    cursor, cursor_created = state.get("event_cursor"), state.get("event_cursor_created")
    newest_id, newest_created, stripe_now = run.newest_event()
    if cursor_created is not None and from_ts(stripe_now) - cursor_created > EVENT_RETENTION:
        return _expired(run, resource, cursor_created)
    types = {"types": list(EVENT_TYPES[resource])}
    applied = 0
    if cursor is None:  # there were no events at all when the backfill started: start at the oldest since
        since = int(cursor_created.timestamp()) - 5 if cursor_created else 0
        oldest: Obj | None = None
        for page in gw.iter_pages("/v1/events", {**types, "created": {"gte": since}}, settings=run.settings):
            run.check()
            oldest = page.data[-1] if page.data else oldest  # newest first: keep only the last one seen
        if oldest is not None:
            _apply_event_page(run, resource, [oldest], server_time=stripe_now)
            applied, cursor = 1, oldest["id"]
    while cursor is not None:
        run.check()
        try:
            page = gw.list_page("/v1/events", {**types, "ending_before": cursor}, settings=run.settings)
        except gw.GatewayError as exc:
            if exc.kind == "missing":  # the cursor event itself is past retention
                return _expired(run, resource, cursor_created)
            raise
        if page.data:
            _apply_event_page(run, resource, list(reversed(page.data)), server_time=page.server_time)
            applied += len(page.data)
            cursor = page.data[0]["id"]
        if not page.has_more or not page.data:
            break
    if not applied and newest_id is not None and newest_id != cursor:
        # A quiet resource: move its cursor up to the account's newest event (read before this scan), so it
        # never ages past the retention while nothing happens to it.
        with run.write_lock, run.engine.begin() as conn:
            _touch_state(conn, resource)
            _set_state(conn, resource, event_cursor=newest_id, event_cursor_created=from_ts(newest_created))


@retry_transaction()
def _apply_event_page(run: _Run, resource: str, events: list[Obj], *, server_time: int) -> None:
    prepare_events(events, run.settings)
    newest = events[-1]
    with run.write_lock, run.engine.begin() as conn:
        _start_page(conn, resource)
        _, per_resource = apply_events(conn, events, source="events", products=run.products)
        _set_state(conn, resource, event_cursor=newest["id"], event_cursor_created=from_ts(int(newest["created"])))
    run.add(resource, sum(per_resource.values()), len(events))


def _expired(run: _Run, resource: str, cursor_created: datetime | None) -> None:
    when = cursor_created.strftime("%Y-%m-%d") if cursor_created else "unknown"
    run.notes.append(f"{resource}: the event cursor ({when}) is older than Stripe's 30-day event retention; "
                     "running a full backfill instead")
    backfill(run, resource, restart=True)


def _record_run(engine: Engine, **values: Any) -> int:
    with engine.begin() as conn:
        return int(conn.execute(RUNS.insert().values(**values)).inserted_primary_key[0])  # type: ignore[index]


def _finish_run(engine: Engine, run_id: int, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(finished_at=utcnow(), **values))


def run_sync(*, mode: str = SyncMode.INCREMENTAL, resources: list[str] | None = None,
             progress: Progress | None = None, settings: Settings | None = None,
             cancel: threading.Event | None = None) -> SyncResult:
    """Refresh the cache from Stripe; never raises for Stripe or lock trouble (see SyncResult).

    mode "full": backfill every resource (resuming an interrupted backfill); "incremental": apply events since
    each resource's cursor (a backfill where there is none, or where it is past the 30-day retention).
    `progress(resource, objects_written_so_far)` is called from the caller's thread. Setting `cancel` stops
    the run before its next page (every written page is committed with its cursor: the next run resumes).
    """
    started = time.monotonic()
    settings = settings or get_settings()
    wanted = list(dict.fromkeys(resources or RESOURCES))
    bad = [r for r in wanted if r not in RESOURCES]
    if mode not in tuple(SyncMode) or bad:
        return SyncResult("failed", error=f"unknown {'mode ' + mode if bad == [] else 'resource ' + bad[0]}: "
                          f"use --resource one of {', '.join(RESOURCES)}")
    run_mode = SyncMode(mode)
    engine = ensure_migrated(settings.database_url)
    requests_before = gw.requests_sent()
    holder = holder_name()
    with ExitStack() as held:
        try:
            held.enter_context(sync_lock(engine, holder))
        except LockHeld as exc:
            run_id = _record_run(engine, mode=run_mode.value, status="skipped", error=str(exc), host=holder,
                                 finished_at=utcnow())
            return SyncResult("skipped", error=f"{exc}; nothing to do", run_id=run_id,
                              seconds=time.monotonic() - started)
        with engine.begin() as conn:  # runs left 'running' by a killed process
            conn.execute(update(RUNS).where(RUNS.c.status == "running").values(
                status="failed", finished_at=utcnow(), error="interrupted: the process ended before finishing"))
        run_id = _record_run(engine, mode=run_mode.value, status="running", host=holder)
        run = _Run(engine, settings, holder)
        run.cancel = cancel
        try:
            result = _execute(run, run_mode, wanted, progress)
        except (gw.GatewayError, SyncError) as exc:  # e.g. the events check after an empty backfill
            result = SyncResult("failed", counts={r: run.counts.get(r, 0) for r in wanted}, error=str(exc),
                                notes=run.notes, fetched=run.fetched, timing=run.timing)
        finally:
            run.writer.close()  # no-op when _execute closed it; never leaves a page or connection behind
        result.run_id = run_id
        result.requests = gw.requests_sent() - requests_before
        result.seconds = time.monotonic() - started
        _finish_run(engine, run_id, status=result.status, counts=result.counts, requests=result.requests,
                    error=result.error)
        return result


def _execute(run: _Run, mode: SyncMode, wanted: list[str], progress: Progress | None) -> SyncResult:
    if "payment_methods" in wanted and "customers" not in wanted and \
            get_state(run.engine, "customers").get("backfill_completed_at") is None:
        wanted = ["customers", *wanted]  # cards are listed per cached customer: they must be there first
        run.notes.append("payment_methods: customers were never backfilled, backfilling them first")
    finished_earlier = _done_by_interrupted_backfill(run.engine, wanted) if mode == SyncMode.FULL else set()
    for resource in sorted(finished_earlier):
        run.notes.append(f"{resource}: already backfilled by the interrupted run, not fetched again")

    def work(resource: str) -> None:
        try:
            if resource in finished_earlier:
                return
            if mode == SyncMode.FULL:
                backfill(run, resource, restart=False)
            else:
                incremental(run, resource)
        except BaseException:
            run.stop.set()
            raise

    lists = [r for r in wanted if r != "payment_methods"]
    history = _wants_history(run, mode, wanted, finished_earlier)
    errors: list[str] = []
    with ThreadPoolExecutor(max_workers=max(1, len(wanted)) + int(history) + 1, thread_name_prefix="sync") as pool:
        futures = {r: pool.submit(work, r) for r in lists}
        endpoints = pool.submit(_endpoints, run)
        pm_future = None
        while True:
            _drain(run, progress)
            if pm_future is None and "payment_methods" in wanted:
                customers_done = "customers" not in futures or futures["customers"].done()
                if customers_done:  # cards are listed per cached customer
                    failed = "customers" in futures and futures["customers"].exception() is not None
                    if not failed:
                        futures["payment_methods"] = pm_future = pool.submit(work, "payment_methods")
                        if history:  # pass 2's other part: the timeline's last 30 days of events
                            futures["events"] = pool.submit(_history, run)
                    else:
                        pm_future = futures["customers"]
            if all(f.done() for f in futures.values()) and (pm_future is not None or "payment_methods"
                                                               not in wanted):
                break
            time.sleep(0.05)
        endpoints.result()  # never raises: a failure is a note
        for resource, fut in futures.items():
            exc = fut.exception()
            if exc is not None and not (isinstance(exc, SyncError) and run.stop.is_set()
                                        and str(exc).startswith("stopped")):
                errors.append(f"{resource}: {_describe(exc)}")
    try:
        run.writer.close()  # the page still in flight, when a resource stopped early
    except Exception as exc:  # noqa: BLE001 — reported as the run's error
        errors.append(f"writing a page: {_describe(exc)}")
    _drain(run, progress)
    counts = {r: run.counts.get(r, 0) for r in wanted}
    if not errors and run.cancel is not None and run.cancel.is_set():
        errors.append("stopped: the process is shutting down (the next run resumes from the last page)")
    if not errors and mode == SyncMode.FULL and sum(run.fetched.values()) == 0:
        event_id, _, _ = run.newest_event()
        if event_id is not None:
            errors.append("Stripe returned no objects although the account has events: the API key may lack "
                          "read permission or belong to another account; check STRIPE_API_KEY")
    if errors:
        return SyncResult("failed", counts=counts, error="; ".join(errors), notes=run.notes, fetched=run.fetched,
                          timing=run.timing)
    return SyncResult("succeeded", counts=counts, notes=run.notes, fetched=run.fetched, timing=run.timing)


def _wants_history(run: _Run, mode: SyncMode, wanted: list[str], finished_earlier: set[str]) -> bool:
    """Pass 2 lists the last 30 days of events for the timeline: on every full run that backfills cards, and
    on an incremental run until it has been done once."""
    if "payment_methods" not in wanted or "payment_methods" in finished_earlier:
        return False
    return mode == SyncMode.FULL or not history_done(run.engine)


def _endpoints(run: _Run) -> None:
    """The account's webhook endpoints for the Sync page (one request a run); a failure is a note, not an
    error of the run (the cache's data is not affected)."""
    try:
        sync_webhook_endpoints(run.engine, run.settings, write_lock=run.write_lock)
    except Exception as exc:  # noqa: BLE001 — shown as a note; the run's data is written regardless
        run.notes.append(f"webhook endpoints: not read from Stripe ({_describe(exc)})")


def _history(run: _Run) -> None:
    """The timeline's history (lib/sync/history.py), counted as the `events` the run received."""
    try:
        listed = fetch_history(run.engine, run.settings, stripe_now=run.newest_event()[2], check=run.check,
                               write_lock=run.write_lock)
    except BaseException:
        run.stop.set()
        raise
    run.fetched["events"] = run.fetched.get("events", 0) + listed


def _done_by_interrupted_backfill(engine: Engine, wanted: list[str]) -> set[str]:
    """When a full backfill was interrupted, the resources it had already finished are not fetched again:
    the rerun resumes the unfinished ones only (their events catch up with the rest on the next run)."""
    states = {r: get_state(engine, r) for r in wanted}
    unfinished = [s["backfill_started_at"] for s in states.values()
                  if s.get("backfill_started_at") is not None and s.get("backfill_completed_at") is None]
    if not unfinished:
        return set()
    since = min(unfinished)
    return {r for r, s in states.items() if s.get("backfill_completed_at") is not None
            and s["backfill_completed_at"] >= since}


def _drain(run: _Run, progress: Progress | None) -> None:
    while True:
        try:
            resource, n = run.updates.get_nowait()
        except queue.Empty:
            return
        if progress is not None:
            try:
                progress(resource, n)
            except Exception:  # noqa: BLE001 — a display problem must not stop the sync
                pass


def _describe(exc: BaseException) -> str:
    """The error of a run, as stored and shown on the Sync page: a database error's first line only (its
    `[SQL: …]` and `[parameters: …]` would carry a whole page of customer data)."""
    if isinstance(exc, gw.GatewayError | SyncError):
        return str(exc)
    logging.getLogger(__name__).error("sync failed", exc_info=exc)  # the details the Sync page points to
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:300]}"
