/* SPDX-License-Identifier: MIT */
/*
 * http_server.c - a minimal HTTP/1.1 server: "hello" on /, 404 elsewhere.
 *
 *   http_server [--port N] [--workers N] [--host H]
 *               [--head-timeout MS] [--idle-timeout MS]
 *
 * One task per connection, keep-alive, pipelining: every complete request
 * in what one receive brought is answered, and the answers are written
 * together. GET and HEAD are served, other methods get 405. Parsing and
 * answering are http_parse.h's, which says what is refused and why
 * (malformed or ambiguous heads get 400, heads over 8 KiB 431, bodies
 * over 1 MiB 413, chunked bodies 501; the connection is closed after
 * each). Request bodies with a Content-Length are read and discarded.
 *
 * Timeouts (serve.h's deadlines; 0 turns one off):
 *   --head-timeout MS  a request head must be all in within MS of the
 *                      connection opening, or of its first bytes
 *                      arriving after the previous answer (default
 *                      10000), so slow or silent clients cannot hold
 *                      descriptors;
 *   --idle-timeout MS  a kept-alive connection may wait MS for its next
 *                      request (default 30000), and a body may pause MS
 *                      between receives.
 * A connection past its deadline is closed without an answer.
 */
#include "http_parse.h"
#include "serve.h"

#define HEAD_TIMEOUT_MS 10000
#define IDLE_TIMEOUT_MS 30000
/* Closing while the peer still sends (after an error answer, or after a
 * Connection: close answer to pipelined requests) would make the kernel
 * reset the connection, and the peer could lose the answer before it
 * reads it. So the answer goes out with a FIN after it, and what comes
 * in is read and dropped until the peer closes, for this long at most
 * (and this many bytes), as Apache's and nginx's lingering close do. */
#define LINGER_MS 2000
#define LINGER_BYTES (256 * 1024)

static struct serve server = {
	.name = "http_server",
	.timeouts = 1,
	.head_ms = HEAD_TIMEOUT_MS,
	.idle_ms = IDLE_TIMEOUT_MS,
};

struct conn {
	struct serve_conn sc;
	struct http_in in;
	struct http_out out;
};

/*
 * One connection. Bytes come from a br_reader (multishot receive into the
 * worker's provided buffers): the requests in them are answered in place,
 * and only a head cut off at a buffer's end is copied, until the rest
 * arrives (http_input). Answers go out through a br_writer, which copies
 * them and sends them while the task waits for the next request.
 *
 * Deadlines: the head timeout runs from the start and from the first
 * receive after an answer that leaves a head incomplete; the idle timeout
 * runs while nothing is pending and while a body comes in; LINGER_MS
 * runs once the server decides to close.
 */
static void *http_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	struct conn *c = malloc(sizeof(*c));
	br_reader *r = NULL;
	br_writer *wr = NULL;
	int verdict = HTTP_READ, in_head = 1, linger = 0;

	if (!c) {
		br_close(fd);
		return NULL;
	}
	c->in.have = 0;
	c->in.skip = 0;
	serve_conn_add(&c->sc, fd, serve_after(server.head_ms));
	/* r and wr stay NULL if they fail */
	if (br_writer_new(&wr, fd) == 0)
		(void)br_reader_new(&r, fd);
	while (r) {
		const void *got = NULL;
		ssize_t k = 0;

		if (verdict == HTTP_READ) {
			k = br_reader_recv(r, &got);
			if (k <= 0)
				break;
		}
		c->out.len = 0;
		verdict = http_input(&c->in, got, (size_t)k, &c->out);
		if (c->out.len &&
		    br_writer_write(wr, c->out.buf, c->out.len) < 0)
			break;
		if (verdict == HTTP_CLOSE) {
			linger = 1;
			break;
		}
		if (c->in.have && (!in_head || c->out.len)) {
			/* A new head began (after an answer, a body or an idle
			 * wait): it has head_ms to come in. A head that goes
			 * on keeps its deadline, so a trickle cannot hold the
			 * connection. */
			serve_conn_until(&c->sc, serve_after(server.head_ms));
			in_head = 1;
		} else if (!c->in.have) {
			/* Idle, or in a body: idle_ms until more comes. */
			serve_conn_until(&c->sc, serve_after(server.idle_ms));
			in_head = 0;
		}
	}
	/* What was answered goes out, even to a peer that has stopped
	 * sending (a half close) and waits for it. */
	if (br_writer_drain(wr) == 0 && linger && shutdown(fd, SHUT_WR) == 0) {
		size_t dropped = 0;

		serve_conn_until(&c->sc, serve_after(LINGER_MS));
		while (dropped < LINGER_BYTES) {
			const void *got;
			ssize_t k = br_reader_recv(r, &got);

			if (k <= 0)
				break;
			dropped += (size_t)k;
		}
	}
	br_reader_free(r);
	br_writer_free(wr);
	serve_conn_del(&c->sc);
	free(c);
	br_close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	server.conn = http_conn;
	http_init();
	return serve_main(argc, argv, &server);
}
