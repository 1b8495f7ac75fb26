/* SPDX-License-Identifier: MIT */
/*
 * stress_sched.c - the scheduler and futures under load: a spawn storm
 * with random nesting, storms from plain threads, promise ping-pong
 * between tasks on two workers and plain threads, crowds of wake-ups for
 * tasks pinned to one worker, and random cancellations racing
 * completion.
 *
 * Sizes scale with BRAID_STRESS_SCALE (default 1, about 200k spawns and
 * tens of thousands of round trips; 10 for `make stress`).
 */
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>

#include <criterion/criterion.h>

#include "helpers.h"

/* Every test leaves no descriptor, thread or child behind (helpers.h). */
TestSuite(stress_sched, .init = t_leak_init, .fini = t_leak_fini);

/* ------------------------------------------------------------------ */
/* Spawn storm                                                         */
/* ------------------------------------------------------------------ */

static atomic_long storm_ran;

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

/*
 * A node with budget n counts itself and spawns children whose budgets
 * add up to n - 1, so a tree started with budget N runs exactly N tasks
 * and returns N. The split, the fan-out, which children are awaited first
 * and whether a child yields or sleeps all come from a hash of the budget
 * and a per-node salt, so the shape is random but reproducible.
 */
struct node {
	uint64_t budget;
	uint64_t salt;
};

static void *storm_node(void *arg)
{
	struct node self = *(struct node *)arg;
	br_runtime *rt = br_current_runtime();
	struct node kids[8];
	br_future *fs[8];
	uint64_t h = mix(self.budget * 0x9e3779b97f4a7c15ull ^ self.salt);
	uint64_t left = self.budget - 1, sum = 1;
	unsigned k = 0, fan = 2 + (unsigned)(h % 7);

	atomic_fetch_add_explicit(&storm_ran, 1, memory_order_relaxed);
	free(arg);
	if (h % 13 == 0)
		br_yield();
	else if (h % 31 == 0)
		br_sleep_ns((int64_t)(h % 50000));
	while (left > 0 && k < fan) {
		uint64_t part = k == fan - 1 ?
					left :
					1 + mix(h + k) % (left / (fan - k) + 1);
		struct node *n = malloc(sizeof(*n));

		if (part > left)
			part = left;
		if (!n)
			return br_fail(-ENOMEM, "storm: out of memory");
		*n = (struct node){ .budget = part, .salt = h + k };
		kids[k] = *n;
		fs[k++] = br_spawn(rt, storm_node, n);
		left -= part;
	}
	(void)kids;
	/* Await in either order, so some children are taken back inline. */
	for (unsigned i = 0; i < k; i++) {
		unsigned j = h & 1 ? i : k - 1 - i;
		void *v = NULL;
		int ret = br_await(fs[j], &v);

		if (ret < 0)
			sum = UINT64_MAX / 2; /* poison the total */
		else
			sum += (uint64_t)(uintptr_t)v;
	}
	for (unsigned i = 0; i < k; i++)
		br_future_release(fs[i]);
	return (void *)(uintptr_t)sum;
}

Test(stress_sched, spawn_storm_sums_every_task, .timeout = 300.0)
{
#if defined(__SANITIZE_THREAD__)
	/*
	 * TSan gives every fiber one of its 8128 thread slots, and a storm
	 * this size can have thousands of suspended tasks at once.
	 */
	const uint64_t total = 20000ull * t_stress_scale();
#else
	const uint64_t total = 200000ull * t_stress_scale();
#endif
	const unsigned roots = 4;
	br_runtime *rt = t_runtime(2, 0);
	br_future *fs[4];
	uint64_t sum = 0;

	for (unsigned r = 0; r < roots; r++) {
		struct node *n = malloc(sizeof(*n));

		cr_assert_not_null(n);
		*n = (struct node){ .budget = total / roots, .salt = r };
		fs[r] = br_spawn(rt, storm_node, n);
	}
	for (unsigned r = 0; r < roots; r++) {
		sum += (uint64_t)(uintptr_t)t_await_value(fs[r]);
		br_future_release(fs[r]);
	}
	cr_assert_eq(sum, total, "sum %llu", (unsigned long long)sum);
	cr_assert_eq((uint64_t)atomic_load(&storm_ran), total);
	br_runtime_free(rt);
}

/*
 * Storms from two plain threads at once: their tasks go through the
 * injection queue, and some spawn a child, which goes to its worker's
 * deque, where the other worker may steal it. Every task must run
 * exactly once. (None yields: a yielder waits behind the whole storm,
 * each on a fiber of its own, which is more fibers than TSan allows
 * threads.)
 */
#define OUTSIDERS 2

static atomic_uchar *outside_ran;
static atomic_long outside_children;

static void *outside_child(void *arg)
{
	(void)arg;
	atomic_fetch_add_explicit(&outside_children, 1, memory_order_relaxed);
	return NULL;
}

static void *outside_task(void *arg)
{
	uintptr_t i = (uintptr_t)arg;
	uint64_t h = mix(i);

	atomic_fetch_add_explicit(&outside_ran[i], 1, memory_order_relaxed);
	if (h % 7 == 0)
		br_future_release(
			br_spawn(br_current_runtime(), outside_child, NULL));
	return NULL;
}

/* Room for total tasks' marks, and no child counted yet. */
static void outside_begin(long total)
{
	outside_ran = calloc((size_t)total, sizeof(*outside_ran));
	cr_assert_not_null(outside_ran);
	atomic_store(&outside_children, 0);
}

/* Checks that each of total tasks ran once, and waits for their children
 * (one for each task i with mix(i) % every == 0): nobody awaits those,
 * and br_runtime_free() would cancel the ones not started. */
static void outside_check(long total, unsigned every)
{
	long children = 0;

	for (long i = 0; i < total; i++) {
		if (mix((uint64_t)i) % every == 0)
			children++;
		cr_assert_eq(atomic_load(&outside_ran[i]), 1,
			     "task %ld ran %d times", i,
			     atomic_load(&outside_ran[i]));
	}
	while (atomic_load(&outside_children) < children)
		sched_yield();
	cr_assert_eq(atomic_load(&outside_children), children);
	free(outside_ran);
}

struct outsider {
	br_runtime *rt;
	long first, n;
	br_future **fs;
};

static void *outsider_storm(void *arg)
{
	struct outsider *o = arg;

	for (long i = 0; i < o->n; i++)
		o->fs[i] = br_spawn(o->rt, outside_task,
				    (void *)(uintptr_t)(o->first + i));
	return NULL;
}

/* Starts OUTSIDERS threads running storm on rt, each on per indices of
 * its own; with keep, each gets room for its futures (o[k].fs). */
static void start_outsiders(br_runtime *rt, struct outsider *o, pthread_t *th,
			    long per, void *(*storm)(void *), int keep)
{
	for (int k = 0; k < OUTSIDERS; k++) {
		o[k] = (struct outsider){ .rt = rt,
					  .first = k * per,
					  .n = per };
		if (keep) {
			o[k].fs = calloc((size_t)per, sizeof(*o[k].fs));
			cr_assert_not_null(o[k].fs);
		}
		t_thread_start(&th[k], storm, &o[k]);
	}
}

Test(stress_sched, storms_from_plain_threads_run_every_task_once,
     .timeout = 300.0)
{
	const long per = 100000L * t_stress_scale();
	br_runtime *rt = t_runtime(2, 0);
	struct outsider o[OUTSIDERS];
	pthread_t th[OUTSIDERS];

	outside_begin(per * OUTSIDERS);
	start_outsiders(rt, o, th, per, outsider_storm, 1);
	for (int k = 0; k < OUTSIDERS; k++) {
		t_thread_join(th[k]);
		for (long i = 0; i < per; i++) {
			cr_assert_eq(br_await(o[k].fs[i], NULL), 0);
			br_future_release(o[k].fs[i]);
		}
		free(o[k].fs);
	}
	outside_check(per * OUTSIDERS, 7);
	br_runtime_free(rt);
}

/*
 * Storms whose futures are all dropped at once, so that each task record
 * is freed where its task ends: on a worker other than its spawner's, or
 * away from the plain thread that made it. It goes back there (task.c:
 * "Records go home") while that spawner keeps taking records. Every third
 * task spawns a child pinned to the other worker, so records cross both
 * ways between workers too. Every task must run exactly once.
 */
static atomic_long dropped_done;

static void *dropped_task(void *arg)
{
	uintptr_t i = (uintptr_t)arg;

	atomic_fetch_add_explicit(&outside_ran[i], 1, memory_order_relaxed);
	if (mix(i) % 3 == 0)
		br_future_release(br_spawn_on(br_current_runtime(),
					      (unsigned)br_worker_id() ^ 1u,
					      outside_child, NULL));
	atomic_fetch_add_explicit(&dropped_done, 1, memory_order_release);
	return NULL;
}

static void *dropping_storm(void *arg)
{
	struct outsider *o = arg;

	for (long i = 0; i < o->n; i++)
		br_future_release(br_spawn(o->rt, dropped_task,
					   (void *)(uintptr_t)(o->first + i)));
	return NULL;
}

Test(stress_sched, records_freed_away_from_their_spawner_go_back_safely,
     .timeout = 300.0)
{
	const long per = 100000L * t_stress_scale();
	br_runtime *rt = t_runtime(2, 0);
	struct outsider o[OUTSIDERS];
	pthread_t th[OUTSIDERS];

	outside_begin(per * OUTSIDERS);
	atomic_store(&dropped_done, 0);
	start_outsiders(rt, o, th, per, dropping_storm, 0);
	for (int k = 0; k < OUTSIDERS; k++)
		t_thread_join(th[k]);
	/* Nobody awaits them either. */
	while (atomic_load(&dropped_done) < per * OUTSIDERS)
		sched_yield();
	outside_check(per * OUTSIDERS, 3);
	br_runtime_free(rt);
}

/* ------------------------------------------------------------------ */
/* Promise ping-pong                                                   */
/* ------------------------------------------------------------------ */

/*
 * Each side awaits "mine" and resolves "theirs". A message is a fresh
 * promise that the sender will await next, and the receiver answers by
 * resolving it. So in one round the initiator sends its new "mine" and
 * waits; the responder wakes with it, sends its own new "mine" back by
 * resolving the old one, and so on. Every promise has two references,
 * one for the side that awaits it and one for the side that resolves it,
 * each dropped by its holder when done, so the last reference may go on
 * either thread at any moment.
 */
struct side {
	br_future *mine;
	br_future *theirs;
	int initiator;
	long rounds;
	long done;
	int error;
};

/* Resolve *to with next, giving the receiver its own reference to next. */
static int send_to(br_future **to, br_future *next)
{
	int ret;

	br_future_retain(next);
	ret = br_promise_resolve(*to, next);
	br_future_release(*to);
	*to = NULL;
	return ret;
}

/* Await *from and drop it; the value is the next promise to resolve. */
static int receive_from(br_future **from, br_future **value)
{
	void *v = NULL;
	int ret = br_await(*from, &v);

	br_future_release(*from);
	*from = NULL;
	*value = v;
	return ret == 0 && v == NULL ? -EINVAL : ret;
}

static void *ping_pong(void *arg)
{
	struct side *s = arg;

	for (long i = 0; i < s->rounds; i++) {
		br_future *next = br_promise_new();
		br_future *got = NULL;
		int ret;

		if (s->initiator) {
			ret = send_to(&s->theirs, next);
			if (ret == 0)
				ret = receive_from(&s->mine, &got);
		} else {
			ret = receive_from(&s->mine, &got);
			if (ret == 0)
				ret = send_to(&s->theirs, next);
		}
		s->mine = next;
		s->theirs = got;
		if (ret < 0) {
			s->error = ret;
			break;
		}
		s->done++;
	}
	return NULL;
}

static void *ping_pong_thread(void *arg)
{
	return ping_pong(arg);
}

/* Two sides wired to each other through two fresh promises. */
static void make_pair(struct side *a, struct side *b, long rounds)
{
	br_future *pa = br_promise_new(), *pb = br_promise_new();

	*a = (struct side){ .mine = pa,
			    .theirs = br_future_retain(pb),
			    .initiator = 1,
			    .rounds = rounds };
	*b = (struct side){ .mine = pb,
			    .theirs = br_future_retain(pa),
			    .rounds = rounds };
}

static void check_and_free_pair(struct side *a, struct side *b, long rounds)
{
	cr_assert_eq(a->error, 0, "initiator: %s", br_strerror(a->error));
	cr_assert_eq(b->error, 0, "responder: %s", br_strerror(b->error));
	cr_assert_eq(a->done, rounds);
	cr_assert_eq(b->done, rounds);
	br_future_release(a->mine);
	br_future_release(a->theirs);
	br_future_release(b->mine);
	br_future_release(b->theirs);
}

Test(stress_sched, promise_ping_pong_between_tasks_and_threads,
     .timeout = 300.0)
{
	const long rounds = 20000L * t_stress_scale();
	br_runtime *rt = t_runtime(2, 0);
	struct side a[3], b[3];
	br_future *fa0, *fb0, *fa1, *fb2;
	pthread_t tb1, ta2;

	for (int i = 0; i < 3; i++)
		make_pair(&a[i], &b[i], rounds);
	/* Pair 0: tasks pinned to different workers. */
	fa0 = br_spawn_on(rt, 0, ping_pong, &a[0]);
	fb0 = br_spawn_on(rt, 1, ping_pong, &b[0]);
	/* Pair 1: a task against a plain thread. */
	fa1 = br_spawn(rt, ping_pong, &a[1]);
	t_thread_start(&tb1, ping_pong_thread, &b[1]);
	/* Pair 2: a plain thread against a task. */
	t_thread_start(&ta2, ping_pong_thread, &a[2]);
	fb2 = br_spawn(rt, ping_pong, &b[2]);

	t_await_value(fa0);
	t_await_value(fb0);
	t_await_value(fa1);
	t_await_value(fb2);
	t_thread_join(tb1);
	t_thread_join(ta2);
	for (int i = 0; i < 3; i++)
		check_and_free_pair(&a[i], &b[i], rounds);
	br_future_release(fa0);
	br_future_release(fb0);
	br_future_release(fa1);
	br_future_release(fb2);
	br_runtime_free(rt);
}

/* ------------------------------------------------------------------ */
/* Wake-ups of pinned tasks from many threads at once                  */
/* ------------------------------------------------------------------ */

#define CROWD 48 /* tasks pinned to worker 1 */
#define WAKERS 3 /* two plain threads and a task on worker 0 */

struct crowd {
	long rounds;
	br_future **ps;		  /* ps[r * CROWD + i]: task i's round r */
	atomic_long arrived;	  /* awaits begun, over all rounds */
	atomic_long woken[CROWD]; /* rounds each task saw end */
};

struct crowd_task {
	struct crowd *cw;
	int i;
};

static void *crowd_member(void *arg)
{
	struct crowd_task *ct = arg;
	struct crowd *cw = ct->cw;

	for (long r = 0; r < cw->rounds; r++) {
		br_future *p = cw->ps[r * CROWD + ct->i];

		atomic_fetch_add(&cw->arrived, 1);
		if (br_await(p, NULL) < 0)
			return br_fail(-EPROTO, "crowd: await failed");
		br_future_release(p);
		atomic_fetch_add(&cw->woken[ct->i], 1);
	}
	return NULL;
}

/* Waker k resolves the promises of tasks k, k + WAKERS, ... of each
 * round once every task has begun to await it, so that the wake-ups of
 * one round arrive at worker 1 together: many find its mail slot taken
 * and go through the remote queue instead. */
static void crowd_wake(struct crowd *cw, int k, int from_task)
{
	for (long r = 0; r < cw->rounds; r++) {
		while (atomic_load(&cw->arrived) < (r + 1) * CROWD) {
			if (from_task)
				br_yield();
			else
				sched_yield();
		}
		for (int i = k; i < CROWD; i += WAKERS) {
			br_future *p = cw->ps[r * CROWD + i];

			cr_assert_eq(br_promise_resolve(p, NULL), 0);
			br_future_release(p);
		}
	}
}

struct crowd_waker {
	struct crowd *cw;
	int k;
};

static void *crowd_waker_thread(void *arg)
{
	struct crowd_waker *wk = arg;

	crowd_wake(wk->cw, wk->k, 0);
	return NULL;
}

static void *crowd_waker_task(void *arg)
{
	struct crowd_waker *wk = arg;

	crowd_wake(wk->cw, wk->k, 1);
	return NULL;
}

Test(stress_sched, no_wake_up_of_a_pinned_task_is_lost_in_a_crowd,
     .timeout = 300.0)
{
	static struct crowd cw;
	const long rounds = 2000L * t_stress_scale();
	br_runtime *rt = t_runtime(2, 0);
	struct crowd_task ct[CROWD];
	struct crowd_waker wk[WAKERS];
	br_future *members[CROWD], *waker;
	pthread_t th[WAKERS - 1];

	cw.rounds = rounds;
	cw.ps = calloc((size_t)rounds * CROWD, sizeof(*cw.ps));
	cr_assert_not_null(cw.ps);
	atomic_store(&cw.arrived, 0);
	for (long j = 0; j < rounds * CROWD; j++) {
		cw.ps[j] = br_promise_new();
		cr_assert_eq(br_future_error(cw.ps[j]), 0);
		br_future_retain(cw.ps[j]); /* one for each side */
	}
	for (int i = 0; i < CROWD; i++) {
		atomic_store(&cw.woken[i], 0);
		ct[i] = (struct crowd_task){ .cw = &cw, .i = i };
		members[i] = br_spawn_on(rt, 1, crowd_member, &ct[i]);
	}
	for (int k = 0; k < WAKERS; k++)
		wk[k] = (struct crowd_waker){ .cw = &cw, .k = k };
	waker = br_spawn_on(rt, 0, crowd_waker_task, &wk[0]);
	for (int k = 1; k < WAKERS; k++)
		t_thread_start(&th[k - 1], crowd_waker_thread, &wk[k]);

	for (int i = 0; i < CROWD; i++) {
		t_await_value(members[i]);
		br_future_release(members[i]);
		cr_assert_eq(atomic_load(&cw.woken[i]), rounds,
			     "task %d saw %ld of %ld rounds end", i,
			     atomic_load(&cw.woken[i]), rounds);
	}
	t_await_value(waker);
	br_future_release(waker);
	for (int k = 1; k < WAKERS; k++)
		t_thread_join(th[k - 1]);
	free(cw.ps);
	br_runtime_free(rt);
}

/* ------------------------------------------------------------------ */
/* Cancellation racing completion                                      */
/* ------------------------------------------------------------------ */

#define BATCH 512

struct race_item {
	br_future *f;
	int kind;	       /* what the task does, see race_task() */
	atomic_int callbacks;  /* on_done calls; must end at exactly 1 */
	atomic_int early;      /* callbacks that saw a PENDING state */
	int cancel_ret;	       /* what br_cancel() gave, 1 if not called */
	int resolve_ret;       /* promises: what br_promise_resolve() gave */
	int edone_but_pending; /* br_cancel() said BR_EDONE too early */
};

enum {
	K_RETURN,
	K_YIELD,
	K_SLEEP,
	K_FAIL,
	K_KINDS
};

static void *race_task(void *arg)
{
	struct race_item *it = arg;
	uintptr_t i = (uintptr_t)(it->kind + 1);

	switch (it->kind) {
	case K_YIELD:
		for (int k = 0; k < 3; k++)
			br_yield();
		break;
	case K_SLEEP:
		br_sleep_ns(200000);
		break;
	case K_FAIL:
		if (br_sleep_ns(100000) == 0)
			return br_fail(-EIO, "planned failure");
		break;
	}
	return (void *)i;
}

static void count_done(br_future *f, void *arg)
{
	struct race_item *it = arg;

	if (br_future_state(f) == BR_PENDING)
		atomic_fetch_add(&it->early, 1);
	atomic_fetch_add(&it->callbacks, 1);
}

struct canceller {
	struct race_item *items;
	size_t n;
	uint64_t seed;
};

/* Cancels about half the items in a random order, with random pauses. */
static void *cancel_some(void *arg)
{
	struct canceller *c = arg;

	for (size_t k = 0; k < c->n; k++) {
		size_t i = (size_t)(t_rand(&c->seed) % c->n);
		struct race_item *it = &c->items[i];

		if (it->cancel_ret != 1 || t_rand(&c->seed) % 2)
			continue;
		it->cancel_ret = br_cancel(it->f);
		if (it->cancel_ret == BR_EDONE &&
		    br_future_state(it->f) == BR_PENDING)
			it->edone_but_pending = 1;
		if (t_rand(&c->seed) % 8 == 0)
			t_busy_ns((int64_t)(t_rand(&c->seed) % 20000));
	}
	return NULL;
}

/* Resolves every promise in order while cancel_some() races it. */
static void *resolve_all(void *arg)
{
	struct canceller *c = arg;

	for (size_t i = 0; i < c->n; i++)
		c->items[i].resolve_ret =
			br_promise_resolve(c->items[i].f, (void *)(i + 1));
	return NULL;
}

/* Registers the second half of the callbacks while the races run. */
static void *register_late(void *arg)
{
	struct canceller *c = arg;

	for (size_t i = 0; i < c->n; i++)
		if (i % 2)
			br_future_on_done(c->items[i].f, count_done,
					  &c->items[i]);
	return NULL;
}

static void check_item(struct race_item *it, size_t i, int promise)
{
	void *v = NULL;
	int ret = br_await(it->f, &v);
	br_state st = br_future_state(it->f);

	/*
	 * Callbacks run on the completing thread just after the state is
	 * final, so an awaiter can get there first: give them a moment.
	 */
	t_spin_until(&it->callbacks, 1, 5000 * T_NS_PER_MS);
	cr_assert_eq(atomic_load(&it->callbacks), 1, "item %zu: %d callbacks",
		     i, atomic_load(&it->callbacks));
	cr_assert_eq(atomic_load(&it->early), 0, "item %zu: callback early", i);
	cr_assert_eq(it->edone_but_pending, 0, "item %zu", i);
	cr_assert_eq(br_future_state(it->f), st, "item %zu changed state", i);
	cr_assert(it->cancel_ret == 1 || it->cancel_ret == 0 ||
			  it->cancel_ret == BR_EDONE,
		  "item %zu: cancel gave %d", i, it->cancel_ret);
	switch (st) {
	case BR_DONE:
		cr_assert_eq(ret, 0);
		if (promise) {
			cr_assert_eq((uintptr_t)v, i + 1);
			cr_assert_eq(it->resolve_ret, 0);
			cr_assert_neq(it->cancel_ret, 0, "item %zu: both won",
				      i);
		} else {
			cr_assert_eq((uintptr_t)v, (uintptr_t)it->kind + 1);
		}
		break;
	case BR_FAILED:
		cr_assert(!promise);
		cr_assert_eq(it->kind, K_FAIL);
		cr_assert_eq(ret, -EIO);
		break;
	case BR_CANCELLED:
		cr_assert_eq(ret, -ECANCELED);
		cr_assert_eq(it->cancel_ret, 0, "item %zu: cancelled by nobody",
			     i);
		if (promise)
			cr_assert_eq(it->resolve_ret, BR_EDONE);
		break;
	default:
		cr_assert_fail("item %zu is still pending", i);
	}
	br_future_release(it->f);
}

Test(stress_sched, cancellations_race_completions, .timeout = 300.0)
{
	const unsigned batches = 60 * t_stress_scale();
	static struct race_item items[BATCH];
	br_runtime *rt = t_runtime(2, 0);
	uint64_t seed = 0x2545f4914f6cdd1dull;

	for (unsigned b = 0; b < batches; b++) {
		int promise = b % 2;
		struct canceller c = { .items = items,
				       .n = BATCH,
				       .seed = seed + b };
		pthread_t tc, tr, tl;

		for (size_t i = 0; i < BATCH; i++) {
			items[i] = (struct race_item){
				.kind = (int)(t_rand(&seed) % K_KINDS),
				.cancel_ret = 1,
				.resolve_ret = 1,
			};
			items[i].f = promise ?
					     br_promise_new() :
					     br_spawn(rt, race_task, &items[i]);
			if (i % 2 == 0)
				cr_assert_eq(br_future_on_done(items[i].f,
							       count_done,
							       &items[i]),
					     0);
		}
		t_thread_start(&tc, cancel_some, &c);
		t_thread_start(&tl, register_late, &c);
		if (promise)
			t_thread_start(&tr, resolve_all, &c);
		t_thread_join(tc);
		t_thread_join(tl);
		if (promise)
			t_thread_join(tr);
		for (size_t i = 0; i < BATCH; i++)
			check_item(&items[i], i, promise);
	}
	br_runtime_free(rt);
}

/* ------------------------------------------------------------------ */
/* Cancellation of blocked tasks                                       */
/* ------------------------------------------------------------------ */

/*
 * Every task here blocks on something that never happens by itself: a
 * promise of its own that nobody resolves, an hour-long sleep, or the same inside a
 * child its parent runs inline. Only the cancellation can end it, so a
 * lost cancellation wake-up hangs the test (and fails it by timeout)
 * instead of passing quietly when a short sleep runs out.
 */
static void *block_forever(void *arg)
{
	uintptr_t how = (uintptr_t)arg;
	br_future *never;
	int ret;

	if (how % 2)
		return (void *)(intptr_t)br_sleep_ms(3600 * 1000);
	/* A promise of its own: cancelling an awaiter cancels what it
	 * awaits, so a shared one would end the next task's wait. */
	never = br_promise_new();
	ret = br_await(never, NULL);
	br_future_release(never);
	return (void *)(intptr_t)ret;
}

static void *parent_of_blocked(void *arg)
{
	br_future *c = br_spawn(br_current_runtime(), block_forever, arg);
	int ret = br_await(c, NULL); /* runs c inline: c blocks on us */

	br_future_release(c);
	return (void *)(intptr_t)ret;
}

Test(stress_sched, cancel_always_wakes_a_blocked_task, .timeout = 300.0)
{
	const unsigned rounds = 200 * t_stress_scale();
	br_runtime *rt = t_runtime(2, 0);
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	br_future *fs[64];

	for (unsigned r = 0; r < rounds; r++) {
		for (unsigned i = 0; i < 64; i++) {
			uintptr_t how = (uintptr_t)t_rand(&seed);

			fs[i] = br_spawn(
				rt, how % 3 ? block_forever : parent_of_blocked,
				(void *)how);
		}
		for (unsigned i = 0; i < 64; i++) {
			/* Land some requests before the task blocks, some
			 * while it arms, some long after. */
			for (uint64_t k = t_rand(&seed) % 4000; k > 0; k--)
				__asm__ __volatile__("" ::: "memory");
			cr_assert_eq(br_cancel(fs[i]), 0);
		}
		for (unsigned i = 0; i < 64; i++) {
			void *v = NULL;
			int ret = br_await(fs[i], &v);

			cr_assert_eq(ret, -ECANCELED,
				     "round %u task %u: %d (%s), value %ld", r,
				     i, ret, br_strerror(ret),
				     (long)(intptr_t)v);
			br_future_release(fs[i]);
		}
	}
	br_runtime_free(rt);
}
