/* SPDX-License-Identifier: MIT */
/*
 * stress_sync.c - synchronisation and channels under load: millions of
 * mutex operations from tasks on two workers and four plain threads; a
 * mix of every waiting operation with random timeouts while tasks are
 * cancelled at random, which must neither lose a wake-up (every waiter
 * finishes) nor lose or duplicate an element or a unit; and selects
 * racing each other over shared channels.
 *
 * Sizes scale with BRAID_STRESS_SCALE (default 1: a few seconds in the
 * release build; 10 for `make stress`), and shrink under TSan, which
 * runs everything about ten times slower.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include <criterion/criterion.h>

#include "helpers.h"

/* Every test leaves no descriptor, thread or child behind (helpers.h). */
TestSuite(stress_sync, .init = t_leak_init, .fini = t_leak_fini);

#if defined(__SANITIZE_THREAD__)
#define SLOW 10
#else
#define SLOW 1
#endif

/* ------------------------------------------------------------------ */
/* Mutex: millions of operations                                       */
/* ------------------------------------------------------------------ */

static br_mutex big = BR_MUTEX_INIT;
static long big_counter;
static atomic_int big_overlaps;
static long big_iters;

static void *big_body(void *arg)
{
	for (long i = 0; i < big_iters; i++) {
		br_mutex_lock(&big);
		big_counter++;
		if ((i & 1023) == 0) {
			/* Now and then check exclusion the slow way. */
			long seen = big_counter;

			if ((uintptr_t)arg & 1)
				br_yield();
			if (big_counter != seen)
				atomic_fetch_add(&big_overlaps, 1);
		}
		br_mutex_unlock(&big);
	}
	return NULL;
}

Test(stress_sync, mutex_counts_millions_of_locks_exactly, .timeout = 300.0)
{
	enum {
		TASKS = 64,
		THREADS = 4
	};
	br_runtime *rt = t_runtime(2, 0);
	br_future *fs[TASKS];
	pthread_t th[THREADS];
	long total;

	big_iters = 30000L * t_stress_scale() / SLOW;
	total = big_iters * (TASKS + THREADS);
	for (int i = 0; i < TASKS; i++)
		fs[i] = br_spawn_on(rt, i % 2, big_body, (void *)(intptr_t)i);
	for (int i = 0; i < THREADS; i++)
		t_thread_start(&th[i], big_body, NULL);
	for (int i = 0; i < THREADS; i++)
		t_thread_join(th[i]);
	for (int i = 0; i < TASKS; i++)
		t_assert_task_ok(fs[i]);
	cr_assert_eq(big_counter, total, "%ld of %ld", big_counter, total);
	cr_assert_eq(atomic_load(&big_overlaps), 0);
	cr_assert_eq(br_mutex_destroy(&big), 0);
	br_runtime_free(rt);
}

/* ------------------------------------------------------------------ */
/* Everything at once, with timeouts and cancellations                 */
/* ------------------------------------------------------------------ */

/*
 * Every participant loops over random operations on shared objects, each
 * with a random timeout or none, for a number of rounds; a canceller
 * cancels random tasks meanwhile. A participant that sees -ECANCELED
 * stops (cancellation is sticky). Whatever each operation returned is
 * accounted for, so that at the end:
 *   - the mutex was held by one party at a time, and its counter equals
 *     the successful locks;
 *   - the semaphore is back to its units (every taken unit was posted);
 *   - every element sent successfully was received exactly once, or is
 *     still buffered;
 *   - the wait group reaches zero;
 *   - and the test ends at all, which is the no-lost-wake-up check:
 *     a waiter whose wake-up was lost would wait forever (or until its
 *     timeout, and then the totals above would not add up for the
 *     operations without one).
 */
#define MIX_UNITS 2

struct mix {
	br_mutex m;
	br_cond c;
	br_sem s;
	br_event e;
	br_rwlock l;
	br_waitgroup g;
	br_chan *ch[2];	  /* unbuffered, buffered */
	long counter;	  /* under m */
	long locks;	  /* under m */
	long cond_ticket; /* under m */
	atomic_int inside;
	atomic_int bad;
	atomic_long sent[2];
	atomic_long received[2];
	atomic_long sum_sent;
	atomic_long sum_received;
	atomic_long ops;
	int rounds;
};

static int64_t pick_timeout(uint64_t *rng)
{
	switch (t_rand(rng) % 4) {
	case 0:
		return -1; /* none */
	case 1:
		return 0; /* just try */
	default:
		return (int64_t)(t_rand(rng) % 3); /* 0..2 ms */
	}
}

/* One random operation. Returns -ECANCELED when the caller must stop. */
static int mix_step(struct mix *x, uint64_t *rng)
{
	int64_t to = pick_timeout(rng);
	int r = 0, k;
	long v;

	switch (t_rand(rng) % 8) {
	case 0: /* mutex */
		r = br_mutex_lock_for(&x->m, to);
		if (r == 0) {
			if (atomic_fetch_add(&x->inside, 1) != 0)
				atomic_fetch_add(&x->bad, 1);
			x->counter++;
			x->locks++;
			if (t_rand(rng) % 8 == 0)
				br_yield();
			atomic_fetch_sub(&x->inside, 1);
			br_mutex_unlock(&x->m);
		}
		break;
	case 1: /* semaphore */
		r = br_sem_wait_for(&x->s, to);
		if (r == 0) {
			if (br_sem_value(&x->s) < 0)
				atomic_fetch_add(&x->bad, 1);
			br_sem_post(&x->s);
		}
		break;
	case 2: /* send */
	case 3:
		k = (int)(t_rand(rng) & 1);
		v = (long)(t_rand(rng) % 1000) + 1;
		r = br_chan_send_for(x->ch[k], &v, to);
		if (r == 0) {
			atomic_fetch_add(&x->sent[k], 1);
			atomic_fetch_add(&x->sum_sent, v);
		}
		break;
	case 4: /* receive: with a timeout, as senders may all be done */
	case 5:
		k = (int)(t_rand(rng) & 1);
		r = br_chan_recv_for(x->ch[k], &v, to < 0 ? 5 : to);
		if (r == 0) {
			atomic_fetch_add(&x->received[k], 1);
			atomic_fetch_add(&x->sum_received, v);
		}
		break;
	case 6: /* condition: wait for the next ticket, or bump it */
		r = br_mutex_lock_for(&x->m, -1);
		if (r != 0)
			break;
		if (t_rand(rng) & 1) {
			long want = x->cond_ticket + 1;

			while (x->cond_ticket < want && r == 0)
				r = br_cond_wait_for(&x->c, &x->m,
						     to < 0 ? 2 : to);
			if (r == -ETIMEDOUT)
				r = 0;
		} else {
			x->cond_ticket++;
			br_cond_broadcast(&x->c);
		}
		br_mutex_unlock(&x->m);
		break;
	default: /* read or write lock */
		if (t_rand(rng) & 1)
			r = br_rwlock_rdlock_for(&x->l, to);
		else
			r = br_rwlock_wrlock_for(&x->l, to);
		if (r == 0)
			br_rwlock_unlock(&x->l);
		break;
	}
	atomic_fetch_add(&x->ops, 1);
	if (r == -ECANCELED)
		return r;
	if (r != 0 && r != -ETIMEDOUT && r != -EAGAIN)
		atomic_fetch_add(&x->bad, 1000);
	return 0;
}

struct mixer {
	struct mix *x;
	uint64_t seed;
	atomic_int started;
};

static void *mix_body(void *arg)
{
	struct mixer *me = arg;
	uint64_t rng = me->seed;

	atomic_store(&me->started, 1);
	for (int i = 0; i < me->x->rounds; i++)
		if (mix_step(me->x, &rng) < 0)
			break;
	br_waitgroup_done(&me->x->g);
	return NULL;
}

Test(stress_sync, no_wake_up_is_lost_under_timeouts_and_cancellation,
     .timeout = 300.0)
{
	enum {
		TASKS = 48,
		THREADS = 3
	};
	br_runtime *rt = t_runtime(2, 0);
	struct mix *x = calloc(1, sizeof(*x));
	struct mixer ms[TASKS + THREADS];
	br_future *fs[TASKS];
	pthread_t th[THREADS];
	uint64_t rng = 12345;
	int cancelled = 0, unstarted = 0;
	int accounted[TASKS] = { 0 };
	long v, left[2] = { 0, 0 };

	cr_assert_not_null(x);
	br_mutex_init(&x->m);
	br_cond_init(&x->c);
	br_sem_init(&x->s, MIX_UNITS);
	br_event_init(&x->e);
	br_rwlock_init(&x->l);
	br_waitgroup_init(&x->g);
	cr_assert_eq(br_chan_new(&x->ch[0], sizeof(long), 0), 0);
	cr_assert_eq(br_chan_new(&x->ch[1], sizeof(long), 3), 0);
	x->rounds = (int)(20000 * t_stress_scale() / SLOW);
	br_waitgroup_add(&x->g, TASKS + THREADS);
	for (int i = 0; i < TASKS + THREADS; i++) {
		ms[i].x = x;
		ms[i].seed = 0x9e3779b97f4a7c15ull * (i + 1);
		atomic_init(&ms[i].started, 0);
		if (i < TASKS)
			fs[i] = br_spawn(rt, mix_body, &ms[i]);
		else
			t_thread_start(&th[i - TASKS], mix_body, &ms[i]);
	}
	/* Cancel a third of the tasks at random moments. */
	for (int i = 0; i < TASKS / 3; i++) {
		br_sleep_ns((int64_t)(t_rand(&rng) % 20000000));
		if (br_cancel(fs[t_rand(&rng) % TASKS]) == 0)
			cancelled++;
	}
	/* Every participant finishes: the ones not cancelled after all their
	 * rounds. Receivers may be gone, so blocked senders are released by
	 * draining; their timeouts would release them too. */
	while (br_waitgroup_wait_for(&x->g, 10) == -ETIMEDOUT) {
		/* A task cancelled before it started never runs (braid.h), so
		 * it never says it is done: say it for it. */
		for (int i = 0; i < TASKS; i++)
			if (!accounted[i] &&
			    br_future_state(fs[i]) != BR_PENDING &&
			    !atomic_load(&ms[i].started)) {
				accounted[i] = 1;
				unstarted++;
				br_waitgroup_done(&x->g);
			}
		for (int k = 0; k < 2; k++)
			while (br_chan_try_recv(x->ch[k], &v) == 0) {
				left[k]++;
				atomic_fetch_add(&x->sum_received, v);
			}
		/* Unblock condition waiters without a timeout. */
		br_mutex_lock(&x->m);
		x->cond_ticket++;
		br_cond_broadcast(&x->c);
		br_mutex_unlock(&x->m);
	}
	for (int i = 0; i < THREADS; i++)
		t_thread_join(th[i]);
	for (int i = 0; i < TASKS; i++) {
		int r = br_await(fs[i], NULL);

		cr_assert(r == 0 || r == -ECANCELED, "task %d: %d", i, r);
		br_future_release(fs[i]);
	}
	for (int k = 0; k < 2; k++)
		while (br_chan_try_recv(x->ch[k], &v) == 0) {
			left[k]++;
			atomic_fetch_add(&x->sum_received, v);
		}
	cr_assert_gt(cancelled, 0);
	cr_assert_leq(unstarted, cancelled);
	cr_assert_eq(atomic_load(&x->bad), 0, "bad %d", atomic_load(&x->bad));
	cr_assert_eq(x->counter, x->locks);
	cr_assert_eq(br_sem_value(&x->s), MIX_UNITS, "a unit was lost");
	for (int k = 0; k < 2; k++)
		cr_assert_eq(atomic_load(&x->sent[k]),
			     atomic_load(&x->received[k]) + left[k],
			     "channel %d: %ld sent, %ld received + %ld left", k,
			     atomic_load(&x->sent[k]),
			     atomic_load(&x->received[k]), left[k]);
	cr_assert_eq(atomic_load(&x->sum_sent), atomic_load(&x->sum_received));
	/* Nothing is still linked anywhere. */
	cr_assert_eq(br_mutex_destroy(&x->m), 0);
	cr_assert_eq(br_cond_destroy(&x->c), 0);
	cr_assert_eq(br_sem_destroy(&x->s), 0);
	cr_assert_eq(br_rwlock_destroy(&x->l), 0);
	cr_assert_eq(br_waitgroup_destroy(&x->g), 0);
	br_chan_free(x->ch[0]);
	br_chan_free(x->ch[1]);
	free(x);
	br_runtime_free(rt);
}

/* ------------------------------------------------------------------ */
/* Selects racing each other                                           */
/* ------------------------------------------------------------------ */

/*
 * Selectors each receive from any of three unbuffered channels with a
 * short timeout; senders each send on one of them. Every element must be
 * received exactly once (the sum checks it), with selectors often
 * sharing channels with each other and with plain receivers.
 */
struct race {
	br_chan *ch[3];
	atomic_long got;
	atomic_long sum;
	atomic_int stop;
	long per_sender;
};

static void *race_select(void *arg)
{
	struct race *r = arg;
	long v[3];
	br_chan_case cs[3];

	for (int i = 0; i < 3; i++)
		cs[i] = (br_chan_case){ .chan = r->ch[i],
					.op = BR_CHAN_RECV,
					.elem = &v[i] };
	while (!atomic_load(&r->stop)) {
		int k = br_chan_select_for(cs, 3, 1);

		if (k >= 0 && cs[k].result == 0) {
			atomic_fetch_add(&r->got, 1);
			atomic_fetch_add(&r->sum, v[k]);
		}
	}
	return NULL;
}

static void *race_plain(void *arg)
{
	struct race *r = arg;
	long v;

	while (!atomic_load(&r->stop))
		if (br_chan_recv_for(r->ch[1], &v, 1) == 0) {
			atomic_fetch_add(&r->got, 1);
			atomic_fetch_add(&r->sum, v);
		}
	return NULL;
}

struct race_sender {
	struct race *r;
	int k;
};

static void *race_send(void *arg)
{
	struct race_sender *s = arg;

	for (long i = 1; i <= s->r->per_sender; i++)
		if (br_chan_send(s->r->ch[s->k], &i) != 0)
			return (void *)"send failed";
	return NULL;
}

Test(stress_sync, racing_selects_receive_every_element_once, .timeout = 300.0)
{
	enum {
		SELECTORS = 6,
		SENDERS = 6
	};
	br_runtime *rt = t_runtime(2, 0);
	struct race r = { 0 };
	struct race_sender ss[SENDERS];
	br_future *sel[SELECTORS], *snd[SENDERS], *plain;
	pthread_t th;
	long want;

	r.per_sender = 3000L * t_stress_scale() / SLOW;
	want = r.per_sender * SENDERS;
	for (int i = 0; i < 3; i++)
		cr_assert_eq(br_chan_new(&r.ch[i], sizeof(long), 0), 0);
	for (int i = 0; i < SELECTORS; i++)
		sel[i] = br_spawn(rt, race_select, &r);
	plain = br_spawn(rt, race_plain, &r);
	t_thread_start(&th, race_select, &r);
	for (int i = 0; i < SENDERS; i++) {
		ss[i] = (struct race_sender){ &r, i % 3 };
		snd[i] = br_spawn(rt, race_send, &ss[i]);
	}
	for (int i = 0; i < SENDERS; i++)
		t_assert_task_ok(snd[i]);
	atomic_store(&r.stop, 1);
	for (int i = 0; i < SELECTORS; i++)
		t_assert_task_ok(sel[i]);
	t_assert_task_ok(plain);
	t_thread_join(th);
	cr_assert_eq(atomic_load(&r.got), want);
	cr_assert_eq(atomic_load(&r.sum),
		     SENDERS * (r.per_sender * (r.per_sender + 1) / 2));
	for (int i = 0; i < 3; i++)
		br_chan_free(r.ch[i]);
	br_runtime_free(rt);
}
