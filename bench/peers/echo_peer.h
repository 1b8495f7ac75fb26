/* SPDX-License-Identifier: MIT */
/*
 * echo_peer.h - what the C echo peers share: options, the listening socket,
 * the ready line and the signals that stop them.
 *
 * Design
 *   Every echo server in the benchmark, braid's included, looks the same
 *   from outside, so that scripts/bench_net.py can drive them alike:
 *     - "--port N" (0 lets the kernel pick) and "--max-seconds S" (stop by
 *       itself after S seconds; 0, the default, means never);
 *     - it listens on 127.0.0.1 only;
 *     - once it accepts connections it prints "listening on
 *       127.0.0.1:PORT" on stdout and flushes it;
 *     - SIGINT and SIGTERM make it exit with status 0.
 *   The epoll and io_uring peers block SIGINT, SIGTERM and the SIGALRM of
 *   --max-seconds and read them from a signalfd in their own event loop, so
 *   a signal cannot slip in between a flag check and a wait. libuv has its
 *   own signal handles and uses only the option, socket and ready helpers.
 *
 * Invariants
 *   - Accepted sockets get TCP_NODELAY, as Go's net package does by
 *     default, so no peer waits on Nagle's algorithm.
 *
 * Concurrency
 *   - Single-threaded programs; everything here runs on the main thread.
 */
#ifndef ECHO_PEER_H
#define ECHO_PEER_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

struct peer_opts {
	int port;
	unsigned max_seconds;
};

static inline void peer_die(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

static inline void peer_die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static inline long peer_number(const char *opt, const char *s, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > max)
		peer_die("%s wants an integer in [0, %ld], not '%s'", opt, max,
			 s);
	return v;
}

/* Parse "--port N" and "--max-seconds S" ("--opt=value" also works). */
static inline void peer_parse(struct peer_opts *o, int argc, char **argv)
{
	int i;

	o->port = 0;
	o->max_seconds = 0;
	for (i = 1; i < argc; i++) {
		const char *arg = argv[i], *eq = strchr(arg, '='), *val;
		size_t len = eq ? (size_t)(eq - arg) : strlen(arg);

		if (eq)
			val = eq + 1;
		else if (i + 1 < argc)
			val = argv[++i];
		else
			val = NULL;
		if (val && len == 6 && !strncmp(arg, "--port", len))
			o->port = (int)peer_number("--port", val, 65535);
		else if (val && len == 13 &&
			 !strncmp(arg, "--max-seconds", len))
			o->max_seconds = (unsigned)peer_number("--max-seconds",
							       val, 86400);
		else
			peer_die("usage: %s [--port N] [--max-seconds S]",
				 argv[0]);
	}
}

/*
 * Let the process hold as many descriptors as the hard limit allows: the
 * benchmark holds 10,000 connections open at once.
 */
static inline void peer_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* A non-blocking socket listening on 127.0.0.1:port, with a full backlog. */
static inline int peer_listen(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		peer_die("socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		peer_die("bind 127.0.0.1:%d: %s", port, strerror(errno));
	/* The kernel caps the backlog at net.core.somaxconn. */
	if (listen(fd, 65535) < 0)
		peer_die("listen: %s", strerror(errno));
	return fd;
}

/* Print the ready line with the port the socket really has. */
static inline void peer_ready(int fd)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);

	if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		peer_die("getsockname: %s", strerror(errno));
	printf("listening on 127.0.0.1:%d\n", ntohs(sa.sin_port));
	fflush(stdout);
}

static inline void peer_nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/*
 * Block SIGINT, SIGTERM and SIGALRM and return a non-blocking signalfd
 * that reports them; arm SIGALRM after max_seconds when it is not 0.
 */
static inline int peer_signalfd(unsigned max_seconds)
{
	sigset_t set;
	int fd;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGALRM);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		peer_die("sigprocmask: %s", strerror(errno));
	fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		peer_die("signalfd: %s", strerror(errno));
	if (max_seconds)
		alarm(max_seconds);
	return fd;
}

/* Say why the server stops; SIGALRM means --max-seconds ran out. */
static inline void peer_stopping(const struct signalfd_siginfo *si)
{
	if (si->ssi_signo == SIGALRM)
		fprintf(stderr, "stopping: --max-seconds reached\n");
}

#endif /* ECHO_PEER_H */
