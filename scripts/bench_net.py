# SPDX-License-Identifier: MIT
"""bench_net.py - the echo and http workloads of scripts/bench.py.

Each configuration starts one server pinned to one CPU, waits until it
is ready, drives it from a load generator pinned to another CPU, reads
the server's CPU time, and stops it. The runner treats these
configurations like its other ones (see Config in bench.py): they have
.missing() and .run(env, timeout), and .run returns the same JSON lines
bench/bench.h prints.

  echo   bench/echo_client against braid's examples/echo_server and the
         epoll, liburing, libuv and Go peers in bench/peers/; C=1 and
         C=64 connections with one 64-byte message in flight on each,
         then C=10,000 connections open at once with one round trip on
         each (--once).
  http   wrk -t1 -c64 --latency against braid's examples/http_server,
         nginx (one process, configuration written into build/bench/)
         and Go's net/http.

What a server must do to be driven (braid's examples included): take
--port N; listen on 127.0.0.1:N only; print "listening on
127.0.0.1:N" on stdout and flush it once it accepts connections (nginx
prints nothing and is polled with connects instead); exit with status 0
on SIGTERM. The peers also take --max-seconds S, a safety stop.

Servers never outlive the runner: each is started with
PR_SET_PDEATHSIG=SIGTERM, stopped with SIGTERM (SIGKILL after 5 s) in a
finally block, and the peers get --max-seconds. Only the pid started is
ever signalled.

Each figure is one measurement window, so the rounds of bench.py give
the spread. These workloads take 3 rounds by default (NET_RUNS) rather
than 5: an echo configuration lasts about 6 s, an http one about 11 s.
"""

import ctypes
import http.client
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import time

BIN = "build/release/bench"
EXAMPLES = "build/release/examples"
STATE = "build/bench/net"
NET_RUNS = 3
READY_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0

# Durations in seconds: (echo window, echo warm-up, http), normal and
# --quick.
DURATIONS = {False: (5, 0.5, 10), True: (2, 0.5, 3)}
ECHO_CONNS = (1, 64)
ECHO_MANY = 10000
HTTP_CONNS = 64

LABELS = {
    ("echo", "rtt_per_s"): "echo C={n:,}, round trips per second",
    ("echo", "rtt_per_cpu_s"): "echo C={n:,}, round trips per server "
                               "CPU-second",
    ("echo", "p50_us"): "echo C={n:,}, median round trip",
    ("echo", "p99_us"): "echo C={n:,}, 99th-percentile round trip",
    ("echo", "server_cpu"): "echo C={n:,}, server CPU",
    ("echo", "client_cpu"): "echo C={n:,}, client CPU",
    ("echo", "conns_ok"): "{n:,} connections open at once, round trips "
                          "completed",
    ("echo", "wall"): "{n:,} connections: connect all, one round trip "
                      "each, wall time",
    ("echo", "errors"): "echo C={n:,}, errors",
    ("http", "req_per_s"): "HTTP GET / (wrk, {n} connections), requests "
                           "per second",
    ("http", "req_per_cpu_s"): "HTTP GET /, requests per server CPU-second",
    ("http", "p50_us"): "HTTP GET /, median latency",
    ("http", "p99_us"): "HTTP GET /, 99th-percentile latency",
    ("http", "server_cpu"): "HTTP GET /, server CPU",
    ("http", "errors"): "HTTP GET /, errors",
}

# Metrics where more is better; every other one is lower-is-better.
HIGHER_IS_BETTER = {
    ("echo", "rtt_per_s"), ("echo", "rtt_per_cpu_s"), ("echo", "conns_ok"),
    ("http", "req_per_s"), ("http", "req_per_cpu_s"),
}

# Figures that describe a run rather than rank it: no ratio.
NO_RATIO = {("echo", "server_cpu"), ("echo", "client_cpu"),
            ("echo", "errors"), ("http", "server_cpu"), ("http", "errors")}

# Kept in the JSON and the terminal table, left out of the markdown table;
# errors are shown there only when some run had any.
NOT_IN_MARKDOWN = {("echo", "server_cpu"), ("echo", "client_cpu"),
                   ("http", "server_cpu")}
ONLY_IF_NONZERO = {("echo", "errors"), ("http", "errors")}

NOTES = {
    ("echo", "rtt_per_s", 1):
        "Echo and HTTP: the server runs on one CPU and the load generator "
        "(bench/echo_client, one epoll thread; wrk -t1) on the other, so "
        "at C=64 either side may be the bottleneck. Loopback figures on a "
        "shared VM move between runs; the per-server-CPU-second rows move "
        "less.",
    ("http", "req_per_s", 1):
        "HTTP: one wrk thread on one core tops out near the fastest "
        "server's rate, so requests per server CPU-second separates the "
        "servers better than requests per second.",
}

PEER_NAMES = {
    "epoll": "plain epoll (C)",
    "uring": "liburing (C)",
    "libuv": "libuv",
    "nginx": "nginx, 1 process",
    ("echo", "go"): "Go net, goroutine per connection",
    ("http", "go"): "Go net/http",
}


def higher_is_better(workload, metric):
    return (workload, metric) in HIGHER_IS_BETTER


def cpus():
    """(server CPU, client CPU), or (None, None) with fewer than 2 CPUs."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None, None
    return allowed[0], allowed[1]


def pinning_text():
    s, c = cpus()
    if s is None:
        return "none (echo and http: only one CPU, not pinned)"
    return ("none, except echo and http: server on CPU %d, load generator "
            "on CPU %d" % (s, c))


def raise_nofile():
    """Let the servers and the client hold 10,000 connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


_libc = None


def child_setup(cpu):
    """preexec_fn: die with the runner, and run on one CPU."""
    def setup():
        global _libc
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        _libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:
            os._exit(1)  # the runner is already gone
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
    return setup


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path, lines=3):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(f.read().strip().splitlines()[-lines:])
    except OSError:
        return ""


def line(workload, impl, metric, unit, n, threads, value, cmd):
    """One measurement in bench.h's shape."""
    return {"workload": workload, "impl": impl, "metric": metric,
            "unit": unit, "n": n, "threads": threads, "median": value,
            "min": value, "max": value, "runs": 1, "values": [value],
            "cmd": cmd}


def proc_cpu_seconds(pid):
    """utime + stime of pid in seconds (all its threads), or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    # fields[0] is field 3 of proc(5); utime and stime are fields 14, 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def nginx_binary():
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


NGINX_CONF = """\
# Written by scripts/bench_net.py for one benchmark run.
worker_processes 1;
master_process off;
daemon off;
pid nginx.pid;
error_log error.log warn;
events {
    worker_connections 20000;
}
http {
    access_log off;
    default_type text/plain;
    keepalive_requests 1000000000;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    server {
        listen 127.0.0.1:%(port)d;
        location = / {
            return 200 "hello";
        }
        location / {
            return 404;
        }
    }
}
"""


class Server:
    """How to start one server on a given port."""

    def __init__(self, name, prog, args, env=None, max_seconds=None,
                 ready="line", prepare=None):
        self.name = name
        self.prog = prog
        self.args = args
        self.env = env or {}
        self.max_seconds = max_seconds
        self.ready = ready  # "line" or "connect"
        self.prepare = prepare

    def argv(self, port):
        a = [self.prog] + [str(x).replace("{port}", str(port))
                           for x in self.args]
        if self.max_seconds:
            a += ["--max-seconds", str(self.max_seconds)]
        return a

    def missing(self):
        if not self.prog or not os.access(self.prog, os.X_OK):
            return "%s not built or not installed" % (self.prog or self.name)
        return None


def nginx_server():
    prefix = os.path.join(STATE, "nginx")

    def prepare(port):
        os.makedirs(os.path.join(prefix, "tmp"), exist_ok=True)
        with open(os.path.join(prefix, "nginx.conf"), "w") as f:
            f.write(NGINX_CONF % {"port": port})

    # nginx has no --max-seconds; the death signal and the runner's
    # finally block stop it.
    return Server("nginx", nginx_binary(),
                  ["-p", os.path.abspath(prefix) + "/", "-c", "nginx.conf",
                   "-e", "error.log"], ready="connect", prepare=prepare)


class Running:
    """A started server; a context manager that always stops it."""

    def __init__(self, server, env, cpu, workload):
        self.server = server
        self.env = env
        self.cpu = cpu
        self.log = os.path.join(STATE, "%s-%s" % (workload, server.name))
        self.proc = None
        self.port = None
        self.stop_error = None

    def start(self):
        """Start the server and wait until it is ready. Returns an error."""
        os.makedirs(STATE, exist_ok=True)
        for _ in range(3):
            err, exited = self._start_once(free_port())
            # A server that exits at once may have lost the free port to
            # another program: try another. One that hangs is not retried.
            if err is None or not exited:
                break
        return err

    def _start_once(self, port):
        """One attempt on port: (error or None, whether the server exited)."""
        s = self.server
        if s.prepare:
            s.prepare(port)
        e = dict(self.env)
        e.update(s.env)
        with open(self.log + ".out", "w") as out, \
                open(self.log + ".err", "w") as err:
            self.proc = subprocess.Popen(
                s.argv(port), stdin=subprocess.DEVNULL, stdout=out,
                stderr=err, env=e, preexec_fn=child_setup(self.cpu))
        self.port = port
        want = "listening on 127.0.0.1:%d" % port
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                return ("%s exited with status %d before it was ready: %s" %
                        (s.name, rc, tail(self.log + ".err")), True)
            if s.ready == "line":
                try:
                    with open(self.log + ".out") as f:
                        if want in f.read():
                            return None, False
                except OSError:
                    pass
            else:
                try:
                    socket.create_connection(("127.0.0.1", port),
                                             timeout=0.5).close()
                    return None, False
                except OSError:
                    pass
            time.sleep(0.02)
        self.stop()
        return ("%s was not ready within %g s (%s)" %
                (s.name, READY_TIMEOUT, "no line \"%s\"" % want
                 if s.ready == "line" else "no connection"), False)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        p, self.proc = self.proc, None
        if p is None:
            return
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                self.stop_error = ("%s did not exit within %g s of SIGTERM"
                                   % (self.server.name, STOP_TIMEOUT))
                return
        if p.returncode not in (0, -signal.SIGTERM):
            self.stop_error = "%s exited with status %d on SIGTERM: %s" % (
                self.server.name, p.returncode, tail(self.log + ".err"))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


class NetConfig:
    """One server, one client run against it."""

    max_runs = NET_RUNS

    def __init__(self, workload, impl, threads, n, server, client):
        self.workload = workload
        self.impl = impl
        self.threads = threads
        self.n = n
        self.server = server
        self.client = client  # ("echo", args) or ("wrk", seconds)

    def client_argv(self, port, pid):
        kind, a = self.client
        if kind == "echo":
            return ([BIN + "/echo_client", "--port", str(port), "--conns",
                     str(self.n), "--impl", self.impl] +
                    (["--server-pid", str(pid)] if pid else []) +
                    [str(x) for x in a])
        return [shutil.which("wrk") or "wrk", "-t1", "-c%d" % self.n,
                "-d%ds" % a, "--latency", "http://127.0.0.1:%s/" % port]

    def text(self):
        s, c = cpus()
        srv = " ".join(self.server.argv("PORT"))
        env = " ".join("%s=%s" % kv for kv in sorted(self.server.env.items()))
        cli = " ".join(self.client_argv("PORT", "PID"))
        if s is not None:
            srv = "taskset -c %d %s" % (s, srv)
            cli = "taskset -c %d %s" % (c, cli)
        return "%s%s & %s" % (env + " " if env else "", srv, cli)

    def missing(self):
        why = self.server.missing()
        if why:
            return why
        if self.client[0] == "echo":
            if not os.access(BIN + "/echo_client", os.X_OK):
                return BIN + "/echo_client not built"
        elif not shutil.which("wrk"):
            return "wrk not installed (apt-get install wrk)"
        return None

    def run(self, env, timeout):
        """Run once. Returns (lines, error); lines may come with an error."""
        raise_nofile()
        scpu, ccpu = cpus()
        with Running(self.server, env, scpu, self.workload) as srv:
            err = srv.start()
            if err:
                return [], err
            if self.client[0] == "echo":
                lines, err = self._echo(srv, env, ccpu, timeout)
            else:
                lines, err = self._http(srv, env, ccpu, timeout)
            if not err and not srv.alive():
                err = "the server died during the run: " + tail(
                    srv.log + ".err")
            srv.stop()
            err = err or srv.stop_error
        for d in lines:
            d["threads"] = self.threads
            d["cmd"] = self.text()
        return lines, err

    def _client(self, argv, env, cpu, timeout):
        return subprocess.run(argv, cwd=os.getcwd(), env=env,
                              stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout,
                              preexec_fn=child_setup(cpu))

    def _echo(self, srv, env, cpu, timeout):
        argv = self.client_argv(srv.port, srv.proc.pid)
        try:
            r = self._client(argv, env, cpu, timeout)
        except subprocess.TimeoutExpired:
            return [], "echo_client timed out after %g s" % timeout
        lines = []
        for text in r.stdout.splitlines():
            if text.startswith("{"):
                try:
                    lines.append(json.loads(text))
                except ValueError:
                    return [], "bad JSON line: " + text[:200]
        stderr = " | ".join(r.stderr.strip().splitlines()[-3:])
        if r.returncode == 2 and lines:
            return lines, "echo_client saw errors: " + stderr
        if r.returncode != 0 or not lines:
            return [], "echo_client exit %d: %s" % (r.returncode, stderr)
        return lines, None

    def _http(self, srv, env, cpu, timeout):
        err = check_http(srv.port)
        if err:
            return [], "%s: %s" % (self.server.name, err)
        pid = srv.proc.pid
        argv = self.client_argv(srv.port, pid)
        cpu0, t0 = proc_cpu_seconds(pid), time.monotonic()
        try:
            r = self._client(argv, env, cpu, timeout)
        except subprocess.TimeoutExpired:
            return [], "wrk timed out after %g s" % timeout
        cpu1, t1 = proc_cpu_seconds(pid), time.monotonic()
        if r.returncode != 0:
            return [], "wrk exit %d: %s" % (r.returncode, r.stderr.strip())
        got = parse_wrk(r.stdout)
        if got is None:
            return [], "cannot read wrk's output: " + r.stdout[-300:]

        def mk(metric, unit, v):
            return line("http", self.impl, metric, unit, self.n,
                        self.threads, v, "")

        lines = [mk("req_per_s", "req/s", got["req_per_s"]),
                 mk("p50_us", "us", got["p50_us"]),
                 mk("p99_us", "us", got["p99_us"]),
                 mk("errors", "count", got["errors"])]
        if cpu0 is not None and cpu1 is not None and cpu1 > cpu0:
            lines.append(mk("req_per_cpu_s", "req/CPU-s",
                            got["requests"] / (cpu1 - cpu0)))
            lines.append(mk("server_cpu", "%",
                            100 * (cpu1 - cpu0) / (t1 - t0)))
        if got["errors"]:
            return lines, "wrk counted %d errors" % got["errors"]
        return lines, None


def check_http(port):
    """GET / must give 200 "hello", GET /nope 404, on one connection."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/")
        r = c.getresponse()
        body = r.read()
        if r.status != 200 or body != b"hello":
            return "GET / gave %d %r, not 200 'hello'" % (r.status,
                                                          body[:40])
        c.request("GET", "/nope")
        r = c.getresponse()
        r.read()
        if r.status != 404:
            return "GET /nope gave %d, not 404" % r.status
        c.close()
    except (OSError, http.client.HTTPException) as ex:
        return "HTTP check failed: %s" % ex
    return None


_UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6}


def parse_wrk(out):
    """req/s, p50 and p99 in us, total requests and errors from wrk."""
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    total = re.search(r"^\s*(\d+) requests in ", out, re.M)
    pct = {m.group(1): float(m.group(2)) * _UNITS[m.group(3)]
           for m in re.finditer(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$",
                                out, re.M)}
    if not rate or not total or "50" not in pct or "99" not in pct:
        return None
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                  r"timeout (\d+)", out)
    if m:
        errors += sum(int(g) for g in m.groups())
    return {"req_per_s": float(rate.group(1)), "requests": int(total.group(1)),
            "p50_us": pct["50"], "p99_us": pct["99"], "errors": errors}


def configs(quick):
    """The echo and http configurations."""
    secs, warm, http_secs = DURATIONS[quick]
    peers = BIN + "/peers"
    # The peers' safety stop: well past the longest run.
    stop_after = int(max(secs + warm, http_secs)) + 60
    go_env = {"GOMAXPROCS": "1"}

    def peer(name, prog, env=None):
        return Server(name, peers + "/" + prog, ["--port", "{port}"], env,
                      max_seconds=stop_after)

    def braid(prog):
        return Server("braid", EXAMPLES + "/" + prog,
                      ["--port", "{port}", "--workers", 1])

    echo = [braid("echo_server"), peer("epoll", "echo_epoll"),
            peer("uring", "echo_uring"), peer("libuv", "echo_uv"),
            peer("go", "echo_go", go_env)]
    out = []
    for s in echo:
        for c in ECHO_CONNS:
            out.append(NetConfig("echo", s.name, 1, c, s,
                                 ("echo", ["--seconds", secs,
                                           "--warmup", warm])))
        out.append(NetConfig("echo", s.name, 1, ECHO_MANY, s,
                             ("echo", ["--once"])))
    for s in (braid("http_server"), nginx_server(),
              peer("go", "http_go", go_env)):
        out.append(NetConfig("http", s.name, 1, HTTP_CONNS, s,
                             ("wrk", http_secs)))
    return out
