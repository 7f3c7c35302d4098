"""`python -m sandbox --host 127.0.0.1 --port 12111 [--state FILE]`."""

from __future__ import annotations

import argparse
import gc

import uvicorn

from sandbox.app import create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="Local Stripe API sandbox.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--state", default=None, help="keep state in this file across restarts")
    args = parser.parse_args(argv)
    # The state is hundreds of thousands of small dicts with few reference cycles: collect the young
    # generation less often, so the collector does not walk the whole heap every few hundred requests.
    gc.set_threshold(50_000, 20, 20)
    uvicorn.run(create_app(args.state), host=args.host, port=args.port, log_level="warning", access_log=False,
                date_header=False, server_header=False,  # Date carries sandbox time (set per answer)
                timeout_keep_alive=120)  # clients keep pooled connections; don't drop them after 5 s idle


if __name__ == "__main__":
    main()
