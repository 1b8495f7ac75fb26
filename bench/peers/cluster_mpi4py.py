#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""cluster_mpi4py.py - the mpi4py.futures peer of bench/cluster.c.

Run as mpi4py.futures runs a script on a job's ranks:
  mpirun -np 3 python3 -m mpi4py.futures bench/peers/cluster_mpi4py.py
Rank 0 runs this script; the other ranks are MPIPoolExecutor's workers.

--mode job: --n jobs (default 2,000), each the sum of a list of 100 ints,
with 16 in flight as bench/cluster.c's 16 tasks keep them: every job
that completes is replaced by the next (executor.submit, then waiting for
the first completed). us per job: wall / n.
--mode map: executor.map over --n items (default 100,000) with a
chunksize of 100, as the plain MPI peer sends them. us per item.
Each first runs an untimed warm-up of 200 jobs.

Output: one JSON line as bench/bench.h writes them, workload cluster,
impl mpi4py, metric job or map, threads the number of ranks.
"""

import argparse
import concurrent.futures
import json
import os
import sys
import time

from mpi4py import MPI
from mpi4py.futures import MPIPoolExecutor

IN_FLIGHT = 16
CHUNK = 100


def job(v):
    return sum(v)


def expected(i):
    return (i % 1000) * 100 + 100 * 99 // 2


def run_jobs(ex, data):
    """Every job of data, IN_FLIGHT at a time; their results in order."""
    out = [None] * len(data)
    pending = {}
    nxt = 0
    while nxt < len(data) or pending:
        while nxt < len(data) and len(pending) < IN_FLIGHT:
            pending[ex.submit(job, data[nxt])] = nxt
            nxt += 1
        done, _ = concurrent.futures.wait(
            pending, return_when=concurrent.futures.FIRST_COMPLETED)
        for f in done:
            out[pending.pop(f)] = f.result()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="job", choices=("job", "map"))
    ap.add_argument("--n", type=int, default=0)
    a = ap.parse_args()
    n = a.n or (100000 if a.mode == "map" else 2000)
    items = [list(range(i, i + 100)) for i in range(1000)]
    data = [items[i % 1000] for i in range(n)]
    ranks = MPI.COMM_WORLD.Get_size()
    with MPIPoolExecutor() as ex:
        run_jobs(ex, data[:200])
        t0 = time.perf_counter_ns()
        if a.mode == "job":
            out = run_jobs(ex, data)
        else:
            out = list(ex.map(job, data, chunksize=CHUNK))
        ns = time.perf_counter_ns() - t0
    if out != [expected(i) for i in range(n)]:
        sys.exit("cluster_mpi4py: wrong results")
    us = ns / 1000.0 / n
    print(json.dumps({
        "workload": "cluster", "impl": "mpi4py", "metric": a.mode,
        "unit": "us", "n": n, "threads": ranks, "median": us, "min": us,
        "max": us, "runs": 1, "values": [us],
        "cmd": " ".join([os.path.basename(sys.executable)] + sys.argv),
    }))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
