/* SPDX-License-Identifier: MIT */
/*
 * deadline.c - deadline scopes (br_deadline_enter/leave): asyncio's
 * `async with timeout()`, Trio's move_on_after.
 *
 * Design
 *   A scope is a small record on the caller's stack (struct
 *   br__deadline in the public br_deadline's storage), linked to the
 *   one it was entered in. The task (or plain thread) keeps a pointer to
 *   its innermost scope and, beside it, the nearest deadline of all the
 *   scopes it is inside, computed once when a scope is entered: each
 *   scope saves the nearest deadline outside it and stores the nearer of
 *   that and its own. So a wait reads one word, not a chain, and leaving
 *   a scope puts the saved word back. Nothing is allocated.
 *
 *   The waits themselves do the rest: each takes the nearer of its own
 *   deadline and the scope's (io.c for I/O, where br_io_timeout() is the
 *   per-call case of the same rule; task.c for sleeps; waitq.c for the
 *   synchronisation objects and channels; wait.c for futures; combine.c,
 *   group.c, mshot.c for the rest). Waits that must not end early
 *   (BR__WAIT_NOCANCEL: relocking a condition's mutex, a group waiting
 *   for the tasks it cancelled) ignore the scope as they ignore a
 *   cancellation: a scope is a cancellation that comes at a time.
 *
 *   The state lives in the task record, not in the fiber: a child that
 *   br_await() runs inline on its parent's fiber is a task of its own,
 *   with its own (empty) scopes, as it would be on a fiber of its own;
 *   and a task inside a scope never runs a child inline (wait.c), so its
 *   wait for the child can end at the deadline.
 *
 * Invariants
 *   - The owner's deadline is the nearest own deadline of the scopes on
 *     its chain, or -1 when the chain is empty or none has one.
 *   - A scope is on at most one chain; its magic is set while it is.
 *
 * Concurrency
 *   None: a task's scopes are touched only by code on its fiber, a
 *   thread's only by that thread.
 *
 * Lifetime
 *   The caller's storage, from br_deadline_enter() to br_deadline_leave().
 *   Leaving a scope drops the scopes inside it that were not left
 *   (without touching them: their frames may be gone).
 */
#include <errno.h>
#include <stddef.h>

#include "clock.h"
#include "deadline.h"
#include "internal.h"
#include "task.h"

struct br__deadline {
	uint32_t magic; /* BR__MAGIC_DEADLINE while entered */
	uint32_t pad;
	int64_t own;		    /* its own deadline, or -1 */
	int64_t saved;		    /* the owner's deadline before it */
	struct br__deadline *outer; /* the scope it was entered in */
};

_Static_assert(sizeof(struct br__deadline) <= sizeof(br_deadline),
	       "br_deadline holds a scope");
_Static_assert(_Alignof(struct br__deadline) <= _Alignof(br_deadline),
	       "br_deadline is aligned for a scope");

__thread struct br__dl_state br__thread_dl = { NULL, -1 };

/* The calling task's scopes, or the thread's. */
static BR__NOINLINE struct br__dl_state *state(void)
{
	struct br__task *t = br__task_current();

	return t ? &t->dl : &br__thread_dl;
}

static int on_chain(const struct br__dl_state *st, const struct br__deadline *d)
{
	const struct br__deadline *s;

	for (s = st->inner; s; s = s->outer)
		if (s == d)
			return 1;
	return 0;
}

static int enter(br_deadline *scope, int64_t own)
{
	struct br__deadline *d = (struct br__deadline *)scope;
	struct br__dl_state *st;

	if (!scope)
		return -EINVAL;
	st = state();
	if (d->magic == BR__MAGIC_DEADLINE && on_chain(st, d))
		return -EBUSY;
	d->magic = BR__MAGIC_DEADLINE;
	d->pad = 0;
	d->own = own;
	d->saved = st->deadline;
	d->outer = st->inner;
	st->inner = d;
	st->deadline = br__deadline_min(st->deadline, own);
	return 0;
}

int br_deadline_enter(br_deadline *scope, int64_t timeout_ms)
{
	return enter(scope, br__deadline_ms(timeout_ms));
}

int br_deadline_enter_at(br_deadline *scope, int64_t deadline_ns)
{
	/* A deadline a century away is none (clock.h). */
	if (deadline_ns < 0 || deadline_ns - br_now_ns() >= BR__FOREVER_NS)
		deadline_ns = -1;
	return enter(scope, deadline_ns);
}

int br_deadline_leave(br_deadline *scope)
{
	struct br__deadline *d = (struct br__deadline *)scope;
	struct br__dl_state *st;

	if (!scope)
		return -EINVAL;
	st = state();
	if (d->magic != BR__MAGIC_DEADLINE || !on_chain(st, d))
		return -EINVAL;
	st->inner = d->outer;
	st->deadline = d->saved;
	d->magic = BR__MAGIC_DEAD;
	return d->own >= 0 && br_now_ns() >= d->own ? -ETIMEDOUT : 0;
}

int64_t br_deadline_current(void)
{
	return state()->deadline;
}
