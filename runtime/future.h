/* SPDX-License-Identifier: MIT */
/*
 * future.h - the one future type, its waiters and its completion.
 *
 * See future.c for the design; this header gives other runtime files the
 * layout and the internal entry points.
 */
#ifndef BR_FUTURE_H
#define BR_FUTURE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "braid.h"
#include "internal.h"

/* What made a future; decides cancellation and freeing. */
enum br__fkind {
	BR__F_PROMISE,	/* completed by its user or a combinator */
	BR__F_TASK,	/* a struct br__task */
	BR__F_CALLBACK, /* a br_call_soon/later record (also a br__task) */
	BR__F_STATIC,	/* immortal (the out-of-memory future) */
	BR__F_JOB,	/* a process-pool job or br_map (pool.c) */
};

/* Bits of br_future.st: the br_state in the low two bits, a lock, and
 * ORPHAN: a task whose last reference went while it was still pending;
 * whoever completes it frees it (task.c). */
#define BR__FST_MASK 0x3u
#define BR__FST_LOCK 0x4u
#define BR__FST_ORPHAN 0x8u

struct br_future;
struct br__waiter;
struct br__fiber;

typedef void (*br__fire_fn)(struct br__waiter *w, struct br_future *f);

/*
 * A waiter: someone to tell when a future completes. It lives in the
 * waiting party's memory (a task's stack, a blocked thread's stack, a
 * combinator object); the future only links it.
 *
 *   st: LINKED while on the list; FIRING once completion detached it;
 *   DONE when fire() is finished with it. fire()'s last access to the
 *   waiter is the release store of DONE, so its owner may reuse the memory
 *   once br__future_unwait() has returned.
 */
enum {
	BR__W_IDLE,
	BR__W_LINKED,
	BR__W_FIRING,
	BR__W_DONE
};

struct br__waiter {
	struct br__waiter *next, *prev; /* protected by the future's lock */
	br__fire_fn fire;
	_Atomic int st;
	union {
		struct { /* a suspended task */
			struct br__fiber *fiber;
			uint64_t seq;
		} task;
		_Atomic uint32_t *futex; /* a blocked thread */
		struct {		 /* br_future_on_done */
			br_future_fn fn;
			void *arg;
		} cb;
		void *obj; /* a combinator's state */
	} u;
	size_t index; /* combinators: which input this waiter watches */
};

struct br_future {
	uint32_t magic;	       /* BR__MAGIC_FUTURE while live */
	uint8_t kind;	       /* enum br__fkind, fixed at creation */
	_Atomic uint32_t st;   /* br_state | BR__FST_LOCK */
	_Atomic uint32_t refs; /* references; 0 frees */
	int error;	       /* written once under the lock, before the */
	void *value;	       /* final state is published (release); */
	char *message;	       /* read after an acquire load of st */
	void *bytes;
	size_t len;
	struct br__waiter *head, *tail; /* protected by BR__FST_LOCK */
};

/* The immortal FAILED(-ENOMEM) future (STYLE 4.1). */
extern struct br_future br__future_enomem;

/* Validates f: 1 if it is a live future. Context: any thread. */
static inline int br__future_ok(const struct br_future *f)
{
	return f && f->magic == BR__MAGIC_FUTURE;
}

static inline br_state br__future_state(const struct br_future *f)
{
	/* Acquire: pairs with the release store of the final state in
	 * br__future_complete(), so value and error are visible. */
	return (br_state)(atomic_load_explicit(&f->st, memory_order_acquire) &
			  BR__FST_MASK);
}

/* Initialise an embedded future of the given kind with one reference per
 * count in refs. */
void br__future_init(struct br_future *f, enum br__fkind kind, uint32_t refs);

/*
 * br__future_complete - move f from PENDING to state (DONE, FAILED or
 * CANCELLED) exactly once, with value, bytes (owned, may be NULL), error
 * and a copy of msg, and fire every waiter. Returns 0, or BR_EDONE if f
 * had already completed (then bytes is freed and nothing else changes).
 * Context: any thread; the caller holds a reference to f, or f is a task
 * the caller is running or dropping (then f may be freed before this
 * returns, and must not be touched after).
 */
int br__future_complete(struct br_future *f, br_state state, void *value,
			void *bytes, size_t len, int error, const char *msg);

/*
 * br__future_wait_on - link w to f. Returns 1 if linked, 0 if f has
 * already completed (w is left unlinked; nothing will fire it).
 */
int br__future_wait_on(struct br_future *f, struct br__waiter *w);

/*
 * br__future_unwait - make sure w is neither linked to f nor being fired.
 * Returns 1 if w was still linked (it will never fire), 0 if it fired or
 * was never linked. After it returns, w's memory may be reused.
 */
int br__future_unwait(struct br_future *f, struct br__waiter *w);

/* Free a future's owned parts and poison its magic (not the memory). */
void br__future_destroy(struct br_future *f);

/* Result of a completed future in br_await's shape. */
int br__future_result(const struct br_future *f, void **value);

/* Make a new heap promise with refs references (NULL if out of memory). */
struct br_future *br__promise_alloc(uint32_t refs);

/* Free the calling thread's cached promises (worker exit). */
void br__promise_cache_drain(void);

#endif /* BR_FUTURE_H */
