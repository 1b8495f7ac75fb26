/* SPDX-License-Identifier: MIT */
/*
 * group.c - task groups: structured concurrency (asyncio.TaskGroup,
 * libdill bundles).
 *
 * Design
 *   A group keeps a reference to every task spawned into it and counts
 *   those not yet complete. Each task's on_done callback decrements the
 *   count; the first one to end FAILED records its error and cancels all
 *   the others. A task cancelled by somebody else is not a failure (as in
 *   asyncio). Waiting is done on an "idle" promise the callbacks resolve
 *   when the count reaches zero, made afresh for each wait so tasks may be
 *   spawned while a wait is in progress.
 *
 * Invariants
 *   - pending == number of tasks whose callback has not run.
 *   - idle is non-NULL only while someone waits and pending > 0.
 *
 * Concurrency
 *   - Any thread. tasks, n, cap, pending, failed, first_err and idle are
 *     protected by g->lock; cancellation and promise completion happen
 *     after it is dropped.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "future.h"
#include "task.h"
#include "wait.h"
#include "worker.h"

struct br_group {
	uint32_t magic;
	br_runtime *rt;
	pthread_mutex_t lock;
	br_future **tasks;
	size_t n, cap;
	size_t pending;
	int failed;
	int first_err;
	br_future *idle;
};

int br_group_new(br_group **out, br_runtime *rt)
{
	struct br_group *g;

	if (!out)
		return -EINVAL;
	if (!br__runtime_ok(rt))
		return BR_EBADOBJ;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	pthread_mutex_init(&g->lock, NULL);
	g->rt = rt;
	g->magic = BR__MAGIC_GROUP;
	*out = g;
	return 0;
}

static int group_ok(const struct br_group *g)
{
	return g && g->magic == BR__MAGIC_GROUP;
}

/* Cancel every task of the group except skip. */
static void cancel_all(struct br_group *g, br_future *skip)
{
	br_future **copy;
	size_t i, n;

	pthread_mutex_lock(&g->lock);
	n = g->n;
	copy = malloc((n ? n : 1) * sizeof(*copy));
	if (copy)
		for (i = 0; i < n; i++)
			copy[i] = br_future_retain(g->tasks[i]);
	pthread_mutex_unlock(&g->lock);
	if (!copy)
		return;
	for (i = 0; i < n; i++) {
		if (copy[i] != skip)
			br_cancel(copy[i]);
		br_future_release(copy[i]);
	}
	free(copy);
}

static void child_done(br_future *f, void *arg)
{
	struct br_group *g = arg;
	br_future *idle = NULL;
	int first_failure = 0;

	pthread_mutex_lock(&g->lock);
	if (br__future_state(f) == BR_FAILED && !g->failed) {
		g->failed = 1;
		g->first_err = f->error;
		first_failure = 1;
	}
	if (--g->pending == 0) {
		idle = g->idle;
		g->idle = NULL;
	}
	pthread_mutex_unlock(&g->lock);
	if (first_failure)
		cancel_all(g, f);
	if (idle) {
		br_promise_resolve(idle, NULL);
		br_future_release(idle);
	}
}

br_future *br_group_spawn(br_group *g, br_task_fn fn, void *arg)
{
	br_future *f, **tasks;

	if (!group_ok(g))
		return br__future_failed(BR_EBADOBJ,
					 "br_group_spawn: not a live group");
	pthread_mutex_lock(&g->lock);
	if (g->failed) {
		pthread_mutex_unlock(&g->lock);
		f = br__promise_alloc(1);
		if (!f)
			return &br__future_enomem;
		br_cancel(f);
		return f;
	}
	if (g->n == g->cap) {
		size_t cap = g->cap ? 2 * g->cap : 8;

		tasks = realloc(g->tasks, cap * sizeof(*tasks));
		if (!tasks) {
			pthread_mutex_unlock(&g->lock);
			return &br__future_enomem;
		}
		g->tasks = tasks;
		g->cap = cap;
	}
	f = br_spawn(g->rt, fn, arg);
	g->tasks[g->n++] = br_future_retain(f);
	g->pending++;
	pthread_mutex_unlock(&g->lock);
	if (br_future_on_done(f, child_done, g) < 0) {
		/* Out of memory: wait for it here rather than lose count. */
		br__wait_any(&f, 1, -1, BR__WAIT_NOCANCEL);
		child_done(f, g);
	}
	return f;
}

/* Wait until pending reaches zero; returns -ECANCELED if the waiting task
 * was cancelled, -ETIMEDOUT if its deadline scope passed (the group's
 * tasks are cancelled then, and still waited for), else 0. */
static int wait_idle(struct br_group *g)
{
	unsigned flags = 0;
	int ret = 0;

	for (;;) {
		br_future *p;
		int r;

		pthread_mutex_lock(&g->lock);
		if (!g->pending) {
			pthread_mutex_unlock(&g->lock);
			return ret;
		}
		if (!g->idle) {
			g->idle = br__promise_alloc(1);
			if (!g->idle) {
				pthread_mutex_unlock(&g->lock);
				return -ENOMEM;
			}
		}
		p = br_future_retain(g->idle);
		pthread_mutex_unlock(&g->lock);
		r = br__wait_any(&p, 1, -1, flags);
		br_future_release(p);
		if (r == -ECANCELED || r == -ETIMEDOUT) {
			/* The waiting task was cancelled, or its deadline
			 * scope passed: the group's tasks end too, and are
			 * still waited for. */
			cancel_all(g, NULL);
			flags = BR__WAIT_NOCANCEL;
			ret = r;
		} else if (r < 0) {
			return r;
		}
	}
}

int br_group_wait(br_group *g)
{
	int r;

	if (!group_ok(g))
		return BR_EBADOBJ;
	r = wait_idle(g);
	if (r < 0)
		return r;
	pthread_mutex_lock(&g->lock);
	r = g->failed ? g->first_err : 0;
	pthread_mutex_unlock(&g->lock);
	return r;
}

int br_group_cancel(br_group *g)
{
	if (!group_ok(g))
		return BR_EBADOBJ;
	cancel_all(g, NULL);
	return 0;
}

void br_group_free(br_group *g)
{
	size_t i;

	if (!group_ok(g))
		return;
	cancel_all(g, NULL);
	while (wait_idle(g) == -ENOMEM)
		;
	for (i = 0; i < g->n; i++)
		br_future_release(g->tasks[i]);
	free(g->tasks);
	pthread_mutex_destroy(&g->lock);
	g->magic = BR__MAGIC_DEAD;
	free(g);
}
