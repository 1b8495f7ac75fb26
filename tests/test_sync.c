/* SPDX-License-Identifier: MIT */
/*
 * test_sync.c - the synchronisation objects (mutex.c, cond.c, sync.c,
 * rwlock.c): mutual exclusion with tasks and plain threads at once,
 * timeouts, cancellation of waiting tasks, condition signals, semaphore
 * counts, events, wait groups, read-write locks, and argument checks.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "helpers.h"

/* Every test leaves no descriptor, thread or child behind (helpers.h). */
TestSuite(sync, .init = t_leak_init, .fini = t_leak_fini);

/* ------------------------------------------------------------------ */
/* Shared scaffolding                                                  */
/* ------------------------------------------------------------------ */

/*
 * One operation run by a task or a thread, with what it saw recorded
 * here: a cancelled task's own return value is dropped, so results go
 * through memory the test owns.
 */
struct op {
	br_mutex *m;
	br_cond *c;
	br_sem *s;
	br_event *e;
	br_waitgroup *g;
	br_rwlock *l;
	int64_t timeout_ms;
	atomic_int started;
	atomic_int result;
	atomic_int done;
	int held_after; /* cond: the mutex was held on return */
};

static void op_init(struct op *o)
{
	memset(o, 0, sizeof(*o));
	o->timeout_ms = -1;
	atomic_init(&o->result, 1);
}

/* Wait (spinning the test thread) until o started, then a little more
 * so that it is inside its wait. */
static void wait_started(struct op *o)
{
	cr_assert_eq(t_spin_until(&o->started, 1, 5000 * T_NS_PER_MS), 0);
	br_sleep_ms(20);
}

static int wait_done(struct op *o)
{
	cr_assert_eq(t_spin_until(&o->done, 1, 5000 * T_NS_PER_MS), 0,
		     "the waiter never finished");
	return atomic_load(&o->result);
}

/* ------------------------------------------------------------------ */
/* Mutex                                                               */
/* ------------------------------------------------------------------ */

static br_mutex static_mutex = BR_MUTEX_INIT;

Test(sync, static_mutex_locks_and_unlocks_from_a_plain_thread, .timeout = 10.0)
{
	cr_assert_eq(br_mutex_lock(&static_mutex), 0);
	cr_assert_eq(br_mutex_trylock(&static_mutex), -EBUSY);
	cr_assert_eq(br_mutex_unlock(&static_mutex), 0);
	cr_assert_eq(br_mutex_trylock(&static_mutex), 0);
	cr_assert_eq(br_mutex_unlock(&static_mutex), 0);
	cr_assert_eq(br_mutex_destroy(&static_mutex), 0);
}

Test(sync, unlocking_an_unlocked_mutex_is_eperm, .timeout = 10.0)
{
	br_mutex m;

	cr_assert_eq(br_mutex_init(&m), 0);
	cr_assert_eq(br_mutex_unlock(&m), -EPERM);
	cr_assert_eq(br_mutex_lock(&m), 0);
	cr_assert_eq(br_mutex_destroy(&m), -EBUSY);
	cr_assert_eq(br_mutex_unlock(&m), 0);
	cr_assert_eq(br_mutex_destroy(&m), 0);
}

Test(sync, null_and_destroyed_objects_are_rejected, .timeout = 10.0)
{
	br_mutex m = BR_MUTEX_INIT;
	br_cond c = BR_COND_INIT;
	br_sem s = BR_SEM_INIT(1);
	br_event e = BR_EVENT_INIT;
	br_waitgroup g = BR_WAITGROUP_INIT;
	br_rwlock l = BR_RWLOCK_INIT;

	cr_assert_eq(br_mutex_init(NULL), -EINVAL);
	cr_assert_eq(br_mutex_lock(NULL), -EINVAL);
	cr_assert_eq(br_mutex_unlock(NULL), -EINVAL);
	cr_assert_eq(br_cond_signal(NULL), -EINVAL);
	cr_assert_eq(br_cond_wait(&c, NULL), -EINVAL);
	cr_assert_eq(br_sem_post(NULL), -EINVAL);
	cr_assert_eq(br_sem_init(&s, BR_SEM_MAX + 1u), -EINVAL);
	cr_assert_eq(br_event_set(NULL), -EINVAL);
	cr_assert_eq(br_waitgroup_add(NULL, 1), -EINVAL);
	cr_assert_eq(br_rwlock_rdlock(NULL), -EINVAL);

	cr_assert_eq(br_mutex_destroy(&m), 0);
	cr_assert_eq(br_cond_destroy(&c), 0);
	cr_assert_eq(br_sem_destroy(&s), 0);
	cr_assert_eq(br_event_destroy(&e), 0);
	cr_assert_eq(br_waitgroup_destroy(&g), 0);
	cr_assert_eq(br_rwlock_destroy(&l), 0);
	cr_assert_eq(br_mutex_lock(&m), BR_EBADOBJ);
	cr_assert_eq(br_mutex_unlock(&m), BR_EBADOBJ);
	cr_assert_eq(br_cond_signal(&c), BR_EBADOBJ);
	cr_assert_eq(br_sem_wait(&s), BR_EBADOBJ);
	cr_assert_eq(br_event_wait(&e), BR_EBADOBJ);
	cr_assert_eq(br_waitgroup_wait(&g), BR_EBADOBJ);
	cr_assert_eq(br_rwlock_wrlock(&l), BR_EBADOBJ);
	/* A mutex is not a semaphore once it has been initialised. */
	cr_assert_eq(br_mutex_init(&m), 0);
	cr_assert_eq(br_sem_post((br_sem *)(void *)&m), BR_EBADOBJ);
	/* ...and a destroyed one comes back with its init. */
	cr_assert_eq(br_mutex_lock(&m), 0);
	cr_assert_eq(br_mutex_unlock(&m), 0);
}

/*
 * Mutual exclusion: tasks on two workers and four plain threads all
 * increment a plain counter under one mutex, and each checks that it is
 * alone inside (an atomic occupancy count).
 */
#define MX_TASKS 64
#define MX_THREADS 4
#define MX_ITERS 2000

static br_mutex mx = BR_MUTEX_INIT;
static long mx_counter;
static atomic_int mx_inside;
static atomic_int mx_overlaps;

static void mx_body(int suspend_inside)
{
	for (int i = 0; i < MX_ITERS; i++) {
		if (br_mutex_lock(&mx) != 0) {
			atomic_fetch_add(&mx_overlaps, 1000);
			return;
		}
		if (atomic_fetch_add(&mx_inside, 1) != 0)
			atomic_fetch_add(&mx_overlaps, 1);
		mx_counter++;
		/* Sometimes hold it across a suspension. */
		if (suspend_inside && i % 97 == 0)
			br_yield();
		atomic_fetch_sub(&mx_inside, 1);
		br_mutex_unlock(&mx);
	}
}

static void *mx_task(void *arg)
{
	mx_body(1);
	return NULL;
}

static void *mx_thread(void *arg)
{
	mx_body(0);
	return NULL;
}

Test(sync, mutex_excludes_tasks_on_two_workers_and_four_threads,
     .timeout = 60.0)
{
	br_runtime *rt = t_runtime(2, 0);
	br_future *fs[MX_TASKS];
	pthread_t th[MX_THREADS];

	for (int i = 0; i < MX_TASKS; i++)
		fs[i] = br_spawn(rt, mx_task, NULL);
	for (int i = 0; i < MX_THREADS; i++)
		t_thread_start(&th[i], mx_thread, NULL);
	for (int i = 0; i < MX_THREADS; i++)
		t_thread_join(th[i]);
	for (int i = 0; i < MX_TASKS; i++)
		t_assert_task_ok(fs[i]);
	cr_assert_eq(atomic_load(&mx_overlaps), 0, "%d overlaps",
		     atomic_load(&mx_overlaps));
	cr_assert_eq(mx_counter, (long)(MX_TASKS + MX_THREADS) * MX_ITERS);
	cr_assert_eq(br_mutex_destroy(&mx), 0, "left locked or waited on");
	br_runtime_free(rt);
}

static void *lock_op(void *arg)
{
	struct op *o = arg;
	int r;

	atomic_store(&o->started, 1);
	r = br_mutex_lock_for(o->m, o->timeout_ms);
	atomic_store(&o->result, r);
	if (r == 0)
		br_mutex_unlock(o->m);
	atomic_store(&o->done, 1);
	return NULL;
}

Test(sync, mutex_lock_for_times_out_in_a_task_and_a_thread, .timeout = 20.0)
{
	br_runtime *rt = t_runtime(1, 0);
	br_mutex m = BR_MUTEX_INIT;
	struct op a, b;
	pthread_t th;
	br_future *f;
	int64_t t0 = br_now_ns();

	op_init(&a);
	op_init(&b);
	a.m = b.m = &m;
	a.timeout_ms = b.timeout_ms = 50;
	cr_assert_eq(br_mutex_lock(&m), 0);
	f = br_spawn(rt, lock_op, &a);
	t_thread_start(&th, lock_op, &b);
	cr_assert_eq(wait_done(&a), -ETIMEDOUT);
	cr_assert_eq(wait_done(&b), -ETIMEDOUT);
	cr_assert_geq(t_elapsed_ms(t0), 50);
	t_thread_join(th);
	t_await_value(f);
	br_future_release(f);
	cr_assert_eq(br_mutex_unlock(&m), 0);
	cr_assert_eq(br_mutex_destroy(&m), 0, "a timed-out waiter stayed");
	br_runtime_free(rt);
}

Test(sync, cancelling_a_task_waiting_for_a_mutex_leaves_it_usable,
     .timeout = 20.0)
{
	br_runtime *rt = t_runtime(2, 0);
	br_mutex m = BR_MUTEX_INIT;
	struct op a, b;
	br_future *fa, *fb;

	op_init(&a);
	op_init(&b);
	a.m = b.m = &m;
	cr_assert_eq(br_mutex_lock(&m), 0);
	fa = br_spawn(rt, lock_op, &a);
	fb = br_spawn(rt, lock_op, &b);
	wait_started(&a);
	wait_started(&b);
	cr_assert_eq(br_cancel(fa), 0);
	cr_assert_eq(wait_done(&a), -ECANCELED);
	cr_assert_eq(br_await(fa, NULL), -ECANCELED);
	/* The other waiter still gets the mutex. */
	cr_assert_eq(br_mutex_unlock(&m), 0);
	cr_assert_eq(wait_done(&b), 0);
	t_await_value(fb);
	cr_assert_eq(br_mutex_lock(&m), 0);
	cr_assert_eq(br_mutex_unlock(&m), 0);
	cr_assert_eq(br_mutex_destroy(&m), 0);
	br_future_release(fa);
	br_future_release(fb);
	br_runtime_free(rt);
}

/* A task holding the mutex across a sleep: a second task on the same
 * worker waits for it without blocking the worker. */
static void *hold_and_sleep(void *arg)
{
	struct op *o = arg;

	br_mutex_lock(o->m);
	atomic_store(&o->started, 1);
	br_sleep_ms(50);
	br_mutex_unlock(o->m);
	return NULL;
}

static atomic_int ticks;

static void *ticker(void *arg)
{
	for (int i = 0; i < 10; i++) {
		atomic_fetch_add(&ticks, 1);
		br_sleep_ms(1);
	}
	return NULL;
}

Test(sync, a_waiting_task_does_not_block_its_worker, .timeout = 20.0)
{
	br_runtime *rt = t_runtime(1, 0);
	br_mutex m = BR_MUTEX_INIT;
	struct op h, w;
	br_future *fh, *fw, *ft;

	op_init(&h);
	op_init(&w);
	h.m = w.m = &m;
	fh = br_spawn(rt, hold_and_sleep, &h);
	cr_assert_eq(t_spin_until(&h.started, 1, 5000 * T_NS_PER_MS), 0);
	fw = br_spawn(rt, lock_op, &w);
	ft = br_spawn(rt, ticker, NULL);
	t_await_value(ft);
	/* The ticker ran while the waiter waited on the only worker. */
	cr_assert_eq(atomic_load(&ticks), 10);
	cr_assert_eq(wait_done(&w), 0);
	t_await_value(fh);
	t_await_value(fw);
	br_future_release(fh);
	br_future_release(fw);
	br_future_release(ft);
	br_runtime_free(rt);
}

static atomic_int cb_result = 1;

static void lock_from_callback(void *arg)
{
	atomic_store(&cb_result, br_mutex_lock((br_mutex *)arg));
}

Test(sync, waiting_from_a_loop_callback_is_edeadlk, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(1, 0);
	br_mutex m = BR_MUTEX_INIT;
	br_future *f;

	cr_assert_eq(br_mutex_lock(&m), 0);
	f = br_call_soon(rt, lock_from_callback, &m);
	t_await_value(f);
	cr_assert_eq(atomic_load(&cb_result), BR_EDEADLK);
	cr_assert_eq(br_mutex_unlock(&m), 0);
	cr_assert_eq(br_mutex_destroy(&m), 0);
	br_future_release(f);
	br_runtime_free(rt);
}

/*
 * Starvation: two tasks on two workers hammer the mutex back to back;
 * a plain thread must still get it, repeatedly, in bounded time (the
 * hand-off mode).
 */
static br_mutex hammer_m = BR_MUTEX_INIT;
static atomic_int hammer_stop;

static void *hammer(void *arg)
{
	while (!atomic_load(&hammer_stop)) {
		br_mutex_lock(&hammer_m);
		t_busy_ns(2000);
		br_mutex_unlock(&hammer_m);
	}
	return NULL;
}

Test(sync, a_thread_is_not_starved_by_tasks_hammering_the_mutex,
     .timeout = 30.0)
{
	br_runtime *rt = t_runtime(2, 0);
	br_future *a = br_spawn_on(rt, 0, hammer, NULL);
	br_future *b = br_spawn_on(rt, 1, hammer, NULL);
	int64_t worst = 0;

	br_sleep_ms(10);
	for (int i = 0; i < 50; i++) {
		int64_t t0 = br_now_ns();

		cr_assert_eq(br_mutex_lock(&hammer_m), 0);
		if (br_now_ns() - t0 > worst)
			worst = br_now_ns() - t0;
		br_mutex_unlock(&hammer_m);
	}
	atomic_store(&hammer_stop, 1);
	t_await_value(a);
	t_await_value(b);
	/* Hand-off starts after 1 ms of waiting; allow for a noisy VM. */
	cr_assert_lt(worst, 500 * T_NS_PER_MS, "worst wait %lld ns",
		     (long long)worst);
	br_future_release(a);
	br_future_release(b);
	br_runtime_free(rt);
}

/* ------------------------------------------------------------------ */
/* Condition variable                                                  */
/* ------------------------------------------------------------------ */

struct cv_shared {
	br_mutex m;
	br_cond c;
	int ready; /* under m */
	int woken; /* under m */
};

static void *cv_waiter(void *arg)
{
	struct cv_shared *s = arg;
	int r = 0;

	br_mutex_lock(&s->m);
	while (!s->ready && r == 0)
		r = br_cond_wait(&s->c, &s->m);
	s->woken++;
	br_mutex_unlock(&s->m);
	return (void *)(intptr_t)r;
}

Test(sync, broadcast_wakes_tasks_and_threads_waiting_on_one_condition,
     .timeout = 20.0)
{
	br_runtime *rt = t_runtime(2, 0);
	struct cv_shared s = { BR_MUTEX_INIT, BR_COND_INIT, 0, 0 };
	br_future *fs[8];
	pthread_t th[3];

	for (int i = 0; i < 8; i++)
		fs[i] = br_spawn(rt, cv_waiter, &s);
	for (int i = 0; i < 3; i++)
		t_thread_start(&th[i], cv_waiter, &s);
	br_sleep_ms(30);
	br_mutex_lock(&s.m);
	cr_assert_eq(s.woken, 0);
	s.ready = 1;
	br_cond_broadcast(&s.c);
	br_mutex_unlock(&s.m);
	for (int i = 0; i < 3; i++)
		cr_assert_null(t_thread_join(th[i]));
	for (int i = 0; i < 8; i++) {
		cr_assert_null(t_await_value(fs[i]));
		br_future_release(fs[i]);
	}
	cr_assert_eq(s.woken, 11);
	cr_assert_eq(br_cond_destroy(&s.c), 0);
	br_runtime_free(rt);
}

static void *cv_once(void *arg)
{
	struct op *o = arg;
	int r;

	br_mutex_lock(o->m);
	atomic_store(&o->started, 1);
	r = br_cond_wait_for(o->c, o->m, o->timeout_ms);
	o->held_after = br_mutex_trylock(o->m) == -EBUSY;
	atomic_store(&o->result, r);
	br_mutex_unlock(o->m);
	atomic_store(&o->done, 1);
	return NULL;
}

Test(sync, signal_wakes_exactly_one_waiter, .timeout = 20.0)
{
	br_runtime *rt = t_runtime(2, 0);
	br_mutex m = BR_MUTEX_INIT;
	br_cond c = BR_COND_INIT;
	struct op o[3];
	br_future *fs[3];
	int done = 0;

	for (int i = 0; i < 3; i++) {
		op_init(&o[i]);
		o[i].m = &m;
		o[i].c = &c;
		fs[i] = br_spawn(rt, cv_once, &o[i]);
		wait_started(&o[i]);
	}
	br_cond_signal(&c);
	br_sleep_ms(50);
	for (int i = 0; i < 3; i++)
		done += atomic_load(&o[i].done);
	cr_assert_eq(done, 1, "one signal woke %d waiters", done);
	cr_assert_eq(atomic_load(&o[0].done), 1, "not the longest waiter");
	br_cond_broadcast(&c);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(wait_done(&o[i]), 0);
		cr_assert(o[i].held_after, "returned without the mutex");
		t_await_value(fs[i]);
		br_future_release(fs[i]);
	}
	br_runtime_free(rt);
}

Test(sync, cond_wait_times_out_and_cancels_holding_the_mutex_again,
     .timeout = 20.0)
{
	br_runtime *rt = t_runtime(1, 0);
	br_mutex m = BR_MUTEX_INIT;
	br_cond c = BR_COND_INIT;
	struct op a, b, t;
	br_future *fa, *fb;
	pthread_t th;

	op_init(&a);
	op_init(&b);
	op_init(&t);
	a.m = b.m = t.m = &m;
	a.c = b.c = t.c = &c;
	a.timeout_ms = t.timeout_ms = 30;
	fa = br_spawn(rt, cv_once, &a);
	t_thread_start(&th, cv_once, &t);
	fb = br_spawn(rt, cv_once, &b);
	wait_started(&b);
	cr_assert_eq(wait_done(&a), -ETIMEDOUT);
	cr_assert_eq(wait_done(&t), -ETIMEDOUT);
	cr_assert_eq(br_cancel(fb), 0);
	cr_assert_eq(wait_done(&b), -ECANCELED);
	cr_assert(a.held_after && b.held_after && t.held_after);
	t_thread_join(th);
	cr_assert_eq(br_await(fb, NULL), -ECANCELED);
	t_await_value(fa);
	cr_assert_eq(br_cond_destroy(&c), 0, "a waiter stayed linked");
	cr_assert_eq(br_mutex_destroy(&m), 0);
	br_future_release(fa);
	br_future_release(fb);
	br_runtime_free(rt);
}

/*
 * Cancelled while it waits to relock the mutex after a signal: the
 * re-lock ignores cancellation (it is woken for nothing and waits
 * again), so the task returns holding the mutex, with the signal's 0.
 */
Test(sync, a_task_cancelled_while_relocking_still_gets_the_mutex,
     .timeout = 20.0)
{
	br_runtime *rt = t_runtime(1, 0);
	br_mutex m = BR_MUTEX_INIT;
	br_cond c = BR_COND_INIT;
	struct op o;
	br_future *f;

	op_init(&o);
	o.m = &m;
	o.c = &c;
	f = br_spawn(rt, cv_once, &o);
	wait_started(&o);
	cr_assert_eq(br_mutex_lock(&m), 0);
	cr_assert_eq(br_cond_signal(&c), 0);
	br_sleep_ms(20);
	cr_assert_eq(br_cancel(f), 0);
	br_sleep_ms(20);
	cr_assert_eq(atomic_load(&o.done), 0, "relocked a held mutex");
	cr_assert_eq(br_mutex_unlock(&m), 0);
	cr_assert_eq(wait_done(&o), 0);
	cr_assert(o.held_after);
	t_await_value(f); /* it never saw -ECANCELED: it keeps its value */
	cr_assert_eq(br_mutex_destroy(&m), 0);
	br_future_release(f);
	br_runtime_free(rt);
}

Test(sync, cond_wait_without_the_mutex_is_eperm, .timeout = 10.0)
{
	br_mutex m = BR_MUTEX_INIT;
	br_cond c = BR_COND_INIT;

	cr_assert_eq(br_cond_wait(&c, &m), -EPERM);
	cr_assert_eq(br_cond_wait(NULL, &m), -EINVAL);
}

/* ------------------------------------------------------------------ */
/* Semaphore                                                           */
/* ------------------------------------------------------------------ */

Test(sync, semaphore_counts_posts_and_waits, .timeout = 10.0)
{
	br_sem s = BR_SEM_INIT(2);

	cr_assert_eq(br_sem_value(&s), 2);
	cr_assert_eq(br_sem_trywait(&s), 0);
	cr_assert_eq(br_sem_wait(&s), 0);
	cr_assert_eq(br_sem_trywait(&s), -EAGAIN);
	cr_assert_eq(br_sem_wait_for(&s, 20), -ETIMEDOUT);
	cr_assert_eq(br_sem_value(&s), 0);
	cr_assert_eq(br_sem_post(&s), 0);
	cr_assert_eq(br_sem_value(&s), 1);
	cr_assert_eq(br_sem_init(&s, BR_SEM_MAX), 0);
	cr_assert_eq(br_sem_post(&s), -EOVERFLOW);
	cr_assert_eq(br_sem_value(&s), BR_SEM_MAX);
}

/*
 * Tasks and threads take and give back units of a semaphore of 3 at
 * random; a watcher samples the value, which must stay in [0, 3], and at
 * most 3 holders may be inside at once.
 */
#define SEM_UNITS 3
static br_sem sem_pool = BR_SEM_INIT(SEM_UNITS);
static atomic_int sem_inside, sem_bad, sem_stop;

static void *sem_user(void *arg)
{
	uint64_t rng = (uintptr_t)arg * 7919 + 1;

	for (int i = 0; i < 3000; i++) {
		int r = (t_rand(&rng) & 1) ? br_sem_wait(&sem_pool) :
					     br_sem_wait_for(&sem_pool, 1);

		if (r == -ETIMEDOUT)
			continue;
		if (r != 0) {
			atomic_fetch_add(&sem_bad, 1000);
			break;
		}
		if (atomic_fetch_add(&sem_inside, 1) >= SEM_UNITS)
			atomic_fetch_add(&sem_bad, 1);
		if (t_rand(&rng) % 8 == 0)
			br_yield();
		atomic_fetch_sub(&sem_inside, 1);
		br_sem_post(&sem_pool);
	}
	return NULL;
}

static void *sem_watch(void *arg)
{
	while (!atomic_load(&sem_stop)) {
		int v = br_sem_value(&sem_pool);

		if (v < 0 || v > SEM_UNITS)
			atomic_fetch_add(&sem_bad, 1);
	}
	return NULL;
}

Test(sync, semaphore_count_never_goes_negative_or_past_its_units,
     .timeout = 60.0)
{
	br_runtime *rt = t_runtime(2, 0);
	br_future *fs[16];
	pthread_t th[3], watch;

	t_thread_start(&watch, sem_watch, NULL);
	for (int i = 0; i < 16; i++)
		fs[i] = br_spawn(rt, sem_user, (void *)(intptr_t)i);
	for (int i = 0; i < 3; i++)
		t_thread_start(&th[i], sem_user, (void *)(intptr_t)(100 + i));
	for (int i = 0; i < 3; i++)
		t_thread_join(th[i]);
	for (int i = 0; i < 16; i++)
		t_assert_task_ok(fs[i]);
	atomic_store(&sem_stop, 1);
	t_thread_join(watch);
	cr_assert_eq(atomic_load(&sem_bad), 0);
	cr_assert_eq(br_sem_value(&sem_pool), SEM_UNITS);
	br_runtime_free(rt);
}

static void *sem_op(void *arg)
{
	struct op *o = arg;

	atomic_store(&o->started, 1);
	atomic_store(&o->result, br_sem_wait_for(o->s, o->timeout_ms));
	atomic_store(&o->done, 1);
	return NULL;
}

Test(sync, a_post_goes_to_a_waiter_not_to_a_late_arrival, .timeout = 20.0)
{
	br_runtime *rt = t_runtime(1, 0);
	br_sem s = BR_SEM_INIT(0);
	struct op a, c;
	br_future *fa, *fc;

	op_init(&a);
	op_init(&c);
	a.s = c.s = &s;
	fa = br_spawn(rt, sem_op, &a);
	fc = br_spawn(rt, sem_op, &c);
	wait_started(&a);
	wait_started(&c);
	cr_assert_eq(br_cancel(fc), 0);
	cr_assert_eq(wait_done(&c), -ECANCELED);
	cr_assert_eq(br_sem_post(&s), 0);
	/* The unit was handed to the waiter: nothing for us. */
	cr_assert_eq(br_sem_trywait(&s), -EAGAIN);
	cr_assert_eq(wait_done(&a), 0);
	cr_assert_eq(br_sem_value(&s), 0);
	cr_assert_eq(br_sem_destroy(&s), 0);
	t_await_value(fa);
	br_future_release(fa);
	br_future_release(fc);
	br_runtime_free(rt);
}

/* ------------------------------------------------------------------ */
/* Event                                                               */
/* ------------------------------------------------------------------ */

static void *event_op(void *arg)
{
	struct op *o = arg;

	atomic_store(&o->started, 1);
	atomic_store(&o->result, br_event_wait_for(o->e, o->timeout_ms));
	atomic_store(&o->done, 1);
	return NULL;
}

Test(sync, event_set_releases_every_waiter_and_clear_rearms, .timeout = 20.0)
{
	br_runtime *rt = t_runtime(2, 0);
	br_event e = BR_EVENT_INIT;
	struct op o[6], late;
	br_future *fs[4];
	pthread_t th[2];

	for (int i = 0; i < 6; i++) {
		op_init(&o[i]);
		o[i].e = &e;
	}
	for (int i = 0; i < 4; i++)
		fs[i] = br_spawn(rt, event_op, &o[i]);
	for (int i = 0; i < 2; i++)
		t_thread_start(&th[i], event_op, &o[4 + i]);
	for (int i = 0; i < 6; i++)
		wait_started(&o[i]);
	cr_assert_eq(br_event_is_set(&e), 0);
	for (int i = 0; i < 6; i++)
		cr_assert_eq(atomic_load(&o[i].done), 0);
	cr_assert_eq(br_event_set(&e), 0);
	for (int i = 0; i < 6; i++)
		cr_assert_eq(wait_done(&o[i]), 0);
	cr_assert_eq(br_event_is_set(&e), 1);
	cr_assert_eq(br_event_wait(&e), 0, "a set event waits");
	cr_assert_eq(br_event_clear(&e), 0);
	op_init(&late);
	late.e = &e;
	late.timeout_ms = 20;
	event_op(&late);
	cr_assert_eq(atomic_load(&late.result), -ETIMEDOUT);
	for (int i = 0; i < 2; i++)
		t_thread_join(th[i]);
	for (int i = 0; i < 4; i++) {
		t_await_value(fs[i]);
		br_future_release(fs[i]);
	}
	cr_assert_eq(br_event_destroy(&e), 0);
	br_runtime_free(rt);
}

/* ------------------------------------------------------------------ */
/* Wait group                                                          */
/* ------------------------------------------------------------------ */

static br_waitgroup wg = BR_WAITGROUP_INIT;
static atomic_int wg_finished;

static void *wg_worker(void *arg)
{
	br_sleep_ms((intptr_t)arg % 20);
	atomic_fetch_add(&wg_finished, 1);
	br_waitgroup_done(&wg);
	return NULL;
}

static void wg_done_for(void *arg)
{
	br_waitgroup_done(arg);
}

static void *wg_waiter(void *arg)
{
	int r = br_waitgroup_wait(&wg);

	T_REQUIRE(r == 0);
	T_REQUIRE(atomic_load(&wg_finished) == 40);
	return NULL;
}

Test(sync, waitgroup_releases_waiters_when_the_count_reaches_zero,
     .timeout = 20.0)
{
	br_runtime *rt = t_runtime(2, 0);
	br_future *ws[3], *fs[32];
	pthread_t th[8], tw;

	cr_assert_eq(br_waitgroup_wait(&wg), 0, "count 0 waits");
	cr_assert_eq(br_waitgroup_add(&wg, 40), 0);
	for (int i = 0; i < 3; i++)
		ws[i] = br_spawn(rt, wg_waiter, NULL);
	t_thread_start(&tw, wg_waiter, NULL);
	for (int i = 0; i < 32; i++) {
		fs[i] = br_spawn(rt, wg_worker, (void *)(intptr_t)i);
		/* A worker that never runs still counts down, so that the
		 * waiters end (and see fewer than 40 finished). */
		t_on_failure(fs[i], wg_done_for, &wg);
	}
	for (int i = 0; i < 8; i++)
		t_thread_start(&th[i], wg_worker, (void *)(intptr_t)i);
	cr_assert_null(t_thread_join(tw));
	for (int i = 0; i < 3; i++)
		t_assert_task_ok(ws[i]);
	for (int i = 0; i < 8; i++)
		t_thread_join(th[i]);
	for (int i = 0; i < 32; i++) {
		t_await_value(fs[i]);
		br_future_release(fs[i]);
	}
	cr_assert_eq(br_waitgroup_count(&wg), 0);
	cr_assert_eq(br_waitgroup_done(&wg), -EINVAL, "count went negative");
	cr_assert_eq(br_waitgroup_count(&wg), 0);
	cr_assert_eq(br_waitgroup_add(&wg, 1), 0);
	cr_assert_eq(br_waitgroup_destroy(&wg), -EBUSY);
	cr_assert_eq(br_waitgroup_wait_for(&wg, 20), -ETIMEDOUT);
	cr_assert_eq(br_waitgroup_done(&wg), 0);
	br_runtime_free(rt);
}

/* ------------------------------------------------------------------ */
/* Read-write lock                                                     */
/* ------------------------------------------------------------------ */

static br_rwlock rw = BR_RWLOCK_INIT;
static atomic_int rw_readers, rw_writers, rw_max_readers, rw_bad;
static long rw_value;

static void *rw_user(void *arg)
{
	uint64_t rng = (uintptr_t)arg * 31 + 7;

	for (int i = 0; i < 2000; i++) {
		if (t_rand(&rng) % 4 == 0) {
			br_rwlock_wrlock(&rw);
			if (atomic_fetch_add(&rw_writers, 1) != 0 ||
			    atomic_load(&rw_readers) != 0)
				atomic_fetch_add(&rw_bad, 1);
			rw_value++;
			atomic_fetch_sub(&rw_writers, 1);
		} else {
			int n;

			br_rwlock_rdlock(&rw);
			n = atomic_fetch_add(&rw_readers, 1) + 1;
			if (atomic_load(&rw_writers) != 0)
				atomic_fetch_add(&rw_bad, 1);
			if (n > atomic_load(&rw_max_readers))
				atomic_store(&rw_max_readers, n);
			if (t_rand(&rng) % 16 == 0)
				br_yield();
			atomic_fetch_sub(&rw_readers, 1);
		}
		br_rwlock_unlock(&rw);
	}
	return NULL;
}

Test(sync, rwlock_excludes_writers_and_admits_readers_together, .timeout = 60.0)
{
	br_runtime *rt = t_runtime(2, 0);
	br_future *fs[12];
	pthread_t th[3];

	for (int i = 0; i < 12; i++)
		fs[i] = br_spawn(rt, rw_user, (void *)(intptr_t)i);
	for (int i = 0; i < 3; i++)
		t_thread_start(&th[i], rw_user, (void *)(intptr_t)(50 + i));
	for (int i = 0; i < 3; i++)
		t_thread_join(th[i]);
	for (int i = 0; i < 12; i++)
		t_assert_task_ok(fs[i]);
	cr_assert_eq(atomic_load(&rw_bad), 0);
	cr_assert_gt(atomic_load(&rw_max_readers), 1, "readers never shared");
	cr_assert_eq(br_rwlock_destroy(&rw), 0);
	br_runtime_free(rt);
}

static void *rd_op(void *arg)
{
	struct op *o = arg;
	int r;

	atomic_store(&o->started, 1);
	r = br_rwlock_rdlock_for(o->l, o->timeout_ms);
	atomic_store(&o->result, r);
	if (r == 0)
		br_rwlock_unlock(o->l);
	atomic_store(&o->done, 1);
	return NULL;
}

static void *wr_op(void *arg)
{
	struct op *o = arg;
	int r;

	atomic_store(&o->started, 1);
	r = br_rwlock_wrlock_for(o->l, o->timeout_ms);
	atomic_store(&o->result, r);
	if (r == 0)
		br_rwlock_unlock(o->l);
	atomic_store(&o->done, 1);
	return NULL;
}

Test(sync, a_waiting_writer_holds_back_new_readers, .timeout = 20.0)
{
	br_runtime *rt = t_runtime(1, 0);
	br_rwlock l = BR_RWLOCK_INIT;
	struct op w, r;
	br_future *fw, *fr;

	op_init(&w);
	op_init(&r);
	w.l = r.l = &l;
	cr_assert_eq(br_rwlock_rdlock(&l), 0);
	cr_assert_eq(br_rwlock_tryrdlock(&l), 0, "readers share");
	cr_assert_eq(br_rwlock_unlock(&l), 0);
	cr_assert_eq(br_rwlock_trywrlock(&l), -EBUSY);
	fw = br_spawn(rt, wr_op, &w);
	wait_started(&w);
	/* A writer waits: a new reader may not pass it. */
	cr_assert_eq(br_rwlock_tryrdlock(&l), -EBUSY);
	fr = br_spawn(rt, rd_op, &r);
	wait_started(&r);
	cr_assert_eq(atomic_load(&r.done), 0);
	cr_assert_eq(br_rwlock_unlock(&l), 0);
	cr_assert_eq(wait_done(&w), 0);
	cr_assert_eq(wait_done(&r), 0);
	cr_assert_eq(br_rwlock_unlock(&l), -EPERM);
	cr_assert_eq(br_rwlock_destroy(&l), 0);
	t_await_value(fw);
	t_await_value(fr);
	br_future_release(fw);
	br_future_release(fr);
	br_runtime_free(rt);
}

Test(sync, a_writer_that_times_out_lets_the_readers_behind_it_in,
     .timeout = 20.0)
{
	br_runtime *rt = t_runtime(1, 0);
	br_rwlock l = BR_RWLOCK_INIT;
	struct op w, r;
	br_future *fr;
	pthread_t th;

	op_init(&w);
	op_init(&r);
	w.l = r.l = &l;
	/* Long enough that the reader queues behind the writer before it
	 * leaves, even on a loaded machine. */
	w.timeout_ms = 1000;
	cr_assert_eq(br_rwlock_rdlock(&l), 0);
	t_thread_start(&th, wr_op, &w);
	wait_started(&w);
	fr = br_spawn(rt, rd_op, &r);
	wait_started(&r);
	cr_assert_eq(atomic_load(&r.done), 0, "a reader passed the writer");
	cr_assert_eq(wait_done(&w), -ETIMEDOUT);
	/* The queued reader got in behind the departed writer. */
	cr_assert_eq(wait_done(&r), 0);
	cr_assert_eq(br_rwlock_unlock(&l), 0);
	cr_assert_eq(br_rwlock_destroy(&l), 0);
	t_thread_join(th);
	t_await_value(fr);
	br_future_release(fr);
	br_runtime_free(rt);
}

struct releaser {
	br_mutex m;
	br_rwlock l;
	br_sem s;
	br_event e;
	br_waitgroup g;
	atomic_int started;
	int waited;
	int rets[5];
};

static void *release_when_cancelled(void *arg)
{
	struct releaser *r = arg;

	if (br_mutex_lock(&r->m) || br_rwlock_wrlock(&r->l))
		return (void *)"could not lock";
	atomic_store(&r->started, 1);
	r->waited = br_sleep_ms(20000);
	r->rets[0] = br_mutex_unlock(&r->m);
	r->rets[1] = br_rwlock_unlock(&r->l);
	r->rets[2] = br_sem_post(&r->s);
	r->rets[3] = br_event_set(&r->e);
	r->rets[4] = br_waitgroup_done(&r->g);
	return NULL;
}

/* Calls that release (never wait) work in a cancelled task: what it
 * holds must not stay held. */
Test(sync, a_cancelled_task_releases_what_it_holds, .timeout = 20.0)
{
	br_runtime *rt = t_runtime(1, 0);
	struct releaser r = { .m = BR_MUTEX_INIT,
			      .l = BR_RWLOCK_INIT,
			      .s = BR_SEM_INIT(0),
			      .e = BR_EVENT_INIT,
			      .g = BR_WAITGROUP_INIT };
	br_future *f;

	cr_assert_eq(br_waitgroup_add(&r.g, 1), 0);
	f = br_spawn(rt, release_when_cancelled, &r);
	cr_assert_eq(t_spin_until(&r.started, 1, 5000 * T_NS_PER_MS), 0);
	br_sleep_ms(20);
	cr_assert_eq(br_cancel(f), 0);
	br_await(f, NULL);
	cr_assert_eq(r.waited, -ECANCELED);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(r.rets[i], 0, "release call %d: %s", i,
			     br_strerror(r.rets[i]));
	cr_assert_eq(br_mutex_trylock(&r.m), 0);
	cr_assert_eq(br_rwlock_trywrlock(&r.l), 0);
	cr_assert_eq(br_sem_trywait(&r.s), 0);
	cr_assert_eq(br_event_is_set(&r.e), 1);
	cr_assert_eq(br_waitgroup_count(&r.g), 0);
	br_future_release(f);
	br_runtime_free(rt);
}
