/* SPDX-License-Identifier: MIT */
/*
 * wait.h - waiting for futures from a task or a plain thread. See wait.c.
 */
#ifndef BR_WAIT_H
#define BR_WAIT_H

#include <stddef.h>
#include <stdint.h>

#include "braid.h"

/* br__wait_any flags */
#define BR__WAIT_NOCANCEL 0x1u /* ignore cancellation of the waiting task */

/*
 * br__wait_any - wait until one of fs[0..n) completes or deadline_ns
 * passes (absolute; < 0: never). Returns the lowest index of a completed
 * future, -ETIMEDOUT, -ECANCELED (the waiting task was cancelled and
 * NOCANCEL is not set), BR_EDEADLK (a loop callback would block), or
 * -ENOMEM. fs must be valid futures. Context: any thread.
 */
int br__wait_any(br_future *const *fs, size_t n, int64_t deadline_ns,
		 unsigned flags);

#endif /* BR_WAIT_H */
