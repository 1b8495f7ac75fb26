#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""cluster_dask.py - the Dask distributed peer of bench/cluster.c.

A LocalCluster of 2 worker processes of one thread each, on 127.0.0.1
(Dask's own TCP protocol over the loopback; no mpirun), and a Client.

--mode job: --n jobs (default 300), each the sum of a list of 100 ints,
with 16 in flight as bench/cluster.c's 16 tasks keep them: every job
that completes is replaced by the next (client.submit, as_completed).
us per job: wall / n.
--mode map: client.map over --n items (default 2,000), then
client.gather. us per item.
Both use pure=False, so that equal inputs are not merged into one task.
Each first runs an untimed warm-up of 50 jobs.

Output: one JSON line as bench/bench.h writes them, workload cluster,
impl dask, metric job or map, threads 3 (the client and 2 workers, as 3
ranks are rank 0 and 2 servers).
"""

import argparse
import json
import logging
import os
import sys
import time

IN_FLIGHT = 16


def job(v):
    return sum(v)


def expected(i):
    return (i % 1000) * 100 + 100 * 99 // 2


def run_jobs(client, data):
    """Every job of data, IN_FLIGHT at a time; their results in order."""
    from distributed import as_completed

    out = [None] * len(data)
    which = {}
    nxt = 0
    first = []
    while nxt < len(data) and nxt < IN_FLIGHT:
        f = client.submit(job, data[nxt], pure=False)
        which[f.key] = nxt
        first.append(f)
        nxt += 1
    ac = as_completed(first)
    for f in ac:
        out[which.pop(f.key)] = f.result()
        if nxt < len(data):
            g = client.submit(job, data[nxt], pure=False)
            which[g.key] = nxt
            ac.add(g)
            nxt += 1
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="job", choices=("job", "map"))
    ap.add_argument("--n", type=int, default=0)
    a = ap.parse_args()
    n = a.n or (2000 if a.mode == "map" else 300)
    logging.getLogger("distributed").setLevel(logging.ERROR)
    from distributed import Client, LocalCluster

    items = [list(range(i, i + 100)) for i in range(1000)]
    data = [items[i % 1000] for i in range(n)]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as client:
        run_jobs(client, data[:50])
        t0 = time.perf_counter_ns()
        if a.mode == "job":
            out = run_jobs(client, data)
        else:
            out = client.gather(client.map(job, data, pure=False))
        ns = time.perf_counter_ns() - t0
    if out != [expected(i) for i in range(n)]:
        sys.exit("cluster_dask: wrong results")
    us = ns / 1000.0 / n
    print(json.dumps({
        "workload": "cluster", "impl": "dask", "metric": a.mode,
        "unit": "us", "n": n, "threads": 3, "median": us, "min": us,
        "max": us, "runs": 1, "values": [us],
        "cmd": " ".join([os.path.basename(sys.executable)] + sys.argv),
    }))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
