/* SPDX-License-Identifier: MIT */
/*
 * deadline.h - deadline scopes: the nearest deadline of the scopes the
 * calling task (or plain thread) is inside, which every wait of it
 * honours. See deadline.c.
 */
#ifndef BR_DEADLINE_H
#define BR_DEADLINE_H

#include <stdint.h>

struct br__deadline;

/*
 * What a task (in its record) or a plain thread (thread-local) knows of
 * its scopes: the innermost one, and the nearest deadline of all of
 * them, which is what a wait reads. Written and read only by code of
 * that task or thread.
 */
struct br__dl_state {
	struct br__deadline *inner; /* innermost entered scope, or NULL */
	int64_t deadline;	    /* CLOCK_MONOTONIC ns; -1: none */
};

#define BR__DL_NONE ((struct br__dl_state){ NULL, -1 })

/* The calling plain thread's scopes (tasks keep theirs in the record:
 * a task moves between threads). */
extern __thread struct br__dl_state br__thread_dl;

/* The nearer of two deadlines, where a negative one is none. */
static inline int64_t br__deadline_min(int64_t a, int64_t b)
{
	if (a < 0)
		return b;
	if (b < 0)
		return a;
	return a < b ? a : b;
}

/*
 * br__deadline_thread_reset - forget the calling thread's scopes. The
 * blocking pool calls it after each call, so that a call that returned
 * inside a scope leaves nothing for the next one on that thread.
 */
static inline void br__deadline_thread_reset(void)
{
	br__thread_dl = BR__DL_NONE;
}

#endif /* BR_DEADLINE_H */
