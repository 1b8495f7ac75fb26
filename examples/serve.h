/* SPDX-License-Identifier: MIT */
/*
 * serve.h - the part every example server shares: flags, a listening
 * socket on 127.0.0.1, one acceptor task spawning a task per connection
 * (named "conn N" in stall reports and traces), connection deadlines,
 * and a clean shutdown on SIGINT or SIGTERM.
 *
 *   -p, --port N       port to listen on (default 8080; 0 picks a free one)
 *   -w, --workers N    loops (default: one per CPU)
 *   -H, --host H       address to bind (default 127.0.0.1)
 *   --head-timeout MS  servers with deadlines (struct serve.timeouts):
 *   --idle-timeout MS  what the server says they mean; 0 turns one off
 *   -h, --help         print this usage and exit
 *
 * Prints "listening on HOST:PORT" on stdout once it accepts connections.
 * The signals are blocked in every thread and read by a task from a
 * br_signal; the main thread, which waits for that task, then frees the
 * runtime: every task is cancelled, each connection task closes its
 * socket, and the process exits 0.
 *
 * Accepting: when accept fails for want of descriptors or memory
 * (EMFILE, ENFILE, ENOMEM, ENOBUFS; any error but a client that gave up
 * first), the connections already open must end before another can be
 * taken, and retrying at once only spins. The acceptor backs off
 * instead, as Go's net/http does: 5 ms, doubling up to 1 s, until an
 * accept works again. It logs the first failure of such a burst and,
 * when the burst ends, how many failures it held.
 *
 * Deadlines: a connection task links a struct serve_conn
 * (serve_conn_add) and moves its deadline as the peer makes progress
 * (serve_conn_until, a relaxed store: cheap enough for every receive).
 * A sweeper task (in servers with deadlines, even with both timeouts
 * off: a server may set deadlines of its own) wakes every tick (an
 * eighth of the shortest timeout, within 10 ms..1 s) and shuts down
 * (shutdown(2), both ways) each socket whose deadline has passed. Its
 * task then sees the end of the stream, or a failed send, and winds down
 * as if the peer had closed: no cancellation, so nothing it holds is
 * left half released. A deadline is thus kept to within a tick.
 *
 * Concurrency: the list of connections is under serve_conns.lock, a
 * pthread mutex and not a br_mutex, because a task must be able to
 * unlink itself even once cancelled (br_mutex_lock gives -ECANCELED to
 * a cancelled task that would wait), and no critical section suspends.
 * A task unlinks itself before it closes its socket, so the sweeper
 * never shuts down a descriptor that was closed and reused.
 */
#ifndef SERVE_H
#define SERVE_H

#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "braid.h"

#define SERVE_BACKOFF_MIN_MS 5	  /* the first wait after a failed accept */
#define SERVE_BACKOFF_MAX_MS 1000 /* waits double up to this */
#define SERVE_TICK_MIN_MS 10	  /* the sweeper wakes at most this often */
#define SERVE_TICK_MAX_MS 1000	  /* and at least this often */

struct serve {
	const char *name;
	void *(*conn)(void *fd); /* the connection task; owns the fd */
	br_runtime *rt;
	int lfd;
	int timeouts;	 /* takes --head-timeout and --idle-timeout */
	int64_t head_ms; /* their values, defaults set by the server; */
	int64_t idle_ms; /* 0: none */
};

/* A connection with a deadline; see "Deadlines" above. */
struct serve_conn {
	struct serve_conn *prev, *next; /* under serve_conns.lock */
	int fd;
	/* br_now_ns() by which the peer must have made progress, INT64_MAX
	 * for none; stored by the connection task, loaded by the sweeper. */
	_Atomic int64_t deadline;
};

static struct {
	pthread_mutex_t lock;
	struct serve_conn list; /* circular; list itself is the head */
} serve_conns = { PTHREAD_MUTEX_INITIALIZER,
		  { &serve_conns.list, &serve_conns.list, -1, INT64_MAX } };

/* The deadline ms milliseconds from now; none for ms <= 0. */
static inline int64_t serve_after(int64_t ms)
{
	return ms > 0 ? br_now_ns() + ms * 1000000 : INT64_MAX;
}

static inline void serve_conn_until(struct serve_conn *c, int64_t deadline)
{
	atomic_store_explicit(&c->deadline, deadline, memory_order_relaxed);
}

/* Watch connection fd with c until serve_conn_del(c). */
static inline void serve_conn_add(struct serve_conn *c, int fd,
				  int64_t deadline)
{
	c->fd = fd;
	serve_conn_until(c, deadline);
	pthread_mutex_lock(&serve_conns.lock);
	c->next = &serve_conns.list;
	c->prev = serve_conns.list.prev;
	c->prev->next = c;
	serve_conns.list.prev = c;
	pthread_mutex_unlock(&serve_conns.lock);
}

/* Stop watching c; before its socket is closed. */
static inline void serve_conn_del(struct serve_conn *c)
{
	pthread_mutex_lock(&serve_conns.lock);
	c->prev->next = c->next;
	c->next->prev = c->prev;
	pthread_mutex_unlock(&serve_conns.lock);
}

static void *serve_sweep(void *arg)
{
	const struct serve *s = arg;
	int64_t tick = INT64_MAX;

	if (s->head_ms > 0)
		tick = s->head_ms / 8;
	if (s->idle_ms > 0 && s->idle_ms / 8 < tick)
		tick = s->idle_ms / 8;
	if (tick < SERVE_TICK_MIN_MS)
		tick = SERVE_TICK_MIN_MS;
	if (tick > SERVE_TICK_MAX_MS)
		tick = SERVE_TICK_MAX_MS;
	while (br_sleep_ms(tick) == 0) {
		int64_t now = br_now_ns();
		struct serve_conn *c;

		pthread_mutex_lock(&serve_conns.lock);
		for (c = serve_conns.list.next; c != &serve_conns.list;
		     c = c->next)
			if (atomic_load_explicit(&c->deadline,
						 memory_order_relaxed) <= now)
				shutdown(c->fd, SHUT_RDWR);
		pthread_mutex_unlock(&serve_conns.lock);
	}
	return NULL;
}

static void *serve_accept(void *arg)
{
	struct serve *s = arg;
	br_acceptor *acc;
	unsigned long nconn = 0;
	unsigned long failed = 0; /* failures in this burst */
	int64_t wait_ms = 0;
	int one = 1;

	/* One multishot accept for all connections. */
	if (br_acceptor_new(&acc, s->lfd) < 0)
		return NULL;
	for (;;) {
		int fd = br_acceptor_next(acc);

		if (fd == -ECANCELED)
			break;
		if (fd == -ECONNABORTED || fd == -EINTR)
			continue; /* that client is gone; not our failure */
		if (fd < 0) {
			/* Out of fds or memory: let connections drain. */
			if (!failed++)
				fprintf(stderr,
					"%s: accept: %s; retrying, waiting up "
					"to %d ms between tries\n",
					s->name, br_strerror(fd),
					SERVE_BACKOFF_MAX_MS);
			wait_ms = wait_ms ? 2 * wait_ms : SERVE_BACKOFF_MIN_MS;
			if (wait_ms > SERVE_BACKOFF_MAX_MS)
				wait_ms = SERVE_BACKOFF_MAX_MS;
			if (br_sleep_ms(wait_ms) < 0)
				break;
			continue;
		}
		if (failed) {
			fprintf(stderr,
				"%s: accepting again after %lu failed "
				"accepts\n",
				s->name, failed);
			failed = 0;
			wait_ms = 0;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		{
			/* Named, for stall reports and BRAID_TRACE. */
			char name[BR_TASK_NAME_MAX];
			br_spawn_opts o = { .name = name };

			snprintf(name, sizeof(name), "conn %lu", ++nconn);
			br_future_release(br_spawn_ex(
				s->rt, s->conn, (void *)(intptr_t)fd, &o));
		}
	}
	br_acceptor_free(acc);
	return NULL;
}

/* The usage on stdout for --help (status 0), on stderr for a mistake
 * (status 2). */
static __attribute__((noreturn)) void serve_usage(const struct serve *s,
						  int status)
{
	fprintf(status ? stderr : stdout,
		"usage: %s [--port N] [--workers N] [--host H]%s\n"
		"  -p, --port N     port to listen on (default 8080; 0: any "
		"free one)\n"
		"  -w, --workers N  event loops (default: one per CPU)\n"
		"  -H, --host H     address to bind (default 127.0.0.1)\n"
		"%s"
		"  -h, --help       print this and exit\n",
		s->name,
		s->timeouts ? " [--head-timeout MS] [--idle-timeout MS]" : "",
		s->timeouts ? "  --head-timeout MS  time to receive a whole "
			      "request head (0: none)\n"
			      "  --idle-timeout MS  time allowed between "
			      "requests (0: none)\n" :
			      "");
	exit(status);
}

/* Until SIGINT or SIGTERM comes, through the loop. */
static void *serve_wait_signal(void *arg)
{
	br_signal_next(arg);
	return NULL;
}

static int serve_main(int argc, char **argv, struct serve *s)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "workers", required_argument, NULL, 'w' },
		{ "host", required_argument, NULL, 'H' },
		{ "head-timeout", required_argument, NULL, 'T' },
		{ "idle-timeout", required_argument, NULL, 'I' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *host = "127.0.0.1";
	long port = 8080;
	br_config cfg = { 0 };
	br_future *acc, *sweep = NULL, *waiter;
	br_signal *stop = NULL;
	sigset_t sigs;
	int c, err;
	char *end;

	while ((c = getopt_long(argc, argv, "p:w:H:h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			port = strtol(optarg, &end, 10);
			if (end == optarg || *end || port < 0 || port > 65535)
				serve_usage(s, 2);
			break;
		case 'w':
			cfg.workers = (unsigned)strtoul(optarg, &end, 10);
			if (end == optarg || *end)
				serve_usage(s, 2);
			break;
		case 'H':
			host = optarg;
			break;
		case 'T':
		case 'I': {
			long long v = strtoll(optarg, &end, 10);

			if (!s->timeouts || end == optarg || *end || v < 0 ||
			    v > INT32_MAX)
				serve_usage(s, 2);
			if (c == 'T')
				s->head_ms = v;
			else
				s->idle_ms = v;
			break;
		}
		case 'h':
			serve_usage(s, 0);
			break;
		default:
			serve_usage(s, 2);
		}
	}
	if (optind < argc)
		serve_usage(s, 2);
	/* Before any thread exists, so that every thread blocks them: a
	 * task reads them from the loop. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	err = br_signal_new(&stop, &sigs);
	if (err < 0) {
		fprintf(stderr, "%s: signals: %s\n", s->name, br_strerror(err));
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);

	s->lfd = br_tcp_listen(host, (uint16_t)port, 4096);
	if (s->lfd < 0) {
		fprintf(stderr, "%s: listen on %s:%ld: %s\n", s->name, host,
			port, br_strerror(s->lfd));
		return 1;
	}
	err = br_runtime_new(&s->rt, &cfg);
	if (err < 0) {
		fprintf(stderr, "%s: %s\n", s->name, br_strerror(err));
		return 1;
	}
	acc = br_spawn(s->rt, serve_accept, s);
	if (s->timeouts)
		sweep = br_spawn(s->rt, serve_sweep, s);
	printf("listening on %s:%d\n", host, br_local_port(s->lfd));
	fflush(stdout);
	/* The main thread waits for the task that waits for the signal. */
	waiter = br_spawn(s->rt, serve_wait_signal, stop);
	br_await(waiter, NULL);
	br_future_release(waiter);
	br_cancel(acc);
	br_future_release(acc);
	if (sweep) {
		br_cancel(sweep);
		br_future_release(sweep);
	}
	br_runtime_free(s->rt);
	br_signal_free(stop);
	close(s->lfd);
	return 0;
}

#endif /* SERVE_H */
