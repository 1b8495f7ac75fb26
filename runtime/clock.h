/* SPDX-License-Identifier: MIT */
/*
 * clock.h - the monotonic clock, time units and deadline arithmetic.
 *
 * Design
 *   Every time in the runtime is an int64_t count of nanoseconds on
 *   CLOCK_MONOTONIC (br_now_ns()); a deadline is such a time, and a
 *   negative deadline means "none". Conversions from the public API's
 *   milliseconds go through the helpers here, so that no file multiplies
 *   a caller's number by hand: a product that would overflow saturates,
 *   and a deadline too far away to matter is no deadline at all.
 *
 * Invariants
 *   - br__ms_to_ns() and br__deadline_add() never overflow: they saturate
 *     at INT64_MAX.
 *
 * Concurrency
 *   None: pure functions and a read of the clock.
 */
#ifndef BR_CLOCK_H
#define BR_CLOCK_H

#include <linux/time_types.h>
#include <stdint.h>
#include <time.h>

#include "braid.h"

#define BR__NS_PER_US INT64_C(1000)
#define BR__NS_PER_MS INT64_C(1000000)
#define BR__NS_PER_S INT64_C(1000000000)

/* ms in nanoseconds, saturating at INT64_MAX; ms >= 0. */
static inline int64_t br__ms_to_ns(int64_t ms)
{
	return ms > INT64_MAX / BR__NS_PER_MS ? INT64_MAX : ms * BR__NS_PER_MS;
}

/* t + d for a time t and a delay d >= 0, saturating at INT64_MAX. */
static inline int64_t br__deadline_add(int64_t t, int64_t d)
{
	return d > INT64_MAX - t ? INT64_MAX : t + d;
}

/*
 * br__deadline_ms - the deadline timeout_ms from now: -1 (none) for a
 * negative timeout, or for one so long (over a century) that it can
 * never pass.
 */
static inline int64_t br__deadline_ms(int64_t timeout_ms)
{
	if (timeout_ms < 0 || timeout_ms > INT64_MAX / (2 * BR__NS_PER_MS))
		return -1;
	return br_now_ns() + timeout_ms * BR__NS_PER_MS;
}

/* A time or a delay in nanoseconds (>= 0) as a timespec. */
static inline struct timespec br__ns_to_ts(int64_t ns)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(ns / BR__NS_PER_S);
	ts.tv_nsec = (long)(ns % BR__NS_PER_S);
	return ts;
}

/* The same in the kernel's layout, as io_uring takes it. */
static inline struct __kernel_timespec br__ns_to_kts(int64_t ns)
{
	struct __kernel_timespec ts;

	ts.tv_sec = ns / BR__NS_PER_S;
	ts.tv_nsec = ns % BR__NS_PER_S;
	return ts;
}

#endif /* BR_CLOCK_H */
