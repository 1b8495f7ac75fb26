/* SPDX-License-Identifier: MIT */
/*
 * rwlock.c - the read-write lock: many readers or one writer, for tasks
 * and plain threads alike.
 *
 * Design
 *   st = readers * R_READER | R_WRITER | R_WAITERS. The fast paths are one
 *   CAS each: a reader adds R_READER while neither WRITER nor WAITERS is
 *   set, a writer goes from 0 to WRITER, and unlocks go back the same way
 *   while nobody waits.
 *
 *   Anybody who cannot enter queues in one FIFO, readers and writers
 *   together, and a reader arriving while anyone waits queues too, so a
 *   stream of readers cannot starve a writer. Whoever frees the lock
 *   while WAITERS is set (a writer's unlock, the last reader's unlock, a
 *   waiter leaving the head of the queue) runs dispatch() under the
 *   queue's lock, which grants in queue order: a writer alone when the
 *   lock is free, or every reader up to the next writer when no writer
 *   holds it. Granted waiters already hold the lock when they wake (a
 *   hand-off), so no late arrival can take it from them.
 *
 *   Rejected: separate reader and writer queues with a preference flag
 *   (fair only in one direction), and waking everybody to retry (a herd).
 *
 * No lost wake-ups
 *   A waiter sets WAITERS and links itself in one hold of the queue lock,
 *   after seeing the lock unavailable. Any release that could let it in
 *   happens after that under the same lock (a writer's unlock with
 *   WAITERS takes it), or is a reader's decrement, and the decrement that
 *   leaves no reader while WAITERS is set takes the lock and dispatches.
 *   While WAITERS is set no fast path can enter, so the lock can be free
 *   with waiters only between that last decrement and its dispatch.
 *
 * Invariants
 *   - Under the queue lock: WAITERS <=> the queue is not empty.
 *   - WRITER => no readers.
 *   - While WAITERS is set, st changes only under the queue lock, except
 *     for readers' decrements.
 *
 * Concurrency
 *   Any task or thread. st: CAS from anywhere; the queue under s->lock.
 *
 * Memory ordering
 *   - Entering: CAS with acquire; leaving: CAS with release; grants are
 *     published by dispatch()'s release CAS and waitq.c's DONE pair.
 *   - Setting WAITERS under the lock is relaxed: the lock orders it.
 *
 * Lifetime
 *   The lock is the caller's memory (sync.h).
 */
#include <errno.h>

#include "sync.h"

#define R_WRITER 0x1ull
#define R_WAITERS 0x2ull
#define R_READER 0x4ull
#define R_READERS (~0ull << 2)

enum {
	KIND_READ,
	KIND_WRITE
};

/*
 * Grant the waiters at the head of the queue that may enter now, after
 * releasing `drop` (R_WRITER for a writer's unlock, else 0). Returns the
 * granted waiters, claimed, chained through next, to be completed once
 * the lock is dropped. Caller holds s->lock.
 */
static struct br__wqe *dispatch(struct br__sync *s, uint64_t drop)
{
	struct br__wqe *chain = NULL, **tail = &chain, *w;
	uint64_t v = atomic_load_explicit(&s->st, memory_order_relaxed);
	uint64_t add = 0, readers = (v & R_READERS) / R_READER;
	int writer = 0;

	BR__ASSERT_SPIN_HELD(&s->lock);
	while ((w = br__wq_first(&s->q)) != NULL) {
		if (w->kind == KIND_WRITE) {
			if (readers || add || ((v & ~drop) & R_WRITER))
				break;
			writer = 1;
		} else if (writer || ((v & ~drop) & R_WRITER)) {
			break;
		}
		w = br__wq_claim(&s->q, NULL); /* plain waits: always w */
		w->chain = NULL;
		*tail = w;
		tail = &w->chain;
		if (writer)
			break;
		add += R_READER;
	}
	/* Readers may leave meanwhile (not arrive: WAITERS is set, or we
	 * just released the writer's hold); a writer is granted only when
	 * no reader holds, so no decrement can race that. */
	do {
		uint64_t nv = (v & ~drop & ~R_WAITERS) + add;

		if (writer)
			nv |= R_WRITER;
		if (!br__wq_empty(&s->q))
			nv |= R_WAITERS;
		/* Release: the unlocker's critical section to the grantees
		 * (and to later fast-path enterers, if nobody waits now). */
		if (atomic_compare_exchange_weak_explicit(&s->st, &v, nv,
							  memory_order_release,
							  memory_order_relaxed))
			break;
	} while (1);
	return chain;
}

static void rw_abort(struct br__wait *wt)
{
	struct br__sync *s = br__sync_of(wt);

	br__wq_remove(&s->q, wt->ws);
	/* A writer leaving the head may let the readers behind it in. */
	wt->later = dispatch(s, 0);
}

int br_rwlock_init(br_rwlock *rw)
{
	if (!rw)
		return -EINVAL;
	br__sync_init(rw, BR__MAGIC_RWLOCK, 0);
	return 0;
}

int br_rwlock_destroy(br_rwlock *rw)
{
	return br__sync_destroy(rw, BR__MAGIC_RWLOCK, ~0ull);
}

static int can_read(uint64_t v)
{
	return !(v & (R_WRITER | R_WAITERS));
}

static int can_write(uint64_t v)
{
	return v == 0;
}

/* One CAS attempt loop to enter; 0 on success, -EBUSY if it must wait. */
static int enter(struct br__sync *s, int kind)
{
	uint64_t v = atomic_load_explicit(&s->st, memory_order_relaxed);

	for (;;) {
		uint64_t nv;

		if (kind == KIND_READ) {
			if (!can_read(v))
				return -EBUSY;
			nv = v + R_READER;
		} else {
			if (!can_write(v))
				return -EBUSY;
			nv = R_WRITER;
		}
		/* Acquire: pairs with the leaving release. */
		if (atomic_compare_exchange_weak_explicit(&s->st, &v, nv,
							  memory_order_acquire,
							  memory_order_relaxed))
			return 0;
	}
}

static int lock_until(br_rwlock *rw, int kind, int64_t deadline)
{
	struct br__sync *s;
	uint64_t v;
	int r = br__sync_get(rw, BR__MAGIC_RWLOCK, &s);

	if (r < 0)
		return r;
	for (;;) {
		if (enter(s, kind) == 0)
			return 0;
		br__spin_lock(&s->lock);
		v = atomic_load_explicit(&s->st, memory_order_relaxed);
		do {
			if (kind == KIND_READ ? can_read(v) : can_write(v))
				break;
			/* Relaxed: under the lock (header). */
		} while (!atomic_compare_exchange_weak_explicit(
			&s->st, &v, v | R_WAITERS, memory_order_relaxed,
			memory_order_relaxed));
		if (kind == KIND_READ ? !can_read(v) : !can_write(v))
			break;
		br__spin_unlock(&s->lock); /* free again: retry */
	}
	/* A grant means the lock is already ours (dispatch). */
	return br__sync_queue(s, (uint8_t)kind, 0, deadline, 0, rw_abort);
}

int br_rwlock_rdlock(br_rwlock *rw)
{
	return lock_until(rw, KIND_READ, -1);
}

int br_rwlock_rdlock_until(br_rwlock *rw, int64_t deadline_ns)
{
	return lock_until(rw, KIND_READ, deadline_ns);
}

int br_rwlock_rdlock_for(br_rwlock *rw, int64_t timeout_ms)
{
	return lock_until(rw, KIND_READ, br__deadline_ms(timeout_ms));
}

int br_rwlock_wrlock(br_rwlock *rw)
{
	return lock_until(rw, KIND_WRITE, -1);
}

int br_rwlock_wrlock_until(br_rwlock *rw, int64_t deadline_ns)
{
	return lock_until(rw, KIND_WRITE, deadline_ns);
}

int br_rwlock_wrlock_for(br_rwlock *rw, int64_t timeout_ms)
{
	return lock_until(rw, KIND_WRITE, br__deadline_ms(timeout_ms));
}

static int try_lock(br_rwlock *rw, int kind)
{
	struct br__sync *s;
	int r = br__sync_get(rw, BR__MAGIC_RWLOCK, &s);

	return r < 0 ? r : enter(s, kind);
}

int br_rwlock_tryrdlock(br_rwlock *rw)
{
	return try_lock(rw, KIND_READ);
}

int br_rwlock_trywrlock(br_rwlock *rw)
{
	return try_lock(rw, KIND_WRITE);
}

int br_rwlock_unlock(br_rwlock *rw)
{
	struct br__wqe *chain;
	struct br__sync *s;
	uint64_t v, nv, drop;
	int r = br__sync_get(rw, BR__MAGIC_RWLOCK, &s);

	if (r < 0)
		return r;
	v = atomic_load_explicit(&s->st, memory_order_relaxed);
	for (;;) {
		if (v & R_WRITER) {
			if (v & R_WAITERS)
				break; /* dispatch hands it on */
			nv = v & ~R_WRITER;
		} else if (v & R_READERS) {
			nv = v - R_READER;
		} else {
			return -EPERM;
		}
		/* Release: pairs with the next enterer's acquire. */
		if (atomic_compare_exchange_weak_explicit(
			    &s->st, &v, nv, memory_order_release,
			    memory_order_relaxed)) {
			if ((nv & R_READERS) || !(nv & R_WAITERS))
				return 0;
			break; /* the last reader, with waiters */
		}
	}
	drop = (v & R_WRITER) ? R_WRITER : 0;
	br__spin_lock(&s->lock);
	chain = dispatch(s, drop);
	br__spin_unlock(&s->lock);
	br__wq_complete_all(chain, 0);
	return 0;
}
