/* SPDX-License-Identifier: MIT */
/*
 * serve.h - the part every example server shares: flags, a listening
 * socket on 127.0.0.1, one acceptor task spawning a task per connection
 * (named "conn N" in stall reports and traces), and a clean shutdown on
 * SIGINT or SIGTERM.
 *
 *   -p, --port N       port to listen on (default 8080; 0 picks a free one)
 *   -w, --workers N    loops (default: one per CPU)
 *   -H, --host H       address to bind (default 127.0.0.1)
 *   -h, --help         print this usage and exit
 *
 * Prints "listening on HOST:PORT" on stdout once it accepts connections.
 * The signals are blocked in every thread and taken by sigwait() on the
 * main thread, which then frees the runtime: every task is cancelled,
 * each connection task closes its socket, and the process exits 0.
 */
#ifndef SERVE_H
#define SERVE_H

#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "braid.h"

struct serve {
	const char *name;
	void *(*conn)(void *fd); /* the connection task; owns the fd */
	br_runtime *rt;
	int lfd;
};

static void *serve_accept(void *arg)
{
	struct serve *s = arg;
	br_acceptor *acc;
	unsigned long nconn = 0;
	int one = 1;

	/* One multishot accept for all connections. */
	if (br_acceptor_new(&acc, s->lfd) < 0)
		return NULL;
	for (;;) {
		int fd = br_acceptor_next(acc);

		if (fd == -ECANCELED) {
			br_acceptor_free(acc);
			return NULL;
		}
		if (fd < 0) {
			/* Out of fds or memory: let connections drain. */
			fprintf(stderr, "%s: accept: %s\n", s->name,
				br_strerror(fd));
			if (br_sleep_ms(10) < 0) {
				br_acceptor_free(acc);
				return NULL;
			}
			continue;
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
}

/* The usage on stdout for --help (status 0), on stderr for a mistake
 * (status 2). */
static __attribute__((noreturn)) void serve_usage(const char *name, int status)
{
	fprintf(status ? stderr : stdout,
		"usage: %s [--port N] [--workers N] [--host H]\n"
		"  -p, --port N     port to listen on (default 8080; 0: any "
		"free one)\n"
		"  -w, --workers N  event loops (default: one per CPU)\n"
		"  -H, --host H     address to bind (default 127.0.0.1)\n"
		"  -h, --help       print this and exit\n",
		name);
	exit(status);
}

static int serve_main(int argc, char **argv, struct serve *s)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "workers", required_argument, NULL, 'w' },
		{ "host", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *host = "127.0.0.1";
	long port = 8080;
	br_config cfg = { 0 };
	br_future *acc;
	sigset_t sigs;
	int c, sig, err;
	char *end;

	while ((c = getopt_long(argc, argv, "p:w:H:h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			port = strtol(optarg, &end, 10);
			if (end == optarg || *end || port < 0 || port > 65535)
				serve_usage(s->name, 2);
			break;
		case 'w':
			cfg.workers = (unsigned)strtoul(optarg, &end, 10);
			if (end == optarg || *end)
				serve_usage(s->name, 2);
			break;
		case 'H':
			host = optarg;
			break;
		case 'h':
			serve_usage(s->name, 0);
			break;
		default:
			serve_usage(s->name, 2);
		}
	}
	if (optind < argc)
		serve_usage(s->name, 2);
	/* Before any thread exists, so that every thread inherits it. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
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
	printf("listening on %s:%d\n", host, br_local_port(s->lfd));
	fflush(stdout);
	sigwait(&sigs, &sig);
	br_cancel(acc);
	br_future_release(acc);
	br_runtime_free(s->rt);
	close(s->lfd);
	return 0;
}

#endif /* SERVE_H */
