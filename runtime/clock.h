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
 *   Every time argument of the API is an int64_t the caller may set to
 *   anything, INT64_MAX and INT64_MIN included, so a conversion saturates
 *   instead of wrapping (a wrapped sum is a deadline in the past, and the
 *   call would fire at once). A delay saturates at BR__FOREVER_NS, not at
 *   INT64_MAX, so that code adding it to a time of its own (the pool's
 *   start + limit) cannot overflow either.
 *
 * Invariants
 *   - br__ms_to_ns() gives a value in [-BR__FOREVER_NS, BR__FOREVER_NS];
 *     br__deadline_add() and br__deadline_in() saturate at INT64_MAX.
 *     None of them overflows, whatever its argument.
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

/*
 * The longest delay the runtime keeps, about 146 years: a delay this
 * long never passes, and adding it to a time of the monotonic clock,
 * which counts from boot, cannot overflow.
 */
#define BR__FOREVER_NS (INT64_MAX / 2)

/* ms in nanoseconds, any ms, saturating at +-BR__FOREVER_NS. */
static inline int64_t br__ms_to_ns(int64_t ms)
{
	if (ms > BR__FOREVER_NS / BR__NS_PER_MS)
		return BR__FOREVER_NS;
	if (ms < -(BR__FOREVER_NS / BR__NS_PER_MS))
		return -BR__FOREVER_NS;
	return ms * BR__NS_PER_MS;
}

/* t + d for a time t >= 0 and a delay d >= 0, saturating at INT64_MAX. */
static inline int64_t br__deadline_add(int64_t t, int64_t d)
{
	return d > INT64_MAX - t ? INT64_MAX : t + d;
}

/* The time d >= 0 nanoseconds from now, saturating at INT64_MAX. */
static inline int64_t br__deadline_in(int64_t d)
{
	return br__deadline_add(br_now_ns(), d);
}

/*
 * br__deadline_ms - the deadline timeout_ms from now: -1 (none) for a
 * negative timeout, or for one so long (BR__FOREVER_NS or more) that it
 * can never pass.
 */
static inline int64_t br__deadline_ms(int64_t timeout_ms)
{
	int64_t ns = br__ms_to_ns(timeout_ms);

	if (ns < 0 || ns >= BR__FOREVER_NS)
		return -1;
	return br_now_ns() + ns;
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
