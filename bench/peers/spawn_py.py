#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""spawn_py.py - the Python peer of bench/spawn.c: asyncio subprocesses.

Runs n (default 1,000) subprocesses of /bin/true with
asyncio.create_subprocess_exec, keeping 16 in flight (a semaphore of 16
around create + wait), on one event loop. A first, untimed run of 64
(--warmup) warms up as the other spawn benchmarks do. Reported in ms per
spawn: wall time / n.

Output: one JSON line as bench/bench.h writes them, impl "python",
metric "window". The loop is one thread whatever --workers says; the
threads field echoes --workers (default 2) only so that the runner pairs
this line with the braid run of that many workers.
"""

import argparse
import asyncio
import json
import os
import sys
import time

WINDOW = 16


async def one(sem):
    async with sem:
        p = await asyncio.create_subprocess_exec("/bin/true")
        if await p.wait() != 0:
            sys.exit("spawn_py: /bin/true failed")


async def run(n):
    sem = asyncio.Semaphore(WINDOW)
    await asyncio.gather(*(one(sem) for _ in range(n)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    if a.n < 1:
        sys.exit("spawn_py: --n must be at least 1")
    if a.warmup > 0:
        asyncio.run(run(a.warmup))
    t0 = time.perf_counter_ns()
    asyncio.run(run(a.n))
    ms = (time.perf_counter_ns() - t0) / 1e6 / a.n
    print(json.dumps({
        "workload": "spawn", "impl": "python", "metric": "window",
        "unit": "ms", "n": a.n, "threads": a.workers, "median": ms,
        "min": ms, "max": ms, "runs": 1, "values": [ms],
        "cmd": " ".join([os.path.basename(sys.executable)] + sys.argv),
    }))


if __name__ == "__main__":
    main()
