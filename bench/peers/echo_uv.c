/* SPDX-License-Identifier: MIT */
/*
 * echo_uv.c - the echo peer on libuv: one thread, one uv_loop.
 *
 * Design
 *   The usual libuv echo server, with the one shortcut libuv itself
 *   recommends for it: the read callback answers with uv_try_write(),
 *   which writes at once without allocating a request, and falls back to
 *   uv_write() with a copy only for what the socket did not take. Reads
 *   go into one shared buffer, which is safe because libuv calls the read
 *   callback straight after filling it and the data is written or copied
 *   before the callback returns.
 *
 *   SIGINT, SIGTERM and --max-seconds close every handle, so that uv_run()
 *   returns and the loop is closed cleanly. libuv's signal handles need the
 *   signals unblocked, so this peer uses only the option, socket and ready
 *   helpers of echo_peer.h.
 *
 * Invariants
 *   - A client handle's data field points to the handle itself; the
 *     server, signal and timer handles have NULL there and are not freed.
 *
 * Concurrency
 *   - One thread; no shared state.
 */
#include <uv.h>

#include "echo_peer.h"

struct pending {
	uv_write_t req;
	char data[]; /* the rest of the echo, referenced by req */
};

static char shared_buf[65536];

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	*buf = uv_buf_init(shared_buf, sizeof(shared_buf));
}

static void on_closed(uv_handle_t *h)
{
	free(h->data);
}

static void on_written(uv_write_t *req, int status)
{
	free(req);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct pending *p;
	uv_buf_t rest;
	int w;

	if (n < 0) {
		if (!uv_is_closing((uv_handle_t *)s))
			uv_close((uv_handle_t *)s, on_closed);
		return;
	}
	if (n == 0)
		return;
	rest = uv_buf_init(buf->base, (unsigned)n);
	w = uv_try_write(s, &rest, 1);
	if (w == n)
		return;
	if (w < 0 && w != UV_EAGAIN) {
		uv_close((uv_handle_t *)s, on_closed);
		return;
	}
	if (w < 0)
		w = 0;
	p = malloc(sizeof(*p) + (size_t)(n - w));
	if (!p)
		peer_die("out of memory");
	memcpy(p->data, buf->base + w, (size_t)(n - w));
	rest = uv_buf_init(p->data, (unsigned)(n - w));
	if (uv_write(&p->req, s, &rest, 1, on_written) < 0) {
		free(p);
		uv_close((uv_handle_t *)s, on_closed);
	}
}

static void on_connection(uv_stream_t *server, int status)
{
	uv_tcp_t *c;

	if (status < 0) {
		fprintf(stderr, "accept: %s\n", uv_strerror(status));
		return;
	}
	c = malloc(sizeof(*c));
	if (!c)
		peer_die("out of memory");
	uv_tcp_init(server->loop, c);
	c->data = c;
	if (uv_accept(server, (uv_stream_t *)c) < 0) {
		uv_close((uv_handle_t *)c, on_closed);
		return;
	}
	uv_tcp_nodelay(c, 1);
	uv_read_start((uv_stream_t *)c, on_alloc, on_read);
}

static void close_one(uv_handle_t *h, void *arg)
{
	if (!uv_is_closing(h))
		uv_close(h, on_closed);
}

static void stop_all(uv_loop_t *loop)
{
	uv_walk(loop, close_one, NULL);
}

static void on_signal(uv_signal_t *sig, int signum)
{
	stop_all(sig->loop);
}

static void on_timeout(uv_timer_t *t)
{
	fprintf(stderr, "stopping: --max-seconds reached\n");
	stop_all(t->loop);
}

int main(int argc, char **argv)
{
	uv_loop_t *loop = uv_default_loop();
	uv_signal_t sigint, sigterm;
	uv_timer_t timer;
	uv_tcp_t server;
	struct peer_opts o;
	int lfd, ret;

	peer_parse(&o, argc, argv);
	peer_raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	lfd = peer_listen(o.port);
	uv_tcp_init(loop, &server);
	server.data = NULL;
	ret = uv_tcp_open(&server, lfd);
	if (ret == 0)
		ret = uv_listen((uv_stream_t *)&server, 65535, on_connection);
	if (ret < 0)
		peer_die("listen: %s", uv_strerror(ret));
	uv_signal_init(loop, &sigint);
	uv_signal_init(loop, &sigterm);
	sigint.data = sigterm.data = NULL;
	uv_signal_start(&sigint, on_signal, SIGINT);
	uv_signal_start(&sigterm, on_signal, SIGTERM);
	if (o.max_seconds) {
		uv_timer_init(loop, &timer);
		timer.data = NULL;
		uv_timer_start(&timer, on_timeout, o.max_seconds * 1000ull, 0);
	}
	peer_ready(lfd);

	uv_run(loop, UV_RUN_DEFAULT);
	ret = uv_loop_close(loop);
	if (ret < 0)
		peer_die("uv_loop_close: %s", uv_strerror(ret));
	return 0;
}
