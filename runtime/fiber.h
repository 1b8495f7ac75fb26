/* SPDX-License-Identifier: MIT */
/*
 * fiber.h - fibers: a stack, a saved context, and the wake word that
 * decides who resumes a suspended fiber. See fiber.c.
 */
#ifndef BR_FIBER_H
#define BR_FIBER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "future.h"
#include "list.h"

struct br__task;
struct br__worker;

/* Low two bits of br__fiber.wake; the rest is the suspension's seq. */
enum {
	BR__FW_ARMED = 0,    /* about to suspend, still on its worker */
	BR__FW_PARKED = 1,   /* switched out; a waker must schedule it */
	BR__FW_NOTIFIED = 2, /* woken; owns no more wake-ups for this seq */
};

enum {
	BR__GUARD_PAGE,
	BR__GUARD_CANARY
};

/* Written at the lowest word of canary-guarded stacks. */
#define BR__STACK_CANARY 0x6272636e61727921ull

/* Task stack sizes: the default, and the bounds a config or a spawn is
 * clamped to (below the minimum, braid's own frames and a signal frame
 * leave the task nothing; above the maximum, a size is a mistake). */
#define BR__STACK_DEFAULT ((size_t)64 << 10)
#define BR__STACK_MIN ((size_t)16 << 10)
#define BR__STACK_MAX ((size_t)1 << 30)

/*
 * Fiber headers are type-stable: they are never freed while the process
 * runs, only recycled, and seq only grows. A stale pointer to a fiber
 * therefore always reaches some fiber, and a stale (fiber, seq) wake-up
 * fails its CAS; br_cancel() relies on this (see task.c).
 */
struct br__fiber {
	/* The first line is what a waker touches: the wake word, the task on
	 * top, and the waiter of a task's wait on one future (wait.c), so a
	 * hand-off between workers moves one line of the header, not that
	 * and a line of the waiting fiber's stack (docs/ARCHITECTURE.md,
	 * "Hand-offs between threads"). Headers are never shared by two
	 * workers' fibers. */
	BR__CACHE_ALIGNED _Atomic uint64_t wake; /* (seq << 2) | BR__FW_* */
	/* The task running on top (inline children included); written by the
	 * fiber's own code, read by the waker that moved wake PARKED ->
	 * NOTIFIED. */
	struct br__task *top;
	struct br__waiter waiter;
	void *sp; /* saved stack pointer while switched out */
	/* Set by br_cancel() for a task on this fiber; read by the worker
	 * that parks it, cleared by the next arm (fiber.c). */
	_Atomic uint32_t cancel_hint;
	uint64_t seq;		/* written only by code running on it */
	struct br__task *root;	/* the task the fiber was started for */
	struct br__fiber *next; /* stack cache or header free list */
	/* Live list, under reg_w->reg_lock. */
	struct br__list_node reg;
	struct br__worker *reg_w; /* whose live list holds it */
	void *lo, *hi;		  /* usable stack [lo, hi) */
	void *map;		  /* mapping, guard page included */
	size_t map_len;
	size_t size;	    /* hi - lo */
	uint8_t guard;	    /* BR__GUARD_* */
	uint8_t pinned;	    /* root was spawned pinned */
	unsigned pin;	    /* ... to this worker */
	void *asan_fake;    /* ASan fake-stack handle across switches */
	void *tsan;	    /* TSan fiber */
	unsigned tsan_runs; /* runs on it so far (fiber.c) */
	unsigned vg_id;	    /* valgrind stack id */
	uint8_t slab;	    /* the stack belongs to a slab */
#ifndef BR_NO_OBS
	/* The root task's id and function, for the stall detector and the
	 * trace: written by the worker that starts the root, read by the
	 * watchdog (stats.c) */
	_Atomic uint64_t obs_id;
	_Atomic uintptr_t obs_fn;
	/* The root task's name, NUL-padded words (tasklocal.c): written by
	 * that worker and by br_task_set_name() on the fiber, read by the
	 * watchdog and the trace */
	_Atomic uint64_t obs_name[4];
#endif
};

/* Per-worker cache of fibers with default-size stacks. */
struct br__stack_cache {
	struct br__fiber *head;
	unsigned n;
};

struct br__stack_slab;

/*
 * A runtime's pool of fibers with default-size stacks, carved from slabs
 * that stay mapped until the runtime is freed (stack.c says why).
 */
struct br__stack_pool {
	pthread_mutex_t lock;
	struct br__fiber *free;	      /* protected by lock */
	unsigned nfree;		      /* protected by lock */
	struct br__stack_slab *slabs; /* protected by lock */
	size_t size;		      /* the runtime's default stack size */
};

int br__stack_pool_init(struct br__stack_pool *p, size_t size);

/* Unmap every slab and give the headers back. Every fiber of the pool
 * must be back in it. */
void br__stack_pool_term(struct br__stack_pool *p);

/*
 * br__stack_slab_new - map a slab of stacks of p->size, attach a header
 * to each and return them linked through next; *n gets how many. NULL if
 * out of memory. Caller holds p->lock.
 */
struct br__fiber *br__stack_slab_new(struct br__stack_pool *p, unsigned *n);

/* Type-stable fiber headers (fiber.c). */
struct br__fiber *br__fiber_hdr_get(void);
void br__fiber_hdr_put(struct br__fiber *f);

/*
 * br__fiber_get - a fiber with a stack of at least size bytes, from w's
 * cache when the size is the runtime default. NULL if out of memory.
 * Context: worker w.
 */
struct br__fiber *br__fiber_get(struct br__worker *w, size_t size);

/* br__fiber_put - give a finished fiber back (cache or free). Worker w. */
void br__fiber_put(struct br__worker *w, struct br__fiber *f);

/* br__stack_cache_drain - give every cached fiber of w back to the
 * runtime's pool. */
void br__stack_cache_drain(struct br__worker *w);

/* Prepare f to run fn(arg) from the top of its stack when switched in. */
void br__fiber_prepare(struct br__fiber *f, void (*fn)(void *), void *arg);

/*
 * br__fiber_switch_in - from worker w's scheduler context into f; returns
 * when f switches out. Context: worker w, on its own stack.
 */
void br__fiber_switch_in(struct br__worker *w, struct br__fiber *f);

/*
 * br__fiber_switch_out - from f back to the scheduler of w (the worker it
 * runs on now); returns when some worker switches f in again.
 * dying: f will never be resumed (its sanitizer state is released).
 */
void br__fiber_switch_out(struct br__worker *w, struct br__fiber *f, int dying);

/*
 * br__fiber_switch_to - from fiber `from` straight into fiber `to`, both
 * on worker w, without visiting the scheduler. Returns when something
 * switches `from` in again. Context: code on `from`.
 */
void br__fiber_switch_to(struct br__worker *w, struct br__fiber *from,
			 struct br__fiber *to);

/*
 * br__fiber_arm - begin a suspension: a new seq, wake = ARMED. Returns
 * the seq that wake-ups for this suspension must present. The caller must
 * check the cancel flags after it, and pass the suspension to the worker
 * as cancellable, for a racing br_cancel() to be caught (fiber.c).
 * Context: code on f.
 */
uint64_t br__fiber_arm(struct br__fiber *f);

/* br__fiber_disarm - the suspension was abandoned before switching out. */
void br__fiber_disarm(struct br__fiber *f, uint64_t seq);

/*
 * br__fiber_wake - wake f if it is still suspended for seq. Returns 1 if
 * this call woke it. Context: any thread.
 */
int br__fiber_wake(struct br__fiber *f, uint64_t seq);

/* br__fiber_wake_any - wake f from whatever suspension it is in. */
void br__fiber_wake_any(struct br__fiber *f);

/* Stack-overflow reporting (stack.c). */
int br__stack_init_process(void);
int br__stack_thread_init(struct br__worker *w);
void br__stack_thread_exit(struct br__worker *w);
/* The top of w's alternate signal stack, or NULL if it has none. forkexec.c
 * runs a child there while w's thread waits for its exec. */
char *br__stack_alt_top(struct br__worker *w);
int br__stack_alloc(struct br__fiber *f, size_t size);
void br__stack_free(struct br__fiber *f);
__attribute__((noreturn)) void br__stack_overflowed(struct br__fiber *f);
int br__stack_guard_install_works(void);

#endif /* BR_FIBER_H */
