#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""faults.py - sweep braid's fault points over the fault scenario.

Usage: scripts/faults.py --build build/asan-faults
                         [--posix-build build/debug-faults] [--full]
                         [--timeout S] [--point NAME ...] [--mode MODE ...]
                         [--no-posix] [--no-unit] [--unit-only]
                         [--suite PROGRAM ...] [--unit-jobs N]

The fault points are found in the runtime's sources: every
BR__FAULT("braid/...") or BR__FAULT_ERRNO("braid/...", ...). Each run
starts the scenario (BUILD/tests/faults, from tests/faults.c) under
fiu-run, which enables one point (or one group of libfiu's POSIX
wrappers, with -x) before main:

  once    the point fails the first time it is reached (libfiu's
          onetime flag);
  always  it fails every time;
  random  it fails with probability 1% each time (--full only), over
          RANDOM_PASSES passes of the scenario.

libfiu's POSIX wrappers cannot run under ASan (its malloc wrapper is
called while ASan resolves its own interceptors, before the wrapper has
found the real malloc, and jumps to 0), so the POSIX groups run the
scenario of a faults build without sanitizers (--posix-build: the debug
variant, with braid's debug assertions on); there the scenario's own
accounting of descriptors, threads and children is the leak check.

A run passes if the scenario exits 0 (its own checks held: every result
consistent, nothing left behind) within the timeout, without a signal
and without a sanitizer report. A run that hangs is backtraced with gdb
before it is killed. The short sweep (make test) runs every braid point
once and always. The full sweep (make test-faults) adds random, the POSIX
groups in all three modes, and runs the core, I/O, pool and sync unit
test programs (UNIT_SUITES, or those named with --suite) under every
braid point failing always, --unit-jobs programs at a time, where only
crashes, sanitizer reports, tests that crash or time out and hangs count
(the tests' assertions may fail under a fault, and leak checks are off:
ASan's, and the tests' own with T_NO_LEAK_CHECK). --unit-only runs that
part alone.

Each run's output goes to BUILD/faults/<point>.<mode>.log. The summary
gives the number of points and runs, and each failure with its log.
Exit status 0 if every run passed.
"""

import argparse
import concurrent.futures
import os
import re
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# libfiu's POSIX wrappers, in groups (fiu-run -x). Only calls that take
# or move something: the wrappers of calls that give something back
# (close, munmap, wait*, kill) fail without doing their work, which the
# real calls never do (close(2) releases the descriptor whatever it
# returns), so under them every program leaks by construction.
POSIX_GROUPS = {
    "libc/mm": ["libc/mm/*"],
    "posix/mm": ["posix/mm/mmap", "posix/mm/mprotect", "posix/mm/madvise"],
    "posix/io/open": ["posix/io/oc/open"],
    "posix/io/rw": ["posix/io/rw/*"],
    "posix/io/net": ["posix/io/net/*"],
    "posix/proc": ["posix/proc/fork", "posix/proc/sigaction",
                   "posix/proc/signal"],
}

# The unit test programs the full sweep runs under every point: the
# core, I/O, pool and sync suites (every suite under every point would
# multiply the sweep's time by the suites' count).
UNIT_SUITES = ["test_task", "test_future", "test_runtime", "test_io",
               "test_io_net", "test_pool", "test_sync", "test_chan"]

# A unit test program's run is a hang past UNIT_BOUND times --timeout.
# Under a fault its tests fail fast or pass: a whole program takes about
# as long as without faults, well inside the bound, while a test that
# hangs is ended by its own .timeout (Criterion reports it, and that
# fails the run) or, if that does not fire, by this bound.
UNIT_BOUND = 10

# Unit test programs run at once (--unit-jobs), each with --jobs 2. One:
# some tests spin two workers against each other (test_io_net's
# first_*_from_two_workers tests) and need the CPUs they assume; a second
# program beside them can push them past their timeouts with no fault
# involved.
UNIT_JOBS = 1

# Points left out of the unit test programs' runs. braid/sched/outside_late
# holds a thread outside a runtime up for 20 ms in each spawn, callback,
# blocking call and wake-up it makes (a spawn twice: once it saw the
# runtime open, and before it wakes a worker): failing always, a test
# that spawns thousands of tasks from its main thread runs past its
# timeout, a slowdown and not a fault. The scenario runs it, and
# tests/test_faults.c tests its windows.
UNIT_SKIP = {"braid/sched/outside_late"}

# Passes of the scenario in random mode (its -n): with one, most points
# are reached a handful of times and a 1% chance almost never fires.
RANDOM_PASSES = 10

MODES = {
    "once": "enable name={},onetime",
    "always": "enable name={}",
    "random": "enable_random name={},probability=0.01",
}

SANITIZER_RE = re.compile(
    r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|"
    r"WARNING: ThreadSanitizer")
CRIT_CRASH_RE = re.compile(
    r"^\[FAIL\] (\S+): CRASH|crashed during its setup or teardown|"
    r"^\[FAIL\] (\S+): Timed out", re.M)


def fault_points():
    pat = re.compile(r'BR__FAULT(?:_ERRNO)?\(\s*"(braid/[^"]+)"')
    names = set()
    rt = os.path.join(ROOT, "runtime")
    for f in sorted(os.listdir(rt)):
        if f.endswith(".c"):
            with open(os.path.join(rt, f)) as fp:
                names.update(pat.findall(fp.read()))
    return sorted(names)


def sanitizer_env(leaks):
    env = dict(os.environ)
    supp = os.path.join(ROOT, "tests", "lsan.supp")
    env["ASAN_OPTIONS"] = ("detect_leaks=%d:abort_on_error=1:"
                           "verify_asan_link_order=0" % leaks)
    env["LSAN_OPTIONS"] = "suppressions=%s:print_suppressions=0" % supp
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    return env


def backtrace(pid):
    """All threads' stacks of pid (and its children), for a hang."""
    out = []
    pids = [pid]
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            pids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    for p in pids:
        try:
            r = subprocess.run(
                ["gdb", "-p", str(p), "-batch", "-nx",
                 "-ex", "thread apply all bt"],
                capture_output=True, text=True, timeout=120)
            out.append("---- gdb -p %d ----\n%s" % (p, r.stdout))
        except (OSError, subprocess.TimeoutExpired) as e:
            out.append("---- gdb -p %d failed: %s ----" % (p, e))
    return "\n".join(out)


def run_one(cmd, env, timeout, log):
    """Run cmd in a session of its own. Returns (verdict, output)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True,
                         errors="replace", start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
        hung = False
    except subprocess.TimeoutExpired:
        hung = True
        bt = backtrace(p.pid)
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, _ = p.communicate()
        out += "\n" + bt
    dt = time.monotonic() - t0
    with open(log, "w") as f:
        f.write("$ %s\n%s\n[%.1f s, status %s]\n"
                % (" ".join(cmd), out, dt, "hang" if hung else p.returncode))
    if hung:
        return "hang", out
    if p.returncode < 0:
        return "signal %s" % signal.Signals(-p.returncode).name, out
    if SANITIZER_RE.search(out):
        return "sanitizer", out
    return ("ok" if p.returncode == 0 else "exit %d" % p.returncode), out


def fiu_cmd(point, mode, posix, prog):
    cmd = ["fiu-run", "-f", ""]
    if posix:
        cmd.append("-x")
    for name in POSIX_GROUPS[point] if posix else [point]:
        cmd += ["-c", MODES[mode].format(name)]
    return cmd + prog


def run_unit(point, prog, timeout, logs):
    """Run the unit test program prog under point failing always. Only a
    crash, a sanitizer report, a Criterion test that crashes or times out
    and a hang of the whole program count: assertions may fail."""
    name = os.path.basename(prog)
    log = os.path.join(logs, "%s.%s.log" % (point.replace("/", "_"), name))
    env = sanitizer_env(0)
    env["T_NO_LEAK_CHECK"] = "1"
    t0 = time.monotonic()
    verdict, out = run_one(
        fiu_cmd(point, "always", False, [prog, "--jobs", "2"]),
        env, UNIT_BOUND * timeout, log)
    dt = time.monotonic() - t0
    bad = CRIT_CRASH_RE.findall(out)
    what = None
    if bad:
        what = "crash or timeout in %d tests" % len(bad)
    elif verdict in ("hang", "sanitizer") or verdict.startswith("signal"):
        what = verdict
    return point, name, verdict, what, dt, log


def calls(out):
    m = re.search(r"faults: (\d+) calls succeeded, (\d+) failed", out)
    return (int(m.group(1)), int(m.group(2))) if m else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--posix-build")
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--point", action="append", default=[])
    ap.add_argument("--mode", action="append", default=[])
    ap.add_argument("--no-posix", action="store_true")
    ap.add_argument("--no-unit", action="store_true")
    ap.add_argument("--unit-only", action="store_true")
    ap.add_argument("--suite", action="append", default=[])
    ap.add_argument("--unit-jobs", type=int, default=UNIT_JOBS)
    a = ap.parse_args()

    scenario = os.path.join(a.build, "tests", "faults")
    logs = os.path.join(a.build, "faults")
    os.makedirs(logs, exist_ok=True)
    points = fault_points()
    if a.point:
        points = [p for p in points if p in a.point] + \
            [p for p in a.point if p not in points]
    modes = a.mode or (["once", "always", "random"] if a.full
                       else ["once", "always"])
    jobs = [] if a.unit_only else \
        [(p, m, False) for p in points for m in modes]
    if a.full and not a.no_posix and not a.point and a.posix_build and \
            not a.unit_only:
        jobs += [(g, m, True) for g in POSIX_GROUPS for m in modes]
    posix_scenario = os.path.join(a.posix_build or a.build, "tests",
                                  "faults")

    # A run without faults first: the scenario must pass on its own, with
    # every future ending as it does when nothing fails (--strict).
    verdict, out = ("ok", "") if a.unit_only else \
        run_one([scenario, "--strict"], sanitizer_env(1), a.timeout,
                os.path.join(logs, "none.log"))
    print("  FAULTS  %d points: %s" % (len(points), " ".join(points)))
    if verdict != "ok":
        print("  FAILED  the scenario without faults: %s (%s/none.log)"
              % (verdict, logs))
        return 1

    failures = []
    runs = 0
    for point, mode, posix in jobs:
        log = os.path.join(logs, "%s.%s.log" % (point.replace("/", "_")
                                                 .replace("*", "all"), mode))
        prog = [posix_scenario if posix else scenario]
        if mode == "random":
            prog += ["-n", str(RANDOM_PASSES)]
        verdict, out = run_one(fiu_cmd(point, mode, posix, prog),
                               sanitizer_env(1),
                               a.timeout * (RANDOM_PASSES if mode ==
                                            "random" else 1), log)
        runs += 1
        c = calls(out)
        hit = ("%d ok, %d errors" % c) if c else "no summary"
        if not posix and "braid: fault point" not in out:
            hit += " (it never failed)"
        print("  %-6s  %-28s %-6s %s" % ("ok" if verdict == "ok" else
                                         "FAILED", point, mode,
                                         verdict if verdict != "ok"
                                         else hit))
        sys.stdout.flush()
        if verdict != "ok":
            failures.append((point, mode, verdict, log))

    unit_runs = 0
    if a.full and not a.no_unit:
        units = [(p, os.path.join(a.build, "tests", t))
                 for p in points if p not in UNIT_SKIP
                 for t in a.suite or UNIT_SUITES]
        with concurrent.futures.ThreadPoolExecutor(a.unit_jobs) as ex:
            for point, name, verdict, what, dt, log in ex.map(
                    lambda u: run_unit(u[0], u[1], a.timeout, logs), units):
                unit_runs += 1
                print("  %-6s  %-28s %-16s %s (%.0f s)"
                      % ("FAILED" if what else "ok", point, name,
                         what or verdict, dt))
                sys.stdout.flush()
                if what:
                    failures.append((point, name, what, log))

    print("  FAULTS  %d points, %d scenario runs (%s), %d unit program runs,"
          " %d failed" % (len(points), runs, "/".join(modes), unit_runs,
                          len(failures)))
    for point, mode, verdict, log in failures:
        print("  FAILED  %s %s: %s (%s)" % (point, mode, verdict, log))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
