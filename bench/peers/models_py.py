#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""models_py.py - bench/models' workloads in Python, for people coming from it.

One measurement per run, started by bench/models as it starts its own C
measurements, and printing the same line:

    wall_s cpu_s peak_rss_kb items check

Usage: models_py.py WORKLOAD MODEL --n JOBS --k ROUNDS --workers N --port P

WORKLOAD is cpu, sleep, net, mixed or tiny; MODEL is py-asyncio (a task
per job, asyncio.gather), py-threading (a ThreadPoolExecutor of N threads)
or py-multiprocessing (a multiprocessing.Pool of N processes, pool.map,
chunks of one job for the coarse workloads, Python's own chunking for the
fine ones). The jobs are those of bench/models.h, computed the same way,
so a run of the same size gives the same check value as the C models.

What is timed is the model from start to finish (pool made, jobs run, pool
joined), not the interpreter's start. CPU time is user + system of this
process and its reaped children; peak RSS adds each pool process's own
peak (VmHWM), read before the pool is closed. Python 3 standard library
only.
"""

import argparse
import asyncio
import concurrent.futures
import multiprocessing
import os
import resource
import shutil
import socket
import sys
import tempfile
import time

# bench/models.h
CPU_BASE = 10000000
CPU_WIDTH = 4000
SLEEP_MS = 2
NET_MSG = 64
MIXED_NUMS = 512
MIXED_ROUNDS = 4

M32 = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF

# Set before the pool forks (and by its initializer): the job parameters.
PARAMS = {"dir": "", "port": 0, "k": 0}


def mix32(x):
    x &= M32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & M32
    x ^= x >> 16
    return x


def cpu_job(i):
    lo = CPU_BASE + (i % 16) * CPU_WIDTH
    count = 0
    for x in range(lo | 1, lo + CPU_WIDTH, 2):
        d = 3
        while d * d <= x and x % d:
            d += 2
        if d * d > x:
            count += 1
    return count


def tiny_job(i):
    return mix32(i) & 0xFFFF


def mixed_record(i):
    x = mix32(i) | 1
    parts = []
    for _ in range(MIXED_NUMS):
        x ^= (x << 13) & M32
        x ^= x >> 17
        x ^= (x << 5) & M32
        parts.append("%d," % x)
    return "".join(parts).encode()


def mixed_job(i):
    rec = mixed_record(i)
    total = sum(int(v) for v in rec.split(b",") if v)
    h = 0xCBF29CE484222325
    for _ in range(MIXED_ROUNDS):
        for b in rec:
            h = ((h ^ b) * 0x100000001B3) & M64
    h ^= total
    path = os.path.join(PARAMS["dir"], "item-%d" % i)
    with open(path, "wb") as f:
        f.write(rec + b"\n%016x\n" % h)
    return h


def sleep_job(i):
    time.sleep(SLEEP_MS / 1000)
    return 1


def net_job(i):
    s = socket.create_connection(("127.0.0.1", PARAMS["port"]))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for r in range(PARAMS["k"]):
        msg = bytes([(i + r) & 0xFF]) * NET_MSG
        s.sendall(msg)
        got = b""
        while len(got) < NET_MSG:
            part = s.recv(NET_MSG - len(got))
            if not part:
                raise ConnectionError("echo server closed")
            got += part
        if got != msg:
            raise ValueError("echo mismatch")
    s.close()
    return PARAMS["k"]


JOBS = {"cpu": cpu_job, "sleep": sleep_job, "net": net_job,
        "mixed": mixed_job, "tiny": tiny_job}


async def async_job(workload, i):
    if workload == "sleep":
        await asyncio.sleep(SLEEP_MS / 1000)
        return 1
    if workload == "net":
        reader, writer = await asyncio.open_connection("127.0.0.1",
                                                       PARAMS["port"])
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for r in range(PARAMS["k"]):
            msg = bytes([(i + r) & 0xFF]) * NET_MSG
            writer.write(msg)
            got = await reader.readexactly(NET_MSG)
            if got != msg:
                raise ValueError("echo mismatch")
        writer.close()
        await writer.wait_closed()
        return PARAMS["k"]
    # CPU work and file writes run on the loop itself, as they would in
    # a plain asyncio program: there is no asynchronous file API.
    return JOBS[workload](i)


def run_asyncio(workload, n):
    async def main():
        tasks = [asyncio.create_task(async_job(workload, i))
                 for i in range(n)]
        return await asyncio.gather(*tasks)
    return sum(asyncio.run(main())), 0


def run_threading(workload, n, workers):
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as ex:
        return sum(ex.map(JOBS[workload], range(n))), 0


def pool_init(params):
    PARAMS.update(params)


def vm_hwm_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_multiprocessing(workload, n, workers):
    chunk = None if workload in ("mixed", "tiny") else 1
    pool = multiprocessing.Pool(workers, initializer=pool_init,
                                initargs=(dict(PARAMS),))
    try:
        total = sum(pool.map(JOBS[workload], range(n), chunksize=chunk))
        rss = sum(vm_hwm_kb(p.pid) for p in multiprocessing.active_children())
    finally:
        pool.close()
        pool.join()
    return total, rss


def cpu_now():
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("workload", choices=sorted(JOBS))
    ap.add_argument("model", choices=("py-asyncio", "py-threading",
                                      "py-multiprocessing"))
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--k", type=int, default=0)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    if a.n <= 0 or a.workers <= 0 or (a.workload == "net" and
                                      (a.k <= 0 or a.port <= 0)):
        ap.error("bad sizes")
    PARAMS["port"], PARAMS["k"] = a.port, a.k
    if a.workload == "mixed":
        PARAMS["dir"] = tempfile.mkdtemp(prefix="braid-models-")
    try:
        t0, c0 = time.perf_counter(), cpu_now()
        if a.model == "py-asyncio":
            check, extra = run_asyncio(a.workload, a.n)
        elif a.model == "py-threading":
            check, extra = run_threading(a.workload, a.n, a.workers)
        else:
            check, extra = run_multiprocessing(a.workload, a.n, a.workers)
        wall, cpu = time.perf_counter() - t0, cpu_now() - c0
    finally:
        if PARAMS["dir"]:
            shutil.rmtree(PARAMS["dir"], ignore_errors=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + extra
    items = a.n * a.k if a.workload == "net" else a.n
    print("%.6f %.6f %d %d %d" % (wall, cpu, rss, items, check & M64))
    return 0


if __name__ == "__main__":
    sys.exit(main())
