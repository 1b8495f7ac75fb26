/* SPDX-License-Identifier: MIT */
/*
 * internal.h - macros shared by every file of the runtime.
 *
 * Design
 *   Assertions come in two strengths (STYLE 3.8): BR_ASSERT is always on,
 *   for the few checks that cost nothing next to what they guard;
 *   BR_DEBUG_ASSERT is compiled into the debug, asan and tsan builds and
 *   out of release (NDEBUG): it checks the state transitions of tasks,
 *   fibers, futures and jobs on their hot paths, and who holds what
 *   (BR__ASSERT_OWNER, BR__ASSERT_MUTEX_HELD, BR__ASSERT_SPIN_HELD),
 *   the kernel's lockdep_assert_held and Go's throw("bad g status").
 *   Both print the expression, the file and the line, then abort.
 *
 *   Fault points (BR__FAULT) name the places where braid takes a
 *   resource from the system: a stack, a task or future record, a ring,
 *   an SQE, an eventfd, a pidfd, a memfd, a fork, a thread. In a faults
 *   build (make FAULTS=1, -DBR_FAULTS, linked with libfiu) each asks
 *   libfiu whether to fail; the site then fails the way the real call
 *   does (NULL or -1 with errno, or a negative errno), so the error path
 *   that runs is the one a real shortage would take. Two points delay
 *   instead, holding a thread up where a preempted one would leave a
 *   window (braid/pool/register_late, braid/sched/outside_late). In every
 *   other build a point is the constant 0 and costs nothing. The first point
 *   to fail in a process says so on stderr, so a sweep can tell a point
 *   that failed without a trace from one that was never reached.
 *   scripts/faults.py finds the points by their names in the runtime.
 *
 * Concurrency
 *   None: macros and constants only.
 */
#ifndef BR_INTERNAL_H
#define BR_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#define br__likely(x) __builtin_expect(!!(x), 1)
#define br__unlikely(x) __builtin_expect(!!(x), 0)
#define BR__COLD __attribute__((cold, noinline))
#define BR__MUST_CHECK __attribute__((warn_unused_result))
#define BR__NOINLINE __attribute__((noinline))
#define BR__CACHE_LINE 64
#define BR__CACHE_ALIGNED _Alignas(BR__CACHE_LINE)

#define br__container_of(ptr, type, member) \
	((type *)((char *)(ptr)-offsetof(type, member)))

#define BR__ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
 * BR__FAULT(name) - nonzero when the fault point name (a string literal,
 * "braid/<area>/<what>") is to fail this time; always 0 outside a faults
 * build. BR__FAULT_ERRNO(name, err) also sets errno to err when it
 * fails, for sites that stand in for a call reporting through errno.
 */
#ifdef BR_FAULTS
#include <errno.h>
#ifndef FIU_ENABLE
#define FIU_ENABLE 1 /* fiu.h declares its calls only with it */
#endif
#include <fiu.h>
int br__fault(const char *name);
#define BR__FAULT(name) br__unlikely(br__fault(name))
#define BR__FAULT_ERRNO(name, err) (BR__FAULT(name) ? (errno = (err), 1) : 0)
#else
#define BR__FAULT(name) 0
#define BR__FAULT_ERRNO(name, err) 0
#endif

BR__COLD __attribute__((noreturn)) void
br__assert_fail(const char *expr, const char *file, int line);

#define BR_ASSERT(e) \
	(br__likely(e) ? (void)0 : br__assert_fail(#e, __FILE__, __LINE__))
#ifdef NDEBUG
#define BR_DEBUG_ASSERT(e) ((void)0)
#else
#define BR_DEBUG_ASSERT(e) BR_ASSERT(e)
#endif

/*
 * BR__ASSERT_MUTEX_HELD(m) - the calling thread holds the pthread mutex m.
 * glibc records the owner's thread id in every mutex it locks.
 */
#if !defined(NDEBUG) && defined(__GLIBC__)
#define BR__ASSERT_MUTEX_HELD(m) \
	BR_DEBUG_ASSERT((m)->__data.__owner == (int)br__gettid())
int br__gettid(void);
#else
#define BR__ASSERT_MUTEX_HELD(m) ((void)0)
#endif

/*
 * Object magics, checked at every public entry (SQLite's API armor) and
 * poisoned at free so a use after free fails the check instead of
 * scribbling.
 */
#define BR__MAGIC_RUNTIME 0x62724e54u  /* "brNT" */
#define BR__MAGIC_FUTURE 0x62724655u   /* "brFU" */
#define BR__MAGIC_ITER 0x62724954u     /* "brIT" */
#define BR__MAGIC_GROUP 0x62724750u    /* "brGP" */
#define BR__MAGIC_ACCEPTOR 0x62724143u /* "brAC" */
#define BR__MAGIC_READER 0x62725244u   /* "brRD" */
#define BR__MAGIC_WRITER 0x62725752u   /* "brWR" */
#define BR__MAGIC_POOL 0x6272504cu     /* "brPL" */
#define BR__MAGIC_IMAP 0x6272494du     /* "brIM" */
#define BR__MAGIC_DEADLINE 0x6272444cu /* "brDL" */
#define BR__MAGIC_TICKER 0x62725443u   /* "brTC" */
#define BR__MAGIC_DEAD 0xdeadbeefu

/* Sanitizer builds, for gcc and clang alike (QEMU's test). */
#if defined(__SANITIZE_ADDRESS__)
#define BR__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BR__ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define BR__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define BR__TSAN 1
#endif
#endif
#if defined(BR__ASAN) || defined(BR__TSAN)
#define BR__SANITIZED 1
#endif

static inline void br__cpu_relax(void)
{
#if defined(__x86_64__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

/*
 * br__backoff - one step of waiting for another thread that holds
 * something for a few instructions (a future's lock, a waiter or timer
 * being fired): spin first, then yield, in case the holder was preempted.
 * *spins starts at 0.
 */
void br__backoff(unsigned *spins);

/*
 * br__nap - sleep *nap_us microseconds (0: the shortest nap), then double
 * it up to a cap of a few milliseconds: how shutdown polls for work that
 * may take long (running calls, live tasks), quick to notice the end of
 * short work and cheap while long work goes on.
 */
void br__nap(unsigned *nap_us);

/* n rounded up to a whole number of pages. */
size_t br__page_round(size_t n);

/* xorshift32: cheap per-worker randomness for victim choice. */
static inline uint32_t br__rand(uint32_t *s)
{
	uint32_t x = *s;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*s = x;
	return x;
}

/* Message helpers (error.c). */
char *br__strdup(const char *s);

#endif /* BR_INTERNAL_H */
