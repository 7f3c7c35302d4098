"""`streamlit run` with every script run profiled: where a page run's CPU goes, per page.

    .venv/bin/python bench/stprofile.py --out /tmp/prof -- run server.py --server.port 8600 --server.headless true

Runs Streamlit's CLI in this process after wrapping `ScriptRunner._run_script`: each run (a whole page or a
fragment) is timed in thread CPU (`time.thread_time`) and, with `--cprofile`, profiled with cProfile. On
SIGTERM/SIGINT it writes `<out>/runs.json` (per page: runs, script-thread CPU ms per run) and, with
`--cprofile`, `<out>/<page>.pstats` plus a text top-30 by cumulative time. The rest of the process's CPU
(the event loop: protobuf serialisation, websocket writes) is process CPU minus these figures.
"""

from __future__ import annotations

import argparse
import atexit
import cProfile
import json
import pstats
import signal
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def install(out: Path, profile: bool) -> None:
    from streamlit.runtime.scriptrunner import script_runner

    cpu: dict[str, list[float]] = defaultdict(list)
    profiles: dict[str, pstats.Stats] = {}
    lock = threading.Lock()
    original = script_runner.ScriptRunner._run_script

    def page_of(rerun_data) -> str:
        name = (getattr(rerun_data, "page_name", "") or "").strip("/") or "overview"
        return name + ("+fragment" if getattr(rerun_data, "fragment_id_queue", None) else "")

    def wrapped(self, rerun_data):
        page = page_of(rerun_data)
        prof = cProfile.Profile() if profile else None
        t = time.thread_time()
        if prof:
            prof.enable()
        try:
            return original(self, rerun_data)
        finally:
            if prof:
                prof.disable()
            spent = time.thread_time() - t
            with lock:
                cpu[page].append(spent)
                if prof:
                    if page in profiles:
                        profiles[page].add(prof)
                    else:
                        profiles[page] = pstats.Stats(prof)

    script_runner.ScriptRunner._run_script = wrapped

    def dump() -> None:
        out.mkdir(parents=True, exist_ok=True)
        with lock:
            summary = {p: {"runs": len(v), "script_cpu_ms_per_run": round(1000 * sum(v) / len(v), 1)}
                       for p, v in sorted(cpu.items())}
            (out / "runs.json").write_text(json.dumps(summary, indent=1))
            for page, st in profiles.items():
                safe = page.replace("/", "_").replace("+", "_")
                st.dump_stats(str(out / f"{safe}.pstats"))
                with open(out / f"{safe}.txt", "w") as fh:
                    st.stream = fh
                    st.sort_stats("cumulative").print_stats(40)
                    st.sort_stats("tottime").print_stats(30)

    atexit.register(dump)

    def on_signal(signum, frame):
        dump()
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_signal)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cprofile", action="store_true")
    ap.add_argument("rest", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    install(args.out, args.cprofile)
    from streamlit.web import cli

    sys.argv = ["streamlit", *rest]
    cli.main()


if __name__ == "__main__":
    main()
