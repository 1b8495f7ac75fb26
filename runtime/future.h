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
#include "list.h"

/* Bits of br_future.st: the br_state in the low two bits, a lock, and
 * ORPHAN: a task whose last reference went while it was still pending;
 * whoever completes it frees it (task.c). */
#define BR__FST_MASK 0x3u
#define BR__FST_LOCK 0x4u
#define BR__FST_ORPHAN 0x8u

struct br_future;
struct br__waiter;
struct br__fiber;

/*
 * What the kinds of future do differently, as a constant table set by
 * whoever creates the future (Tokio's task vtable): future.c calls
 * through it and knows none of its subtypes. Code that must know whether
 * a future is of its own kind compares f->ops with its table's address.
 */
struct br__future_ops {
	const char *name; /* the kind, for messages: "task", "promise" */
	/*
	 * The last reference is gone and f has completed (or, with
	 * BR__FOPS_ORPHAN, f has completed after its last reference went):
	 * free f and what it owns. Context: any thread.
	 */
	void (*free)(struct br_future *f);
	/*
	 * br_cancel() of f while it is pending: ask whatever runs it to
	 * stop. Returns 0, or BR_EDONE if it has already finished. NULL:
	 * nothing runs it, and f completes CANCELLED at once.
	 */
	int (*cancel)(struct br_future *f);
	unsigned flags; /* BR__FOPS_* */
};

#define BR__FOPS_PROMISE 0x1u /* br_promise_resolve/_reject accept it */
/* Being pending keeps it alive: its runner holds no counted reference,
 * and the last release while pending leaves the freeing to the
 * completion (tasks). */
#define BR__FOPS_ORPHAN 0x2u
#define BR__FOPS_STATIC 0x4u /* immortal: retain and release do nothing */

/*
 * Called once f has completed. f is valid inside only if the waiter holds
 * a reference to it (br_future_on_done's waiters do, and combinators hold
 * their inputs): the completer of a task holds none, and another thread's
 * last release may free f as soon as the state is stored.
 */
typedef void (*br__fire_fn)(struct br__waiter *w, struct br_future *f);

/*
 * A waiter: someone to tell when a future completes. It lives in the
 * waiting party's memory (a task's stack or its fiber's header, a
 * blocked thread's stack, a combinator object); the future only links
 * it.
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
	struct br__list_node link; /* on f->waiters, under the lock */
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
	_Atomic uint32_t st;   /* br_state | BR__FST_* bits */
	_Atomic uint32_t refs; /* references; 0 frees */
	/* error, value, message, bytes and len are written once under the
	 * lock, before the final state is published (release), and read
	 * after an acquire load of st. */
	int error;
	const struct br__future_ops *ops; /* fixed at creation */
	void *value;
	char *message;
	void *bytes;
	size_t len;
	struct br__list waiters; /* of struct br__waiter; under the lock */
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

/* Initialise an embedded future of the kind ops with refs references. */
void br__future_init(struct br_future *f, const struct br__future_ops *ops,
		     uint32_t refs);

/* A FAILED future with code and msg (the static ENOMEM one if out of
 * memory). Returns a new reference. Context: any thread. */
struct br_future *br__future_failed(int code, const char *msg);

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
 * br__future_complete_sole - br__future_complete() for a future no other
 * thread can reach while it runs: the caller holds its only reference and
 * no waiter is linked (wait.c: a child run inline for the task that
 * awaits it). The state is published with a release store instead of
 * under the lock, which saves the one locked instruction a fork-join
 * child otherwise pays to complete. Falls back to br__future_complete()
 * if f has waiters or is not pending. Context: the thread that alone can
 * reach f.
 */
int br__future_complete_sole(struct br_future *f, br_state state, void *value,
			     void *bytes, size_t len, int error,
			     const char *msg);

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

/*
 * br__await_shielded - await f, but if the calling task is cancelled
 * or its deadline scope passes, stop waiting without cancelling f
 * (br_await would: asyncio's rule), and return -ECANCELED or -ETIMEDOUT
 * while f goes on. Otherwise f's result. For a call the
 * caller shares memory with, which must not end before it stops using it.
 * Context: any thread; suspends a task, blocks a plain thread.
 */
int br__await_shielded(struct br_future *f);

/* Make a new heap promise with refs references (NULL if out of memory). */
struct br_future *br__promise_alloc(uint32_t refs);

/*
 * Promises freed on a worker's thread are kept for reuse there
 * (w->free_promises); br__promise_cache_drain() frees them at the worker's
 * exit. Context: w's thread.
 */
struct br__worker;
void br__promise_cache_drain(struct br__worker *w);

#endif /* BR_FUTURE_H */
