/* SPDX-License-Identifier: MIT */
/*
 * echo_client.c - the load generator of the echo benchmark: C connections
 * to an echo server on 127.0.0.1, one message in flight on each.
 *
 * Design
 *   One thread and level-triggered epoll, so the client costs the same
 *   whichever server it drives; run it on a CPU of its own. It first opens
 *   every connection (at most MAX_CONNECTING handshakes at a time, so that
 *   a server's accept queue does not overflow into SYN retries), then
 *   each connection sends a --size byte message (default 64), waits for
 *   all of it to come back, checks it byte for byte and sends the next.
 *   Each message starts with the connection's number and a sequence
 *   number, so a server that mixes up connections or replays data fails
 *   the check.
 *
 *   Two modes:
 *     - measure (the default): after --warmup seconds (0.5) of traffic,
 *       count the round trips that complete in the next --seconds (5).
 *       Latencies go into a log-linear histogram (HdrHistogram's layout:
 *       buckets are at most 1/64 of their value wide, so the percentiles
 *       are within 1.6%). With --server-pid, the server's utime + stime
 *       from /proc/PID/stat is read at both ends of the window, which gives
 *       round trips per server CPU-second: on a shared machine that
 *       figure moves less than the rate.
 *     - --once: open all --conns connections, keep them all open, make
 *       one round trip on each (all sent together), then close them. This
 *       is the "10,000 concurrent connections" check. RLIMIT_NOFILE is
 *       raised to its hard limit first.
 *
 *   Output: one JSON line per figure as bench/bench.h writes them,
 *   workload "echo", impl from --impl, n = the number of connections.
 *   measure: rtt_per_s, p50_us, p99_us, client_cpu, errors, and with
 *   --server-pid also rtt_per_cpu_s and server_cpu. --once: conns_ok,
 *   wall (ms from the first connect to the last echo) and errors. The
 *   exit status is 0 without errors, 2 with some (the lines are printed
 *   anyway), 1 when nothing could be measured.
 *
 * Invariants
 *   - A connection's echo bytes never run ahead of its sent bytes:
 *     rx_off <= tx_off <= size, and rx_off == size ends the round trip.
 *   - EPOLLOUT is watched only while connecting or while a message is
 *     partly written (the want_out flag mirrors it).
 *
 * Concurrency
 *   - One thread; no shared state.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

#define MAX_EVENTS 1024
#define MAX_CONNECTING 256
#define CONNECT_LIMIT_NS (60 * 1000000000LL)
#define ONCE_LIMIT_NS (60 * 1000000000LL)

/* Histogram: values below SUB exactly, then SUB/2 buckets per power of 2. */
#define SUB_BITS 7
#define SUB (1 << SUB_BITS)
#define HIST_LEN (SUB + (64 - SUB_BITS) * (SUB / 2))

enum state {
	S_CONNECTING,
	S_IDLE, /* connected, no message yet */
	S_BUSY, /* a message is out */
	S_DONE, /* --once: its round trip is done */
	S_DEAD,
};

struct conn {
	int fd;
	enum state state;
	int want_out;
	size_t tx_off, rx_off;
	uint64_t seq;
	int64_t sent_ns;
	char *tx, *rx;
};

struct client_opts {
	long port, conns, size, server_pid;
	double seconds, warmup;
	const char *impl;
	int once;
};

static struct conn *conns;
static struct client_opts opt = { .port = -1,
				  .conns = 1,
				  .size = 64,
				  .server_pid = 0,
				  .seconds = 5,
				  .warmup = 0.5,
				  .impl = "server",
				  .once = 0 };
static int ep;
static long errors, live;
static uint64_t hist[HIST_LEN];

static const char usage[] =
	"--port P [--conns C] [--seconds S] [--warmup S] [--size B] "
	"[--impl NAME] [--server-pid PID] [--once]";

static unsigned hist_index(uint64_t v)
{
	unsigned shift;

	if (v < SUB)
		return (unsigned)v;
	shift = (unsigned)(63 - __builtin_clzll(v)) - (SUB_BITS - 1);
	return SUB + (shift - 1) * (SUB / 2) +
	       (unsigned)((v >> shift) - SUB / 2);
}

/* The middle of bucket i. */
static double hist_value(unsigned i)
{
	unsigned shift, top;

	if (i < SUB)
		return i;
	shift = (i - SUB) / (SUB / 2) + 1;
	top = (i - SUB) % (SUB / 2) + SUB / 2;
	return ((double)top + 0.5) * (double)(1ull << shift);
}

/* The value below which a fraction q of the samples lie. */
static double hist_quantile(double q)
{
	uint64_t total = 0, want, seen = 0;
	unsigned i;

	for (i = 0; i < HIST_LEN; i++)
		total += hist[i];
	if (!total)
		return 0;
	want = (uint64_t)(q * (double)total);
	if ((double)want < q * (double)total || want < 1)
		want++;
	for (i = 0; i < HIST_LEN; i++) {
		seen += hist[i];
		if (seen >= want)
			return hist_value(i);
	}
	return hist_value(HIST_LEN - 1);
}

static double parse_seconds(const char *name, const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= 0) || v > 86400)
		bench_die("%s wants seconds, not '%s'", name, s);
	return v;
}

static void parse(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		const char *arg = argv[i], *eq = strchr(arg, '='), *val;
		size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
		char name[32];

		if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
			printf("usage: %s %s\n", argv[0], usage);
			exit(0);
		}
		if (!strcmp(arg, "--once")) {
			opt.once = 1;
			continue;
		}
		if (len >= sizeof(name))
			bench_die("bad option '%s'; usage: %s", arg, usage);
		memcpy(name, arg, len);
		name[len] = '\0';
		if (eq)
			val = eq + 1;
		else if (i + 1 < argc)
			val = argv[++i];
		else
			bench_die("%s wants a value; usage: %s", name, usage);
		if (!strcmp(name, "--port"))
			opt.port = bench_parse_long(name, val);
		else if (!strcmp(name, "--conns"))
			opt.conns = bench_parse_long(name, val);
		else if (!strcmp(name, "--size"))
			opt.size = bench_parse_long(name, val);
		else if (!strcmp(name, "--server-pid"))
			opt.server_pid = bench_parse_long(name, val);
		else if (!strcmp(name, "--seconds"))
			opt.seconds = parse_seconds(name, val);
		else if (!strcmp(name, "--warmup"))
			opt.warmup = parse_seconds(name, val);
		else if (!strcmp(name, "--impl"))
			opt.impl = val;
		else
			bench_die("bad option '%s'; usage: %s", name, usage);
	}
	if (opt.port < 1 || opt.port > 65535)
		bench_die("--port wants a port in [1, 65535]; usage: %s",
			  usage);
	if (opt.conns < 1 || opt.size < 1 || opt.size > (1 << 20))
		bench_die("--conns wants at least 1, --size 1 to 1 MiB");
	if (!opt.once && opt.seconds <= 0)
		bench_die("--seconds must be above 0");
}

/* utime + stime of a process, in seconds; -1 if it cannot be read. */
static double proc_cpu_seconds(long pid)
{
	char path[64], buf[1024], *p;
	unsigned long long utime, stime;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* The command name may hold spaces and parentheses: skip past the
	 * last ')'. Then come fields 3 (state) to 13; utime and stime are
	 * fields 14 and 15. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1,
			 " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu "
			 "%llu",
			 &utime, &stime) != 2)
		return -1;
	return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void raise_nofile(long need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		bench_die("getrlimit: %s", strerror(errno));
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)need + 16 > rl.rlim_cur)
		bench_die("%ld connections need more descriptors than the "
			  "hard limit of %llu (ulimit -Hn)",
			  need, (unsigned long long)rl.rlim_cur);
}

static void watch(struct conn *c, int op, int want_out)
{
	struct epoll_event ev = {
		.events = EPOLLIN | (want_out ? EPOLLOUT : 0),
		.data.u64 = (uint64_t)(c - conns),
	};

	if (epoll_ctl(ep, op, c->fd, &ev) < 0)
		bench_die("epoll_ctl: %s", strerror(errno));
	c->want_out = want_out;
}

static void fail(struct conn *c, const char *what, int err)
{
	if (errors < 5)
		fprintf(stderr, "echo_client: connection %ld: %s%s%s\n",
			(long)(c - conns), what, err ? ": " : "",
			err ? strerror(err) : "");
	errors++;
	if (c->state != S_CONNECTING)
		live--;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->state = S_DEAD;
}

static void start_connect(struct conn *c)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)opt.port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int one = 1;

	c->state = S_CONNECTING;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		fail(c, "socket", errno);
		return;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 &&
	    errno != EINPROGRESS) {
		fail(c, "connect", errno);
		return;
	}
	/* Completion, even an immediate one, is reported as EPOLLOUT. */
	watch(c, EPOLL_CTL_ADD, 1);
}

/* Returns 1 if the handshake has ended, well or not. */
static int finish_connect(struct conn *c, uint32_t events)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
		return 0;
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		fail(c, "connect", err);
		return 1;
	}
	c->state = S_IDLE;
	live++;
	watch(c, EPOLL_CTL_MOD, 0);
	return 1;
}

static void write_some(struct conn *c)
{
	ssize_t n =
		write(c->fd, c->tx + c->tx_off, (size_t)opt.size - c->tx_off);

	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			fail(c, "write", errno);
		else if (!c->want_out)
			watch(c, EPOLL_CTL_MOD, 1);
		return;
	}
	c->tx_off += (size_t)n;
	if (c->tx_off < (size_t)opt.size) {
		if (!c->want_out)
			watch(c, EPOLL_CTL_MOD, 1);
	} else if (c->want_out) {
		watch(c, EPOLL_CTL_MOD, 0);
	}
}

static void send_message(struct conn *c, int64_t now)
{
	uint64_t id = (uint64_t)(c - conns);

	c->seq++;
	if (opt.size >= 16) {
		memcpy(c->tx, &id, 8);
		memcpy(c->tx + 8, &c->seq, 8);
	}
	c->tx_off = c->rx_off = 0;
	c->sent_ns = now;
	c->state = S_BUSY;
	write_some(c);
}

/*
 * Read what has come back on c. Returns the round-trip time in ns when the
 * whole echo is in, else -1.
 */
static int64_t read_some(struct conn *c)
{
	ssize_t n;
	int64_t now;

	if (c->state != S_BUSY) {
		/* Nothing is due: anything readable is an error or EOF. */
		char b;

		n = read(c->fd, &b, 1);
		if (n > 0)
			fail(c, "data nobody asked for", 0);
		else if (n == 0 || (errno != EAGAIN && errno != EINTR))
			fail(c, "closed by the server", n ? errno : 0);
		return -1;
	}
	n = read(c->fd, c->rx + c->rx_off, c->tx_off - c->rx_off);
	if (n <= 0) {
		if (n == 0)
			fail(c, "closed by the server", 0);
		else if (errno != EAGAIN && errno != EINTR)
			fail(c, "read", errno);
		return -1;
	}
	c->rx_off += (size_t)n;
	if (c->rx_off < (size_t)opt.size)
		return -1;
	now = bench_now_ns();
	if (memcmp(c->rx, c->tx, (size_t)opt.size)) {
		fail(c, "the echo differs from the message", 0);
		return -1;
	}
	return now - c->sent_ns;
}

static void on_event(struct conn *c, uint32_t events, int64_t t0, int64_t t1,
		     long *count)
{
	int64_t rtt;

	if (c->state == S_DEAD)
		return;
	if (c->want_out && (events & EPOLLOUT) && c->state == S_BUSY)
		write_some(c);
	if (c->state == S_DEAD || !(events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
		return;
	rtt = read_some(c);
	if (rtt < 0)
		return;
	/* The round trip ended at sent_ns + rtt. */
	if (opt.once) {
		c->state = S_DONE;
		++*count;
		return;
	}
	if (c->sent_ns + rtt >= t0 && c->sent_ns + rtt < t1) {
		hist[hist_index((uint64_t)rtt)]++;
		++*count;
	}
	send_message(c, c->sent_ns + rtt);
}

/* Open every connection. Returns how many are up. */
static long connect_all(void)
{
	static struct epoll_event evs[MAX_EVENTS];
	int64_t limit = bench_now_ns() + CONNECT_LIMIT_NS;
	long next = 0, connecting = 0, i;
	int n, k;

	while (next < opt.conns || connecting) {
		while (next < opt.conns && connecting < MAX_CONNECTING) {
			start_connect(&conns[next++]);
			if (conns[next - 1].state == S_CONNECTING)
				connecting++;
		}
		if (!connecting)
			continue;
		n = epoll_wait(ep, evs, MAX_EVENTS, 1000);
		if (n < 0 && errno != EINTR)
			bench_die("epoll_wait: %s", strerror(errno));
		for (k = 0; k < n; k++) {
			struct conn *c = &conns[evs[k].data.u64];

			if (c->state == S_CONNECTING &&
			    finish_connect(c, evs[k].events))
				connecting--;
		}
		if (bench_now_ns() > limit) {
			for (i = 0; i < next; i++)
				if (conns[i].state == S_CONNECTING)
					fail(&conns[i], "connect timed out", 0);
			errors += opt.conns - next;
			break;
		}
	}
	return live;
}

static void report(const char *metric, const char *unit, double v, int argc,
		   char **argv)
{
	bench_report("echo", opt.impl, metric, unit, opt.conns, 1, v, argc,
		     argv);
}

static void run_once(int64_t started, int argc, char **argv)
{
	static struct epoll_event evs[MAX_EVENTS];
	int64_t now = bench_now_ns(), limit = now + ONCE_LIMIT_NS;
	long i, done = 0;
	int n, k;

	for (i = 0; i < opt.conns; i++)
		if (conns[i].state == S_IDLE)
			send_message(&conns[i], now);
	while (done < live) {
		n = epoll_wait(ep, evs, MAX_EVENTS, 1000);
		if (n < 0 && errno != EINTR)
			bench_die("epoll_wait: %s", strerror(errno));
		for (k = 0; k < n; k++)
			on_event(&conns[evs[k].data.u64], evs[k].events, 0, 0,
				 &done);
		if (bench_now_ns() > limit) {
			for (i = 0; i < opt.conns; i++)
				if (conns[i].state == S_BUSY)
					fail(&conns[i], "no echo in time", 0);
			break;
		}
	}
	now = bench_now_ns();
	report("conns_ok", "conns", (double)done, argc, argv);
	report("wall", "ms", (double)(now - started) / 1e6, argc, argv);
	report("errors", "count", (double)errors, argc, argv);
}

static void run_measure(int argc, char **argv)
{
	static struct epoll_event evs[MAX_EVENTS];
	int64_t now = bench_now_ns();
	int64_t t0 = now + (int64_t)(opt.warmup * 1e9);
	int64_t t1 = t0 + (int64_t)(opt.seconds * 1e9);
	double cpu0 = 0, cpu1 = 0, self0 = 0, window;
	int in_window = 0, n, k, ms;
	long i, count = 0;

	for (i = 0; i < opt.conns; i++)
		if (conns[i].state == S_IDLE)
			send_message(&conns[i], now);
	for (;;) {
		now = bench_now_ns();
		if (!in_window && now >= t0) {
			in_window = 1;
			self0 = self_cpu_seconds();
			if (opt.server_pid)
				cpu0 = proc_cpu_seconds(opt.server_pid);
		}
		if (now >= t1)
			break;
		if (!live)
			bench_die("every connection has failed");
		ms = (int)(((in_window ? t1 : t0) - now + 999999) / 1000000);
		n = epoll_wait(ep, evs, MAX_EVENTS, ms);
		if (n < 0 && errno != EINTR)
			bench_die("epoll_wait: %s", strerror(errno));
		for (k = 0; k < n; k++)
			on_event(&conns[evs[k].data.u64], evs[k].events, t0, t1,
				 &count);
	}
	window = (double)(t1 - t0) / 1e9;
	if (opt.server_pid)
		cpu1 = proc_cpu_seconds(opt.server_pid);
	report("rtt_per_s", "rt/s", (double)count / window, argc, argv);
	report("p50_us", "us", hist_quantile(0.50) / 1e3, argc, argv);
	report("p99_us", "us", hist_quantile(0.99) / 1e3, argc, argv);
	if (opt.server_pid && cpu0 >= 0 && cpu1 > cpu0) {
		report("rtt_per_cpu_s", "rt/CPU-s",
		       (double)count / (cpu1 - cpu0), argc, argv);
		report("server_cpu", "%", 100 * (cpu1 - cpu0) / window, argc,
		       argv);
	} else if (opt.server_pid) {
		fprintf(stderr, "echo_client: no CPU time for pid %ld\n",
			opt.server_pid);
	}
	report("client_cpu", "%", 100 * (self_cpu_seconds() - self0) / window,
	       argc, argv);
	report("errors", "count", (double)errors, argc, argv);
}

int main(int argc, char **argv)
{
	int64_t started;
	size_t size;
	long i;
	char *bufs;

	parse(argc, argv);
	raise_nofile(opt.conns);
	signal(SIGPIPE, SIG_IGN);
	size = (size_t)opt.size;
	conns = calloc((size_t)opt.conns, sizeof(*conns));
	bufs = malloc(2 * size * (size_t)opt.conns);
	if (!conns || !bufs)
		bench_die("out of memory for %ld connections", opt.conns);
	for (i = 0; i < opt.conns; i++) {
		struct conn *c = &conns[i];
		size_t k;

		c->fd = -1;
		c->tx = bufs + 2 * size * (size_t)i;
		c->rx = c->tx + size;
		for (k = 0; k < size; k++)
			c->tx[k] = (char)('a' + (i + (long)k) % 26);
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		bench_die("epoll_create1: %s", strerror(errno));

	started = bench_now_ns();
	if (!connect_all())
		bench_die("no connection to 127.0.0.1:%ld (%ld errors)",
			  opt.port, errors);
	if (opt.once)
		run_once(started, argc, argv);
	else
		run_measure(argc, argv);
	return errors ? 2 : 0;
}
