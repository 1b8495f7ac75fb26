/* SPDX-License-Identifier: MIT */
/*
 * upper.c - recipe: a line server. Each line a client sends comes back in
 * capitals. A request (reading the line and answering it) has a deadline:
 * a client that takes longer is told "timeout" and dropped. SIGTERM or
 * SIGINT stops the server cleanly: every connection task is cancelled and
 * closes its socket, and the program exits 0.
 *
 *   upper [PORT [DEADLINE_MS]]   defaults 8000 (0: any free port), 10000
 *
 * Prints "listening on 127.0.0.1:PORT" once it accepts connections. Its
 * asyncio twin is upper.py.
 */
#include <braid.h>
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static int64_t deadline_ms = 10000;

static void *client(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char line[1024];
	br_reader *r;
	ssize_t n = -1;

	if (br_reader_new(&r, fd) == 0) {
		do {
			br_deadline d;

			br_deadline_enter(&d, deadline_ms);
			n = br_reader_readline(r, line, sizeof(line));
			for (ssize_t i = 0; i < n; i++)
				line[i] = (char)toupper((unsigned char)line[i]);
			if (n > 0)
				n = br_send_all(fd, line, (size_t)n,
						MSG_NOSIGNAL);
			br_deadline_leave(&d);
		} while (n > 0);
		if (n == -ETIMEDOUT)
			br_send_all(fd, "timeout\n", 8, MSG_NOSIGNAL);
		br_reader_free(r);
	}
	close(fd);
	return NULL;
}

static void *serve(void *arg)
{
	int lfd = (int)(intptr_t)arg, fd;

	while ((fd = br_accept(lfd, NULL, NULL, 0)) != -ECANCELED)
		if (fd >= 0)
			br_future_release(br_spawn(br_current_runtime(), client,
						   (void *)(intptr_t)fd));
	return NULL;
}

int main(int argc, char **argv)
{
	br_runtime *rt;
	br_signal *stop;
	sigset_t set;
	int lfd;

	if (argc > 3 || (argc > 1 && argv[1][0] == '-')) {
		fprintf(stderr, "usage: %s [PORT [DEADLINE_MS]]\n", argv[0]);
		return 2;
	}
	if (argc > 2)
		deadline_ms = atoll(argv[2]);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (br_signal_new(&stop, &set) < 0 || br_runtime_new(&rt, NULL) < 0)
		return 1;
	lfd = br_tcp_listen("127.0.0.1", argc > 1 ? atoi(argv[1]) : 8000, 0);
	if (lfd < 0) {
		fprintf(stderr, "upper: %s\n", br_strerror(lfd));
		return 1;
	}
	printf("listening on 127.0.0.1:%d\n", br_local_port(lfd));
	fflush(stdout);
	br_future_release(br_spawn(rt, serve, (void *)(intptr_t)lfd));
	br_signal_next(stop);
	br_runtime_free(rt); /* cancels every task */
	br_signal_free(stop);
	close(lfd);
	return 0;
}
