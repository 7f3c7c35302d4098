"""A headless Streamlit client over the server's own websocket protocol (`/_stcore/stream`).

One `StSession` is what one browser tab is to the server: a websocket that sends `BackMsg.rerun_script`
(page, query string, widget states) and reads `ForwardMsg`s until `script_finished`. It keeps the widget
states it has set, as the browser does, and sends them all on every rerun (buttons' triggers only once).
Elements are indexed by widget user key (the suffix of Streamlit's element id), so a role script can say
`run(set={"cust_search": "anna"})`. Used by `bench/sessions.py` and by tests that need two real servers.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

Value = str | bool | int | float | list[int] | dict[str, Any]


class ProtocolError(RuntimeError):
    """The server closed the socket or never finished the run."""


@dataclass
class RunResult:
    """What one rerun sent back."""

    seconds: float  # request sent -> script_finished received
    finished: str  # ScriptFinishedStatus name
    elements: list[Any] = field(default_factory=list)  # every new_element proto, in order
    widgets: dict[str, Any] = field(default_factory=dict)  # user key -> element's widget proto
    exceptions: list[str] = field(default_factory=list)  # st.exception / uncaught tracebacks shown
    alerts: list[str] = field(default_factory=list)  # st.error texts

    def table(self, key: str) -> pa.Table | None:
        """A keyed st.dataframe's data (Arrow), or None when the run did not show it."""
        w = self.widgets.get(key)
        data = getattr(getattr(w, "arrow_data", None), "data", b"") if w is not None else b""
        return pa.ipc.open_stream(data).read_all() if data else None

    def text(self) -> str:
        """Every element's proto as text (markdown bodies, captions, alerts): for `in` checks."""
        return "\n".join(str(e) for e in self.elements)


def _user_key(element_id: str) -> str | None:
    """Streamlit's widget ids end with '-<user key>' when the widget has a key ('$$ID-<hash>-<key>')."""
    if not element_id.startswith("$$ID-"):
        return None
    parts = element_id.split("-", 2)
    return parts[2] if len(parts) == 3 and parts[2] != "None" else None


class StSession:
    """One websocket session. Use `await StSession.open(url)`, then `run(...)`, then `close()`."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.ids: dict[str, str] = {}  # user key -> element id
        self.fragments: dict[str, str] = {}  # user key -> id of the fragment that drew it ('' for none)
        self.states: dict[str, WidgetState] = {}  # element id -> the state sent on each rerun
        self.page = ""
        self.query = ""

    @classmethod
    async def open(cls, base_url: str, *, headers: dict[str, str] | None = None) -> StSession:
        ws_url = base_url.replace("http://", "ws://").rstrip("/") + "/_stcore/stream"
        ws = await websockets.connect(ws_url, subprotocols=["streamlit"], max_size=None, compression=None,
                                      additional_headers=headers, open_timeout=60, ping_interval=None)
        return cls(ws)

    async def close(self) -> None:
        await self.ws.close()

    def _state(self, key: str, value: Value | None, trigger: bool) -> None:
        wid = self.ids.get(key)
        if wid is None:
            raise KeyError(f"no widget with key {key!r} on the last run")
        ws = WidgetState(id=wid)
        if trigger:
            ws.trigger_value = True
        elif isinstance(value, bool):
            ws.bool_value = value
        elif isinstance(value, int):
            ws.int_value = value
        elif isinstance(value, float):
            ws.double_value = value
        elif isinstance(value, str):
            ws.string_value = value
        elif isinstance(value, dict):  # st.dataframe's selection travels as JSON text, as the browser sends it
            ws.string_value = json.dumps(value)
        elif isinstance(value, list):
            ws.string_array_value.data.extend(str(v) for v in value)
        self.states[wid] = ws

    async def run(self, *, page: str | None = None, query: str | None = None, set: dict[str, Value] | None = None,
                  click: str | None = None, timeout: float = 120.0) -> RunResult:
        """Rerun the script (optionally on another page / query string, with widget values set or a button
        clicked) and collect its output until script_finished."""
        if page is not None and page != self.page:
            self.page, self.states, self.ids = page, {}, {}  # a new page: the browser drops its widgets too
            self.fragments = {}
        if query is not None:
            self.query = query
        for key, value in (set or {}).items():
            self._state(key, value, trigger=False)
        if click:
            self._state(click, None, trigger=True)
        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string = self.query
        cs.page_name = self.page
        fragment = self._fragment_of([*(set or {}), *([click] if click else [])]) if page is None else ""
        if fragment:  # as the browser does: a widget drawn by a fragment reruns only that fragment
            cs.fragment_id = fragment
        cs.widget_states.widgets.extend(self.states.values())
        for wid in [w for w, s in self.states.items() if s.WhichOneof("value") == "trigger_value"]:
            del self.states[wid]  # a click is sent once
        started = time.perf_counter()
        await self.ws.send(msg.SerializeToString())
        return await self._collect(started, timeout, fragment=bool(fragment))

    def _fragment_of(self, keys: list[str]) -> str:
        """The fragment that drew all of `keys` (the widgets this rerun changes), or '' for a full run."""
        found = {self.fragments.get(k, "") for k in keys}
        return found.pop() if len(found) == 1 else ""

    async def _collect(self, started: float, timeout: float, fragment: bool = False) -> RunResult:
        result = RunResult(seconds=0.0, finished="")
        deadline = started + timeout
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise ProtocolError("the script did not finish in time")
            try:
                raw = await _recv(self.ws, left)
            except websockets.ConnectionClosed as exc:
                raise ProtocolError(f"the server closed the session: {exc}") from exc
            fm = ForwardMsg()
            fm.ParseFromString(raw)
            kind = fm.WhichOneof("type")
            if kind == "delta":
                self._delta(fm.delta, result)
            elif kind == "new_session" and not fm.metadata.run.fragment_ids:
                fragment = False  # a full run starts (st.rerun(scope="app") from a fragment, or none was asked)
            elif kind == "script_finished":
                name = ForwardMsg.ScriptFinishedStatus.Name(fm.script_finished)
                if name == "FINISHED_FRAGMENT_RUN_SUCCESSFULLY" and not fragment:
                    continue
                if name == "FINISHED_EARLY_FOR_RERUN":  # st.rerun(): the run that follows is the answer
                    continue
                if fragment and name == "FINISHED_FRAGMENT_RUN_SUCCESSFULLY":
                    name = "FINISHED_SUCCESSFULLY"
                result.seconds = time.perf_counter() - started
                result.finished = name
                return result

    def _delta(self, delta: Any, result: RunResult) -> None:
        if delta.WhichOneof("type") != "new_element":
            return
        fragment_id = delta.fragment_id
        el = delta.new_element
        result.elements.append(el)
        kind = el.WhichOneof("type")
        if kind == "exception":
            result.exceptions.append(f"{el.exception.type}: {el.exception.message}")
            return
        if kind == "alert" and el.alert.format == el.alert.ERROR:
            result.alerts.append(el.alert.body)
            return
        inner = getattr(el, kind) if kind else None
        wid = getattr(inner, "id", "") if inner is not None else ""
        key = _user_key(wid) if isinstance(wid, str) else None
        if key:
            self.ids[key] = wid
            self.fragments[key] = fragment_id
            result.widgets[key] = inner


async def _recv(ws: Any, timeout: float) -> bytes:
    data = await asyncio.wait_for(ws.recv(), timeout)
    if isinstance(data, str):
        raise ProtocolError("the server sent a text frame")
    return data
