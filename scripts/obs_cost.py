#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""obs_cost.py - what the observation code costs the core benchmarks.

Runs the same benchmark programs (bench/fib, bench/skynet, bench/switch)
from two builds of the same commit, paired: A is the build with the
observation code compiled out (make OBS=0 bench-core, in
build/release-noobs), B the ordinary one (make bench-core, in
build/release). Every round runs each benchmark of each configuration
once from A and once from B, back to back, A first in even rounds and B
first in odd ones (ABBAAB...), so that drifts of a shared machine fall on
both alike; the benchmarks and configurations take a new shuffled order
each round. The figure of a pair is the ratio B / A of their timings (all
lower-is-better); the report gives, per configuration and benchmark, the
median of those ratios as a percentage (+2.0% means B is 2% slower) with
their min and max, the medians of A's and B's own timings, and the ratio
of their fastest runs (B's min / A's min), which interference from the
rest of the machine disturbs least.

Configurations, set in B's environment (A's is the same, and ignores it):
  default  nothing set: the stall detector on (25 ms), stats and trace off
  stall0   BRAID_STALL_MS=0: nothing watches task switches
  stats    BRAID_STATS=1: the stall detector and the stats table at exit

The variables that change what a run does (BRAID_*) are removed from the
environment first. Writes every pair to --json (default
build/bench/obs_cost.json). Python 3 standard library only. Run it with
the machine to itself, e.g. under flock -x on a lock the other heavy jobs
take.

Usage: scripts/obs_cost.py [--rounds N] [--configs default,stall0,stats]
                           [--only fib,skynet,yield,pingpong] [--a DIR]
                           [--b DIR] [--seed N] [--json FILE]
"""

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONFIGS = {
    "default": {},
    "stall0": {"BRAID_STALL_MS": "0"},
    "stats": {"BRAID_STATS": "1"},
}

# (label, program, arguments, metric). Sizes are larger than
# scripts/bench.py's, so that each run takes 0.2 to 0.8 s: at its 30 to
# 50 ms, start-up and the VM's scheduling made single pairs differ by 30%.
BENCHES = [
    ("fib w1", "fib", ["--workers", "1", "--n", "33"], "wall"),
    ("fib w2", "fib", ["--workers", "2", "--n", "33"], "wall"),
    ("skynet w1", "skynet", ["--workers", "1", "--n", "10000000"], "wall"),
    ("skynet w2", "skynet", ["--workers", "2", "--n", "10000000"], "wall"),
    ("yield w1", "switch",
     ["--workers", "1", "--mode", "yield", "--n", "30000000"], "yield"),
    ("pingpong w1", "switch",
     ["--workers", "1", "--mode", "pingpong", "--n", "3000000"], "pingpong"),
    ("pingpong w2", "switch",
     ["--workers", "2", "--mode", "pingpong", "--n", "1000000"], "pingpong"),
]


def clean_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRAID_")}
    env["LC_ALL"] = "C"
    return env


def run_one(bindir, bench, env, timeout):
    """The benchmark's figure for its metric, from its JSON line."""
    _, prog, args, metric = bench
    cmd = [os.path.join(bindir, prog)] + args
    p = subprocess.run(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=timeout)
    if p.returncode != 0:
        sys.exit("obs_cost: %s failed (%d): %s" %
                 (" ".join(cmd), p.returncode, p.stderr.strip()))
    for line in p.stdout.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("metric") == metric:
            return float(rec["median"])
    sys.exit("obs_cost: %s printed no %s figure" % (" ".join(cmd), metric))


def pct(r):
    return "%+.1f%%" % ((r - 1.0) * 100.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--configs", default="default,stall0,stats")
    ap.add_argument("--only", help="benchmark name prefixes, e.g. fib,yield")
    ap.add_argument("--a", default="build/release-noobs/bench",
                    help="peer build's bench/ (OBS=0)")
    ap.add_argument("--b", default="build/release/bench",
                    help="measured build's bench/")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--json", default="build/bench/obs_cost.json")
    o = ap.parse_args()

    configs = o.configs.split(",")
    for c in configs:
        if c not in CONFIGS:
            ap.error("unknown configuration %s (have %s)" %
                     (c, ",".join(CONFIGS)))
    benches = BENCHES
    if o.only:
        want = o.only.split(",")
        benches = [b for b in BENCHES
                   if any(b[0].startswith(w) for w in want)]
        if not benches:
            ap.error("--only matches no benchmark")
    for d in (o.a, o.b):
        for b in benches:
            if not os.access(os.path.join(ROOT, d, b[1]), os.X_OK):
                sys.exit("obs_cost: %s/%s not built (make bench-core and "
                         "make OBS=0 bench-core)" % (d, b[1]))

    rng = random.Random(o.seed)
    base = clean_env()
    pairs = {(c, b[0]): [] for c in configs for b in benches}
    jobs = [(c, b) for c in configs for b in benches]
    for r in range(o.rounds):
        rng.shuffle(jobs)
        for c, b in jobs:
            env = dict(base, **CONFIGS[c])
            order = (o.a, o.b) if r % 2 == 0 else (o.b, o.a)
            got = {d: run_one(d, b, env, o.timeout) for d in order}
            pairs[(c, b[0])].append((got[o.a], got[o.b]))
        print("round %d/%d done" % (r + 1, o.rounds), file=sys.stderr)

    rows = []
    print("B = %s against A = %s, %d paired rounds; B/A - 1: median "
          "[min, max]" % (o.b, o.a, o.rounds))
    print("%-8s %-12s %8s %18s %10s %10s %8s" %
          ("config", "bench", "median", "min .. max", "A median",
           "B median", "fastest"))
    for c in configs:
        for b in benches:
            ps = pairs[(c, b[0])]
            ratios = [bb / aa for aa, bb in ps]
            med = statistics.median(ratios)
            row = {"config": c, "bench": b[0], "rounds": len(ps),
                   "ratio_median": med, "ratio_min": min(ratios),
                   "ratio_max": max(ratios),
                   "a_median": statistics.median(p[0] for p in ps),
                   "b_median": statistics.median(p[1] for p in ps),
                   "fastest_ratio": (min(p[1] for p in ps) /
                                     min(p[0] for p in ps)),
                   "pairs": ps}
            rows.append(row)
            print("%-8s %-12s %8s %8s .. %-7s %10.4g %10.4g %8s" %
                  (c, b[0], pct(med), pct(min(ratios)), pct(max(ratios)),
                   row["a_median"], row["b_median"],
                   pct(row["fastest_ratio"])))
    path = os.path.join(ROOT, o.json)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"a": o.a, "b": o.b, "rounds": o.rounds, "seed": o.seed,
                   "machine": {"cpus": os.cpu_count(),
                               "kernel": platform.release()},
                   "rows": rows}, f, indent=1)
        f.write("\n")
    print("wrote %s" % o.json)


if __name__ == "__main__":
    main()
