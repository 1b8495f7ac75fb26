/* SPDX-License-Identifier: MIT */
/*
 * echo_server.c - a TCP echo server, one task per connection.
 *
 *   echo_server [--port N] [--workers N] [--host H]
 *
 * Each connection is a task that looks like blocking code: receive, send
 * it all back, until the peer closes. It receives through a br_reader
 * (one multishot receive into the worker's provided buffers, so no
 * request per message) and writes what it was lent back through a
 * br_writer, which copies it and sends it through the worker's io_uring
 * while the task waits for the next message; thousands of connections
 * are thousands of suspended tasks.
 */
#include "serve.h"

static void *echo_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	br_reader *r;
	br_writer *w;

	if (br_writer_new(&w, fd) < 0) {
		br_close(fd);
		return NULL;
	}
	if (br_reader_new(&r, fd) == 0) {
		for (;;) {
			const void *data;
			ssize_t n = br_reader_recv(r, &data);

			if (n <= 0 || br_writer_write(w, data, (size_t)n) < 0)
				break;
		}
		br_reader_free(r);
		(void)br_writer_drain(w);
	}
	br_writer_free(w);
	br_close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	struct serve s = { .name = "echo_server", .conn = echo_conn };

	return serve_main(argc, argv, &s);
}
