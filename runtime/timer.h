/* SPDX-License-Identifier: MIT */
/*
 * timer.h - per-worker timer heap. See timer.c.
 */
#ifndef BR_TIMER_H
#define BR_TIMER_H

#include <stdatomic.h>
#include <stdint.h>

struct br__worker;
struct br__fiber;
struct br__task;

enum {
	BR__TM_ARMED,
	BR__TM_FIRING,
	BR__TM_DONE,
	BR__TM_DEAD
};

struct br__timer {
	int64_t deadline;	 /* CLOCK_MONOTONIC ns */
	uint32_t idx;		 /* heap index; owner only */
	_Atomic int st;		 /* BR__TM_* */
	struct br__worker *w;	 /* whose heap holds it */
	struct br__fiber *fiber; /* a sleeping fiber ... */
	uint64_t seq;		 /* ... and its suspension */
	struct br__task *cb;	 /* or a callback task (a reference) */
};

struct br__timers {
	struct br__timer **heap; /* min-heap on deadline; owner only */
	uint32_t n, cap;
};

void br__timers_init(struct br__timers *tm);

/* Cancel every callback, drop every entry, free the heap. Worker w. */
void br__timers_term(struct br__worker *w);

/* Add t to w's heap. Returns 0 or -ENOMEM. Context: worker w. */
int br__timer_add(struct br__worker *w, struct br__timer *t);

/*
 * br__timer_wake_at - a timer on w's heap that wakes fiber f from its
 * suspension seq at deadline. NULL if out of memory. Undo it with
 * br__timer_cancel() once f runs again. Context: code on f, on worker w.
 */
struct br__timer *br__timer_wake_at(struct br__worker *w, int64_t deadline,
				    struct br__fiber *f, uint64_t seq);

/*
 * br__timer_cancel - undo a fiber timer after its fiber woke. Frees t, or
 * hands it to the heap's owner to free. Context: code on the fiber.
 */
void br__timer_cancel(struct br__worker *cur, struct br__timer *t);

/* Fire every timer due at now; returns how many. Context: worker w. */
unsigned br__timers_run(struct br__worker *w, int64_t now);

/* Earliest live deadline, or -1. Context: worker w. */
int64_t br__timers_next(struct br__worker *w);

#endif /* BR_TIMER_H */
