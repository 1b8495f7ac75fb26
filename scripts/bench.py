#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench.py - run braid's benchmarks and their peers, interleaved.

Every configuration (a program, its thread count and its size) is one
invocation that prints one JSON line per measurement (see bench/bench.h).
Each round runs every configuration once, in a new shuffled order, so that
slow periods of a shared machine fall on braid and on its peers alike; the
report gives the median, min and max of the rounds and, for each peer, the
ratio braid median / peer median. Most metrics are lower-is-better (a
ratio below 1 means braid is faster or smaller); the throughput metrics
of echo and http are higher-is-better (above 1 means braid does more),
and the tables say which way each row goes.

The cluster workload (scripts/bench_cluster.py) runs its programs under
mpirun, 3 ranks on this machine, over shared memory and over TCP, with
a plain MPI program, mpi4py.futures and Dask as peers; it needs MPI
(libopenmpi-dev), and its Python peers python3-mpi4py and
python3-distributed.

The echo and http workloads (scripts/bench_net.py) start a server and
drive it with a load generator: the server is pinned to one CPU, the
generator to another, and they take 3 rounds by default instead of 5.
No other process is pinned: braid, oneTBB, libgomp and Go all place
their own threads. The environment variables that would change a
program's thread count or scheduling (BRAID_*, OMP_*, GOMP_*, GOMAXPROCS,
GOGC, GODEBUG, GOMEMLIMIT) are removed, then set per configuration.

Writes <out>.json (every line, the summary, the machine) and <out>.md (a
markdown table); <out> is build/bench/results, or build/bench/summary with
--quick. Python 3 standard library only.

Usage: scripts/bench.py [--runs N] [--only fib,chan,echo] [--quick]
                        [--no-build] [--timeout S] [--seed N] [--list]
"""

import argparse
import datetime
import json
import os
import platform
import random
import statistics
import subprocess
import sys

sys.dont_write_bytecode = True  # keep scripts/ free of __pycache__
import bench_cluster  # noqa: E402
import bench_net  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = "build/release/bench"
WORKLOADS = ("fib", "skynet", "switch", "sleep", "chan", "handoff",
             "blocking", "spawn", "pool", "cluster", "echo", "http")
QUICK_WORKLOADS = ("fib", "switch", "skynet")
NET = ("echo", "http")
SCRUB_PREFIXES = ("BRAID_", "OMP_", "GOMP_")
SCRUB_NAMES = ("GOMAXPROCS", "GOGC", "GODEBUG", "GOMEMLIMIT")

# How each (workload, metric) is labelled in the tables; {n} is the size.
LABELS = {
    ("fib", "wall"): "fib({n}), wall time",
    ("skynet", "wall"): "skynet, {n:,} leaves, wall time",
    ("switch", "yield"): "yield between 2 tasks, per switch",
    ("switch", "pingpong"): "ping-pong, per round trip",
    ("sleep", "wall"): "{n:,} tasks sleeping 100 ms, wall time",
    ("sleep", "rss_per_task"): "{n:,} sleeping tasks, peak RSS per task",
    ("sleep", "peak_alive"): "most of the {n:,} tasks asleep at once",
    ("sleep", "rss_per_alive"): "peak RSS per task asleep at once",
    ("chan", "pingpong"): "unbuffered channel ping-pong, per round trip",
    ("chan", "pingpong-apart"):
        "channel ping-pong, tasks pinned to different workers",
    ("chan", "mutex"): "contended mutex, per lock/unlock",
    ("handoff", "promise"):
        "promise ping-pong, tasks pinned to workers 0 and 1, per round trip",
    ("handoff", "thread"):
        "a plain thread and a task passing promises, per round trip",
    ("handoff", "idle"): "idle runtime, CPU per second",
    ("handoff", "light"):
        "one hand-off per ms from a plain thread to a task, CPU",
    ("handoff", "light-timer"): "a task sleeping 1 ms in a loop, CPU",
    ("handoff", "storm-max"):
        "1,000,000 spawns from a task: longest wait to first run",
    ("handoff", "storm-p999"):
        "1,000,000 spawns from a task: 99.9th percentile wait",
    ("handoff", "storm-thread-max"):
        "1,000,000 spawns from a plain thread: longest wait to first run",
    ("handoff", "storm-thread-p999"):
        "1,000,000 spawns from a plain thread: 99.9th percentile wait",
    ("blocking", "burst"): "burst of blocking calls (empty), per call",
    ("blocking", "serial"): "blocking calls one at a time, per call",
    ("spawn", "window"): "{n:,} runs of /bin/true, 16 in flight, per spawn",
    ("pool", "map"): "{n:,} tiny jobs (sum of 100 ints) mapped, per job",
    ("pool", "submit"): "tiny jobs submitted one by one, per job",
    ("pool", "cpu"): "{n} jobs of 50 ms on 2 processes, wall over ideal",
    ("pool", "light"):
        "one tiny job per ms, CPU of the pool's processes and threads",
}
LABELS.update(bench_cluster.LABELS)
LABELS.update(bench_net.LABELS)

# Footnotes for the markdown table, shown when their row is there.
NOTES = {
    ("switch", "pingpong", 2):
        "Ping-pong on 2 threads: braid's tasks are pinned to different "
        "workers, so every hand-off wakes the other thread; Go does not "
        "pin goroutines and its scheduler keeps both on one P, so its "
        "figure is close to the 1-thread one.",
    ("sleep", "rss_per_task", 2):
        "Sleep: when starting the tasks takes longer than the 100 ms "
        "sleep, the first ones end before the last ones start; the row "
        "\"most asleep at once\" shows how many were alive together, and "
        "the last row divides the same memory by that number.",
    ("chan", "pingpong", 2):
        "Channel ping-pong on 2 threads: braid's tasks are not pinned, and "
        "a woken task runs next on its waker's worker, so after the first "
        "hand-off both run on one worker, as Go keeps both goroutines on "
        "one P; the pthread peer's two threads are pinned to different "
        "CPUs. The pinned row makes every braid hand-off cross workers.",
    ("chan", "mutex", 2):
        "Mutex: braid runs 2 workers x 1,000 tasks x 1,000 increments, Go "
        "2,000 goroutines x 1,000 on GOMAXPROCS=2, pthread 2 threads x "
        "1,000,000.",
    ("blocking", "burst", 2):
        "Blocking calls: threads is the CPU count. braid's pool grows on "
        "demand (up to 64 threads); the pthread pool has 4 threads "
        "(libuv's default) and a mutex+condvar queue; asyncio.to_thread "
        "uses the default executor (min(32, CPUs+4) threads). Each "
        "program first makes an untimed warm-up run.",
    ("spawn", "window", 2):
        "Spawn: braid runs br_exec from one task on 1 or 2 workers; the C "
        "peer is one thread calling posix_spawn and waitpid(-1) in both "
        "rows, Python one asyncio loop (create_subprocess_exec), Go 16 "
        "goroutines calling exec.Command().Run() with GOMAXPROCS of the "
        "row. Each first makes 64 untimed spawns.",
}
NOTES[("handoff", "promise", 2)] = (
    "Hand-offs: every braid row crosses threads (tasks pinned to different "
    "workers, or a plain thread and a task). Go's free goroutines stay on "
    "one P (a woken goroutine runs next on its waker's thread); the "
    "locked ones (runtime.LockOSThread) cross threads as braid's do. The "
    "pthread, eventfd and spin peers run two threads pinned to CPUs 0 and "
    "1; spin hands over with a store the other thread spins for, so it "
    "is what moving one cache line there and back costs. "
    "Idle and light: CPU time of the whole process (getrusage) over wall "
    "time, measured over 5 s after 200 ms of settling. Storms: the time "
    "from the line before each spawn (or go statement) to the task's "
    "first line; Go's goroutines are started from a goroutine.")
NOTES[("pool", "map", 2)] = (
    "Process pool: 2 worker processes. braid's br_map chunks by itself; "
    "Python's Pool.map uses its default chunksize; the per-job peers "
    "(br_submit, Pool.imap with chunksize 1, ProcessPoolExecutor.map, a "
    "C fork per job) pass one job at a time and use smaller n where a job "
    "costs more. cpu: 64 jobs of 50 ms of arithmetic; 1.0 is the sum of "
    "the job times / 2, with one job timed in the parent first. light: "
    "one job due at each millisecond for 2 s, awaited; the CPU of the "
    "whole process tree (the parent's threads and its worker processes) "
    "in % of one CPU.")
NOTES.update(bench_cluster.NOTES)
NOTES.update(bench_net.NOTES)

# Figures that describe a run rather than rank it: no ratio.
NO_RATIO = ({("sleep", "peak_alive")} | bench_net.NO_RATIO |
            bench_cluster.NO_RATIO)

# What each peer is, per workload and metric where it differs.
PEER_NAMES = {
    "tbb": "oneTBB task_group",
    "openmp": "OpenMP tasks (libgomp)",
    "go": "Go goroutines",
    ("switch", "yield", "go"): "Go runtime.Gosched",
    ("switch", "pingpong", "go"): "Go unbuffered channels",
    ("sleep", "wall", "go"): "Go time.Sleep",
    ("sleep", "rss_per_task", "go"): "Go time.Sleep",
    ("sleep", "peak_alive", "go"): "Go time.Sleep",
    ("sleep", "rss_per_alive", "go"): "Go time.Sleep",
    ("chan", "pingpong", "go"): "Go unbuffered channels",
    ("chan", "mutex", "go"): "Go sync.Mutex",
    ("spawn", "window", "go"): "Go exec.Command",
    ("spawn", "window", "python"): "Python asyncio.create_subprocess_exec",
    "pthread": "pthreads",
    ("chan", "pingpong", "pthread"): "pthread mutex+condvar hand-off",
    ("chan", "mutex", "pthread"): "pthread_mutex",
    ("handoff", "pingpong", "go"): "Go unbuffered channels, free",
    ("handoff", "pingpong", "go-locked"):
        "Go unbuffered channels, goroutines locked to threads",
    ("handoff", "pingpong", "pthread"): "pthread mutex+condvar, 2 CPUs",
    ("handoff", "pingpong", "eventfd"): "eventfd, 2 CPUs",
    ("handoff", "pingpong", "spin"):
        "two threads spinning on one cache line, 2 CPUs (the floor)",
    ("handoff", "light", "go"): "Go time.Sleep + channel send",
    ("handoff", "light", "pthread"): "pthread clock_nanosleep + condvar",
    ("handoff", "idle", "go"): "Go runtime, GOMAXPROCS=2",
    ("handoff", "storm-max", "go"): "Go goroutines",
    ("handoff", "storm-p999", "go"): "Go goroutines",
    ("blocking", "burst", "pthread"): "pthread pool, 4 threads",
    ("blocking", "serial", "pthread"): "pthread pool, 4 threads",
    "python": "Python asyncio.to_thread",
    "c": "C posix_spawn + waitpid loop",
    "python-map": "Python multiprocessing Pool.map",
    "python-imap1": "Python Pool.imap, chunksize 1",
    "python-cf": "Python ProcessPoolExecutor.map",
    "python-light": "Python ProcessPoolExecutor.submit",
    "fork": "C fork per job",
    ("pool", "cpu", "pthread"): "2 pthreads pulling from a counter",
}
PEER_NAMES.update(bench_cluster.PEER_NAMES)
PEER_NAMES.update(bench_net.PEER_NAMES)

# What braid does in each workload, for the table.
BRAID_NAMES = {
    ("switch", "yield"): "br_yield",
    ("switch", "pingpong"): "promises",
    ("chan", "pingpong"): "br_chan",
    ("chan", "pingpong-apart"): "br_chan",
    ("chan", "mutex"): "br_mutex",
    ("handoff", "promise"): "promises",
    ("handoff", "thread"): "promises",
    ("handoff", "idle"): "2 workers",
    ("handoff", "light"): "br_promise_resolve",
    ("handoff", "light-timer"): "br_sleep_ms",
    ("blocking", "burst"): "br_spawn_blocking",
    ("blocking", "serial"): "br_spawn_blocking",
    ("spawn", "window"): "br_exec",
    ("pool", "map"): "br_map",
    ("pool", "submit"): "br_submit",
    ("pool", "cpu"): "br_submit",
    ("pool", "light"): "br_submit",
}
BRAID_NAMES.update(bench_cluster.BRAID_NAMES)


class Config:
    """One invocation: a program, its arguments and its environment."""

    def __init__(self, workload, impl, threads, prog, args, env=None):
        self.workload = workload
        self.impl = impl
        self.threads = threads
        self.prog = prog
        self.args = [str(a) for a in args]
        self.env = env or {}

    def argv(self):
        return [self.prog] + self.args

    def text(self):
        env = " ".join("%s=%s" % kv for kv in sorted(self.env.items()))
        return (env + " " if env else "") + " ".join(self.argv())

    def missing(self):
        """Why this configuration cannot run, or None."""
        if os.access(self.prog, os.X_OK):
            return None
        return "%s not built" % self.prog

    def run(self, env, timeout):
        return run_one(self, env, timeout)


def configs(quick):
    """Every configuration of every workload, braid's and the peers'."""
    peers = BIN + "/peers"
    out = []

    def go(workload, prog, threads, args):
        out.append(Config(workload, "go", threads, peers + "/" + prog,
                          args, {"GOMAXPROCS": str(threads)}))

    for t in (1, 2):
        n = ["--n", 30]
        out.append(Config("fib", "braid", t, BIN + "/fib",
                          ["--workers", t] + n))
        out.append(Config("fib", "tbb", t, peers + "/fib_tbb",
                          ["--threads", t] + n))
        out.append(Config("fib", "openmp", t, peers + "/fib_omp", n,
                          {"OMP_NUM_THREADS": str(t)}))
        go("fib", "fib_go", t, n)

    for t in (1, 2):
        n = ["--n", 1000000]
        out.append(Config("skynet", "braid", t, BIN + "/skynet",
                          ["--workers", t] + n))
        out.append(Config("skynet", "tbb", t, peers + "/skynet_tbb",
                          ["--threads", t] + n))
        go("skynet", "skynet_go", t, n)

    y = ["--mode", "yield", "--n", 10000000]
    out.append(Config("switch", "braid", 1, BIN + "/switch",
                      ["--workers", 1] + y))
    go("switch", "switch_go", 1, y)
    for t in (1, 2):
        p = ["--mode", "pingpong", "--n", 100000 if quick else 1000000]
        out.append(Config("switch", "braid", t, BIN + "/switch",
                          ["--workers", t] + p))
        go("switch", "switch_go", t, p)

    s = ["--n", 100000, "--ms", 100]
    out.append(Config("sleep", "braid", 2, BIN + "/sleep",
                      ["--workers", 2] + s))
    go("sleep", "sleep_go", 2, s)

    rounds = 100000 if quick else 1000000
    for t in (1, 2):
        p = ["--mode", "pingpong", "--n", rounds]
        out.append(Config("chan", "braid", t, BIN + "/chan",
                          ["--workers", t] + p))
        go("chan", "chan_go", t, p)
        # A kernel hand-off costs 10-70 us: fewer rounds say as much.
        out.append(Config("chan", "pthread", t, peers + "/chan_pthread",
                          ["--mode", "pingpong", "--n", 20000,
                           "--workers", t]))
    out.append(Config("chan", "braid", 2, BIN + "/chan",
                      ["--workers", 2, "--mode", "pingpong-apart", "--n",
                       rounds // 4]))
    m = ["--mode", "mutex"]
    out.append(Config("chan", "braid", 2, BIN + "/chan", ["--workers", 2] + m))
    go("chan", "chan_go", 2, m)
    out.append(Config("chan", "pthread", 2, peers + "/chan_pthread",
                      m + ["--workers", 2]))

    hb = BIN + "/handoff"
    hq = 10 if quick else 1
    for mode, n in (("promise", 200000),
                    ("thread", 50000), ("storm", 1000000),
                    ("storm-thread", 1000000)):
        out.append(Config("handoff", "braid", 2, hb,
                          ["--workers", 2, "--mode", mode, "--n", n // hq]))
    ms = 1000 if quick else 5000
    for mode in ("idle", "light", "light-timer"):
        out.append(Config("handoff", "braid", 2, hb,
                          ["--workers", 2, "--mode", mode, "--ms", ms]))
    go("handoff", "handoff_go", 2, ["-mode", "pingpong", "-n",
                                    1000000 // hq])
    # A hand-off through the kernel costs 10-100 us here: smaller n.
    out.append(Config("handoff", "go-locked", 2, peers + "/handoff_go",
                      ["-mode", "pingpong-locked", "-n", 30000 // hq],
                      {"GOMAXPROCS": "2"}))
    for mode in ("idle", "light"):
        go("handoff", "handoff_go", 2, ["-mode", mode, "-ms", ms])
    go("handoff", "handoff_go", 2, ["-mode", "storm", "-n", 1000000 // hq])
    for mode, impl in (("condvar", "pthread"), ("eventfd", "eventfd")):
        out.append(Config("handoff", impl, 2, peers + "/handoff_pthread",
                          ["--mode", mode, "--n", 20000 // hq]))
    # The machine's floor: two threads spinning on one cache line.
    out.append(Config("handoff", "spin", 2, peers + "/handoff_pthread",
                      ["--mode", "spin", "--n", 1000000 // hq]))
    out.append(Config("handoff", "pthread", 2, peers + "/handoff_pthread",
                      ["--mode", "light", "--ms", ms]))

    for mode, n, pyn in (("burst", 100000, 20000), ("serial", 10000, 5000)):
        b = ["--mode", mode, "--n", n]
        out.append(Config("blocking", "braid", 2, BIN + "/blocking",
                          ["--workers", 2] + b))
        out.append(Config("blocking", "pthread", 2,
                          peers + "/blocking_pthread", b + ["--workers", 4]))
        # Python's calls cost 100 us or more: a smaller n.
        out.append(Config("blocking", "python", 2, sys.executable,
                          ["bench/peers/blocking_py.py", "--mode", mode,
                           "--n", pyn]))
    n = ["--n", 200 if quick else 1000]
    for t in (1, 2):
        out.append(Config("spawn", "braid", t, BIN + "/spawn",
                          ["--workers", t] + n))
        # The C loop is one thread either way; --workers only labels
        # its row so that it pairs with braid's.
        out.append(Config("spawn", "c", t, peers + "/spawn_c",
                          ["--workers", t] + n))
        go("spawn", "spawn_go", t, ["-n", n[1]])
        # One event loop either way; --workers only labels the row.
        out.append(Config("spawn", "python", t, sys.executable,
                          ["bench/peers/spawn_py.py", "--workers", t] + n))
    pn = 20000 if quick else 100000
    for mode in ("map", "submit"):
        out.append(Config("pool", "braid", 2, BIN + "/pool",
                          ["--workers", 2, "--mode", mode, "--n", pn]))
    out.append(Config("pool", "python", 2, sys.executable,
                      ["bench/peers/pool_py.py", "--mode", "map", "--n",
                       pn]))
    # One job at a time costs 20-200 us in these peers: smaller n.
    for mode in ("imap1", "cf"):
        out.append(Config("pool", "python", 2, sys.executable,
                          ["bench/peers/pool_py.py", "--mode", mode,
                           "--n", 2000 if quick else 10000]))
    out.append(Config("pool", "fork", 2, peers + "/pool_fork",
                      ["--n", 1000]))
    lms = 1000 if quick else 2000
    out.append(Config("pool", "braid", 2, BIN + "/pool",
                      ["--workers", 2, "--mode", "light", "--ms", lms]))
    out.append(Config("pool", "python", 2, sys.executable,
                      ["bench/peers/pool_py.py", "--mode", "light", "--ms",
                       lms]))
    cpu = ["--mode", "cpu", "--n", 64, "--ms", 50, "--workers", 2]
    out.append(Config("pool", "braid", 2, BIN + "/pool", cpu))
    out.append(Config("pool", "pthread", 2, peers + "/pool_pthread",
                      cpu[2:]))
    return out + bench_cluster.configs(quick) + bench_net.configs(quick)


def clean_env():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(SCRUB_PREFIXES) and k not in SCRUB_NAMES}
    env["LC_ALL"] = "C"
    return env


def first_line(cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def machine():
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, val = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Processor"):
                    cpu = val.strip()
                    break
    except OSError:
        pass
    u = platform.uname()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc)
        .isoformat(timespec="seconds"),
        "kernel": u.release,
        "arch": u.machine,
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "cpus_allowed": len(os.sched_getaffinity(0)),
        "gcc": first_line(["gcc", "-dumpfullversion"]),
        "go": first_line(["go", "version"]),
        "python": platform.python_version(),
        "pinning": bench_net.pinning_text(),
    }


REQUIRED = ("workload", "impl", "metric", "unit", "n", "median", "values")


def run_one(cfg, env, timeout):
    """Run cfg once. Returns (lines, error): parsed JSON lines, or a note."""
    e = dict(env)
    e.update(cfg.env)
    try:
        r = subprocess.run(cfg.argv(), cwd=ROOT, env=e, capture_output=True,
                           text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return [], "timed out after %g s" % timeout
    except OSError as ex:
        return [], str(ex)
    lines = []
    for text in r.stdout.splitlines():
        if not text.startswith("{"):
            continue
        try:
            d = json.loads(text)
        except ValueError:
            return [], "bad JSON line: " + text[:200]
        if any(k not in d for k in REQUIRED):
            return [], "JSON line without %s" % ", ".join(REQUIRED)
        lines.append(d)
    if r.returncode != 0 or not lines:
        tail = " | ".join(r.stderr.strip().splitlines()[-3:])
        return [], "exit %d%s" % (r.returncode, ": " + tail if tail else "")
    return lines, None


# Per-job costs whose peers run a smaller n (one job at a time is slow
# there): one row for all n, so that the ratios are made.
ANY_N = {("pool", "submit")} | bench_cluster.ANY_N
# Workloads whose rows pair whatever n each program ran.
ANY_N_WORKLOADS = {"handoff"}

# A peer figure that stands against several of braid's: (workload, the
# peer's metric) -> braid's metrics. summarise() copies the peer's entry
# under each, keeping the peer's own metric in "peer_metric".
SHARED_PEER = {
    ("handoff", "pingpong"): ("promise", "thread"),
    ("handoff", "light"): ("light", "light-timer"),
    ("handoff", "storm-max"): ("storm-max", "storm-thread-max"),
    ("handoff", "storm-p999"): ("storm-p999", "storm-thread-p999"),
}

bench_cluster.RUN_ONE = run_one


def key_of(d):
    n = 0 if ((d["workload"], d["metric"]) in ANY_N or
              d["workload"] in ANY_N_WORKLOADS) else int(d.get("n", 0))
    return (d["workload"], d["metric"], int(d.get("threads", 0)), n,
            d["impl"])


def higher_is_better(s):
    return bench_net.higher_is_better(s["workload"], s["metric"])


def better_text(s):
    if (s["workload"], s["metric"]) in NO_RATIO:
        return "—"
    return "higher" if higher_is_better(s) else "lower"


def summarise(lines):
    """Merge the one-run lines into one entry per measurement."""
    groups = {}
    for d in lines:
        groups.setdefault(key_of(d), []).append(d)
    out = []
    for key, ds in groups.items():
        vals = [v for d in ds for v in d["values"]]
        out.append({
            "workload": key[0], "impl": key[4], "metric": key[1],
            "threads": key[2], "unit": ds[0]["unit"], "n": key[3],
            "median": statistics.median(vals), "min": min(vals),
            "max": max(vals), "runs": len(vals), "values": vals,
            "cmd": ds[0].get("cmd", ""),
        })
    shared = []
    for s in out:
        wm = (s["workload"], s["metric"])
        if s["impl"] == "braid" or wm not in SHARED_PEER:
            shared.append(s)
            continue
        for m in SHARED_PEER[wm]:
            c = dict(s, metric=m, peer_metric=s["metric"])
            shared.append(c)
    out = shared
    order = {k: i for i, k in enumerate(LABELS)}
    out.sort(key=lambda s: (WORKLOADS.index(s["workload"])
                            if s["workload"] in WORKLOADS else 99,
                            s["n"] if s["workload"] in NET else 0,
                            order.get((s["workload"], s["metric"]), 999),
                            s["threads"], s["impl"] != "braid", s["impl"]))
    braid = {row_key(s): s for s in out if s["impl"] == "braid"}
    for s in out:
        b = braid.get(row_key(s))
        if (s["impl"] != "braid" and b and s["median"] > 0 and
                (s["workload"], s["metric"]) not in NO_RATIO):
            s["ratio_braid_over_peer"] = b["median"] / s["median"]
    return out


def row_key(s):
    """What braid's row and its peers' rows have in common."""
    return (s["workload"], s["metric"], s["threads"], s["n"])


def fmt(v):
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return "%.0f" % v
    if abs(v) >= 10:
        return "%.1f" % v
    return "%.3g" % v


def label(s):
    text = LABELS.get((s["workload"], s["metric"]),
                      "%s %s" % (s["workload"], s["metric"]))
    return text.format(n=s["n"])


def peer_name(s):
    return PEER_NAMES.get(
        (s["workload"], s.get("peer_metric", s["metric"]), s["impl"]),
        PEER_NAMES.get((s["workload"], s["impl"]),
                       PEER_NAMES.get(s["impl"], s["impl"])))


def in_markdown(s, summary):
    k = (s["workload"], s["metric"])
    if k in bench_net.NOT_IN_MARKDOWN:
        return False
    if k in bench_net.ONLY_IF_NONZERO:
        return any(t["max"] for t in summary
                   if (t["workload"], t["metric"], t["n"]) ==
                   (s["workload"], s["metric"], s["n"]))
    return True


def config_text(s):
    text = "%d thread%s" % (s["threads"], "" if s["threads"] == 1 else "s")
    if s["workload"] in NET:
        text = "server on " + text
    if s["workload"] == "cluster":
        text = "%d ranks" % s["threads"]
    return text


def print_table(summary):
    print()
    print("%-8s %-17s %3s %8s %-9s %10s %10s %10s %-9s %-6s %s" %
          ("workload", "metric", "thr", "n", "impl", "median", "min", "max",
           "unit", "better", "braid/peer"))
    for s in summary:
        ratio = s.get("ratio_braid_over_peer")
        print("%-8s %-17s %3d %8d %-9s %10s %10s %10s %-9s %-6s %s" %
              (s["workload"], s["metric"], s["threads"], s["n"], s["impl"],
               fmt(s["median"]), fmt(s["min"]), fmt(s["max"]), s["unit"],
               better_text(s), "%.2f" % ratio if ratio is not None else ""))


def load_text(samples):
    """The 1-minute load averages seen: 'a to b', or '?'."""
    if not samples:
        return "?"
    lo, hi = min(samples), max(samples)
    return "%.1f" % lo if lo == hi else "%.1f to %.1f" % (lo, hi)


def markdown(summary, mach, runs, failures, skipped):
    def fig(s):
        if s["runs"] == 1:
            return "%s %s" % (fmt(s["median"]), s["unit"])
        return "%s %s (%s–%s)" % (fmt(s["median"]), s["unit"],
                                   fmt(s["min"]), fmt(s["max"]))

    summary = [s for s in summary if in_markdown(s, summary)]
    braid = {row_key(s): s for s in summary if s["impl"] == "braid"}
    rows = []
    seen = set()
    for s in summary:
        k = row_key(s)
        b = braid.get(k)
        if s["impl"] == "braid":
            continue
        seen.add(k)
        bname = BRAID_NAMES.get((s["workload"], s["metric"]), "braid")
        rows.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            label(s), config_text(s),
            "%s: %s" % (bname, fig(b)) if b else "—",
            "%s: %s" % (peer_name(s), fig(s)),
            "%.2f" % s["ratio_braid_over_peer"]
            if "ratio_braid_over_peer" in s else "—", better_text(s),
            s["runs"]))
    for k, b in braid.items():
        if k not in seen:
            rows.append("| %s | %s | %s | — | — | %s | %s |" % (
                label(b), config_text(b), fig(b), better_text(b),
                b["runs"]))
    out = [
        "| workload | config | braid | peer | braid / peer | better | runs |",
        "|---|---|---|---|---|---|---|",
    ] + rows + [
        "",
        "%s; the ratio is braid's median over the peer's. Where lower is "
        "better (times, latencies, memory) below 1 means braid is faster "
        "or smaller; where higher is better (round trips or requests per "
        "second and per server CPU-second) above 1 means braid does more. "
        "Machine: %s, %s CPUs, Linux %s, gcc %s, %s; %s; load average "
        "%s over the run (from other work too)." % (
                 "Median of up to %d interleaved runs (min–max in "
                 "parentheses)" % runs if runs > 1 else "One run of each",
                 mach["cpu"] or mach["arch"], mach["nproc"],
                 mach["kernel"], mach["gcc"] or "?", mach["go"] or "no go",
                 mach["date"], load_text(mach.get("load", []))),
    ]
    seen = {k[:3] for k in seen}
    notes = [text for k, text in NOTES.items() if k in seen]
    if notes:
        out.append("")
        out.extend("- " + text for text in notes)
    if skipped:
        out.append("")
        out.append("Not run: " + "; ".join(
            "%s %s (%s)" % s for s in skipped) + ".")
    if failures:
        out.append("")
        out.append("Failed runs: " + "; ".join(
            "%s (%s)" % (f["cmd"], f["error"]) for f in failures))
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, help="rounds (default 5, echo and "
                    "http 3; quick 1)")
    ap.add_argument("--only", help="comma-separated workloads, e.g. fib,echo")
    ap.add_argument("--quick", action="store_true",
                    help="one round of fib, switch and skynet (make demo)")
    ap.add_argument("--no-build", action="store_true",
                    help="do not run make bench-build first")
    ap.add_argument("--timeout", type=float, default=300,
                    help="seconds per invocation (default 300)")
    ap.add_argument("--seed", type=int, help="seed for the shuffles")
    ap.add_argument("--out", help="output prefix (default build/bench/"
                    "results, quick build/bench/summary)")
    ap.add_argument("--list", action="store_true",
                    help="print the configurations and exit")
    a = ap.parse_args()

    os.chdir(ROOT)
    runs = a.runs if a.runs is not None else (1 if a.quick else 5)
    if runs < 1:
        ap.error("--runs must be at least 1")
    wanted = QUICK_WORKLOADS if a.quick else WORKLOADS
    if a.only:
        wanted = [w.strip() for w in a.only.split(",") if w.strip()]
        bad = [w for w in wanted if w not in WORKLOADS]
        if bad:
            ap.error("unknown workload %s; known: %s" %
                     (", ".join(bad), ", ".join(WORKLOADS)))
    cfgs = [c for c in configs(a.quick) if c.workload in wanted]
    if a.list:
        for c in cfgs:
            print(c.text())
        return 0

    if not a.no_build:
        r = subprocess.run(["make", "--no-print-directory", "bench-build"])
        if r.returncode != 0:
            print("bench: make bench-build failed", file=sys.stderr)
            return 1

    todo, skipped = [], []
    for c in cfgs:
        why = c.missing()
        if why is None:
            todo.append(c)
        elif (c.workload, c.impl, why) not in skipped:
            print("bench: skipping %s %s (%s)" % (c.workload, c.impl, why))
            skipped.append((c.workload, c.impl, why))
    if not todo:
        print("bench: nothing to run", file=sys.stderr)
        return 1

    def rounds_of(c):
        # Without --runs, the long echo and http runs take fewer rounds.
        cap = getattr(c, "max_runs", None)
        return min(runs, cap) if cap and a.runs is None else runs

    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    env = clean_env()
    lines, failures = [], []
    total = max(rounds_of(c) for c in todo)
    # The 1-minute load average before each round and at the end: the
    # machine may be shared, and a busy one moves every figure.
    load = []
    for rnd in range(total):
        load.append(os.getloadavg()[0])
        order = [c for c in todo if rnd < rounds_of(c)]
        rng.shuffle(order)
        for i, c in enumerate(order):
            # A run may return lines and an error (a server that saw
            # errors or did not stop cleanly): keep both.
            got, err = c.run(env, a.timeout)
            head = "[%d/%d %2d/%d]" % (rnd + 1, total, i + 1, len(order))
            if err:
                print("%s %s: FAILED: %s" % (head, c.text(), err))
                failures.append({"round": rnd, "cmd": c.text(),
                                 "error": err})
            for d in got:
                d["round"] = rnd
                lines.append(d)
                print("%s %-6s %-7s %-13s %d thr %5d: %s %s" %
                      (head, d["workload"], d["impl"], d["metric"],
                       int(d.get("threads", 0)), int(d.get("n", 0)),
                       fmt(d["median"]), d["unit"]))
            sys.stdout.flush()

    summary = summarise(lines)
    print_table(summary)
    load.append(os.getloadavg()[0])
    mach = machine()
    mach["load"] = load
    out = a.out or ("build/bench/summary" if a.quick else
                    "build/bench/results")
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out + ".json", "w") as f:
        json.dump({"machine": mach,
                   "settings": {"runs": runs, "net_runs": bench_net.NET_RUNS
                                if a.runs is None else runs,
                                "quick": a.quick,
                                "seed": seed, "workloads": list(wanted)},
                   "lines": lines, "summary": summary,
                   "failures": failures,
                   "skipped": [{"workload": w, "impl": i, "why": y}
                               for w, i, y in skipped]}, f, indent=1)
        f.write("\n")
    md = markdown(summary, mach, total, failures, skipped)
    with open(out + ".md", "w") as f:
        f.write(md)
    print()
    print(md, end="")
    print("bench: wrote %s.json and %s.md" % (out, out))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
