#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""pool_py.py - the Python peers of bench/pool.c.

--mode map: multiprocessing.Pool.map over n (default 100,000) lists of
100 ints with the default chunk size, each job summing its list.
--mode imap1: Pool.imap with chunksize=1 (default n 10,000).
--mode cf: concurrent.futures.ProcessPoolExecutor.map with its default
chunksize of 1 (default n 10,000).
Reported in us per job: wall time / n, from the call to the last result,
after an untimed warm-up of 1,000 jobs that starts the workers. The pool
has --workers processes (default 2).
--mode light: one job every millisecond (at each millisecond after the
start) through ProcessPoolExecutor.submit, its result awaited, for --ms
(default 2,000) ms after 500 ms of the same; the workers are forked, so
that they are this process's children. Reported: the CPU time of this
process and its children over that window (their threads' schedstat, as
bench/bench.h's bench_tree_ns), in % of one CPU.

Output: one JSON line as bench/bench.h writes them, impl "python-map",
"python-imap1", "python-cf" or "python-light"; metric map, submit or
light as bench/pool.c's counterpart.
"""

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import sys
import time


def job(v):
    return sum(v)


def tree_ns(root):
    """CPU time so far of root and its children's threads, in ns."""
    pids = [root]
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        if int(st[st.rfind(")") + 2:].split()[1]) == root:
            pids.append(int(d))
    ns = 0
    for pid in pids:
        try:
            tids = os.listdir("/proc/%d/task" % pid)
        except OSError:
            continue
        for t in tids:
            try:
                with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                    ns += int(f.read().split()[0])
            except OSError:
                pass
    return ns


def light(ex, item, until):
    due = time.monotonic_ns()
    while due < until:
        ex.submit(job, item).result()
        due += 1000000
        left = due - time.monotonic_ns()
        if left > 0:
            time.sleep(left / 1e9)


def light_mode(a):
    item = list(range(100))
    ctx = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(a.workers,
                                                mp_context=ctx) as ex:
        light(ex, item, time.monotonic_ns() + 500 * 1000000)
        cpu0 = tree_ns(os.getpid())
        t0 = time.monotonic_ns()
        light(ex, item, t0 + a.ms * 1000000)
        pct = 100.0 * (tree_ns(os.getpid()) - cpu0) / \
            (time.monotonic_ns() - t0)
    return pct


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="map",
                    choices=("map", "imap1", "cf", "light"))
    ap.add_argument("--n", type=int, default=0)
    ap.add_argument("--ms", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    if a.mode == "light":
        pct = light_mode(a)
        print(json.dumps({
            "workload": "pool", "impl": "python-light", "metric": "light",
            "unit": "% CPU", "n": a.ms, "threads": a.workers,
            "median": pct, "min": pct, "max": pct, "runs": 1,
            "values": [pct],
            "cmd": " ".join([os.path.basename(sys.executable)] + sys.argv),
        }))
        return
    n = a.n or (100000 if a.mode == "map" else 10000)
    items = [list(range(i, i + 100)) for i in range(1000)]
    data = [items[i % 1000] for i in range(n)]
    warm = items
    if a.mode == "cf":
        with concurrent.futures.ProcessPoolExecutor(a.workers) as ex:
            list(ex.map(job, warm))
            t0 = time.perf_counter_ns()
            out = list(ex.map(job, data))
            ns = time.perf_counter_ns() - t0
    else:
        with multiprocessing.Pool(a.workers) as p:
            p.map(job, warm)
            t0 = time.perf_counter_ns()
            if a.mode == "map":
                out = p.map(job, data)
            else:
                out = list(p.imap(job, data, chunksize=1))
            ns = time.perf_counter_ns() - t0
    if len(out) != n:
        sys.exit("pool_py: lost results")
    us = ns / 1000.0 / n
    print(json.dumps({
        "workload": "pool", "impl": "python-" + a.mode,
        "metric": "map" if a.mode == "map" else "submit",
        "unit": "us", "n": n, "threads": a.workers, "median": us,
        "min": us, "max": us, "runs": 1, "values": [us],
        "cmd": " ".join([os.path.basename(sys.executable)] + sys.argv),
    }))


if __name__ == "__main__":
    main()
