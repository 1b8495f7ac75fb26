/* SPDX-License-Identifier: MIT */
/*
 * chan.c - bounded MPMC channels of fixed-size elements, with close and
 * select.
 *
 * Design
 *   Go's hchan: one spin lock per channel guards a ring buffer of cap
 *   elements and two waiter queues (waitq.c), senders and receivers. An
 *   operation that can complete does so under the lock:
 *     - send: a waiting receiver gets the element copied straight into
 *       its buffer (it never goes through the ring); else the element
 *       goes into the ring if there is room;
 *     - recv: the oldest element of the ring, and the first waiting
 *       sender's element moves into the freed slot (so FIFO order per
 *       sender holds); with no buffered element, a waiting sender's
 *       element is copied straight out of its buffer (capacity 0: a
 *       rendezvous).
 *   Otherwise the caller links a waiter that points at its own element
 *   or destination (an element of up to 16 bytes: a copy in the waiter
 *   itself, chan_wait) and suspends (or sleeps). The partner that claims it
 *   copies the element and completes it after dropping the lock, which
 *   wakes the waiting task into the partner worker's LIFO slot
 *   (task.c): a hand-off between two tasks of one worker touches no
 *   kernel object and runs the woken task next.
 *
 *   close() marks the channel closed and completes every waiter with
 *   CLOSED: receivers only wait when nothing is buffered, so they are
 *   done; senders are refused and keep their elements. Later receivers
 *   drain the ring, then get BR_ECLOSED; later senders get it at once.
 *
 *   select() locks every channel of its cases in address order (so two
 *   selects cannot deadlock), polls the cases starting at a random one
 *   (no ready case is always passed over), and if none is ready links a
 *   waiter into each case's queue under those same locks, then sleeps.
 *   All the waiters share one multi wait (waitq.h): the first partner to
 *   claim it wins, the others skip its waiters. Polling and linking under
 *   all the locks means no partner can see a half-linked select.
 *
 * No lost wake-ups
 *   Checking for a partner and linking a waiter happen in one hold of the
 *   channel's lock (all the cases' locks for select), and so do a
 *   partner's look at the queue and its claim. So either the partner
 *   comes first and the waiter finds it (or the buffered element, or
 *   closed), or the waiter comes first and the partner finds the waiter.
 *   Claims race deadlines and cancellation as waitq.c says: a claimed
 *   waiter always gets its element or delivery; an aborted one is
 *   skipped and the element goes to the next waiter.
 *
 * Invariants
 *   - Receivers wait only while len == 0 and no sender waits; senders
 *     wait only while len == cap and no receiver waits.
 *   - Once closed, no waiter is linked.
 *   - len <= cap; the elements are ring[(head + i) % cap], i < len.
 *
 * Concurrency
 *   Any task or thread. Everything but esize, cap and ring's address is
 *   protected by ch->lock. Lock order: channels by address (select); no
 *   other lock is taken while one is held.
 *
 * Memory ordering
 *   The lock orders every copy into and out of the ring and the waiters'
 *   buffers; a completed waiter reads its buffer after waitq.c's DONE
 *   acquire, which pairs with the release after the partner's copy.
 *
 * Lifetime
 *   br_chan_new() allocates the channel and its ring; br_chan_free(),
 *   once nobody uses it, frees the ring and hands the channel to the
 *   quarantine (quarantine.c), which keeps its poisoned magic readable
 *   for a while: a call on a freed channel gives BR_EBADOBJ.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "quarantine.h"
#include "sync.h"
#include "waitq.h"

#define BR__MAGIC_CHAN 0x62724348u /* "brCH" */

/* Partner results (waitq.c): the element was delivered, or closed. */
#define CH_OK 0
#define CH_CLOSED 1

/* Cases handled with stack arrays; more are malloc'd. */
#define SEL_STACK 8

struct br_chan {
	uint32_t magic;	       /* BR__MAGIC_CHAN while live */
	_Atomic uint32_t lock; /* spin lock (waitq.h) */
	int closed;	       /* protected by lock */
	size_t esize, cap;     /* fixed at creation */
	size_t head, len;      /* the ring; protected by lock */
	struct br__wq sendq;   /* protected by lock */
	struct br__wq recvq;   /* protected by lock */
	unsigned char *ring;   /* cap * esize bytes; NULL if cap is 0 */
};

/* Freed channels, whose magic a stale call may still check. */
static struct br__quarantine freed_chans =
	BR__QUARANTINE_INIT(struct br_chan, magic);

static int chan_ok(const struct br_chan *ch)
{
	return ch && ch->magic == BR__MAGIC_CHAN;
}

static int check(const struct br_chan *ch)
{
	if (!ch)
		return -EINVAL;
	return chan_ok(ch) ? 0 : BR_EBADOBJ;
}

static unsigned char *slot(struct br_chan *ch, size_t i)
{
	return ch->ring + (i % ch->cap) * ch->esize;
}

/* Copy one element; the common small sizes inline to a move or two. */
static inline void copy(void *dst, const void *src, size_t n)
{
	switch (n) {
	case 4:
		memcpy(dst, src, 4);
		break;
	case 8:
		memcpy(dst, src, 8);
		break;
	case 16:
		memcpy(dst, src, 16);
		break;
	default:
		memcpy(dst, src, n);
	}
}

int br_chan_new(br_chan **out, size_t elem_size, size_t capacity)
{
	struct br_chan *ch;

	if (!out || elem_size == 0 || elem_size > BR_CHAN_ELEM_MAX ||
	    capacity > BR_CHAN_CAP_MAX)
		return -EINVAL;
	ch = calloc(1, sizeof(*ch));
	if (!ch)
		return -ENOMEM;
	if (capacity) {
		ch->ring = calloc(capacity, elem_size);
		if (!ch->ring) {
			free(ch);
			return -ENOMEM;
		}
	}
	ch->esize = elem_size;
	ch->cap = capacity;
	atomic_init(&ch->lock, 0);
	ch->magic = BR__MAGIC_CHAN;
	*out = ch;
	return 0;
}

void br_chan_free(br_chan *ch)
{
	if (!chan_ok(ch))
		return;
	ch->magic = BR__MAGIC_DEAD;
	free(ch->ring);
	br__quarantine_free(&freed_chans, ch);
}

/*
 * Send elem now if it can go: returns CH_OK (*wake is set when a waiting
 * receiver took it), CH_CLOSED, or -EAGAIN. Caller holds ch->lock.
 */
static int send_locked(struct br_chan *ch, const void *elem,
		       const struct br__wait *self, struct br__wqe **wake)
{
	struct br__wqe *w;

	BR__ASSERT_SPIN_HELD(&ch->lock);
	if (ch->closed)
		return CH_CLOSED;
	w = br__wq_claim(&ch->recvq, self);
	if (w) {
		if (w->buf)
			copy(w->buf, elem, ch->esize);
		*wake = w;
		return CH_OK;
	}
	if (ch->len < ch->cap) {
		copy(slot(ch, ch->head + ch->len), elem, ch->esize);
		ch->len++;
		return CH_OK;
	}
	return -EAGAIN;
}

/* Receive into out (NULL: drop it) now if possible; as send_locked. */
static int recv_locked(struct br_chan *ch, void *out,
		       const struct br__wait *self, struct br__wqe **wake)
{
	struct br__wqe *w;

	if (ch->len) {
		if (out)
			copy(out, slot(ch, ch->head), ch->esize);
		ch->head = (ch->head + 1) % ch->cap;
		ch->len--;
		/* A sender waits only on a full ring: it takes the slot. */
		w = br__wq_claim(&ch->sendq, self);
		if (w) {
			copy(slot(ch, ch->head + ch->len), w->buf, ch->esize);
			ch->len++;
			*wake = w;
		}
		return CH_OK;
	}
	w = br__wq_claim(&ch->sendq, self);
	if (w) {
		if (out)
			copy(out, w->buf, ch->esize);
		*wake = w;
		return CH_OK;
	}
	return ch->closed ? CH_CLOSED : -EAGAIN;
}

static int result_code(int r)
{
	return r == CH_CLOSED ? BR_ECLOSED : r;
}

static void chan_abort(struct br__wait *wt)
{
	struct br_chan *ch = wt->obj;
	struct br__wqe *w = wt->ws;

	br__wq_remove(w->kind == BR_CHAN_SEND ? &ch->sendq : &ch->recvq, w);
}

/* Elements up to this size travel in the waiter itself (chan_wait). */
#define INLINE_ELEM 16

/*
 * Wait for a partner: link a waiter for op on buf. Caller holds the
 * lock, which this drops. A small element goes in the waiter's own entry,
 * next to what the partner reads and writes to claim and complete it
 * (the entry, then the wait): the partner's copy lands on a line it has
 * already taken from the waiter's worker, not on another one wherever
 * buf lies, and the receiver copies it out once it is done.
 */
static BR__NOINLINE int chan_wait(struct br_chan *ch, unsigned op, void *buf,
				  int64_t deadline)
{
	struct {
		struct br__wqe w;
		unsigned char elem[INLINE_ELEM];
		struct br__wait wt;
	} f;
	int small = buf && ch->esize <= INLINE_ELEM;
	int r = br__wait_begin(&f.wt, 0);

	if (r < 0) {
		br__spin_unlock(&ch->lock);
		return r;
	}
	f.wt.lock = &ch->lock;
	f.wt.abort = chan_abort;
	f.wt.obj = ch;
	f.wt.ws = &f.w;
	if (small && op == BR_CHAN_SEND)
		copy(f.elem, buf, ch->esize);
	br__wqe_init(&f.w, &f.wt, (uint8_t)op, 0, small ? f.elem : buf, 0);
	br__wq_push(op == BR_CHAN_SEND ? &ch->sendq : &ch->recvq, &f.w);
	br__spin_unlock(&ch->lock);
	r = result_code(br__wait_end(&f.wt, deadline));
	/* 0: a sender claimed this receiver and delivered (CH_OK). */
	if (r == 0 && small && op == BR_CHAN_RECV)
		copy(buf, f.elem, ch->esize);
	return r;
}

/*
 * One send or receive: complete it now if possible; else, unless try is
 * set, wait for a partner until deadline.
 */
static int chan_op(br_chan *ch, unsigned op, void *buf, int64_t deadline,
		   int try)
{
	struct br__wqe *wake = NULL;
	int r;

	if (br__unlikely(!chan_ok(ch)))
		return ch ? BR_EBADOBJ : -EINVAL;
	if (op == BR_CHAN_SEND && !buf)
		return -EINVAL;
	br__spin_lock(&ch->lock);
	r = op == BR_CHAN_SEND ? send_locked(ch, buf, NULL, &wake) :
				 recv_locked(ch, buf, NULL, &wake);
	if (r == -EAGAIN && !try)
		return chan_wait(ch, op, buf, deadline);
	br__spin_unlock(&ch->lock);
	if (wake)
		br__wq_complete(wake, CH_OK);
	return result_code(r);
}

int br_chan_send(br_chan *ch, const void *elem)
{
	return chan_op(ch, BR_CHAN_SEND, (void *)elem, -1, 0);
}

int br_chan_send_until(br_chan *ch, const void *elem, int64_t deadline_ns)
{
	return chan_op(ch, BR_CHAN_SEND, (void *)elem, deadline_ns, 0);
}

int br_chan_send_for(br_chan *ch, const void *elem, int64_t timeout_ms)
{
	return chan_op(ch, BR_CHAN_SEND, (void *)elem,
		       br__deadline_ms(timeout_ms), 0);
}

int br_chan_try_send(br_chan *ch, const void *elem)
{
	return chan_op(ch, BR_CHAN_SEND, (void *)elem, -1, 1);
}

int br_chan_recv(br_chan *ch, void *out)
{
	return chan_op(ch, BR_CHAN_RECV, out, -1, 0);
}

int br_chan_recv_until(br_chan *ch, void *out, int64_t deadline_ns)
{
	return chan_op(ch, BR_CHAN_RECV, out, deadline_ns, 0);
}

int br_chan_recv_for(br_chan *ch, void *out, int64_t timeout_ms)
{
	return chan_op(ch, BR_CHAN_RECV, out, br__deadline_ms(timeout_ms), 0);
}

int br_chan_try_recv(br_chan *ch, void *out)
{
	return chan_op(ch, BR_CHAN_RECV, out, -1, 1);
}

int br_chan_close(br_chan *ch)
{
	struct br__wqe *rs, *ss;
	int r = check(ch);

	if (r < 0)
		return r;
	br__spin_lock(&ch->lock);
	if (ch->closed) {
		br__spin_unlock(&ch->lock);
		return BR_ECLOSED;
	}
	ch->closed = 1;
	rs = br__wq_claim_all(&ch->recvq);
	ss = br__wq_claim_all(&ch->sendq);
	br__spin_unlock(&ch->lock);
	br__wq_complete_all(rs, CH_CLOSED);
	br__wq_complete_all(ss, CH_CLOSED);
	return 0;
}

long br_chan_len(br_chan *ch)
{
	long n;
	int r = check(ch);

	if (r < 0)
		return r;
	br__spin_lock(&ch->lock);
	n = (long)ch->len;
	br__spin_unlock(&ch->lock);
	return n;
}

long br_chan_cap(br_chan *ch)
{
	int r = check(ch);

	return r < 0 ? r : (long)ch->cap;
}

/* ---- select ---- */

static __thread uint32_t sel_rng;

/* A random start for the poll; a worker's thread-local, so off the
 * caller's inlining (worker.c, "Fiber hazards"). */
static BR__NOINLINE size_t sel_start(size_t n)
{
	if (!sel_rng)
		sel_rng = (uint32_t)(uintptr_t)&sel_rng ^
			  (uint32_t)br_now_ns() ^ 0x9e3779b9u;
	return br__rand(&sel_rng) % n;
}

/* The distinct channels of cs, in address order; returns how many. */
static size_t sel_sort(const br_chan_case *cs, size_t n, struct br_chan **out)
{
	size_t i, j, k = 0;

	for (i = 0; i < n; i++) {
		struct br_chan *ch = cs[i].chan;

		for (j = 0; j < k && out[j] != ch; j++)
			;
		if (!ch || j < k)
			continue; /* no channel, or one seen already */
		for (j = k; j > 0 && (uintptr_t)out[j - 1] > (uintptr_t)ch; j--)
			out[j] = out[j - 1];
		out[j] = ch;
		k++;
	}
	return k;
}

static void lock_all(struct br_chan **chs, size_t k)
{
	size_t i;

	for (i = 0; i < k; i++)
		br__spin_lock(&chs[i]->lock);
}

static void unlock_all(struct br_chan **chs, size_t k)
{
	size_t i;

	for (i = 0; i < k; i++)
		br__spin_unlock(&chs[k - 1 - i]->lock);
}

struct sel {
	br_chan_case *cs;
	size_t n;
};

/* Unlink every case's waiter; each channel's lock is taken in turn. */
static void sel_unlink(struct br__wait *wt)
{
	struct sel *s = wt->obj;
	size_t i;

	for (i = 0; i < s->n; i++) {
		struct br_chan *ch = s->cs[i].chan;
		struct br__wqe *w = &wt->ws[i];

		if (!ch)
			continue;
		br__spin_lock(&ch->lock);
		br__wq_remove(w->kind == BR_CHAN_SEND ? &ch->sendq : &ch->recvq,
			      w);
		br__spin_unlock(&ch->lock);
	}
}

static int sel_check(const br_chan_case *cs, size_t n)
{
	size_t i, live = 0;
	int r;

	if (!cs || n == 0 || n > BR_CHAN_SELECT_MAX)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (!cs[i].chan)
			continue;
		r = check(cs[i].chan);
		if (r < 0)
			return r;
		if (cs[i].op != BR_CHAN_SEND && cs[i].op != BR_CHAN_RECV)
			return -EINVAL;
		if (cs[i].op == BR_CHAN_SEND && !cs[i].elem)
			return -EINVAL;
		live++;
	}
	return live ? 0 : -EINVAL;
}

/* Poll the cases from a random one; the index of the one done, or
 * -EAGAIN. Caller holds every case's channel lock. */
static int sel_poll(br_chan_case *cs, size_t n, struct br__wqe **wake)
{
	size_t start = sel_start(n), k;

	for (k = 0; k < n; k++) {
		size_t i = (start + k) % n;
		struct br_chan *ch = cs[i].chan;
		int r;

		if (!ch)
			continue;
		r = cs[i].op == BR_CHAN_SEND ?
			    send_locked(ch, cs[i].elem, NULL, wake) :
			    recv_locked(ch, cs[i].elem, NULL, wake);
		if (r != -EAGAIN) {
			cs[i].result = result_code(r);
			return (int)i;
		}
	}
	return -EAGAIN;
}

int br_chan_select_until(br_chan_case *cs, size_t n, int64_t deadline_ns)
{
	struct br__wqe lws[SEL_STACK], *ws = lws, *wake;
	struct br_chan *lchs[SEL_STACK], **chs = lchs;
	struct sel s = { cs, n };
	struct br__wait wt;
	size_t i, k;
	int r = sel_check(cs, n);

	if (r < 0)
		return r;
	for (i = 0; i < n; i++)
		cs[i].result = 0;
	if (n > SEL_STACK) {
		ws = calloc(n, sizeof(*ws));
		chs = calloc(n, sizeof(*chs));
		if (!ws || !chs) {
			r = -ENOMEM;
			goto out;
		}
	}
	k = sel_sort(cs, n, chs);
	for (;;) {
		wake = NULL;
		lock_all(chs, k);
		r = sel_poll(cs, n, &wake);
		if (r != -EAGAIN) {
			unlock_all(chs, k);
			if (wake)
				br__wq_complete(wake, CH_OK);
			goto out;
		}
		if (deadline_ns >= 0 && br_now_ns() >= deadline_ns) {
			unlock_all(chs, k);
			r = -ETIMEDOUT;
			goto out;
		}
		r = br__wait_begin(&wt, BR__WAIT_MULTI);
		if (r < 0) {
			unlock_all(chs, k);
			goto out;
		}
		wt.abort = sel_unlink;
		wt.obj = &s;
		wt.ws = ws;
		for (i = 0; i < n; i++) {
			struct br_chan *ch = cs[i].chan;

			br__wqe_init(&ws[i], &wt, (uint8_t)cs[i].op, (int)i,
				     cs[i].elem, 0);
			if (ch)
				br__wq_push(cs[i].op == BR_CHAN_SEND ?
						    &ch->sendq :
						    &ch->recvq,
					    &ws[i]);
		}
		unlock_all(chs, k);
		r = br__wait_end(&wt, deadline_ns);
		if (r != BR__WAIT_AGAIN)
			break;
	}
	if (r >= 0) {
		/* One case fired; the others are still linked. */
		sel_unlink(&wt);
		cs[wt.index].result = result_code(r);
		r = wt.index;
	}
out:
	if (ws != lws)
		free(ws);
	if (chs != lchs)
		free(chs);
	return r;
}

int br_chan_select(br_chan_case *cs, size_t n)
{
	return br_chan_select_until(cs, n, -1);
}

int br_chan_select_for(br_chan_case *cs, size_t n, int64_t timeout_ms)
{
	return br_chan_select_until(cs, n, br__deadline_ms(timeout_ms));
}
