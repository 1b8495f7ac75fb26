/* SPDX-License-Identifier: MIT */
/*
 * future.c - the state machine every future shares, its waiter lists,
 * reference counting, and promises.
 *
 * Design
 *   One type for every origin (task, promise, callback, blocking call, process
 *   job), as DESIGN 5 asks. What the origins do differently (freeing,
 *   cancelling, whether a user may resolve it) is a constant table of
 *   operations that the creator sets (struct br__future_ops), so this file
 *   knows none of them. The state word holds the br_state and a lock bit. A
 *   future leaves PENDING exactly once: the completer takes the lock while the
 *   state is PENDING, writes the result, detaches the waiter list, and
 *   publishes the final state with the same store that drops the lock. A tiny
 *   spin lock beats a lock-free waiter stack here because waiters must also be
 *   removed (wait_any, timeouts, cancellation), which a Treiber stack cannot
 *   do without an ABA scheme; the lock is held for a few instructions and
 *   never across a call that can block or suspend.
 *
 *   The lock's CAS is the one locked instruction a future pays to
 *   complete, a large part of what a fork-join child costs (the figure
 *   is in docs/ARCHITECTURE.md, "The scheduler tick"). A future nobody
 *   else can reach
 *   needs none: br__future_complete_sole() publishes the final state with
 *   a plain release store, for the child br_await() runs inline while
 *   the caller holds the only reference (wait.c).
 *
 *   Waiters are fired outside the lock, so a callback may do anything,
 *   including complete other futures. Each waiter's memory belongs to the
 *   waiting party; fire()'s last touch is a release store of DONE, and
 *   br__future_unwait() waits for that store, so the owner can reuse the
 *   memory as soon as unwait returns (a task's stack frame or its fiber's
 *   header, for one).
 *
 * Invariants
 *   - st & BR__FST_MASK goes PENDING -> DONE | FAILED | CANCELLED once.
 *   - error, value, bytes and message are written only by the completer
 *     under the lock (or alone: br__future_complete_sole()), before the
 *     final state is published.
 *   - The waiter list is non-empty only while PENDING.
 *   - refs > 0 while anybody may touch the future; the last release frees
 *     it through ops->free. A future whose ops have BR__FOPS_ORPHAN (a
 *     task) is also kept alive by being pending: its runner holds no
 *     counted reference (a locked decrement per task saved). The last
 *     release of such a pending future sets ORPHAN in st instead of
 *     freeing, and the completion frees it. The lock bit arbitrates:
 *     ORPHAN is only set on an unlocked PENDING word, and the completer
 *     reads it under the lock.
 *
 * Concurrency
 *   - Everything here is callable from any thread.
 *   - waiters and the links of linked waiters are protected by the
 *     lock bit in st.
 *
 * Memory ordering
 *   - lock: CAS with acquire; unlock: store with release. The final-state
 *     store is such an unlock, and pairs with br__future_state()'s acquire
 *     load, which is what makes the result visible to readers that never
 *     take the lock.
 *   - A waiter's DONE (release in the fire functions) pairs with the
 *     acquire load in br__future_unwait().
 *   - refs: increments relaxed (a reference is only copied from one
 *     already held); the decrement is acq_rel so the freeing thread sees
 *     every write made under the other references.
 *
 * Lifetime
 *   Promises are malloc'd by br_promise_new() and freed by the last
 *   release. The completer holds no reference while it fires waiters (a
 *   task's runner has none): a waiter that reads f holds one of its own
 *   (br__fire_fn). The out-of-memory future is static and immortal.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "future.h"
#include "worker.h"

static void promise_free(struct br_future *f);

static const struct br__future_ops promise_ops = {
	.name = "promise",
	.free = promise_free,
	.flags = BR__FOPS_PROMISE,
};

/* A call that could not start returns one of these, already FAILED: it
 * is not the caller's to fill. */
static const struct br__future_ops failed_ops = {
	.name = "failed call",
	.free = promise_free,
};

static const struct br__future_ops static_ops = {
	.name = "static",
	.flags = BR__FOPS_STATIC,
};

struct br_future br__future_enomem = {
	.magic = BR__MAGIC_FUTURE,
	.ops = &static_ops,
	.st = BR_FAILED,
	.refs = 1,
	.error = -ENOMEM,
	.message = (char *)"out of memory",
};

void br__future_init(struct br_future *f, const struct br__future_ops *ops,
		     uint32_t refs)
{
	BR_DEBUG_ASSERT(ops && (ops->free || (ops->flags & BR__FOPS_STATIC)));
	f->magic = BR__MAGIC_FUTURE;
	f->ops = ops;
	atomic_init(&f->st, BR_PENDING);
	atomic_init(&f->refs, refs);
	f->error = 0;
	f->value = NULL;
	f->message = NULL;
	f->bytes = NULL;
	f->len = 0;
	f->waiters.head = f->waiters.tail = NULL;
}

static uint32_t lock(struct br_future *f)
{
	unsigned spins = 0;

	for (;;) {
		uint32_t v = atomic_load_explicit(&f->st, memory_order_relaxed);

		/* Acquire: pairs with unlock()'s release. */
		if (!(v & BR__FST_LOCK) &&
		    atomic_compare_exchange_weak_explicit(
			    &f->st, &v, v | BR__FST_LOCK, memory_order_acquire,
			    memory_order_relaxed))
			return v;
		/* Holders never block; a preempted holder is the only reason
		 * to get here often. */
		br__backoff(&spins);
	}
}

static void unlock(struct br_future *f, uint32_t state)
{
	/* Release: pairs with lock()'s acquire and br__future_state(). */
	atomic_store_explicit(&f->st, state, memory_order_release);
}

int br__future_complete(struct br_future *f, br_state state, void *value,
			void *bytes, size_t len, int error, const char *msg)
{
	struct br__list_node *n, *next;
	char *copy = NULL;
	uint32_t v;

	BR_ASSERT(state != BR_PENDING);
	if (msg && *msg)
		copy = br__strdup(msg);
	v = lock(f);
	if ((v & BR__FST_MASK) != BR_PENDING) {
		unlock(f, v);
		free(copy);
		free(bytes);
		return BR_EDONE;
	}
	f->value = value;
	f->bytes = bytes;
	f->len = len;
	f->error = error;
	f->message = copy;
	n = br__list_take_all(&f->waiters);
	for (next = n; next; next = next->next)
		atomic_store_explicit(
			&br__list_entry(next, struct br__waiter, link)->st,
			BR__W_FIRING, memory_order_relaxed);
	unlock(f, (uint32_t)state);
	for (; n; n = next) {
		struct br__waiter *w =
			br__list_entry(n, struct br__waiter, link);

		next = n->next; /* w may be gone once fired */
		w->fire(w, f);
	}
	/* Nobody holds f: its last release came while it was pending. The
	 * waiters did not need it (a callback waiter holds a reference). */
	if (v & BR__FST_ORPHAN)
		f->ops->free(f);
	return 0;
}

int br__future_complete_sole(struct br_future *f, br_state state, void *value,
			     void *bytes, size_t len, int error,
			     const char *msg)
{
	/* Relaxed: nobody else can reach f (the contract), so nothing can
	 * change st or the waiter list under us. */
	if (atomic_load_explicit(&f->st, memory_order_relaxed) != BR_PENDING ||
	    !br__list_empty(&f->waiters))
		return br__future_complete(f, state, value, bytes, len, error,
					   msg);
	BR_ASSERT(state != BR_PENDING);
	f->value = value;
	f->bytes = bytes;
	f->len = len;
	f->error = error;
	f->message = msg && *msg ? br__strdup(msg) : NULL;
	/* Release: pairs with br__future_state()'s acquire, as unlock()'s
	 * store of the final state does. */
	atomic_store_explicit(&f->st, (uint32_t)state, memory_order_release);
	return 0;
}

int br__future_wait_on(struct br_future *f, struct br__waiter *w)
{
	uint32_t v = lock(f);

	if ((v & BR__FST_MASK) != BR_PENDING) {
		unlock(f, v);
		return 0;
	}
	br__list_push_back(&f->waiters, &w->link);
	atomic_store_explicit(&w->st, BR__W_LINKED, memory_order_relaxed);
	unlock(f, v);
	return 1;
}

int br__future_unwait(struct br_future *f, struct br__waiter *w)
{
	unsigned spins = 0;
	uint32_t v;
	int st;

	/* Acquire: pairs with the fire functions' release of DONE. */
	st = atomic_load_explicit(&w->st, memory_order_acquire);
	if (st == BR__W_DONE || st == BR__W_IDLE)
		return 0;
	v = lock(f);
	if (atomic_load_explicit(&w->st, memory_order_relaxed) ==
	    BR__W_LINKED) {
		br__list_remove(&f->waiters, &w->link);
		atomic_store_explicit(&w->st, BR__W_IDLE, memory_order_relaxed);
		unlock(f, v);
		return 1;
	}
	unlock(f, v);
	/* Detached by a completion: wait until fire() is done with w. */
	while (atomic_load_explicit(&w->st, memory_order_acquire) != BR__W_DONE)
		br__backoff(&spins);
	return 0;
}

int br__future_result(const struct br_future *f, void **value)
{
	br_state s = br__future_state(f);

	if (value)
		*value = s == BR_DONE ? f->value : NULL;
	switch (s) {
	case BR_DONE:
		return 0;
	case BR_CANCELLED:
		return -ECANCELED;
	case BR_FAILED:
		return f->error;
	default:
		return -EAGAIN;
	}
}

/* Promises freed on a worker thread are kept for reuse there (not in
 * sanitizer builds, so ASan sees every use after free): message passing
 * makes and frees one per message. */
#define PROMISE_CACHE_MAX 256

struct br_future *br__promise_alloc(uint32_t refs)
{
	struct br__worker *w = br__worker_current();
	struct br_future *f;

	if (BR__FAULT("braid/future/alloc"))
		return NULL;
	if (w && w->free_promises) {
		f = w->free_promises;
		w->free_promises = (struct br_future *)f->value;
		w->nfree_promises--;
	} else {
		f = malloc(sizeof(*f));
		if (!f)
			return NULL;
	}
	br__future_init(f, &promise_ops, refs);
	return f;
}

struct br_future *br__future_failed(int code, const char *msg)
{
	struct br_future *f = br__promise_alloc(1);

	if (!f)
		return &br__future_enomem;
	f->ops = &failed_ops;
	br__future_complete(f, BR_FAILED, NULL, NULL, 0, code,
			    msg ? msg : br_strerror(code));
	return f;
}

static void promise_free(struct br_future *f)
{
	br__future_destroy(f);
#ifndef BR__SANITIZED
	struct br__worker *w = br__worker_current();

	if (w && w->nfree_promises < PROMISE_CACHE_MAX) {
		f->value = w->free_promises; /* the link, while cached */
		w->free_promises = f;
		w->nfree_promises++;
		return;
	}
#endif
	free(f);
}

void br__promise_cache_drain(struct br__worker *w)
{
	while (w->free_promises) {
		struct br_future *f = w->free_promises;

		w->free_promises = (struct br_future *)f->value;
		free(f);
	}
	w->nfree_promises = 0;
}

/* ---- public API ---- */

br_state br_future_state(const br_future *f)
{
	if (!br__future_ok(f))
		return BR_FAILED;
	return br__future_state(f);
}

int br_future_error(const br_future *f)
{
	if (!br__future_ok(f))
		return BR_EBADOBJ;
	switch (br__future_state(f)) {
	case BR_FAILED:
		return f->error;
	case BR_CANCELLED:
		return -ECANCELED;
	default:
		return 0;
	}
}

const char *br_future_message(const br_future *f)
{
	br_state s;

	if (!br__future_ok(f))
		return "not a live braid future";
	s = br__future_state(f);
	if (s == BR_FAILED || s == BR_CANCELLED)
		return f->message ? f->message :
				    br_strerror(br_future_error(f));
	return "";
}

const void *br_future_bytes(const br_future *f, size_t *len)
{
	if (len)
		*len = 0;
	if (!br__future_ok(f) || br__future_state(f) != BR_DONE)
		return NULL;
	if (len)
		*len = f->len;
	return f->bytes;
}

br_future *br_future_retain(br_future *f)
{
	uint32_t old;

	if (!br__future_ok(f) || (f->ops->flags & BR__FOPS_STATIC))
		return f;
	/* Relaxed: the caller already holds a reference. */
	old = atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
	BR_DEBUG_ASSERT(old > 0);
	(void)old;
	return f;
}

void br__future_destroy(struct br_future *f)
{
	if (f->message)
		free(f->message);
	if (f->bytes)
		free(f->bytes);
	f->magic = BR__MAGIC_DEAD;
}

/* The last reference to an ORPHAN-kind future is gone: free it if it has
 * completed, else leave it to whoever completes it. Returns 1 if the
 * caller frees. */
static int orphan_last_ref(struct br_future *f)
{
	uint32_t v = atomic_load_explicit(&f->st, memory_order_acquire);
	unsigned spins = 0;

	for (;;) {
		if (v & BR__FST_LOCK) {
			br__backoff(&spins); /* a completion or a waiter link */
			v = atomic_load_explicit(&f->st, memory_order_acquire);
			continue;
		}
		if ((v & BR__FST_MASK) != BR_PENDING)
			return 1;
		/* acq_rel: pairs with lock()'s acquire in the completer,
		 * which then sees ORPHAN. */
		if (atomic_compare_exchange_weak_explicit(
			    &f->st, &v, v | BR__FST_ORPHAN,
			    memory_order_acq_rel, memory_order_acquire))
			return 0;
	}
}

void br_future_release(br_future *f)
{
	if (!br__future_ok(f) || (f->ops->flags & BR__FOPS_STATIC))
		return;
	/* Holding the only reference, nobody else can change the count: no
	 * locked decrement needed. Acquire: pairs with the other holders'
	 * release decrements, as the acq_rel below does. */
	if (atomic_load_explicit(&f->refs, memory_order_acquire) != 1 &&
	    atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
		return;
	if ((f->ops->flags & BR__FOPS_ORPHAN) && !orphan_last_ref(f))
		return;
	BR_ASSERT(br__list_empty(&f->waiters));
	f->ops->free(f);
}

static void fire_callback(struct br__waiter *w, struct br_future *f)
{
	w->u.cb.fn(f, w->u.cb.arg);
	br_future_release(f);
	free(w);
}

int br_future_on_done(br_future *f, br_future_fn cb, void *arg)
{
	struct br__waiter *w;

	if (!br__future_ok(f))
		return BR_EBADOBJ;
	if (!cb)
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->fire = fire_callback;
	w->u.cb.fn = cb;
	w->u.cb.arg = arg;
	/* The reference keeps f alive until cb has returned, even if every
	 * other holder releases it meanwhile. */
	br_future_retain(f);
	if (!br__future_wait_on(f, w)) {
		free(w);
		cb(f, arg);
		br_future_release(f);
	}
	return 0;
}

br_future *br_promise_new(void)
{
	struct br_future *f = br__promise_alloc(1);

	return f ? f : &br__future_enomem;
}

static int promise_check(br_future *p)
{
	if (!br__future_ok(p))
		return BR_EBADOBJ;
	if (!(p->ops->flags & BR__FOPS_PROMISE))
		return -EINVAL;
	return 0;
}

int br_promise_resolve(br_future *p, void *value)
{
	int ret = promise_check(p);

	if (ret < 0)
		return ret;
	return br__future_complete(p, BR_DONE, value, NULL, 0, 0, NULL);
}

int br_promise_resolve_bytes(br_future *p, void *buf, size_t len)
{
	int ret = promise_check(p);

	if (!ret && !buf && len)
		ret = -EINVAL; /* a length of bytes that are not there */
	if (ret < 0) {
		free(buf);
		return ret;
	}
	return br__future_complete(p, BR_DONE, NULL, buf, len, 0, NULL);
}

int br_promise_reject(br_future *p, int error, const char *message)
{
	int ret = promise_check(p);

	if (ret < 0)
		return ret;
	if (error >= 0)
		return -EINVAL;
	return br__future_complete(p, BR_FAILED, NULL, NULL, 0, error,
				   message ? message : br_strerror(error));
}

int br_cancel(br_future *f)
{
	if (!br__future_ok(f))
		return BR_EBADOBJ;
	if (br__future_state(f) != BR_PENDING)
		return BR_EDONE;
	if (f->ops->cancel)
		return f->ops->cancel(f);
	return br__future_complete(f, BR_CANCELLED, NULL, NULL, 0, -ECANCELED,
				   "cancelled");
}
