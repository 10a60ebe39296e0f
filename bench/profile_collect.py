"""CPU per request of the collector's own code path, in-process: the ASGI app called directly, no HTTP server.

    .venv/bin/python -m bench.profile_collect [--requests 20000] [--batch 1] [--profile]

What it measures: the app (Starlette, the routes, payload parsing, keys, the rate limiter, encoding) on
``/v1/noop/event`` or ``/v1/noop/batch`` (every step of the real routes but the sink's), with process CPU time,
so a busy machine inflates it far less than it does wall-clock throughput. What it leaves out: uvicorn's HTTP
parsing and the Kafka producer, which ``bench/bench_collect.py`` measures end to end with wrk. ``--profile``
prints cProfile's top functions. Use it to see where a request's CPU goes before changing the hot path.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats

from rtap_bench.collect_profile import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1, help="events per request (1: /v1/noop/event)")
    parser.add_argument("--profile", action="store_true", help="also print cProfile's top functions")
    args = parser.parse_args()
    if args.requests < 1 or args.batch < 1:
        parser.error("--requests and --batch must be >= 1")
    cpu = asyncio.run(run(args.requests, args.batch))
    print(
        f"{args.batch} event(s) per request: {cpu * 1e6:.1f} CPU-µs per request, in-process (no HTTP server, no Kafka)"
    )
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(asyncio.run, run(args.requests, args.batch))
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
