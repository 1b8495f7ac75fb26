#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""blocking_py.py - the blocking peer on asyncio: asyncio.to_thread.

--mode burst: start n (default 100,000) asyncio.to_thread() calls of an
empty function and gather them. --mode serial: await n (default 10,000)
calls one at a time. Reported in us per call: wall time / n, from the
first call to the last result, inside one running event loop, after an
untimed warm-up of --warmup calls (default 1,000) that starts the
executor's threads. The calls run on the loop's default executor, a
ThreadPoolExecutor of min(32, CPUs + 4) threads.

Output: one JSON line as bench/bench.h writes them, impl "python"; the
threads field is the machine's CPU count.
"""

import argparse
import asyncio
import json
import os
import sys
import time


def empty():
    return None


async def burst(n):
    await asyncio.gather(*(asyncio.to_thread(empty) for _ in range(n)))


async def serial(n):
    for _ in range(n):
        await asyncio.to_thread(empty)


async def timed(fn, n, warmup):
    if warmup:
        await fn(warmup)
    t0 = time.perf_counter_ns()
    await fn(n)
    return time.perf_counter_ns() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="burst", choices=("burst", "serial"))
    ap.add_argument("--n", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=1000)
    a = ap.parse_args()
    n = a.n or (100000 if a.mode == "burst" else 10000)
    ns = asyncio.run(timed(burst if a.mode == "burst" else serial, n,
                           a.warmup))
    us = ns / 1000.0 / n
    print(json.dumps({
        "workload": "blocking", "impl": "python", "metric": a.mode,
        "unit": "us", "n": n, "threads": os.cpu_count(), "median": us,
        "min": us, "max": us, "runs": 1, "values": [us],
        "cmd": " ".join([os.path.basename(sys.executable)] + sys.argv),
    }))


if __name__ == "__main__":
    main()
