/* SPDX-License-Identifier: MIT */
/*
 * echo_server.c - a TCP echo server, one task per connection.
 *
 *   echo_server [--port N] [--workers N] [--host H]
 *
 * Each connection is a task that looks like blocking code: receive, send
 * it all back, until the peer closes. The receives and sends go through
 * the worker's io_uring; thousands of connections are thousands of
 * suspended tasks.
 */
#include "serve.h"

static void *echo_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[4096];

	for (;;) {
		ssize_t n = br_recv(fd, buf, sizeof(buf), 0);

		if (n <= 0 || br_send_all(fd, buf, (size_t)n, 0) < 0)
			break;
	}
	br_close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	struct serve s = { .name = "echo_server", .conn = echo_conn };

	return serve_main(argc, argv, &s);
}
