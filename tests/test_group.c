/* SPDX-License-Identifier: MIT */
/*
 * test_group.c - task groups (group.c): waiting for every task, the first
 * failure cancelling its siblings, spawning into a failed group, tasks
 * spawned while the group is waited for, cancelling a waiter, and freeing
 * a group whose tasks still run.
 */
#include <errno.h>
#include <stdint.h>

#include <criterion/criterion.h>

#include "helpers.h"

/* Every test leaves no descriptor, thread or child behind (helpers.h). */
TestSuite(group, .init = t_leak_init, .fini = t_leak_fini);

struct job {
	int ms;
	int error;
	int sleep_ret;
	atomic_int *done;
};

/* Jobs that have started, so a test cancels what surely runs: a job
 * cancelled before it starts never runs (braid.h), and on a loaded
 * machine a fixed pause is no proof that it has started. */
static atomic_int jobs_started;

static void wait_started(int n)
{
	cr_assert_eq(t_wait_until(&jobs_started, n, 10000 * T_NS_PER_MS), 0,
		     "only %d of %d jobs started", atomic_load(&jobs_started),
		     n);
}

static void *run_job(void *arg)
{
	struct job *j = arg;

	atomic_fetch_add(&jobs_started, 1);
	j->sleep_ret = br_sleep_ms(j->ms);
	if (j->done)
		atomic_fetch_add(j->done, 1);
	/* A cancelled job just returns: it must end CANCELLED. */
	if (j->error && j->sleep_ret == 0)
		return br_fail(j->error, "job failed");
	return NULL;
}

static br_group *new_group(br_runtime *rt)
{
	br_group *g = NULL;
	int ret = br_group_new(&g, rt);

	cr_assert_eq(ret, 0, "br_group_new: %s", br_strerror(ret));
	cr_assert_not_null(g);
	return g;
}

Test(group, wait_waits_for_every_task, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(2, 0);
	br_group *g = new_group(rt);
	atomic_int done = 0;
	struct job j[5];
	br_future *fs[5];

	for (int i = 0; i < 5; i++) {
		j[i] = (struct job){ .ms = 10 * (i + 1), .done = &done };
		fs[i] = br_group_spawn(g, run_job, &j[i]);
		cr_assert_not_null(fs[i]);
	}
	cr_assert_eq(br_group_wait(g), 0);
	cr_assert_eq(atomic_load(&done), 5);
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(br_future_state(fs[i]), BR_DONE);
		cr_assert_eq(j[i].sleep_ret, 0);
		br_future_release(fs[i]);
	}
	br_group_free(g);
	br_runtime_free(rt);
}

Test(group, first_failure_cancels_the_siblings, .timeout = 20.0)
{
	br_runtime *rt = t_runtime(2, 0);
	br_group *g = new_group(rt);
	struct job sib = { .ms = 10000 };
	struct job bad = { .ms = 20, .error = -EIO };
	struct job later = { .ms = 60, .error = -EPIPE };
	br_future *fs[3];
	int64_t t0 = br_now_ns();

	fs[0] = br_group_spawn(g, run_job, &sib);
	fs[1] = br_group_spawn(g, run_job, &bad);
	fs[2] = br_group_spawn(g, run_job, &later);
	cr_assert_eq(br_group_wait(g), -EIO);
	cr_assert_lt(t_elapsed_ms(t0), 5000, "the sibling was not cancelled");
	cr_assert_eq(br_future_state(fs[0]), BR_CANCELLED);
	cr_assert_eq(sib.sleep_ret, -ECANCELED);
	cr_assert_eq(br_future_state(fs[1]), BR_FAILED);
	cr_assert_eq(br_future_error(fs[1]), -EIO);
	/* The later failure was cancelled while it slept. */
	cr_assert_eq(br_future_state(fs[2]), BR_CANCELLED);
	for (int i = 0; i < 3; i++)
		br_future_release(fs[i]);
	br_group_free(g);
	br_runtime_free(rt);
}

static void *set_flag(void *arg)
{
	atomic_store((atomic_int *)arg, 1);
	return NULL;
}

Test(group, spawning_into_a_failed_group_gives_cancelled, .timeout = 20.0)
{
	br_runtime *rt = t_runtime(2, 0);
	br_group *g = new_group(rt);
	struct job bad = { .ms = 1, .error = -EIO };
	atomic_int ran = 0;
	br_future *f, *late;

	f = br_group_spawn(g, run_job, &bad);
	cr_assert_eq(br_group_wait(g), -EIO);
	late = br_group_spawn(g, set_flag, &ran);
	cr_assert_not_null(late);
	cr_assert_eq(br_future_state(late), BR_CANCELLED);
	cr_assert_eq(br_await(late, NULL), -ECANCELED);
	br_sleep_ms(20);
	cr_assert_eq(atomic_load(&ran), 0, "fn ran in a failed group");
	br_future_release(late);
	br_future_release(f);
	br_group_free(g);
	br_runtime_free(rt);
}

struct spawner {
	br_group *g;
	struct job child;
	br_future *child_f;
};

static void *spawn_sibling_later(void *arg)
{
	struct spawner *s = arg;

	br_sleep_ms(30);
	s->child_f = br_group_spawn(s->g, run_job, &s->child);
	return NULL;
}

Test(group, wait_includes_tasks_spawned_while_waiting, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(2, 0);
	br_group *g = new_group(rt);
	atomic_int done = 0;
	struct spawner s = { .g = g, .child = { .ms = 50, .done = &done } };
	br_future *f = br_group_spawn(g, spawn_sibling_later, &s);

	cr_assert_eq(br_group_wait(g), 0);
	cr_assert_eq(atomic_load(&done), 1, "wait returned before the child");
	cr_assert_not_null(s.child_f);
	cr_assert_eq(br_future_state(s.child_f), BR_DONE);
	br_future_release(s.child_f);
	br_future_release(f);
	br_group_free(g);
	br_runtime_free(rt);
}

Test(group, group_cancel_cancels_every_task, .timeout = 20.0)
{
	br_runtime *rt = t_runtime(2, 0);
	br_group *g = new_group(rt);
	struct job j[3] = { { .ms = 10000 }, { .ms = 10000 }, { .ms = 10000 } };
	br_future *fs[3];
	int64_t t0 = br_now_ns();
	int ret;

	for (int i = 0; i < 3; i++)
		fs[i] = br_group_spawn(g, run_job, &j[i]);
	wait_started(3);
	cr_assert_eq(br_group_cancel(g), 0);
	ret = br_group_wait(g);
	/* The header does not say whether cancellation counts as failure. */
	cr_assert(ret == 0 || ret == -ECANCELED, "wait returned %d", ret);
	cr_assert_lt(t_elapsed_ms(t0), 5000);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(br_future_state(fs[i]), BR_CANCELLED);
		cr_assert_eq(j[i].sleep_ret, -ECANCELED);
		br_future_release(fs[i]);
	}
	br_group_free(g);
	br_runtime_free(rt);
}

struct group_waiter {
	br_group *g;
	struct job j[2];
	br_future *fs[2];
	atomic_int waiting;
	int ret;
};

static void *wait_for_group(void *arg)
{
	struct group_waiter *w = arg;

	for (int i = 0; i < 2; i++)
		w->fs[i] = br_group_spawn(w->g, run_job, &w->j[i]);
	atomic_store(&w->waiting, 1);
	w->ret = br_group_wait(w->g);
	return NULL;
}

Test(group, a_cancelled_waiter_cancels_the_group_and_still_waits,
     .timeout = 20.0)
{
	br_runtime *rt = t_runtime(2, 0);
	struct group_waiter w = { .g = new_group(rt),
				  .j = { { .ms = 10000 }, { .ms = 10000 } } };
	br_future *waiter = br_spawn(rt, wait_for_group, &w);

	cr_assert_eq(t_spin_until(&w.waiting, 1, 5000 * T_NS_PER_MS), 0);
	wait_started(2);
	cr_assert_eq(br_cancel(waiter), 0);
	br_await(waiter, NULL);
	cr_assert_eq(w.ret, -ECANCELED);
	/* It waited for them, so they are final when it returns. */
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(br_future_state(w.fs[i]), BR_CANCELLED);
		br_future_release(w.fs[i]);
	}
	br_future_release(waiter);
	br_group_free(w.g);
	br_runtime_free(rt);
}

Test(group, group_free_cancels_and_waits_for_running_tasks, .timeout = 20.0)
{
	br_runtime *rt = t_runtime(2, 0);
	br_group *g = new_group(rt);
	struct job j[3] = { { .ms = 10000 }, { .ms = 10000 }, { .ms = 10000 } };
	br_future *fs[3];
	int64_t t0;

	for (int i = 0; i < 3; i++)
		fs[i] = br_group_spawn(g, run_job, &j[i]);
	/* One reference is dropped at once: the group must not need it. */
	br_future_release(fs[2]);
	wait_started(3);
	t0 = br_now_ns();
	br_group_free(g);
	cr_assert_lt(t_elapsed_ms(t0), 5000, "group_free waited for sleeps");
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(br_future_state(fs[i]), BR_CANCELLED);
		cr_assert_eq(j[i].sleep_ret, -ECANCELED);
		br_future_release(fs[i]);
	}
	cr_assert_eq(j[2].sleep_ret, -ECANCELED);
	br_runtime_free(rt);
}

static void *group_in_a_task(void *arg)
{
	br_group *g = NULL;
	atomic_int done = 0;
	struct job j[4];
	br_future *fs[4];
	int ret;

	T_REQUIRE(br_group_new(&g, br_current_runtime()) == 0);
	for (int i = 0; i < 4; i++) {
		j[i] = (struct job){ .ms = 5 * i, .done = &done };
		fs[i] = br_group_spawn(g, run_job, &j[i]);
	}
	ret = br_group_wait(g);
	for (int i = 0; i < 4; i++)
		br_future_release(fs[i]);
	br_group_free(g);
	T_REQUIRE(ret == 0);
	T_REQUIRE(atomic_load(&done) == 4);
	return NULL;
}

Test(group, a_group_works_inside_a_task, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(2, 0);

	t_assert_task_ok(br_spawn(rt, group_in_a_task, NULL));
	br_runtime_free(rt);
}

Test(group, an_empty_group_waits_for_nothing, .timeout = 10.0)
{
	br_runtime *rt = t_runtime(1, 0);
	br_group *g = new_group(rt);

	cr_assert_eq(br_group_wait(g), 0);
	br_group_free(g);
	br_group_free(NULL);
	br_runtime_free(rt);
}
