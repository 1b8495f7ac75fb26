/* SPDX-License-Identifier: MIT */
/*
 * echo_uring.c - the echo peer on liburing: one thread, one ring, one
 * io_uring_enter per loop iteration.
 *
 * Design
 *   Each connection alternates one recv and one send into its own 4 KiB
 *   buffer. Every new request a batch of completions calls for is only
 *   queued; the next io_uring_submit_and_wait() submits them all and waits
 *   for the next completion in the same system call. That is the whole
 *   advantage io_uring has over epoll here, so no peer does better by
 *   hand without changing the protocol.
 *
 *   What the kernel offers is probed, newest first:
 *     - the ring: IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN (Linux 6.1),
 *       else COOP_TASKRUN (5.19), else none;
 *     - multishot accept and IORING_RECVSEND_POLL_FIRST (both 5.19),
 *       detected by the IORING_OP_SOCKET opcode of the same release. A
 *       multishot accept that still fails with -EINVAL falls back to one
 *       accept per connection. POLL_FIRST skips the recv attempt that
 *       would fail anyway: the client sends its next message only after
 *       the echo arrives, so a freshly queued recv never finds data.
 *   Multishot recv into a provided-buffer ring (Linux 6.0) would save
 *   one request per message, about 43 ns of the 1.3 us an enter costs
 *   here, at the price of returning buffers to the ring; it is left out.
 *
 *   Sockets are left blocking (io_uring polls them itself); the signalfd
 *   is watched with a poll request. Options, ready line and signals: see
 *   echo_peer.h.
 *
 * Invariants
 *   - A connection has exactly one recv or send in flight, so a
 *     completion with an error may close and free it at once.
 *   - user_data is UD_ACCEPT, UD_SIGNAL, or a struct conn pointer with
 *     UD_SEND in its low bit for a send.
 *
 * Concurrency
 *   - One thread; no shared state.
 */
#include <liburing.h>
#include <poll.h>

#include "echo_peer.h"

#define RING_ENTRIES 4096
#define CONN_BUF 4096

enum {
	UD_SEND = 1,
	UD_ACCEPT = 2,
	UD_SIGNAL = 4,
};

struct conn {
	int fd;
	unsigned len, off; /* echo bytes held in buf, and bytes sent of them */
	char buf[CONN_BUF];
} __attribute__((aligned(8)));

static struct io_uring ring;
static int lfd, sfd;
static int new_kernel; /* multishot accept and POLL_FIRST: Linux 5.19 */
static int multishot;  /* the accept in flight is a multishot one */

/* A free SQE, submitting what is queued when the ring is full. */
static struct io_uring_sqe *sqe_get(void)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

	if (!sqe) {
		io_uring_submit(&ring);
		sqe = io_uring_get_sqe(&ring);
		if (!sqe)
			peer_die("no submission queue entry after a submit");
	}
	return sqe;
}

static void arm_accept(void)
{
	struct io_uring_sqe *sqe = sqe_get();

	if (multishot)
		io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL,
					       SOCK_CLOEXEC);
	else
		io_uring_prep_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, UD_ACCEPT);
}

static void arm_recv(struct conn *c)
{
	struct io_uring_sqe *sqe = sqe_get();

	io_uring_prep_recv(sqe, c->fd, c->buf, sizeof(c->buf), 0);
	if (new_kernel)
		sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
	io_uring_sqe_set_data(sqe, c);
}

static void arm_send(struct conn *c)
{
	struct io_uring_sqe *sqe = sqe_get();

	io_uring_prep_send(sqe, c->fd, c->buf + c->off, c->len - c->off,
			   MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, (uintptr_t)c | UD_SEND);
}

static void conn_close(struct conn *c)
{
	close(c->fd);
	free(c);
}

static void on_accept(int res, unsigned flags)
{
	struct conn *c;

	if (res >= 0) {
		c = malloc(sizeof(*c));
		if (!c) {
			close(res);
		} else {
			c->fd = res;
			peer_nodelay(res);
			arm_recv(c);
		}
	} else if (res == -EINVAL && multishot) {
		fprintf(stderr, "multishot accept refused; accepting one "
				"connection per request\n");
		multishot = 0;
	} else if (res != -ECONNABORTED && res != -EINTR) {
		fprintf(stderr, "accept: %s\n", strerror(-res));
	}
	if (!multishot || !(flags & IORING_CQE_F_MORE))
		arm_accept();
}

static void on_recv(struct conn *c, int res)
{
	if (res <= 0) {
		conn_close(c);
		return;
	}
	c->len = (unsigned)res;
	c->off = 0;
	arm_send(c);
}

static void on_send(struct conn *c, int res)
{
	if (res < 0) {
		conn_close(c);
		return;
	}
	c->off += (unsigned)res;
	if (c->off < c->len)
		arm_send(c);
	else
		arm_recv(c);
}

static void arm_signal(void)
{
	struct io_uring_sqe *sqe = sqe_get();

	io_uring_prep_poll_add(sqe, sfd, POLLIN);
	io_uring_sqe_set_data64(sqe, UD_SIGNAL);
}

/* Returns 1 when a stop signal has arrived. */
static int on_signal(void)
{
	struct signalfd_siginfo si;

	if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
		peer_stopping(&si);
		return 1;
	}
	arm_signal();
	return 0;
}

static void ring_init(void)
{
	static const unsigned tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	struct io_uring_params p;
	struct io_uring_probe *probe;
	size_t i;
	int ret = -EINVAL;

	for (i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		memset(&p, 0, sizeof(p));
		p.flags = tries[i] | IORING_SETUP_CQSIZE;
		p.cq_entries = 4 * RING_ENTRIES;
		ret = io_uring_queue_init_params(RING_ENTRIES, &ring, &p);
		if (ret != -EINVAL)
			break;
	}
	if (ret < 0)
		peer_die("io_uring_queue_init: %s", strerror(-ret));
	probe = io_uring_get_probe_ring(&ring);
	new_kernel = probe &&
		     io_uring_opcode_supported(probe, IORING_OP_SOCKET);
	io_uring_free_probe(probe);
	multishot = new_kernel;
}

int main(int argc, char **argv)
{
	struct peer_opts o;
	struct io_uring_cqe *cqe;
	unsigned head, seen;
	int ret, stop = 0;

	peer_parse(&o, argc, argv);
	peer_raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	sfd = peer_signalfd(o.max_seconds);
	lfd = peer_listen(o.port);
	/* Blocking, so that the ring's accept waits instead of failing. */
	if (fcntl(lfd, F_SETFL, 0) < 0)
		peer_die("fcntl: %s", strerror(errno));
	ring_init();
	arm_signal();
	arm_accept();
	peer_ready(lfd);

	while (!stop) {
		ret = io_uring_submit_and_wait(&ring, 1);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
			peer_die("io_uring_submit_and_wait: %s",
				 strerror(-ret));
		seen = 0;
		io_uring_for_each_cqe(&ring, head, cqe)
		{
			/* Copy the CQE out: handlers may submit. */
			uint64_t ud = cqe->user_data;
			int res = cqe->res;
			unsigned flags = cqe->flags;

			seen++;
			if (ud == UD_ACCEPT)
				on_accept(res, flags);
			else if (ud == UD_SIGNAL)
				stop |= on_signal();
			else if (ud & UD_SEND)
				on_send((struct conn
						 *)(uintptr_t)(ud &
							       ~(uint64_t)
								       UD_SEND),
					res);
			else
				on_recv((struct conn *)(uintptr_t)ud, res);
		}
		io_uring_cq_advance(&ring, seen);
	}
	io_uring_queue_exit(&ring);
	close(lfd);
	return 0;
}
