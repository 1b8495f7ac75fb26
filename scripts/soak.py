#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""soak.py - run braid's servers and pools under load for a long time.

Usage: scripts/soak.py --build build/release [--seconds S] [--warmup S]
                       [--round S] [--drift PCT]

Three processes run at once for S seconds:
  - examples/http_server, under wrk and hostile clients;
  - examples/echo_server, under echo clients checking every byte and
    hostile clients;
  - tests/soak (BUILD/tests/soak, from tests/soak.c): a process pool
    under a random killer, blocking calls, channels and a mutex.

The hostile clients: slow loris (an HTTP head dribbled a byte at a time
on many connections held open), garbage (random bytes, then half the
time a half-close), half-closes (a request or a message, then
shutdown(SHUT_WR), reading what comes until end of file), and floods
(hundreds of connections opened at once, then closed, half of them with
a reset; during the warm-up twice as many, each making a request first,
so that the servers reach their high-water mark of connections, and of
task stacks in use, before the figures are compared).

Each program's stderr goes to BUILD/soak/<name>.log.

Time goes in rounds (--round, default 5 s) until S seconds have passed:
three fifths load, then every client stops, the servers are left to close what the clients closed, and
each server is sampled: RSS, descriptors, threads and children from
/proc. tests/soak samples itself at the same rhythm, in a quiet state of
its own. Sampling quiet states makes the figures comparable: what stays
open then is what the process keeps, not what the load holds. The
programs run with glibc's mmap threshold at 8 KB, two arenas and no
per-thread caches (MALLOC_ENV below says why), so that RSS follows what is allocated
rather than what the allocator keeps of what was freed. RSS is the
private resident memory: the pool's shared mapping is shown apart.

The soak fails on:
  - errors: wrk socket errors or non-2xx answers, an echo that comes back
    wrong, a probe (a fresh GET and a fresh echo) that fails at a quiet
    point, tests/soak reporting an error or exiting non-zero, a server
    exiting;
  - hangs: a probe that gets no answer within 10 s, tests/soak missing a
    sample for 120 s (each hang is backtraced with gdb);
  - drift: after the warm-up (--warmup, default a third of the run), the
    median of the last three samples of any
    figure above the median of the first three by more than --drift
    percent (default 1).
At the end the servers get SIGTERM and must exit 0. A table of the
samples and the drift of each figure is printed.
"""

import argparse
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST = "127.0.0.1"
PROBE_TIMEOUT = 10.0
# Connections a flood opens at once; twice as many during the warm-up,
# so that the servers reach the most connections (and so the most task
# stacks) they will ever hold before the figures are compared.
FLOOD = 300
# In the warm-up each flood connection also makes a request, so that the
# servers' stacks reach the depth of real work on as many tasks as they
# will ever run at once (stacks stay mapped, and their touched pages
# resident, once used).
FLOOD_GET = b"GET / HTTP/1.1\r\nHost: soak\r\n\r\n"
FLOOD_ECHO = b"flood " * 200


class Failure:
    def __init__(self):
        self.lock = threading.Lock()
        self.errors = []

    def add(self, what):
        with self.lock:
            if len(self.errors) < 50:
                self.errors.append(what)
        print("soak: error: %s" % what, flush=True)


fails = Failure()


# glibc keeps the memory of freed blocks: after the warm-up's floods, a
# server's arenas hold many megabytes of free chunks, and RSS creeps up
# for minutes as later blocks touch pages of them for the first time
# (the HTTP example's 24 KB per connection, say), while what is in use
# stays flat. Blocks of 8 KB and more are mapped on their own under this
# threshold and unmapped when freed, so RSS follows what is allocated: a
# leak of them still shows, and fragmentation does not pass for one.
# glibc also makes a new arena when a new thread first allocates and the
# others are busy, up to eight per core, each keeping what it grew to:
# with the blocking pool's threads coming and going, RSS stepped up by a
# few hundred KiB at random after ten minutes, malloc's bytes in use
# flat. Two arenas are reached in the warm-up.
# RSS here is the private resident memory, RssAnon + RssFile. A pool's
# parent also maps the pool's shared memory (job slots and result rings,
# a fixed size set when the pool starts), and which pages of it it has
# touched wanders: a 600 s soak saw RssShmem step up by 268 KiB at once
# after eight minutes. It is shown (shmem_kb) but not judged.
# Last, each thread keeps up to seven freed blocks of each size class
# for itself (the tcache), which fill over hundreds of rounds as sizes
# come up: tests/soak's private RSS rose 15% in a 600 s soak while mtrace
# showed no block kept alive but the quarantined channels, and with the
# tcache off it was flat.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "8192", "MALLOC_ARENA_MAX": "2",
              "GLIBC_TUNABLES": "glibc.malloc.tcache_count=0"}


def start_server(path, log):
    p = subprocess.Popen([path, "--port", "0", "--workers", "2"],
                         stdout=subprocess.PIPE, stderr=log, text=True,
                         env=dict(os.environ, **MALLOC_ENV))
    line = p.stdout.readline()
    m = re.search(r"listening on [\d.]+:(\d+)", line)
    if not m:
        p.kill()
        raise SystemExit("soak: %s did not start: %r" % (path, line))
    return p, int(m.group(1))


def proc_sample(pid):
    def count(d):
        try:
            return len(os.listdir(d))
        except OSError:
            return -1
    st = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("RssAnon", "RssFile", "RssShmem"):
                    st[k] = int(v.split()[0])
    except OSError:
        pass
    kids = 0
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            kids = len(f.read().split())
    except OSError:
        pass
    return {"rss_kb": st.get("RssAnon", -1) + st.get("RssFile", 0),
            "shmem_kb": st.get("RssShmem", -1),
            "fds": count("/proc/%d/fd" % pid),
            "threads": count("/proc/%d/task" % pid), "children": kids}


def backtrace(pid):
    try:
        r = subprocess.run(["gdb", "-p", str(pid), "-batch", "-nx",
                            "-ex", "thread apply all bt"],
                           capture_output=True, text=True, timeout=120)
        return r.stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return "gdb failed: %s" % e


# ---- clients: each runs while `go` is set, and stops at once when not ----

def connect(port, timeout=5.0):
    s = socket.create_connection((HOST, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_until_eof(s, limit=1 << 20):
    got = b""
    while len(got) < limit:
        b = s.recv(65536)
        if not b:
            break
        got += b
    return got


def echo_client(port, go, stats, seed):
    rng = random.Random(seed)
    while go.is_set():
        try:
            s = connect(port)
            for _ in range(rng.randint(1, 50)):
                if not go.is_set():
                    break
                msg = bytes(rng.getrandbits(8)
                            for _ in range(rng.randint(1, 4096)))
                s.sendall(msg)
                got = b""
                while len(got) < len(msg):
                    b = s.recv(65536)
                    if not b:
                        break
                    got += b
                if got != msg:
                    fails.add("echo: %d bytes back of %d, or different"
                              % (len(got), len(msg)))
                    break
                stats["echo"] += 1
            s.close()
        except OSError as e:
            fails.add("echo client: %s" % e)
            time.sleep(0.1)


def slow_loris(port, go, stats, n=40):
    held = []
    head = b"GET / HTTP/1.1\r\nHost: soak\r\nX-Slow: "
    try:
        while go.is_set():
            while len(held) < n and go.is_set():
                try:
                    held.append([connect(port), 0])
                except OSError as e:
                    fails.add("slow loris connect: %s" % e)
                    break
            for h in held:
                if not go.is_set():
                    break
                try:
                    h[0].send(head[h[1]:h[1] + 1] if h[1] < len(head)
                              else b"a")
                    h[1] += 1
                    stats["loris"] += 1
                except OSError:
                    h[0].close()
                    h[1] = -1
            held = [h for h in held if h[1] >= 0]
            time.sleep(0.2)
    finally:
        for h in held:
            h[0].close()


def garbage(port, go, stats, seed, http):
    rng = random.Random(seed)
    while go.is_set():
        try:
            s = connect(port)
            junk = bytes(rng.getrandbits(8) for _ in range(rng.randint(1,
                                                                      3000)))
            if http and rng.random() < 0.5:
                junk = b"GET /" + junk + b" HTTP/1.1\r\n\r\n"
            s.sendall(junk)
            half = rng.random() < 0.5
            if half:
                s.shutdown(socket.SHUT_WR)
            s.settimeout(PROBE_TIMEOUT)
            if http and half:
                # A 400 and a close, or a close: either way it must end.
                recv_until_eof(s)
            elif http:
                # A head that never ends may wait for more: read what
                # comes for a moment, then hang up.
                s.settimeout(0.2)
                try:
                    recv_until_eof(s)
                except socket.timeout:
                    pass
            else:
                got = b""
                while len(got) < len(junk):
                    b = s.recv(65536)
                    if not b:
                        break
                    got += b
                if got != junk:
                    fails.add("echo of garbage: %d of %d bytes"
                              % (len(got), len(junk)))
            s.close()
            stats["garbage"] += 1
        except socket.timeout:
            fails.add("garbage: no end within %d s" % PROBE_TIMEOUT)
        except OSError:
            pass  # a reset is a fair answer to garbage


def half_close(port, go, stats, http):
    while go.is_set():
        try:
            s = connect(port)
            msg = (b"GET / HTTP/1.1\r\nHost: soak\r\n\r\n" if http
                   else b"half-closed\n")
            s.sendall(msg)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(PROBE_TIMEOUT)
            got = recv_until_eof(s)
            if http and not got.startswith(b"HTTP/1.1 200"):
                fails.add("half-closed GET got %r" % got[:40])
            if not http and got != msg:
                fails.add("half-closed echo got %r" % got[:40])
            s.close()
            stats["half"] += 1
        except socket.timeout:
            fails.add("half-close: no end of file within %d s"
                      % PROBE_TIMEOUT)
        except OSError as e:
            fails.add("half-close: %s" % e)
        time.sleep(0.01)


def flood(port, go, stats, seed, n, ask=None):
    """Open n connections at once, then close them (half with a reset).
    With ask, every connection first sends it and reads an answer, so
    that n tasks at once go as deep into their stacks as real work."""
    rng = random.Random(seed)
    while go.is_set():
        conns = []
        for _ in range(n):
            try:
                conns.append(connect(port))
            except OSError as e:
                fails.add("flood connect: %s" % e)
                break
        if ask:
            for s in conns:
                try:
                    s.sendall(ask)
                except OSError as e:
                    fails.add("flood send: %s" % e)
            for s in conns:
                try:
                    s.settimeout(PROBE_TIMEOUT)
                    if not s.recv(65536):
                        fails.add("flood: no answer")
                except socket.timeout:
                    fails.add("flood: no answer within %d s"
                              % PROBE_TIMEOUT)
                except OSError as e:
                    fails.add("flood recv: %s" % e)
        for s in conns:
            if rng.random() < 0.5:
                # SO_LINGER 0: close sends a reset.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
        stats["flood"] += len(conns)
        time.sleep(0.5)


def wrk_chunk(port, seconds, stats):
    try:
        r = subprocess.run(["wrk", "-t1", "-c32", "-d%ds" % seconds,
                            "--timeout", "5s",
                            "http://%s:%d/" % (HOST, port)],
                           capture_output=True, text=True,
                           timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        fails.add("wrk did not finish")
        return
    out = r.stdout
    m = re.search(r"(\d+) requests in", out)
    if r.returncode != 0 or not m:
        fails.add("wrk failed: %s %s" % (out[-200:], r.stderr[-200:]))
        return
    stats["wrk"] += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+),"
                  r" timeout (\d+)", out)
    if m and any(int(x) for x in m.groups()):
        fails.add("wrk: %s" % m.group(0))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        fails.add("wrk: %s" % m.group(0))


def probe(http_port, echo_port):
    """A fresh GET and a fresh echo at a quiet point: the servers answer."""
    try:
        s = connect(http_port, PROBE_TIMEOUT)
        s.settimeout(PROBE_TIMEOUT)
        s.sendall(b"GET / HTTP/1.1\r\nHost: probe\r\nConnection: close"
                  b"\r\n\r\n")
        got = recv_until_eof(s)
        s.close()
        if not got.startswith(b"HTTP/1.1 200") or not got.endswith(b"hello"):
            return "HTTP probe got %r" % got[:60]
        s = connect(echo_port, PROBE_TIMEOUT)
        s.settimeout(PROBE_TIMEOUT)
        s.sendall(b"probe")
        got = s.recv(16)
        s.close()
        if got != b"probe":
            return "echo probe got %r" % got
    except socket.timeout:
        return "hang: a probe had no answer within %d s" % PROBE_TIMEOUT
    except OSError as e:
        return "probe: %s" % e
    return None


def settle(pid, quiet=1.0, limit=15.0):
    """Wait until pid's descriptor count stops moving for `quiet` s."""
    t0 = time.monotonic()
    last, since = None, time.monotonic()
    while time.monotonic() - t0 < limit:
        n = proc_sample(pid)["fds"]
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.05)


def drift_of(values, warm):
    """(first, last, percent) over the samples after warm-up."""
    v = values[warm:]
    if len(v) < 6:
        return None
    first = statistics.median(v[:3])
    last = statistics.median(v[-3:])
    pct = 0.0 if first == last else \
        (100.0 * (last - first) / first if first else float("inf"))
    return first, last, pct


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--round", type=float, default=5)
    ap.add_argument("--warmup", type=float)
    ap.add_argument("--drift", type=float, default=1.0)
    a = ap.parse_args()

    warmup = a.warmup if a.warmup is not None else a.seconds / 3
    if (a.seconds - warmup) / a.round < 6:
        raise SystemExit("soak: too short: under 6 rounds after the "
                         "warm-up")
    ex = os.path.join(a.build, "examples")
    logs = os.path.join(a.build, "soak")
    os.makedirs(logs, exist_ok=True)
    # What the programs say on stderr (the stall detector's reports on a
    # loaded machine, say) goes to BUILD/soak/<name>.log.
    http, http_port = start_server(os.path.join(ex, "http_server"),
                                   open(os.path.join(logs, "http.log"), "w"))
    echo, echo_port = start_server(os.path.join(ex, "echo_server"),
                                   open(os.path.join(logs, "echo.log"), "w"))
    # It runs until SIGTERM, so that its rounds cover the whole soak.
    pool = subprocess.Popen([os.path.join(a.build, "tests", "soak"),
                             "--seconds", "0",
                             "--round-ms", str(int(a.round * 1000))],
                            stdout=subprocess.PIPE, text=True, bufsize=1,
                            env=dict(os.environ, **MALLOC_ENV),
                            stderr=open(os.path.join(logs, "pool.log"), "w"))
    pool_samples = []
    pool_last = [time.monotonic()]

    def read_pool():
        for line in pool.stdout:
            if line.startswith("sample "):
                d = dict(kv.split("=") for kv in line.split()[1:])
                pool_samples.append(d)
                pool_last[0] = time.monotonic()
    reader = threading.Thread(target=read_pool, daemon=True)
    reader.start()

    stats = {k: 0 for k in ("wrk", "echo", "loris", "garbage", "half",
                            "flood")}
    samples = {"http": [], "echo": []}
    print("  SOAK    %.0f s in rounds of %.0f s (warm-up %.0f s), http :%d,"
          " echo :%d, pool pid %d" % (a.seconds, a.round, warmup, http_port,
                                       echo_port,
                            pool.pid), flush=True)
    busy = a.round * 3 / 5
    hung = False
    start = time.monotonic()
    warm = 0  # the servers' samples taken in the warm-up
    rnd = -1
    while time.monotonic() - start < a.seconds:
        rnd += 1
        warming = time.monotonic() - start < warmup
        go = threading.Event()
        go.set()
        seed = rnd * 100
        threads = [
            threading.Thread(target=echo_client,
                             args=(echo_port, go, stats, seed + i))
            for i in range(4)]
        threads += [
            threading.Thread(target=slow_loris, args=(http_port, go, stats)),
            threading.Thread(target=slow_loris, args=(echo_port, go, stats)),
            threading.Thread(target=garbage,
                             args=(http_port, go, stats, seed + 10, True)),
            threading.Thread(target=garbage,
                             args=(echo_port, go, stats, seed + 11, False)),
            threading.Thread(target=half_close,
                             args=(http_port, go, stats, True)),
            threading.Thread(target=half_close,
                             args=(echo_port, go, stats, False)),
            threading.Thread(target=flood,
                             args=(http_port, go, stats, seed + 12,
                                   FLOOD * (2 if warming else 1),
                                   FLOOD_GET if warming else None)),
            threading.Thread(target=flood,
                             args=(echo_port, go, stats, seed + 13,
                                   FLOOD * (2 if warming else 1),
                                   FLOOD_ECHO if warming else None)),
        ]
        for t in threads:
            t.daemon = True
            t.start()
        wrk_chunk(http_port, max(int(busy), 1), stats)
        go.clear()
        for t in threads:
            t.join(timeout=PROBE_TIMEOUT + 10)
            if t.is_alive():
                fails.add("a client never finished (the server hangs?)")
        for p in (http, echo):
            if p.poll() is not None:
                fails.add("a server exited with %s" % p.returncode)
        if fails.errors:
            break
        err = probe(http_port, echo_port)
        if err:
            fails.add(err)
            if err.startswith("hang"):
                hung = True
            break
        settle(http.pid)
        settle(echo.pid)
        samples["http"].append(proc_sample(http.pid))
        samples["echo"].append(proc_sample(echo.pid))
        if warming:
            warm += 1
        if pool.poll() is not None and pool.returncode != 0:
            fails.add("tests/soak exited with %d" % pool.returncode)
            break
        if time.monotonic() - pool_last[0] > 120:
            fails.add("hang: tests/soak gave no sample for 120 s")
            hung = True
            break
        h, e = samples["http"][-1], samples["echo"][-1]
        print("  round %3d  http rss %6d kB fds %4d thr %2d | echo rss %6d"
              " kB fds %4d thr %2d | pool %s | wrk %d echo %d loris %d "
              "garbage %d half %d flood %d"
              % (rnd + 1, h["rss_kb"], h["fds"], h["threads"], e["rss_kb"],
                 e["fds"], e["threads"],
                 ("rss %s kB heap %s kB fds %s thr %s kids %s jobs %s "
                  "died %s"
                  % tuple(pool_samples[-1][k] for k in
                          ("rss_kb", "heap_kb", "fds", "threads",
                           "children", "jobs", "died")))
                 if pool_samples else "-",
                 stats["wrk"], stats["echo"], stats["loris"],
                 stats["garbage"], stats["half"], stats["flood"]),
              flush=True)

    if hung:
        for name, p in (("http_server", http), ("echo_server", echo),
                        ("tests/soak", pool)):
            if p.poll() is None:
                print("---- %s (pid %d) ----\n%s"
                      % (name, p.pid, backtrace(p.pid)))
    for p in (http, echo, pool):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for name, p in (("http_server", http), ("echo_server", echo)):
        try:
            rc = p.wait(timeout=30)
            if rc != 0:
                fails.add("%s exited with %d at SIGTERM" % (name, rc))
        except subprocess.TimeoutExpired:
            fails.add("%s did not exit within 30 s of SIGTERM" % name)
            p.kill()
    try:
        rc = pool.wait(timeout=a.round + 120)
        if rc != 0:
            fails.add("tests/soak exited with %d" % rc)
    except subprocess.TimeoutExpired:
        fails.add("tests/soak did not end")
        pool.kill()
    reader.join(timeout=5)

    # Drift of each figure, after the warm-up.
    series = []
    for name in ("http", "echo"):
        for k in ("rss_kb", "fds", "threads", "children"):
            series.append(("%s %s" % (name, k),
                           [s[k] for s in samples[name]]))
    for k in ("rss_kb", "fds", "threads", "children", "shmem_kb",
              "heap_kb"):
        series.append(("pool %s" % k, [int(s[k]) for s in pool_samples]))
    # tests/soak's warm-up: its samples from the same first seconds.
    pool_warm = sum(1 for s in pool_samples if float(s["t"]) < warmup)
    for name, v in series:
        d = drift_of(v, pool_warm if name.startswith("pool") else warm)
        if d is None:
            if not fails.errors:
                fails.add("%s: too few samples (%d)" % (name, len(v)))
            continue
        first, last, pct = d
        if name.endswith("heap_kb") or name.endswith("shmem_kb"):
            # Only shown. heap_kb: malloc's bytes in use, some
            # hundred KiB, where any cache not yet full shows first.
            # shmem_kb: pages of the pool's shared mapping (job slots
            # and result rings, a fixed size) that this process has
            # touched (see above MALLOC_ENV).
            print("  %-6s  %-18s %10.0f -> %10.0f  %+6.2f%%"
                  % ("info", name, first, last, pct))
            continue
        bad = pct > a.drift
        print("  %-6s  %-18s %10.0f -> %10.0f  %+6.2f%%"
              % ("DRIFT" if bad else "ok", name, first, last, pct))
        if bad:
            fails.add("%s drifted %+.2f%% (over %.1f%%)"
                      % (name, pct, a.drift))
    print("  SOAK    %.0f s: wrk %d requests, %d echoes, %d slow-loris "
          "bytes, %d garbage, %d half-closed, %d flood connections; "
          "pool %s jobs, %s died with their worker; %d errors"
          % (time.monotonic() - start, stats["wrk"], stats["echo"], stats["loris"],
             stats["garbage"], stats["half"], stats["flood"],
             pool_samples[-1]["jobs"] if pool_samples else "0",
             pool_samples[-1]["died"] if pool_samples else "0",
             len(fails.errors)))
    return 1 if fails.errors else 0


if __name__ == "__main__":
    sys.exit(main())
