/* SPDX-License-Identifier: MIT */
/*
 * reader.c - a connection's incoming bytes from one multishot recv into
 * the worker's provided buffers, lent to the caller one at a time.
 *
 * Design
 *   br_reader_recv() arms one recv with IORING_RECV_MULTISHOT and
 *   IOSQE_BUFFER_SELECT (group 0 of the owner's ring, ring.c). The kernel
 *   then fills a buffer of the group and posts a CQE each time data
 *   arrives, without another SQE; the owner queues (buffer id, length)
 *   and wakes the reader's task. recv() lends the oldest buffer to the
 *   caller until its next call, which gives it back to the kernel. A
 *   request ends (a CQE without IORING_CQE_F_MORE) at EOF, on an error,
 *   or when the group runs dry (-ENOBUFS, queued like data: recv()
 *   takes what is left in the socket with one plain receive into the
 *   reader's own buffer, and its next call re-arms). A kernel without
 *   multishot recv or buffer rings (-EINVAL), a worker without a ring,
 *   and plain threads fall back to br_recv() into the reader's own
 *   buffer.
 *
 *   Owner, waiting and freeing are mshot.c's: all state is the owner's,
 *   and freeing waits for the request's last CQE, then gives every
 *   queued or lent buffer back.
 *
 *   Any descriptor open for reading works: a pipe, a file or a terminal
 *   is read with br_read() into the reader's own buffer (a multishot
 *   receive is for sockets).
 *
 *   The StreamReader verbs (br_reader_readline, _readuntil,
 *   _readexactly) copy what they receive into a pending buffer, take what
 *   they return from its front, and leave the rest there for the next
 *   call, br_reader_recv() included: past a limit or at an early end,
 *   nothing is lost. They scan each byte once: a search resumes where the
 *   last one stopped.
 *
 * Invariants
 *   - held is the buffer lent to the caller, or -1; it goes back to the
 *     kernel at the caller's next call or at free.
 *
 * Concurrency: all fields after creation, the owner worker only, except
 * busy and pend: busy is taken by compare-and-swap by the caller of any
 * public call on any thread (acquire), and given back by it (release), so
 * that a second concurrent caller gets -EBUSY on every path, with or
 * without a ring; pend belongs to the caller that holds busy.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "io.h"
#include "mshot.h"
#include "quarantine.h"
#include "task.h"
#include "worker.h"

struct br_reader {
	struct br__mshot_obj o; /* first */
	uint32_t magic;
	int fd;
	int fallback; /* br_recv into fbuf */
	int held;     /* buffer lent to the caller, or -1 */
	int sock;     /* fd is a socket: recv, else read */
	char *fbuf;
	struct {
		char *p;
		size_t off, len, cap; /* bytes [off, len) wait */
		size_t scanned;	      /* from off: no delimiter before it */
	} pend;
	/* A caller is inside a public call (any thread; see claim()). */
	_Atomic int busy;
};

/* Freed readers, whose magic a stale call may still check. */
static struct br__quarantine freed =
	BR__QUARANTINE_INIT(struct br_reader, magic);

/* Give the kernel back every buffer queued for the caller. Owner. */
static void return_queued(struct br_reader *r)
{
	while (r->o.qlen) {
		struct br__mshot_res e = br__mshot_pop(&r->o);

		if (e.res > 0)
			br__ring_buf_return(r->o.w, e.bid);
	}
}

static void on_cqe(struct br__mshot *m, int res, uint32_t flags)
{
	struct br_reader *r = (struct br_reader *)m;
	int last = !(flags & IORING_CQE_F_MORE);
	uint16_t bid = 0;

	if (flags & IORING_CQE_F_BUFFER)
		bid = (uint16_t)(flags >> IORING_CQE_BUFFER_SHIFT);
	if (last && res == -ECANCELED)
		; /* our own cancellation (free) */
	else if (last && res == -EINVAL && !r->o.qlen)
		r->fallback = 1; /* no multishot recv in this kernel */
	else if (br__mshot_push(&r->o, res, bid) < 0) {
		/* Out of memory: data is lost and the stream is broken.
		 * Give every buffer back and leave only the error. */
		if (res > 0)
			br__ring_buf_return(r->o.w, bid);
		return_queued(r);
		br__mshot_push(&r->o, -ENOMEM, 0); /* room: just emptied */
	}
	br__mshot_cqe_seen(&r->o, flags);
}

int br_reader_new(br_reader **out, int fd)
{
	struct br_reader *r;
	int sock;

	if (!out)
		return -EINVAL;
	sock = br__fd_stream(fd, 0);
	if (sock < 0)
		return sock;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->o.m.cqe = on_cqe;
	r->magic = BR__MAGIC_READER;
	r->fd = fd;
	r->held = -1;
	r->sock = sock;
	r->fallback = !r->sock;
	*out = r;
	return 0;
}

static int has_data(const struct br__mshot_obj *o)
{
	const struct br_reader *r = (const struct br_reader *)o;

	return o->qlen > 0 || !o->armed || r->fallback;
}

static ssize_t recv_plain(struct br_reader *r, const void **data)
{
	ssize_t n;

	if (!r->fbuf) {
		r->fbuf = malloc(BR__BUF_SIZE);
		if (!r->fbuf)
			return -ENOMEM;
	}
	n = r->sock ? br_recv(r->fd, r->fbuf, BR__BUF_SIZE, 0) :
		      br_read(r->fd, r->fbuf, BR__BUF_SIZE);
	*data = r->fbuf;
	return n;
}

struct remote_recv {
	br_reader *r;
	const void **data;
	ssize_t ret;
};

static ssize_t next_chunk(br_reader *r, const void **data);

static void *recv_on_owner(void *arg)
{
	struct remote_recv *rr = arg;

	rr->ret = next_chunk(rr->r, rr->data);
	return NULL;
}

static ssize_t recv_one(br_reader *r, struct br__task *t, const void **data);

/* The next bytes from the kernel, lent until the next call. The caller
 * holds busy (on a plain thread, the hop to the owner runs under it). */
static ssize_t next_chunk(br_reader *r, const void **data)
{
	struct br__task *t = br__task_current();
	int err;

	*data = NULL;
	if (!t && r->o.w) {
		/* Tied to a worker whose ring may hold bytes for us: take
		 * them there, as a task, and wait. */
		struct remote_recv rr = { r, data, -EINVAL };

		err = br__mshot_on_worker(r->o.w, recv_on_owner, &rr, NULL);
		return err < 0 ? err : rr.ret;
	}
	return recv_one(r, t, data);
}

/* One caller at a time, on every path: the ring's waiter slot would say
 * so too, but a loop without a ring, a plain thread and the fallback to
 * br_recv() have none (and share fbuf and pend). 0, or -EBUSY. */
static int claim(br_reader *r)
{
	int expect = 0;

	return atomic_compare_exchange_strong_explicit(&r->busy, &expect, 1,
						       memory_order_acquire,
						       memory_order_relaxed) ?
		       0 :
		       -EBUSY;
}

static void unclaim(br_reader *r)
{
	atomic_store_explicit(&r->busy, 0, memory_order_release);
}

static ssize_t recv_one(br_reader *r, struct br__task *t, const void **data)
{
	struct br__worker *w = br__worker_current();
	struct br__mshot_res e;
	int err;

	if (!t || !w->ring.on || r->fallback)
		return recv_plain(r, data);
	err = br__mshot_tie(&r->o);
	if (err < 0)
		return err;
	w = br__worker_current();
	if (r->held >= 0) {
		br__ring_buf_return(w, (unsigned)r->held);
		r->held = -1;
	}
	if (br__ring_bufs(w) < 0) {
		r->fallback = 1;
		return recv_plain(r, data);
	}
	if (br__task_cancel_pending(t)) {
		t->cancel_seen = 1;
		return -ECANCELED;
	}
	for (;;) {
		br__mshot_go_home(&r->o);
		if (r->o.qlen) {
			e = br__mshot_pop(&r->o);
			/* The group ran dry, and the request ended. The bytes
			 * that found no buffer are still in the socket, after
			 * everything queued: take them with one plain
			 * receive. Re-arming now would fail the same way while
			 * every buffer is lent, and thousands of connections
			 * would spin so (10,000 echo clients against 512
			 * buffers did). The next call re-arms. */
			if (e.res == -ENOBUFS)
				return recv_plain(r, data);
			if (e.res > 0) {
				r->held = e.bid;
				*data = br__ring_buf(r->o.w, e.bid);
			}
			return e.res;
		}
		if (r->fallback)
			return recv_plain(r, data);
		if (!r->o.armed) {
			struct io_uring_sqe *sqe = br__mshot_arm(&r->o);

			if (!sqe)
				return -EBUSY;
			io_uring_prep_recv_multishot(sqe, r->fd, NULL, 0, 0);
			sqe->flags |= IOSQE_BUFFER_SELECT;
			sqe->buf_group = 0;
		}
		err = br__mshot_wait(&r->o, t, has_data, 1);
		if (err < 0)
			return err;
	}
}

ssize_t br_reader_recv(br_reader *r, const void **data)
{
	ssize_t n;

	if (!r || !data)
		return -EINVAL;
	if (r->magic != BR__MAGIC_READER)
		return BR_EBADOBJ;
	if (claim(r) < 0)
		return -EBUSY;
	n = (ssize_t)(r->pend.len - r->pend.off);
	if (!n) {
		n = next_chunk(r, data);
	} else {
		/* What the line verbs left: lent like a received buffer. */
		*data = r->pend.p + r->pend.off;
		r->pend.off = r->pend.len = r->pend.scanned = 0;
	}
	unclaim(r);
	return n;
}

/* ---- the StreamReader verbs ---- */

static size_t pending(const struct br_reader *r)
{
	return r->pend.len - r->pend.off;
}

/* Receive the next bytes onto the end of pend. Returns how many, 0 at
 * the end of the stream, or a negative error (pend unchanged). */
static ssize_t fill(struct br_reader *r)
{
	const void *data;
	ssize_t n = next_chunk(r, &data);

	if (n <= 0)
		return n;
	if (r->pend.off && r->pend.cap - r->pend.len < (size_t)n) {
		/* Slide what waits to the front before growing. */
		memmove(r->pend.p, r->pend.p + r->pend.off, pending(r));
		r->pend.len -= r->pend.off;
		r->pend.off = 0;
	}
	if (r->pend.cap - r->pend.len < (size_t)n) {
		size_t cap = r->pend.cap ? r->pend.cap : BR__BUF_SIZE;
		char *p;

		while (cap - r->pend.len < (size_t)n)
			cap *= 2;
		p = realloc(r->pend.p, cap);
		if (!p)
			return -ENOMEM; /* the bytes are lost: as a reader's */
		r->pend.p = p;
		r->pend.cap = cap;
	}
	memcpy(r->pend.p + r->pend.len, data, (size_t)n);
	r->pend.len += (size_t)n;
	return n;
}

/* Hand n bytes from the front of pend to buf. */
static ssize_t take(struct br_reader *r, void *buf, size_t n)
{
	memcpy(buf, r->pend.p + r->pend.off, n);
	r->pend.off += n;
	r->pend.scanned = 0;
	if (r->pend.off == r->pend.len)
		r->pend.off = r->pend.len = 0;
	return (ssize_t)n;
}

static ssize_t until(br_reader *r, const void *delim, size_t dlen, void *buf,
		     size_t max, int partial)
{
	for (;;) {
		size_t have = pending(r), from = r->pend.scanned;
		const char *at = r->pend.p + r->pend.off;
		const char *hit = have >= dlen ? memmem(at + from, have - from,
							delim, dlen) :
						 NULL;
		ssize_t n;

		if (hit) {
			size_t len = (size_t)(hit - at) + dlen;

			return len > max ? -EMSGSIZE : take(r, buf, len);
		}
		if (have >= max)
			return -EMSGSIZE; /* it could not fit: it stays */
		/* A delimiter may straddle what came and what comes. */
		r->pend.scanned = have >= dlen ? have - dlen + 1 : 0;
		n = fill(r);
		if (n < 0)
			return n;
		if (n == 0) {
			have = pending(r);
			if (!have)
				return 0;
			return partial ? take(r, buf, have) : -EPIPE;
		}
	}
}

static ssize_t exactly(br_reader *r, void *buf, size_t n)
{
	while (pending(r) < n) {
		ssize_t got = fill(r);

		if (got < 0)
			return got;
		if (got == 0)
			return -EPIPE; /* what came stays readable */
	}
	return take(r, buf, n);
}

/* readline, readuntil and readexactly, one caller at a time (claim()).
 * readline is readuntil("\n") that also returns a last line without
 * one at the end of the stream, as asyncio's readline does. */
enum verb {
	VERB_LINE,
	VERB_UNTIL,
	VERB_EXACTLY
};

static ssize_t verb(br_reader *r, enum verb v, const void *delim, size_t dlen,
		    void *buf, size_t max)
{
	ssize_t n;

	if (!r || (!buf && max))
		return -EINVAL;
	if (r->magic != BR__MAGIC_READER)
		return BR_EBADOBJ;
	if (v == VERB_UNTIL && (!delim || !dlen))
		return -EINVAL;
	if (claim(r) < 0)
		return -EBUSY;
	if (v == VERB_EXACTLY)
		n = exactly(r, buf, max);
	else
		n = until(r, delim, dlen, buf, max, v == VERB_LINE);
	unclaim(r);
	return n;
}

ssize_t br_reader_readline(br_reader *r, void *buf, size_t max)
{
	return verb(r, VERB_LINE, "\n", 1, buf, max);
}

ssize_t br_reader_readuntil(br_reader *r, const void *delim, size_t dlen,
			    void *buf, size_t max)
{
	return verb(r, VERB_UNTIL, delim, dlen, buf, max);
}

ssize_t br_reader_readexactly(br_reader *r, void *buf, size_t n)
{
	return verb(r, VERB_EXACTLY, NULL, 0, buf, n);
}

static void release(struct br__mshot_obj *o)
{
	struct br_reader *r = (struct br_reader *)o;

	if (r->held >= 0)
		br__ring_buf_return(o->w, (unsigned)r->held);
	return_queued(r);
	br__mshot_queue_free(o);
	r->magic = BR__MAGIC_DEAD;
	free(r->fbuf);
	free(r->pend.p);
	br__quarantine_free(&freed, r);
}

void br_reader_free(br_reader *r)
{
	if (!r || r->magic != BR__MAGIC_READER)
		return;
	br__mshot_finish(&r->o, release);
}
