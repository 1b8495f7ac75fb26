/* SPDX-License-Identifier: MIT */
/*
 * writer.c - a connection's outgoing bytes, copied and sent in order by
 * the worker's ring while the writing task goes on.
 *
 * Design
 *   br_writer_write() copies the bytes into the pending buffer and
 *   returns; it never waits for the send. One IORING_OP_SEND is in flight
 *   at a time, from the other buffer: its CQE's handler, on the owner,
 *   re-sends the rest of a short send, or swaps the buffers and sends
 *   what was written meanwhile. So bytes leave in write order, and a
 *   request/response loop costs one wake-up of its task per request (the
 *   receive), not two: the send's completion wakes nobody.
 *
 *   A send error is sticky: it drops everything queued, and every later
 *   call returns it. Backpressure: a write that finds HIGH bytes or more
 *   queued first waits until at most LOW are, so memory stays within
 *   HIGH plus one write (in two buffers). br_writer_drain() waits until
 *   all is sent. br_writer_free() ends the send in flight (ASYNC_CANCEL,
 *   then its last CQE) and drops the rest.
 *
 *   The first call from a task on a worker with a ring ties the writer
 *   to that worker, the owner (br__mshot_tie). Its first send registers
 *   fd in the owner's file table when a slot is free, so sends carry
 *   IOSQE_FIXED_FILE and skip the kernel's fd lookup; freeing
 *   unregisters it. Waiting and freeing are mshot.c's. Sends carry
 *   MSG_NOSIGNAL: a closed peer is -EPIPE, not SIGPIPE. Workers without
 *   a ring, and plain threads while no task has tied the writer, send at
 *   once with br_send_all().
 *
 *   Any descriptor open for writing works: br_writer_new() asks the
 *   kernel what fd is, and for anything but a socket (a pipe, a file, a
 *   terminal) uses IORING_OP_WRITE at the file's current position (offset
 *   -1) instead of a send, and br_write_all() on the plain path. A pipe
 *   whose reader is gone is then -EPIPE too (SIGPIPE is the program's to
 *   ignore; braid's threads block it). A descriptor not open for writing
 *   fails at br_writer_new(), not at its first drain.
 *
 * Invariants
 *   - While o.armed, b[fl] is in the kernel's hands from off to its len;
 *     otherwise b[fl] is empty. b[fl ^ 1] is pending: written, not sent.
 *   - err != 0 means both buffers are empty and nothing more is sent.
 *   - slot is SLOT_UNTRIED until the first send, then the slot of o.w's
 *     table fd is in, or -1.
 *
 * Concurrency
 *   - o.w: mshot.c's (set once, read anywhere; plain threads send their
 *     calls there as pinned tasks).
 *   - Everything else once tied: the owner worker only (tasks move there
 *     first; the CQE handler runs there). Before that, the calling
 *     thread, for plain sends: a plain thread's call on a writer no task
 *     has used must not overlap a task's call (documented).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "io.h"
#include "mshot.h"
#include "quarantine.h"
#include "task.h"
#include "worker.h"

#define HIGH (64 * 1024) /* a write waits when this much is queued... */
#define LOW (16 * 1024)	 /* ...until this much is left */
#define MIN_CAP 512
#define SEND_MAX (1u << 30) /* bytes one send may carry */
#define SLOT_UNTRIED (-2)   /* slot before the first send */

struct wbuf {
	char *p;
	size_t len, cap;
};

struct br_writer {
	struct br__mshot_obj o; /* first */
	uint32_t magic;
	int fd;
	int err;     /* the first send error, or 0 */
	int slot;    /* fd's registered file on the owner's ring, -1 none */
	int sock;    /* fd is a socket: send, not write */
	unsigned fl; /* the buffer in flight while o.armed */
	size_t off;  /* its bytes already sent */
	struct wbuf b[2];
};

/* Freed writers, whose magic a stale call may still check. */
static struct br__quarantine freed =
	BR__QUARANTINE_INIT(struct br_writer, magic);

static size_t queued(const struct br_writer *w)
{
	return w->b[w->fl].len - w->off + w->b[w->fl ^ 1].len;
}

static void drop_all(struct br_writer *w)
{
	w->b[0].len = w->b[1].len = 0;
	w->off = 0;
}

/* Send b[fl] from off on the owner's ring. -EBUSY if it has no SQE. */
static int send_rest(struct br_writer *w)
{
	struct wbuf *b = &w->b[w->fl];
	struct io_uring_sqe *sqe = br__mshot_arm(&w->o);
	size_t len = b->len - w->off;

	if (!sqe)
		return -EBUSY;
	if (len > SEND_MAX) /* the SQE's length is 32 bits */
		len = SEND_MAX;
	if (w->sock)
		io_uring_prep_send(sqe, w->slot >= 0 ? w->slot : w->fd,
				   b->p + w->off, len, MSG_NOSIGNAL);
	else
		io_uring_prep_write(sqe, w->slot >= 0 ? w->slot : w->fd,
				    b->p + w->off, (unsigned)len, (__u64)-1);
	if (w->slot >= 0)
		sqe->flags |= IOSQE_FIXED_FILE;
	return 0;
}

/* Not armed, b[fl] empty: put the pending buffer in flight. */
static int send_pending(struct br_writer *w)
{
	int err;

	w->fl ^= 1;
	w->off = 0;
	err = send_rest(w);
	if (err < 0)
		w->fl ^= 1;
	return err;
}

static void on_cqe(struct br__mshot *m, int res, uint32_t flags)
{
	struct br_writer *w = (struct br_writer *)m;
	struct wbuf *b = &w->b[w->fl];

	if (res > 0) {
		w->off += (size_t)res;
		if (w->off >= b->len) {
			b->len = 0;
			w->off = 0;
			if (b->cap > HIGH) { /* keep no burst's memory */
				free(b->p);
				b->p = NULL;
				b->cap = 0;
			}
		}
	} else if (!w->o.closing) {
		/* A send of at least one byte that took none, on a stream
		 * socket, would be retried for ever: end the stream. */
		w->err = res < 0 ? res : -EIO;
		drop_all(w);
	}
	br__mshot_cqe_seen(&w->o, flags); /* disarms, wakes the waiter */
	if (w->err || w->o.closing)
		return;
	if (b->len)
		res = send_rest(w);
	else if (w->b[w->fl ^ 1].len)
		res = send_pending(w);
	else
		return;
	if (res < 0) {
		w->err = res;
		drop_all(w);
	}
}

int br_writer_new(br_writer **out, int fd)
{
	struct br_writer *w;
	int sock;

	if (!out)
		return -EINVAL;
	sock = br__fd_stream(fd, 1);
	if (sock < 0)
		return sock;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->o.m.cqe = on_cqe;
	w->magic = BR__MAGIC_WRITER;
	w->fd = fd;
	w->sock = sock;
	w->slot = SLOT_UNTRIED;
	*out = w;
	return 0;
}

static int below_low(const struct br__mshot_obj *o)
{
	const struct br_writer *w = (const struct br_writer *)o;

	return w->err || queued(w) <= LOW;
}

static int all_sent(const struct br__mshot_obj *o)
{
	const struct br_writer *w = (const struct br_writer *)o;

	return w->err || (!o->armed && !queued(w));
}

/* Append n bytes to the pending buffer. */
static int append(struct br_writer *w, const void *data, size_t n)
{
	struct wbuf *b = &w->b[w->fl ^ 1];

	if (n > b->cap - b->len) {
		size_t cap = b->cap ? b->cap : MIN_CAP;
		char *p;

		if (n > SIZE_MAX - b->len)
			return -ENOMEM;
		while (cap < b->len + n)
			cap = cap <= SIZE_MAX / 2 ? cap * 2 : b->len + n;
		p = realloc(b->p, cap);
		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	return 0;
}

struct remote {
	br_writer *w;
	const void *data;
	size_t n;
	ssize_t ret;
};

static void *write_on_owner(void *arg)
{
	struct remote *x = arg;

	x->ret = br_writer_write(x->w, x->data, x->n);
	return NULL;
}

static void *drain_on_owner(void *arg)
{
	struct remote *x = arg;

	x->ret = br_writer_drain(x->w);
	return NULL;
}

/* Where a call runs: 1 on the owner's ring (the task is there now), 0
 * with plain syscalls (a plain thread, or a worker without a ring while
 * w has no owner), or -EINVAL (owned by another runtime). */
static int placed(struct br_writer *w, struct br__task *t)
{
	int err;

	if (!t || (!w->o.w && !br__worker_current()->ring.on))
		return 0;
	err = br__mshot_tie(&w->o);
	return err < 0 ? err : 1;
}

ssize_t br_writer_write(br_writer *w, const void *data, size_t n)
{
	struct br__task *t = br__task_current();
	ssize_t r;
	int err;

	if (!w || (!data && n))
		return -EINVAL;
	if (w->magic != BR__MAGIC_WRITER)
		return BR_EBADOBJ;
	if (!t && w->o.w) {
		/* Tied to a worker whose ring may hold a send of ours:
		 * queue there, behind it. */
		struct remote x = { w, data, n, -EINVAL };

		err = br__mshot_on_worker(w->o.w, write_on_owner, &x, NULL);
		return err < 0 ? err : x.ret;
	}
	err = placed(w, t);
	if (err < 0)
		return err;
	if (w->err)
		return w->err;
	if (!n)
		return 0;
	if (!err) {
		r = w->sock ? br_send_all(w->fd, data, n, MSG_NOSIGNAL) :
			      br_write_all(w->fd, data, n);
		if (r < 0)
			w->err = (int)r;
		return r;
	}
	if (queued(w) >= HIGH) {
		err = br__mshot_wait(&w->o, t, below_low, 1);
		if (err < 0)
			return err;
		if (w->err)
			return w->err;
	}
	err = append(w, data, n);
	if (err < 0)
		return err;
	if (!w->o.armed) {
		/* The first send: a registered file saves the kernel looking
		 * fd up for every send. */
		if (w->slot == SLOT_UNTRIED)
			w->slot = br__ring_file_add(w->o.w, w->fd);
		err = send_pending(w);
		if (err < 0) {
			w->b[w->fl ^ 1].len -= n; /* not taken */
			return err;
		}
	}
	return (ssize_t)n;
}

int br_writer_drain(br_writer *w)
{
	struct br__task *t = br__task_current();
	int err;

	if (!w)
		return -EINVAL;
	if (w->magic != BR__MAGIC_WRITER)
		return BR_EBADOBJ;
	if (!t && w->o.w) {
		struct remote x = { w, NULL, 0, -EINVAL };

		err = br__mshot_on_worker(w->o.w, drain_on_owner, &x, NULL);
		return err < 0 ? err : (int)x.ret;
	}
	err = placed(w, t);
	if (err <= 0)
		return err < 0 ? err : w->err;
	err = br__mshot_wait(&w->o, t, all_sent, 1);
	return err < 0 ? err : w->err;
}

static void release(struct br__mshot_obj *o)
{
	struct br_writer *w = (struct br_writer *)o;

	if (w->slot >= 0)
		br__ring_file_del(o->w, w->slot);
	w->magic = BR__MAGIC_DEAD;
	free(w->b[0].p);
	free(w->b[1].p);
	br__quarantine_free(&freed, w);
}

void br_writer_free(br_writer *w)
{
	if (!w || w->magic != BR__MAGIC_WRITER)
		return;
	br__mshot_finish(&w->o, release);
}
