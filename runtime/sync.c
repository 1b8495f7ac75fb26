/* SPDX-License-Identifier: MIT */
/*
 * sync.c - what the synchronisation objects share (initialise, destroy,
 * queue a waiter), and the three counting objects: the semaphore, the
 * event and the wait group.
 *
 * Design
 *   Each object is a struct br__sync (sync.h): a state word that the
 *   fast paths change with one CAS and no lock, a spin lock, and a FIFO
 *   of waiters (waitq.c). A WAITERS bit in the state word is set and
 *   cleared only under the lock, in the same critical section that links
 *   the first waiter or unlinks the last, so under the lock
 *   "WAITERS is set" and "the queue is not empty" are the same thing.
 *   Every fast path that could skip a waiter (a post that would bump the
 *   count past a queued waiter, a set or an add that must wake someone)
 *   fails its CAS when WAITERS is set, and takes the lock instead.
 *
 *   Semaphore: st = count | S_WAITERS. Waiters exist only while the
 *   count is 0; a post with waiters hands its unit straight to the first
 *   (FIFO, and the count never goes negative or past a waiter), so a
 *   late arrival cannot take a unit a waiter was promised.
 *
 *   Event: st = E_SET | E_WAITERS. set() releases every waiter; clear()
 *   only affects later waits (Python's threading.Event, asyncio.Event).
 *
 *   Wait group: st = count | G_WAITERS (Go's sync.WaitGroup). The add
 *   that brings the count to 0 releases every waiter, under the lock
 *   when there are waiters, so a waiter linked before the count reached
 *   0 is always released by that add, even if the group is reused at
 *   once.
 *
 * No lost wake-ups
 *   A waiter checks the state and links itself under the lock, setting
 *   WAITERS in the same hold. A releaser either sees WAITERS (its CAS
 *   fails or it reads it) and takes the lock, where it finds the waiter,
 *   or it changed the state before the waiter took the lock, and the
 *   waiter sees the new state and does not wait. waitq.c covers the
 *   rest (wake-ups racing suspension, deadlines and cancellation).
 *
 * Invariants
 *   - Under the lock: *_WAITERS set <=> q not empty.
 *   - Semaphore: S_WAITERS set => count == 0; 0 <= count <= BR_SEM_MAX.
 *   - Wait group: 0 <= count <= BR_WAITGROUP_MAX.
 *
 * Concurrency
 *   Any task or thread. st: CAS from anywhere; q: under lock.
 *
 * Memory ordering
 *   - Releasing operations (post, set, add) change st with release (or
 *     acq_rel for the RMWs); acquiring ones (a successful wait's fast
 *     path) load or CAS it with acquire. A waiter released through the
 *     queue acquires through waitq.c's DONE pair instead.
 *
 * Lifetime
 *   The objects are the caller's memory; destroy only poisons them.
 */
#include <errno.h>
#include <string.h>

#include "sync.h"

void br__sync_init(void *p, uint32_t magic, uint64_t st)
{
	struct br__sync *s = p;

	memset(s, 0, sizeof(*s));
	atomic_init(&s->st, st);
	atomic_init(&s->lock, 0);
	s->magic = magic;
}

int br__sync_destroy(void *p, uint32_t magic, uint64_t busy)
{
	struct br__sync *s;
	int r = br__sync_get(p, magic, &s);

	if (r < 0)
		return r;
	br__spin_lock(&s->lock);
	if ((atomic_load_explicit(&s->st, memory_order_relaxed) & busy) ||
	    !br__wq_empty(&s->q)) {
		br__spin_unlock(&s->lock);
		return -EBUSY;
	}
	s->magic = BR__MAGIC_DEAD;
	br__spin_unlock(&s->lock);
	return 0;
}

int br__sync_queue(struct br__sync *s, uint8_t kind, uint64_t arg,
		   int64_t deadline, unsigned flags,
		   void (*abort)(struct br__wait *wt))
{
	struct br__wqe w = { .arg = arg }; /* for abort, if begin fails */
	struct br__wait wt;
	int r;

	r = br__wait_begin(&wt, flags);
	wt.lock = &s->lock;
	wt.abort = abort;
	wt.obj = s;
	wt.ws = &w;
	if (r < 0) {
		/* Not linked: abort only undoes what the caller set. */
		abort(&wt);
		br__spin_unlock(&s->lock);
		br__wq_complete_all(wt.later, 0);
		return r;
	}
	br__wqe_init(&w, &wt, kind, 0, NULL, arg);
	if (flags & BR__WAIT_FRONT)
		br__wq_push_front(&s->q, &w);
	else
		br__wq_push(&s->q, &w);
	br__spin_unlock(&s->lock);
	return br__wait_end(&wt, deadline);
}

/*
 * Set bit in s->st with a CAS, unless ready(st) says the object became
 * available meanwhile. Returns 1 if set, 0 if it is available now.
 * Caller holds s->lock.
 */
static int set_waiters(struct br__sync *s, uint64_t bit,
		       int (*ready)(uint64_t st))
{
	/* Acquire: when ready, the caller returns at once, so the read
	 * pairs with the release that made the object ready (a set, the
	 * last done). */
	uint64_t v = atomic_load_explicit(&s->st, memory_order_acquire);

	do {
		if (ready(v))
			return 0;
	} while (!atomic_compare_exchange_weak_explicit(&s->st, &v, v | bit,
							memory_order_acquire,
							memory_order_acquire));
	return 1;
}

/* Clear bit if the queue is empty. Caller holds s->lock. */
static void clear_if_empty(struct br__sync *s, uint64_t bit)
{
	BR__ASSERT_SPIN_HELD(&s->lock);
	if (br__wq_empty(&s->q))
		atomic_fetch_and_explicit(&s->st, ~bit, memory_order_relaxed);
}

/* A waiter leaves: unlink it, and clear the waiters bit it was queued
 * with (its arg) if it was the last. Caller holds s->lock. */
static void waiter_abort(struct br__wait *wt)
{
	struct br__sync *s = br__sync_of(wt);

	br__wq_remove(&s->q, wt->ws);
	clear_if_empty(s, wt->ws->arg);
}

/* ------------------------------------------------------------------ */
/* Semaphore                                                           */
/* ------------------------------------------------------------------ */

#define S_COUNT 0xffffffffull
#define S_WAITERS (1ull << 32)

_Static_assert(BR_SEM_MAX <= S_COUNT, "semaphore count field");

static int sem_ready(uint64_t st)
{
	return (st & S_COUNT) != 0;
}

int br_sem_init(br_sem *sem, unsigned value)
{
	if (!sem)
		return -EINVAL;
	if (value > BR_SEM_MAX)
		return -EINVAL;
	br__sync_init(sem, BR__MAGIC_SEM, value);
	return 0;
}

int br_sem_destroy(br_sem *sem)
{
	return br__sync_destroy(sem, BR__MAGIC_SEM, S_WAITERS);
}

/* Take a unit without waiting: 0, or -EAGAIN. */
static int sem_take(struct br__sync *s)
{
	uint64_t v = atomic_load_explicit(&s->st, memory_order_relaxed);

	while (v & S_COUNT) {
		/* Acquire: pairs with the release of the post that made the
		 * unit, so what the poster wrote is visible. */
		if (atomic_compare_exchange_weak_explicit(&s->st, &v, v - 1,
							  memory_order_acquire,
							  memory_order_relaxed))
			return 0;
	}
	return -EAGAIN;
}

int br_sem_wait_until(br_sem *sem, int64_t deadline)
{
	struct br__sync *s;
	int r = br__sync_get(sem, BR__MAGIC_SEM, &s);

	if (r < 0)
		return r;
	for (;;) {
		if (sem_take(s) == 0)
			return 0;
		br__spin_lock(&s->lock);
		if (set_waiters(s, S_WAITERS, sem_ready))
			break;
		/* A unit appeared: take it, with the lock held no waiter can
		 * be linked meanwhile, and WAITERS stays clear. */
		r = sem_take(s);
		br__spin_unlock(&s->lock);
		if (r == 0)
			return 0;
	}
	/* A grant hands over the poster's unit: the count stays 0. */
	return br__sync_queue(s, 0, S_WAITERS, deadline, 0, waiter_abort);
}

int br_sem_wait(br_sem *sem)
{
	return br_sem_wait_until(sem, -1);
}

int br_sem_wait_for(br_sem *sem, int64_t timeout_ms)
{
	return br_sem_wait_until(sem, br__deadline_ms(timeout_ms));
}

int br_sem_trywait(br_sem *sem)
{
	struct br__sync *s;
	int r = br__sync_get(sem, BR__MAGIC_SEM, &s);

	return r < 0 ? r : sem_take(s);
}

int br_sem_post(br_sem *sem)
{
	struct br__wqe *w;
	struct br__sync *s;
	uint64_t v;
	int r = br__sync_get(sem, BR__MAGIC_SEM, &s);

	if (r < 0)
		return r;
	v = atomic_load_explicit(&s->st, memory_order_relaxed);
	while (!(v & S_WAITERS)) {
		if ((v & S_COUNT) >= BR_SEM_MAX)
			return -EOVERFLOW;
		/* Release: pairs with sem_take()'s acquire. */
		if (atomic_compare_exchange_weak_explicit(&s->st, &v, v + 1,
							  memory_order_release,
							  memory_order_relaxed))
			return 0;
	}
	br__spin_lock(&s->lock);
	w = br__wq_claim(&s->q, NULL);
	if (w) {
		clear_if_empty(s, S_WAITERS);
	} else {
		/* Unreachable while the invariant holds; keep the unit. */
		atomic_fetch_add_explicit(&s->st, 1, memory_order_release);
		clear_if_empty(s, S_WAITERS);
	}
	br__spin_unlock(&s->lock);
	if (w)
		br__wq_complete(w, 0); /* the unit goes to w */
	return 0;
}

int br_sem_value(br_sem *sem)
{
	struct br__sync *s;
	int r = br__sync_get(sem, BR__MAGIC_SEM, &s);

	if (r < 0)
		return r;
	return (int)(atomic_load_explicit(&s->st, memory_order_relaxed) &
		     S_COUNT);
}

/* ------------------------------------------------------------------ */
/* Event                                                               */
/* ------------------------------------------------------------------ */

#define E_SET 0x1ull
#define E_WAITERS 0x2ull

static int event_ready(uint64_t st)
{
	return (st & E_SET) != 0;
}

int br_event_init(br_event *ev)
{
	if (!ev)
		return -EINVAL;
	br__sync_init(ev, BR__MAGIC_EVENT, 0);
	return 0;
}

int br_event_destroy(br_event *ev)
{
	return br__sync_destroy(ev, BR__MAGIC_EVENT, E_WAITERS);
}

int br_event_set(br_event *ev)
{
	struct br__wqe *chain;
	struct br__sync *s;
	uint64_t v;
	int r = br__sync_get(ev, BR__MAGIC_EVENT, &s);

	if (r < 0)
		return r;
	v = atomic_load_explicit(&s->st, memory_order_relaxed);
	while (!(v & E_WAITERS)) {
		if (v & E_SET)
			return 0;
		/* Release: pairs with the waiters' acquire load of SET. */
		if (atomic_compare_exchange_weak_explicit(&s->st, &v, v | E_SET,
							  memory_order_release,
							  memory_order_relaxed))
			return 0;
	}
	br__spin_lock(&s->lock);
	/* Release as above; WAITERS goes with the queue. */
	v = atomic_fetch_or_explicit(&s->st, E_SET, memory_order_release);
	chain = br__wq_claim_all(&s->q);
	atomic_fetch_and_explicit(&s->st, ~E_WAITERS, memory_order_relaxed);
	br__spin_unlock(&s->lock);
	br__wq_complete_all(chain, 0);
	return 0;
}

int br_event_clear(br_event *ev)
{
	struct br__sync *s;
	int r = br__sync_get(ev, BR__MAGIC_EVENT, &s);

	if (r < 0)
		return r;
	/* Relaxed: clearing publishes nothing. */
	atomic_fetch_and_explicit(&s->st, ~E_SET, memory_order_relaxed);
	return 0;
}

int br_event_is_set(br_event *ev)
{
	struct br__sync *s;
	int r = br__sync_get(ev, BR__MAGIC_EVENT, &s);

	if (r < 0)
		return r;
	/* Acquire: pairs with br_event_set()'s release. */
	return (atomic_load_explicit(&s->st, memory_order_acquire) & E_SET) !=
	       0;
}

int br_event_wait_until(br_event *ev, int64_t deadline)
{
	struct br__sync *s;
	int r = br__sync_get(ev, BR__MAGIC_EVENT, &s);

	if (r < 0)
		return r;
	/* Acquire: pairs with br_event_set()'s release. */
	if (atomic_load_explicit(&s->st, memory_order_acquire) & E_SET)
		return 0;
	br__spin_lock(&s->lock);
	if (!set_waiters(s, E_WAITERS, event_ready)) {
		br__spin_unlock(&s->lock);
		return 0;
	}
	return br__sync_queue(s, 0, E_WAITERS, deadline, 0, waiter_abort);
}

int br_event_wait(br_event *ev)
{
	return br_event_wait_until(ev, -1);
}

int br_event_wait_for(br_event *ev, int64_t timeout_ms)
{
	return br_event_wait_until(ev, br__deadline_ms(timeout_ms));
}

/* ------------------------------------------------------------------ */
/* Wait group                                                          */
/* ------------------------------------------------------------------ */

#define G_COUNT 0xffffffffull
#define G_WAITERS (1ull << 32)

_Static_assert(BR_WAITGROUP_MAX <= G_COUNT, "wait group count field");

static int wg_ready(uint64_t st)
{
	return (st & G_COUNT) == 0;
}

int br_waitgroup_init(br_waitgroup *wg)
{
	if (!wg)
		return -EINVAL;
	br__sync_init(wg, BR__MAGIC_WG, 0);
	return 0;
}

int br_waitgroup_destroy(br_waitgroup *wg)
{
	return br__sync_destroy(wg, BR__MAGIC_WG, G_WAITERS | G_COUNT);
}

/* The count after adding delta to st's, or -1 if out of range. */
static int64_t wg_next(uint64_t st, int64_t delta)
{
	int64_t c = (int64_t)(st & G_COUNT) + delta;

	return c < 0 || c > (int64_t)BR_WAITGROUP_MAX ? -1 : c;
}

int br_waitgroup_add(br_waitgroup *wg, int64_t delta)
{
	struct br__wqe *chain = NULL;
	struct br__sync *s;
	uint64_t v;
	int64_t c;
	int r = br__sync_get(wg, BR__MAGIC_WG, &s);

	if (r < 0)
		return r;
	if (delta < -(int64_t)BR_WAITGROUP_MAX ||
	    delta > (int64_t)BR_WAITGROUP_MAX)
		return -EINVAL;
	v = atomic_load_explicit(&s->st, memory_order_relaxed);
	while (!(v & G_WAITERS)) {
		c = wg_next(v, delta);
		if (c < 0)
			return -EINVAL;
		/* acq_rel: a release sequence on st, so a waiter that sees 0
		 * sees what every earlier add and done published. */
		if (atomic_compare_exchange_weak_explicit(
			    &s->st, &v, (uint64_t)c, memory_order_acq_rel,
			    memory_order_relaxed))
			return 0;
	}
	br__spin_lock(&s->lock);
	v = atomic_load_explicit(&s->st, memory_order_relaxed);
	do {
		c = wg_next(v, delta);
		if (c < 0) {
			br__spin_unlock(&s->lock);
			return -EINVAL;
		}
		/* acq_rel: as above. With WAITERS set only holders of the
		 * lock change st, but a fast path may have read it before. */
	} while (!atomic_compare_exchange_weak_explicit(
		&s->st, &v, (uint64_t)c | (c ? (v & G_WAITERS) : 0),
		memory_order_acq_rel, memory_order_relaxed));
	if (c == 0)
		chain = br__wq_claim_all(&s->q);
	br__spin_unlock(&s->lock);
	br__wq_complete_all(chain, 0);
	return 0;
}

int br_waitgroup_done(br_waitgroup *wg)
{
	return br_waitgroup_add(wg, -1);
}

int br_waitgroup_count(br_waitgroup *wg)
{
	struct br__sync *s;
	int r = br__sync_get(wg, BR__MAGIC_WG, &s);

	if (r < 0)
		return r;
	return (int)(atomic_load_explicit(&s->st, memory_order_relaxed) &
		     G_COUNT);
}

int br_waitgroup_wait_until(br_waitgroup *wg, int64_t deadline)
{
	struct br__sync *s;
	int r = br__sync_get(wg, BR__MAGIC_WG, &s);

	if (r < 0)
		return r;
	/* Acquire: pairs with the adds' release sequence. */
	if (wg_ready(atomic_load_explicit(&s->st, memory_order_acquire)))
		return 0;
	br__spin_lock(&s->lock);
	if (!set_waiters(s, G_WAITERS, wg_ready)) {
		br__spin_unlock(&s->lock);
		return 0;
	}
	return br__sync_queue(s, 0, G_WAITERS, deadline, 0, waiter_abort);
}

int br_waitgroup_wait(br_waitgroup *wg)
{
	return br_waitgroup_wait_until(wg, -1);
}

int br_waitgroup_wait_for(br_waitgroup *wg, int64_t timeout_ms)
{
	return br_waitgroup_wait_until(wg, br__deadline_ms(timeout_ms));
}
