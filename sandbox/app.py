"""The Starlette app: Stripe's /v1 API (auth, faults, idempotency, logging, expand) and /_sandbox/ control."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import html
import json
import logging
import os
import pickle
import random
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

# the resource modules register their routes when imported (sandbox.webhooks is otherwise unused here)
import sandbox.billing
import sandbox.cash
import sandbox.discounts
import sandbox.invoicing
import sandbox.portal
import sandbox.resources
import sandbox.schedules
import sandbox.webhooks  # noqa: F401
from sandbox.billing import run_due
from sandbox.core import ApiError, Obj, Store, new_id, parse_form
from sandbox.portal import portal_action, portal_page
from sandbox.render import expand, fast_json, render_any
from sandbox.routes import call, match, path_known
from sandbox.webhooks import Deliverer

log = logging.getLogger("sandbox")
REQUEST_LOG_SIZE = 20_000  # the request log is a ring buffer: older entries drop off


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class Faults:
    def __init__(self, settings: Obj | None = None) -> None:
        s = settings or {}
        self.settings = s
        self.rate_limit = float(s.get("rate_limit") or 0)
        self.server_error = float(s.get("server_error") or 0)
        lat = s.get("latency_ms")
        if isinstance(lat, (int, float)):
            lat = [lat, lat]
        self.latency = (float(lat[0]), float(lat[1])) if lat else None
        self.max_rps = float(s["max_rps"]) if s.get("max_rps") else None
        self.rng = random.Random(s.get("seed"))
        self.window: deque[float] = deque()


class Sandbox:
    """Process-wide state: the store plus everything that is not Stripe data."""

    def __init__(self, state_file: str | None = None) -> None:
        self.state_file = Path(state_file) if state_file else None
        self.store = Store()
        self.faults = Faults()
        self.log: deque[Obj] = deque(maxlen=REQUEST_LOG_SIZE)
        self.log_seq = 0
        self.deliverer = Deliverer()
        self.dirty = False
        self.last_request = 0.0
        self.log_bodies = False  # tests turn this on to shape-check every answer; survives reset
        if self.state_file and self.state_file.exists():
            try:
                with open(self.state_file, "rb") as fh:
                    self.store = pickle.load(fh)
            except Exception as exc:  # any unreadable file gets the same advice
                raise SystemExit(f"Cannot read the sandbox state file {self.state_file} ({type(exc).__name__}: "
                                 f"{exc}). Move it away or delete it to start with an empty sandbox.") from None
            gc.collect()
            gc.freeze()  # the loaded state is long-lived: keep it out of every later collection
        self.deliverer.bind(self.store)

    def reset(self) -> None:
        base = self.store.base_url
        self.store = Store()
        self.store.base_url = base
        self.faults = Faults()
        self.log.clear()
        self.deliverer.bind(self.store)
        self.dirty = True

    def save(self) -> None:
        """Write the state atomically: a temp file in the same folder, fsync, then os.replace."""
        if not self.state_file:
            return
        data = pickle.dumps(self.store, protocol=pickle.HIGHEST_PROTOCOL)
        folder = self.state_file.parent
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".sandbox-state-", dir=folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.state_file)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self.dirty = False


def error_response(err: ApiError, request_id: str) -> Response:
    return Response(_dumps({"error": err.body}), status_code=err.status, media_type="application/json",
                    headers={"Request-Id": request_id, **err.headers})


def _auth(header: str) -> None:
    key = ""
    if header.lower().startswith("bearer "):
        key = header[7:].strip()
    elif header.lower().startswith("basic "):
        import base64

        with contextlib.suppress(Exception):
            key = base64.b64decode(header[6:]).decode().split(":", 1)[0]
    if not key:
        raise ApiError(401, "You did not provide an API key. You need to provide your API key in the Authorization "
                       "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').")
    if not key.startswith(("sk_test_", "rk_test_")):
        shown = key[:8] + "*" * 10 + key[-4:] if len(key) > 12 else "*" * len(key)
        raise ApiError(401, f"Invalid API Key provided: {shown}")


def _fault(sb: Sandbox) -> ApiError | None:
    f = sb.faults
    if f.max_rps:
        now = time.monotonic()
        while f.window and f.window[0] <= now - 1:
            f.window.popleft()
        if len(f.window) >= f.max_rps:
            return _rate_limited()
        f.window.append(now)
    if f.rate_limit and f.rng.random() < f.rate_limit:
        return _rate_limited()
    if f.server_error and f.rng.random() < f.server_error:
        return ApiError(500, "An unknown error occurred", type="api_error")
    return None


def _rate_limited() -> ApiError:
    err = ApiError(429, "Request rate limit exceeded. Learn more about rate limits here "
                        "https://stripe.com/docs/rate-limits.", code="rate_limit")
    err.headers = {"Stripe-Should-Retry": "true", "Retry-After": "1"}
    return err


async def api(sb: Sandbox, scope: Obj, receive: Any, send: Any) -> None:
    """Stripe's /v1 API as a bare ASGI handler (Starlette's routing and middleware are skipped for speed)."""
    method: str = scope["method"]
    raw = b""
    if method == "POST":
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    status, body, extra = await handle(sb, method, scope["path"], scope["query_string"].decode("latin-1"), raw,
                                       headers, scope.get("scheme", "http"))
    out = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    out += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": body})


async def handle(sb: Sandbox, method: str, path: str, query: str, raw: bytes, headers: dict[str, str],
                 scheme: str) -> tuple[int, bytes, dict[str, str]]:
    """One API request: auth, faults, params, timers due, idempotency, the handler, expand, the log entry."""
    store = sb.store
    sb.last_request = time.monotonic()
    request_id = new_id("req")
    idem = headers.get("idempotency-key")
    entry: Obj = {"seq": 0, "method": method, "path": path, "params": {}, "idempotency_key": idem,
                  "status": 0, "time": time.time()}
    out_headers = {"Request-Id": request_id, "Date": formatdate(store.now(), usegmt=True)}
    if idem:
        out_headers["Idempotency-Key"] = idem
    status = 500
    try:
        _auth(headers.get("authorization", ""))
        fault = _fault(sb)
        if sb.faults.latency:
            lo, hi = sb.faults.latency
            await asyncio.sleep(sb.faults.rng.uniform(lo, hi) / 1000)
        params = parse_form(parse_qsl(query, keep_blank_values=True)) if query else {}
        if raw:
            params.update(parse_form(parse_qsl(raw.decode(), keep_blank_values=True)))
        entry["params"] = params
        if fault is not None:
            raise fault
        found = match(method, path)
        if found is None:
            if path_known(path):
                raise ApiError(405, f"Unrecognized request URL ({method}: {path}).")
            raise ApiError(404, f"Unrecognized request URL ({method}: {path}). Please see "
                           "https://stripe.com/docs or we can help at https://support.stripe.com/.")
        store.base_url = f"{scheme}://{headers.get('host', 'localhost')}"
        if store.heap and store.heap[0][0] <= store.now():
            run_due(store, store.now())
        digest = None
        if idem and method in ("POST", "DELETE"):
            digest = hashlib.sha256(method.encode() + path.encode() + b"?" + raw).hexdigest()
            saved = store.idempotency.get(idem)
            if saved is not None:
                if saved[0] != digest:
                    raise ApiError(400, "Keys for idempotent requests can only be used with the same parameters "
                                   "they were first used with. Try using a key other than "
                                   f"'{idem}' if you meant to execute a different request.",
                                   type="idempotency_error")
                status = saved[1]
                return saved[1], saved[2], {**out_headers, "Idempotent-Replayed": "true"}
        store.request_id, store.idempotency_key = request_id, idem
        route_, ids = found
        try:
            result = call(store, route_, params, ids)
            fast = None if params.get("expand") else fast_json(result)
            body = fast.encode() if fast is not None else \
                _dumps(expand(store, render_any(store, result), params.get("expand")))
            status = 200
        except ApiError as err:
            status = err.status
            body = _dumps({"error": err.body})
        finally:
            store.request_id = store.idempotency_key = None
        if method != "GET":
            sb.dirty = True
        if digest is not None:
            store.idempotency[idem] = (digest, status, body)
        if sb.log_bodies:
            entry["response"] = body
        return status, body, out_headers
    except ApiError as err:
        status = err.status
        body = _dumps({"error": err.body})
        if sb.log_bodies:
            entry["response"] = body
        return status, body, {**out_headers, **err.headers}
    except Exception as exc:  # a sandbox bug: answer like Stripe's 500 and say what broke on stderr
        log.exception("sandbox error on %s %s", method, path)
        status = 500
        body = _dumps({"error": {"type": "api_error", "message": f"Sandbox error ({type(exc).__name__}: {exc}); "
                                 "see the sandbox's output."}})
        return status, body, out_headers
    finally:
        sb.log_seq += 1
        entry["seq"] = sb.log_seq
        entry["status"] = status
        sb.log.append(entry)


# --- control endpoints ----------------------------------------------------------------------------------

def _refuse_unknown(request: Request, given: Any, known: Any, what: str) -> None:
    """400 naming every key of `given` that is not in `known`, as Stripe's endpoints refuse unknown parameters:
    a mistyped control call (`{"days": 32}` to clock/advance) must fail, not silently do nothing."""
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ApiError(400, f"Received unknown {what} for {request.url.path}: {', '.join(unknown)} "
                       f"(known: {', '.join(sorted(known)) or 'none'}).", param=unknown[0])


async def _json(request: Request, known: Any = ()) -> Obj:
    """The JSON object body of a control call ({} when empty) holding no key outside `known`; also no query."""
    _query(request)
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ApiError(400, "Control endpoints take a JSON object body.")
    _refuse_unknown(request, data, known, "key(s)")
    return data


def _query(request: Request, known: Any = ()) -> None:
    """Refuse query parameters of a control call outside `known`."""
    _refuse_unknown(request, request.query_params.keys(), known, "query parameter(s)")


def control(fn: Any) -> Any:
    async def wrapper(request: Request) -> Response:
        try:
            return await fn(request, request.app.state.sandbox)
        except ApiError as err:
            return error_response(err, "req_control")

    return wrapper


@control
async def health(request: Request, sb: Sandbox) -> Response:
    _query(request)
    return JSONResponse({"ok": True})


@control
async def reset(request: Request, sb: Sandbox) -> Response:
    await _json(request)
    sb.reset()
    return JSONResponse({"ok": True, "now": sb.store.now()})


@control
async def clock(request: Request, sb: Sandbox) -> Response:
    _query(request)
    return JSONResponse({"now": sb.store.now()})


@control
async def clock_advance(request: Request, sb: Sandbox) -> Response:
    body = await _json(request, {"seconds"})
    try:
        seconds = float(body.get("seconds", 0))
    except (TypeError, ValueError):
        raise ApiError(400, "seconds must be a number") from None
    if seconds < 0:
        raise ApiError(400, "The sandbox clock only moves forward.")
    store = sb.store
    target = store.now() + seconds
    ran = run_due(store, target)
    store.offset += target - store.now()
    store.prune_events()
    sb.dirty = True
    return JSONResponse({"now": store.now(), "ran": ran})


@control
async def clock_set(request: Request, sb: Sandbox) -> Response:
    body = await _json(request, {"now"})
    if not sb.store.is_empty():
        raise ApiError(400, "The clock can only be set while the sandbox holds no objects: reset it first, or use "
                       "clock/advance.")
    try:
        now = float(body["now"])
    except (KeyError, TypeError, ValueError):
        raise ApiError(400, "Body must be {\"now\": <epoch seconds>}.") from None
    sb.store.offset = now - time.time()
    return JSONResponse({"now": sb.store.now()})


@control
async def faults(request: Request, sb: Sandbox) -> Response:
    body = await _json(request, {"rate_limit", "server_error", "latency_ms", "max_rps", "seed"})
    try:
        sb.faults = Faults(body)
    except (TypeError, ValueError, IndexError) as exc:
        raise ApiError(400, f"Invalid fault settings: {exc}") from None
    return JSONResponse({"faults": body})


@control
async def requests_log(request: Request, sb: Sandbox) -> Response:
    if request.method == "DELETE":
        await _json(request)
        sb.log.clear()
        return JSONResponse({"ok": True})
    if request.method == "POST":  # {"log_bodies": true} keeps each answer's body in the log (tests)
        sb.log_bodies = bool((await _json(request, {"log_bodies"})).get("log_bodies"))
        return JSONResponse({"log_bodies": sb.log_bodies})
    _query(request, {"since"})
    try:
        since = int(request.query_params.get("since", "0"))
    except ValueError:
        raise ApiError(400, "since must be an integer") from None
    data = []
    for e in sb.log:
        if e["seq"] > since:
            if "response" in e:
                e = dict(e, response=json.loads(e["response"]))
            data.append(e)
    return JSONResponse({"data": data, "last_seq": sb.log_seq})


@control
async def settings(request: Request, sb: Sandbox) -> Response:
    _query(request)
    if request.method == "POST":
        body = await _json(request, sb.store.settings)
        if body.get("final_action", "cancel") not in ("cancel", "unpaid"):
            raise ApiError(400, "final_action must be 'cancel' or 'unpaid'")
        if body.get("final_invoice", "uncollectible") not in ("uncollectible", "open"):
            raise ApiError(400, "final_invoice must be 'uncollectible' or 'open'")
        sb.store.settings.update(body)
    return JSONResponse(sb.store.settings)


@control
async def webhook_deliveries(request: Request, sb: Sandbox) -> Response:
    _query(request)
    return JSONResponse({"data": sb.deliverer.snapshot(), "queued": len(sb.deliverer.heap)})


@control
async def portal(request: Request, sb: Sandbox) -> Response:
    status, page = portal_page(sb.store, request.path_params["sid"])
    return HTMLResponse(page, status_code=status)


@control
async def portal_post(request: Request, sb: Sandbox) -> Response:
    form = dict(parse_qsl((await request.body()).decode(errors="replace")))
    status, page = portal_action(sb.store, request.path_params["sid"], request.path_params["action"], form)
    sb.dirty = True
    return HTMLResponse(page, status_code=status)


@control
async def invoice_page(request: Request, sb: Sandbox) -> Response:
    inv = sb.store.objs.get(request.path_params["iid"])
    if inv is None or inv.get("object") != "invoice":
        return HTMLResponse("<h1>Invoice not found</h1>", status_code=404)
    amount = f"{inv['amount_due'] / 100:,.2f} {inv['currency'].upper()}"
    return HTMLResponse(f"<!doctype html><html><head><meta charset='utf-8'><title>Invoice {inv['number']}</title>"
                        f"</head><body><h1>Invoice {html.escape(inv['number'] or inv['id'])}</h1>"
                        f"<p>Status: <strong id='status'>{inv['status']}</strong></p><p>Amount due: {amount}</p>"
                        f"<p>Customer: {html.escape(inv['customer_email'] or inv['customer'])}</p>"
                        "<p><small>Local Stripe sandbox.</small></p></body></html>")


def create_app(state_file: str | None = None) -> Any:
    sb = Sandbox(state_file)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        sb.deliverer.wake = asyncio.Event()
        tasks = [loop.create_task(sb.deliverer.run())]
        if sb.state_file:
            tasks.append(loop.create_task(_autosave(sb)))
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            if sb.state_file:
                sb.save()

    routes = [
        Route("/_sandbox/health", health, methods=["GET"]),
        Route("/_sandbox/reset", reset, methods=["POST"]),
        Route("/_sandbox/clock", clock, methods=["GET"]),
        Route("/_sandbox/clock/advance", clock_advance, methods=["POST"]),
        Route("/_sandbox/clock/set", clock_set, methods=["POST"]),
        Route("/_sandbox/faults", faults, methods=["POST"]),
        Route("/_sandbox/requests", requests_log, methods=["GET", "POST", "DELETE"]),
        Route("/_sandbox/settings", settings, methods=["GET", "POST"]),
        Route("/_sandbox/webhook_deliveries", webhook_deliveries, methods=["GET"]),
        Route("/_sandbox/pages/portal/{sid}", portal, methods=["GET"]),
        Route("/_sandbox/pages/portal/{sid}/{action}", portal_post, methods=["POST"]),
        Route("/_sandbox/pages/invoice/{iid}", invoice_page, methods=["GET"]),
    ]
    control_app = Starlette(routes=routes, lifespan=lifespan)
    control_app.state.sandbox = sb

    async def app(scope: Obj, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            await api(sb, scope, receive, send)
        else:
            await control_app(scope, receive, send)

    return app  # type: ignore[return-value]


async def _autosave(sb: Sandbox) -> None:
    """Save once the API has been quiet for half a second, or under steady traffic every 30 s at the most
    (at least 10× the last save's duration apart, so a large state never starves the requests)."""
    last_save, cost = time.monotonic(), 0.0
    while True:
        await asyncio.sleep(0.25)
        if not sb.dirty:
            continue
        now = time.monotonic()
        quiet = now - sb.last_request > 0.5
        if (quiet and now - last_save > 10 * cost) or now - last_save > max(30.0, 10 * cost):
            sb.save()
            last_save = time.monotonic()
            cost = last_save - now
