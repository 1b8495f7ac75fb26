/* SPDX-License-Identifier: MIT */
/*
 * fiber.c - fibers: create, switch, exit, and the wake word.
 *
 * Design
 *   A fiber is a stack plus a saved stack pointer (ctx.h). Tasks run on
 *   fibers; a worker's scheduler runs on the worker thread's own stack. A
 *   suspension is finished only after the fiber is off its stack (Go's
 *   gopark/park_m split): a waker may resume the fiber on another worker
 *   the instant it is marked PARKED, which must not happen while the
 *   fiber still runs. The fiber records what is left to do in its
 *   worker's "after" field, and whichever context runs next on that
 *   worker does it: the scheduler, or another fiber when the worker hands
 *   the CPU straight from one fiber to the next (br__fiber_switch_to,
 *   which halves the switches of a message hand-off).
 *
 *   The wake word decides who resumes a suspended fiber:
 *
 *     code on fiber:  seq = arm()           wake = seq|ARMED   (seq_cst)
 *                     register wakers with seq
 *                     switch out
 *     scheduler:      CAS seq|ARMED -> seq|PARKED
 *                       fails: a waker got there first (NOTIFIED), so
 *                       the scheduler requeues the fiber itself
 *     waker:          CAS seq|ARMED or seq|PARKED -> seq|NOTIFIED
 *                       from PARKED: the waker schedules the fiber
 *                       from ARMED: the scheduler will (above)
 *
 *   Exactly one party requeues the fiber, and only after it has switched
 *   out. A wake-up presenting another seq fails, so a waker that lost the
 *   race, or fires late, cannot resume a later suspension.
 *
 *   Cancellation has no seq of its own. br__task_cancel() stores the
 *   task's flag, then the fiber's cancel_hint, then loads wake and moves
 *   whatever suspension is current to NOTIFIED. Arming is a plain store
 *   (a locked instruction saved on every suspension), so the canceller
 *   may read a stale wake word; its partner is the worker that parks the
 *   fiber, which after its PARKED CAS loads cancel_hint and, if set, wakes
 *   the fiber itself. With all four seq_cst (store hint; load wake) and
 *   (CAS wake; load hint), either the canceller's load comes after the
 *   CAS and sees PARKED, or it comes before, and then the worker's load
 *   of the hint comes after the canceller's store and sees it. The hint
 *   lives in the fiber header, not the task, because once PARKED the
 *   fiber belongs to its waker and its task may already have run, ended
 *   and been freed elsewhere; headers are never freed.
 *
 *   A hint outlives the request it was for (an inline child that was
 *   cancelled and ended, a recycled header), so arm() clears it first,
 *   and the suspension point then checks the task's own flags (seq_cst):
 *   a request stored before the clear is seen by that check, one after
 *   it sets the hint again. Suspensions that ignore cancellation (a
 *   group waiting for its cancelled tasks) tell the worker so, which then
 *   skips the hint.
 *
 *   Fiber headers are type-stable (never freed, only recycled; seq keeps
 *   growing across reuse), so br_cancel() may wake a fiber through a
 *   pointer it read without any lock: at worst it wakes a later user of
 *   the same header spuriously, and every suspension point re-checks its
 *   condition after waking.
 *
 *   Sanitizers: every switch carries __sanitizer_start/finish_switch_fiber
 *   under ASan and __tsan_switch_to_fiber under TSan, and stacks are
 *   registered with valgrind, so those tools follow the stacks (QEMU's
 *   coroutine-ucontext.c does the same).
 *
 * Invariants
 *   - A fiber is switched in by at most one worker at a time.
 *   - wake's seq equals the fiber's seq from arm() until the next arm().
 *   - A cached fiber has a stack of the runtime's default size.
 *
 * Concurrency
 *   - Switch functions: the worker running the fiber or its scheduler.
 *   - br__fiber_wake*(): any thread.
 *   - The header free list: any thread, under hdr_lock.
 *
 * Memory ordering
 *   - The PARKED CAS and the following load of cancel_hint (both seq_cst)
 *     pair with br__task_cancel()'s seq_cst store of the hint and load of
 *     wake; arm()'s seq_cst clear of the hint and the caller's seq_cst
 *     load of the task flags pair with the canceller's stores (above).
 *   - The PARKED CAS is release: it publishes the switched-out context;
 *     a waker's acq_rel CAS acquires it.
 *   - The scheduler's ARMED -> PARKED CAS is release: it publishes the
 *     saved context; a waker's CAS (acq_rel) acquires it before it queues
 *     the fiber, and the queues carry it on to the resuming worker.
 *
 * Lifetime
 *   Headers come from populated chunks and live for the process. Stacks
 *   of the runtime's default size come from its slab pool (stack.c) and
 *   go back to it; others are mapped and unmapped one by one.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define BR__VALGRIND 1
#endif

#include "ctx.h"
#include "fiber.h"
#include "task.h"
#include "worker.h"

#ifdef BR__ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef BR__TSAN
#include <sanitizer/tsan_interface.h>
#endif

#if defined(__x86_64__)
_Static_assert(offsetof(struct br__ctx_frame, mxcsr) == BR_CTX_MXCSR, "");
_Static_assert(offsetof(struct br__ctx_frame, fpucw) == BR_CTX_FPUCW, "");
_Static_assert(offsetof(struct br__ctx_frame, r15) == BR_CTX_R15, "");
_Static_assert(offsetof(struct br__ctx_frame, r14) == BR_CTX_R14, "");
_Static_assert(offsetof(struct br__ctx_frame, r13) == BR_CTX_R13, "");
_Static_assert(offsetof(struct br__ctx_frame, r12) == BR_CTX_R12, "");
_Static_assert(offsetof(struct br__ctx_frame, rbx) == BR_CTX_RBX, "");
_Static_assert(offsetof(struct br__ctx_frame, rbp) == BR_CTX_RBP, "");
_Static_assert(offsetof(struct br__ctx_frame, ret) == BR_CTX_RET, "");
#else
_Static_assert(offsetof(struct br__ctx_frame, d) == BR_CTX_D8, "");
_Static_assert(offsetof(struct br__ctx_frame, x19_x28) == BR_CTX_X19, "");
_Static_assert(offsetof(struct br__ctx_frame, x29) == BR_CTX_X29, "");
_Static_assert(offsetof(struct br__ctx_frame, x30) == BR_CTX_X30, "");
_Static_assert(offsetof(struct br__ctx_frame, fpcr) == BR_CTX_FPCR, "");
#endif
_Static_assert(sizeof(struct br__ctx_frame) == BR_CTX_FRAME, "");
/* A waker's fields share the header's first line (fiber.h): the waiter's
 * index, which only combinators read, may spill into the second. */
_Static_assert(offsetof(struct br__fiber, waiter) +
			       offsetof(struct br__waiter, index) <=
		       BR__CACHE_LINE,
	       "the waker's part of a fiber header spans two lines");

/* Runs of a fiber header per TSan fiber (br__fiber_prepare()): a run
 * leaves a few frames on the TSan fiber's shadow stack. */
#define TSAN_RUNS 1024
/* Cached fibers per worker; past that, half go back to the pool. */
#define CACHE_MAX 64
/* Fibers moved from the pool to a worker's cache at a time. */
#define CACHE_BATCH 16
/* Headers allocated at a time. */
#define HDR_CHUNK 64

static pthread_mutex_t hdr_lock = PTHREAD_MUTEX_INITIALIZER;
static struct br__fiber *hdr_free; /* protected by hdr_lock */

/* Headers come in populated chunks, so a burst of new fibers takes no
 * page fault for them: a first touch costs a fault, a populated page
 * costs far less. */
static struct br__fiber *hdr_chunk(void)
{
	size_t len = HDR_CHUNK * sizeof(struct br__fiber);
	struct br__fiber *c;
	unsigned i;

	if (BR__FAULT("braid/fiber/header"))
		return NULL;
	c = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (c == MAP_FAILED)
		return NULL;
	for (i = 1; i < HDR_CHUNK - 1; i++)
		c[i].next = &c[i + 1];
	c[HDR_CHUNK - 1].next = NULL;
	return c;
}

struct br__fiber *br__fiber_hdr_get(void)
{
	struct br__fiber *f, *chunk;

	pthread_mutex_lock(&hdr_lock);
	f = hdr_free;
	if (!f) {
		chunk = hdr_chunk();
		if (chunk) {
			/* chunk[0] is ours, the rest go on the list. */
			hdr_free = &chunk[1];
			f = &chunk[0];
		}
	} else {
		hdr_free = f->next;
	}
	pthread_mutex_unlock(&hdr_lock);
	return f;
}

void br__fiber_hdr_put(struct br__fiber *f)
{
	pthread_mutex_lock(&hdr_lock);
	f->next = hdr_free;
	hdr_free = f;
	pthread_mutex_unlock(&hdr_lock);
}

/* Refill w's cache from the runtime's pool, carving a slab if empty. */
static struct br__fiber *pool_get(struct br__worker *w)
{
	struct br__stack_pool *p = &w->rt->stacks;
	struct br__fiber *f;
	unsigned n;

	pthread_mutex_lock(&p->lock);
	if (!p->free) {
		f = br__stack_slab_new(p, &n);
		if (f) {
			p->free = f;
			p->nfree += n;
		}
	}
	for (n = 0; n < CACHE_BATCH && p->free; n++) {
		f = p->free;
		p->free = f->next;
		p->nfree--;
		f->next = w->stacks.head;
		w->stacks.head = f;
		w->stacks.n++;
	}
	pthread_mutex_unlock(&p->lock);
	f = w->stacks.head;
	if (f) {
		w->stacks.head = f->next;
		w->stacks.n--;
	}
	return f;
}

static void pool_put(struct br__stack_pool *p, struct br__worker *w, unsigned n)
{
	pthread_mutex_lock(&p->lock);
	while (n-- && w->stacks.head) {
		struct br__fiber *f = w->stacks.head;

		w->stacks.head = f->next;
		w->stacks.n--;
		f->next = p->free;
		p->free = f;
		p->nfree++;
	}
	pthread_mutex_unlock(&p->lock);
}

struct br__fiber *br__fiber_get(struct br__worker *w, size_t size)
{
	struct br__fiber *f;

	if (size == w->rt->stack_size) {
		f = w->stacks.head;
		if (f) {
			w->stacks.head = f->next;
			w->stacks.n--;
			return f;
		}
		return pool_get(w);
	}
	f = br__fiber_hdr_get();
	if (!f)
		return NULL;
	if (br__stack_alloc(f, size) < 0) {
		br__fiber_hdr_put(f);
		return NULL;
	}
	return f;
}

void br__fiber_put(struct br__worker *w, struct br__fiber *f)
{
	f->root = f->top = NULL;
	f->reg_w = NULL;
	atomic_store_explicit(&f->cancel_hint, 0, memory_order_relaxed);
	if (f->slab) {
		f->next = w->stacks.head;
		w->stacks.head = f;
		if (++w->stacks.n > CACHE_MAX)
			pool_put(&w->rt->stacks, w, CACHE_MAX / 2);
		return;
	}
	br__stack_free(f);
	br__fiber_hdr_put(f);
}

void br__stack_cache_drain(struct br__worker *w)
{
	pool_put(&w->rt->stacks, w, w->stacks.n);
}

void br__fiber_prepare(struct br__fiber *f, void (*fn)(void *), void *arg)
{
	f->sp = br__ctx_init(f->lo, f->hi, fn, arg);
	f->asan_fake = NULL;
#ifdef BR__TSAN
	/* One TSan fiber per header for TSAN_RUNS runs (headers are never
	 * freed): TSan counts fibers against its thread limit and recycles
	 * destroyed ones too slowly for spawn storms. But a run ends in a
	 * switch that never returns, which leaves its frames on the TSan
	 * fiber's shadow stack; that stack holds 65536 frames, and each
	 * frame makes every later event cost more, so the TSan fiber is
	 * replaced before it fills. Not running: f's run has ended. */
	if (f->tsan && ++f->tsan_runs >= TSAN_RUNS) {
		__tsan_destroy_fiber(f->tsan);
		f->tsan = NULL;
	}
	if (!f->tsan) {
		f->tsan = __tsan_create_fiber(0);
		f->tsan_runs = 0;
	}
#endif
}

/* A canary-guarded stack (no guard page could be made) is checked each
 * time its fiber switches out. */
static inline void check_canary(struct br__fiber *f)
{
	if (br__unlikely(f->guard == BR__GUARD_CANARY) &&
	    *(uint64_t *)f->lo != BR__STACK_CANARY)
		br__stack_overflowed(f);
}

static inline __attribute__((always_inline)) void
switch_in(struct br__worker *w, struct br__fiber *f)
{
#ifdef BR__ASAN
	void *fake = NULL;

	__sanitizer_start_switch_fiber(&fake, f->lo, f->size);
#endif
#ifdef BR__TSAN
	__tsan_switch_to_fiber(f->tsan, 0);
#endif
	br__obs_slice_count(&w->obs, f);
	/* Release: the fiber's labels (obs_id, obs_fn) before it, for the
	 * watchdog (stats.c); a plain store on x86. */
	atomic_store_explicit(&w->fiber, f, memory_order_release);
	w->current = f->top;
	br__ctx_switch(&w->sched_sp, f->sp);
#ifdef BR__ASAN
	__sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
	/* Relaxed: NULL publishes nothing. */
	atomic_store_explicit(&w->fiber, NULL, memory_order_relaxed);
	w->current = NULL;
}

/* A traced worker's switches record the slices they begin and end in
 * functions of their own, reached by a tail call, so that the common
 * switch keeps the frame it would have without tracing. */
static BR__COLD void switch_in_traced(struct br__worker *w, struct br__fiber *f)
{
	br__obs_trace_begin(&w->obs, f);
	switch_in(w, f);
	br__obs_trace_end(&w->obs);
}

void br__fiber_switch_in(struct br__worker *w, struct br__fiber *f)
{
	if (br__unlikely(br__obs_tracing(&w->obs))) {
		switch_in_traced(w, f);
		return;
	}
	switch_in(w, f);
}

/* Called first on a new fiber, to complete the switch that started it. */
void br__fiber_entered(void);
void br__fiber_entered(void)
{
#ifdef BR__ASAN
	__sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
}

void br__fiber_switch_out(struct br__worker *w, struct br__fiber *f, int dying)
{
	check_canary(f);
#ifdef BR__ASAN
	__sanitizer_start_switch_fiber(dying ? NULL : &f->asan_fake,
				       w->sched_stack_lo, w->sched_stack_size);
#endif
#ifdef BR__TSAN
	__tsan_switch_to_fiber(w->tsan_sched, 0);
#endif
	br__ctx_switch(&f->sp, w->sched_sp);
#ifdef BR__ASAN
	__sanitizer_finish_switch_fiber(f->asan_fake, NULL, NULL);
#endif
	(void)dying;
}

static inline __attribute__((always_inline)) void
switch_to(struct br__worker *w, struct br__fiber *from, struct br__fiber *to)
{
	check_canary(from);
#ifdef BR__ASAN
	__sanitizer_start_switch_fiber(&from->asan_fake, to->lo, to->size);
#endif
#ifdef BR__TSAN
	__tsan_switch_to_fiber(to->tsan, 0);
#endif
	br__obs_slice_count(&w->obs, to);
	/* Release: as in switch_in(). */
	atomic_store_explicit(&w->fiber, to, memory_order_release);
	w->current = to->top;
	br__ctx_switch(&from->sp, to->sp);
#ifdef BR__ASAN
	__sanitizer_finish_switch_fiber(from->asan_fake, NULL, NULL);
#endif
}

static BR__COLD void switch_to_traced(struct br__worker *w,
				      struct br__fiber *from,
				      struct br__fiber *to)
{
	br__obs_trace_next(&w->obs, to);
	switch_to(w, from, to);
}

/* Untraced, this needs no stack frame: it ends in a jump to
 * br__ctx_switch. */
void br__fiber_switch_to(struct br__worker *w, struct br__fiber *from,
			 struct br__fiber *to)
{
	if (br__unlikely(br__obs_tracing(&w->obs))) {
		switch_to_traced(w, from, to);
		return;
	}
	switch_to(w, from, to);
}

uint64_t br__fiber_arm(struct br__fiber *f)
{
	uint64_t seq = ++f->seq;

	/* A child run inline published its fiber with a relaxed store (a
	 * locked instruction per fork-join child saved): before it checks
	 * its cancel flag, fence, so that br__task_cancel()'s seq_cst store
	 * of the flag and load of the fiber pointer see one or the other. */
	if (f->top != f->root)
		atomic_thread_fence(memory_order_seq_cst);
	/* A hint left by a finished cancellation (an inline child's, or a
	 * previous user's of this header) would wake every suspension: clear
	 * it. seq_cst, before the caller's seq_cst check of the flags
	 * (header). */
	if (atomic_load_explicit(&f->cancel_hint, memory_order_relaxed))
		atomic_store_explicit(&f->cancel_hint, 0, memory_order_seq_cst);
	/* Relaxed: wakers learn seq from a waiter or timer published after
	 * this store by a lock or the heap's owner; cancellation is caught
	 * at the PARKED CAS (header). */
	/* The fiber runs: no waker may still own it. */
	BR_DEBUG_ASSERT((atomic_load_explicit(&f->wake, memory_order_relaxed) &
			 3) != BR__FW_PARKED);
	atomic_store_explicit(&f->wake, (seq << 2) | BR__FW_ARMED,
			      memory_order_relaxed);
	return seq;
}

void br__fiber_disarm(struct br__fiber *f, uint64_t seq)
{
	/* A waker racing us writes the same value; either way nobody will
	 * queue the fiber for this seq, which is what we want since it is
	 * still running. Relaxed: nothing is published by it. */
	atomic_store_explicit(&f->wake, (seq << 2) | BR__FW_NOTIFIED,
			      memory_order_relaxed);
}

static int wake(struct br__fiber *f, uint64_t seq, int any)
{
	/* seq_cst: the cancellation pair (header); acquire would do for an
	 * ordinary wake-up, and costs the same on x86. */
	uint64_t v = atomic_load_explicit(&f->wake, memory_order_seq_cst);

	for (;;) {
		if (any)
			seq = v >> 2;
		if ((v >> 2) != seq || (v & 3) == BR__FW_NOTIFIED)
			return 0;
		/* acq_rel: acquires the parked context, and orders this
		 * waker's writes (a completed future) before the resumed
		 * fiber's reads. */
		if (atomic_compare_exchange_weak_explicit(
			    &f->wake, &v, (seq << 2) | BR__FW_NOTIFIED,
			    memory_order_acq_rel, memory_order_acquire))
			break;
	}
	if ((v & 3) == BR__FW_PARKED)
		br__task_schedule(f->top);
	return 1;
}

int br__fiber_wake(struct br__fiber *f, uint64_t seq)
{
	return wake(f, seq, 0);
}

void br__fiber_wake_any(struct br__fiber *f)
{
	wake(f, 0, 1);
}
