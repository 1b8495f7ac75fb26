/* SPDX-License-Identifier: MIT */
/*
 * ticker.c - repeating timers without drift: br_ticker (Go's Ticker,
 * libuv's repeating uv_timer) and br_call_every().
 *
 * Design
 *   A ticker is arithmetic, not a timer of its own: tick k falls at
 *   start + k * period, and br_ticker_next() sleeps (br_sleep_until:
 *   the worker's timer heap for a task, clock_nanosleep for a plain
 *   thread) until the next tick not yet delivered. So ticks never drift
 *   however late each wake-up is, the ticker holds nothing while nobody
 *   waits on it, and a wait on it is an ordinary sleep: cancellable, and
 *   bounded by the caller's deadline scope.
 *
 *   A caller that falls behind (its work outlasts a period, or its worker
 *   is busy) gets the latest tick that has passed at once, with the
 *   number of ticks it skipped, as Go's Ticker drops ticks for a slow
 *   receiver; the ticker does not make it up with a burst of ticks.
 *
 *   br_call_every() is a task looping over a ticker, so its callback runs
 *   in a task: it may wait, and br_cancel() ends it at its next wait.
 *   (asyncio's repeating pattern, a call_later that re-arms itself,
 *   drifts by each callback's lateness.)
 *
 * Invariants
 *   - next >= 1: ticks 1 .. next - 1 have been delivered or skipped.
 *
 * Concurrency
 *   One br_ticker_next() at a time per ticker (busy: a second caller
 *   gets -EBUSY); the acquire exchange and release store of busy order
 *   one call's update of next before the next call, on any thread.
 *   br_ticker_reset() and br_ticker_free() must not race a call.
 *
 * Lifetime
 *   br_ticker_new() to br_ticker_free(). br_call_every()'s record is
 *   freed by its future's completion callback, after the task (if it
 *   ran) has returned.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "clock.h"
#include "future.h"
#include "internal.h"

struct br_ticker {
	uint32_t magic;	 /* BR__MAGIC_TICKER while live */
	atomic_int busy; /* a br_ticker_next() call is in progress */
	int64_t start;	 /* CLOCK_MONOTONIC ns of tick 0 */
	int64_t period;	 /* ns, > 0 */
	int64_t next;	 /* the next tick to deliver */
};

/* The time of tick k, saturating at INT64_MAX. */
static int64_t tick_at(const struct br_ticker *t, int64_t k)
{
	int64_t off;

	if (__builtin_mul_overflow(k, t->period, &off))
		return INT64_MAX;
	return br__deadline_add(t->start, off);
}

static void ticker_init(struct br_ticker *t, int64_t period_ms)
{
	t->magic = BR__MAGIC_TICKER;
	atomic_init(&t->busy, 0);
	t->period = br__ms_to_ns(period_ms);
	t->start = br_now_ns();
	t->next = 1;
}

int br_ticker_new(br_ticker **out, int64_t period_ms)
{
	struct br_ticker *t;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (period_ms <= 0)
		return -EINVAL;
	t = malloc(sizeof(*t));
	if (!t)
		return -ENOMEM;
	ticker_init(t, period_ms);
	*out = t;
	return 0;
}

/* The tick that has passed last by now (>= 0). */
static int64_t ticks_by(const struct br_ticker *t, int64_t now)
{
	return now <= t->start ? 0 : (now - t->start) / t->period;
}

static int64_t ticker_next(struct br_ticker *t)
{
	int64_t due = tick_at(t, t->next), last, missed;
	int r;

	if (br_now_ns() < due) {
		r = br_sleep_until(due);
		if (r < 0)
			return r; /* the tick stays due */
	}
	/* Delivered: the latest tick that has passed, which is the one
	 * due unless the caller (or the wake-up) came late. */
	last = ticks_by(t, br_now_ns());
	if (last < t->next)
		last = t->next;
	missed = last - t->next;
	t->next = last + 1;
	return missed;
}

int64_t br_ticker_next(br_ticker *t)
{
	int64_t r;

	if (!t)
		return -EINVAL;
	if (t->magic != BR__MAGIC_TICKER)
		return BR_EBADOBJ;
	/* Acquire/release: one call's update of next comes before the
	 * next call's read, whatever thread makes it. */
	if (atomic_exchange_explicit(&t->busy, 1, memory_order_acquire))
		return -EBUSY;
	r = ticker_next(t);
	atomic_store_explicit(&t->busy, 0, memory_order_release);
	return r;
}

int br_ticker_reset(br_ticker *t, int64_t period_ms)
{
	if (!t || period_ms <= 0)
		return -EINVAL;
	if (t->magic != BR__MAGIC_TICKER)
		return BR_EBADOBJ;
	if (atomic_load_explicit(&t->busy, memory_order_relaxed))
		return -EBUSY;
	ticker_init(t, period_ms);
	return 0;
}

void br_ticker_free(br_ticker *t)
{
	if (!t || t->magic != BR__MAGIC_TICKER)
		return;
	t->magic = BR__MAGIC_DEAD;
	free(t);
}

/* ---- br_call_every ---- */

struct every {
	br_callback_fn fn;
	void *arg;
	struct br_ticker ticker;
};

static void *every_task(void *arg)
{
	struct every *e = arg;
	int64_t r;

	/* Ends at the first wait that a cancellation (or the runtime
	 * closing) interrupts: the task then ends CANCELLED. A callback
	 * slower than the period finds its next tick due and waits for
	 * nothing, so the request is looked for here too; the yield is the
	 * suspension point that answers it. */
	for (;;) {
		if (br_cancelled()) {
			br_yield();
			break;
		}
		r = ticker_next(&e->ticker);
		if (r == -ECANCELED)
			break;
		if (r < 0) /* no memory for the sleep's timer */
			return br_fail((int)r, "br_call_every: cannot sleep");
		e->fn(e->arg);
	}
	return NULL;
}

static void every_done(br_future *f, void *arg)
{
	free(arg);
}

br_future *br_call_every(br_runtime *rt, int64_t period_ms, br_callback_fn fn,
			 void *arg)
{
	struct every *e;
	br_future *f;

	if (!fn)
		return br__future_failed(-EINVAL, "br_call_every: fn is NULL");
	if (period_ms <= 0)
		return br__future_failed(-EINVAL,
					 "br_call_every: period_ms <= 0");
	e = malloc(sizeof(*e));
	if (!e)
		return &br__future_enomem;
	e->fn = fn;
	e->arg = arg;
	ticker_init(&e->ticker, period_ms);
	f = br_spawn(rt, every_task, e);
	/* The record outlives the task: freed once its future is final,
	 * whether the task ran or was never started. */
	if (br_future_on_done(f, every_done, e) < 0)
		free(e); /* the static out-of-memory future: it never ran */
	return f;
}
