/* SPDX-License-Identifier: MIT */
/*
 * waitq.h - waiter queues and waits shared by the synchronisation
 * objects, channels and select. See waitq.c for the protocol.
 */
#ifndef BR_WAITQ_H
#define BR_WAITQ_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "futex.h"
#include "internal.h"
#include "list.h"

struct br__fiber;
struct br__task;
struct br__worker;

/* br__wait.state: the phase in the low bits, plus SLEEP. */
enum {
	BR__WS_WAITING = 0, /* linked; nobody has taken it */
	BR__WS_CLAIMED = 1, /* a waker took it and is completing it */
	BR__WS_DONE = 2,    /* completed: index and result are final */
	BR__WS_ABORTED = 3, /* the waiter gave up (deadline, cancellation) */
	BR__WS_PHASE = 3,   /* mask of the phase */
	BR__WS_SLEEP = 4,   /* a plain thread sleeps on the word (futex) */
};

/* br__wait_begin() flags */
#define BR__WAIT_MULTI 0x1u    /* linked into several queues (select) */
#define BR__WAIT_NOCANCEL 0x2u /* cancellation of the task does not end it */
#define BR__WAIT_FRONT 0x4u    /* sync.c: queue at the head, not the tail */

/* br__wait_end() result for a multi wait woken for nothing: everything
 * is unlinked and the caller starts over. */
#define BR__WAIT_AGAIN (-1000000)

struct br__wait;

/*
 * A queue entry: one per queue a wait is linked into (one for a plain
 * wait, one per case of a select). Lives on the waiting party's stack.
 * Every field but the links is written before it is linked and read by
 * wakers under the same queue's lock.
 */
struct br__wqe {
	struct br__list_node link; /* on its queue, under the queue's lock */
	struct br__wqe *chain;	   /* claimed: the next one claimed with it */
	struct br__wait *wait;	   /* the wait it belongs to */
	uint8_t linked;		   /* under the queue's lock */
	uint8_t kind;		   /* per object: reader/writer, send/recv */
	/* the wait is a task's plain wait, claimed with a plain store: a
	 * copy of the wait's fields, one dependent load fewer for wakers */
	uint8_t task_plain;
	int index;    /* which case of the wait it is */
	void *buf;    /* channels: the element to copy */
	uint64_t arg; /* per object: a count, a bit */
};

/*
 * One wait of one task or plain thread, on its stack. A waker claims it
 * (WAITING -> CLAIMED), fills index and result, and stores DONE; the
 * waiter gives up with WAITING -> ABORTED. Exactly one of the two wins.
 */
struct br__wait {
	_Atomic uint32_t state;	 /* BR__WS_*; the futex word for threads */
	uint8_t multi;		 /* BR__WAIT_MULTI was given */
	uint8_t cancellable;	 /* BR__WAIT_NOCANCEL was not given */
	int index;		 /* the case that fired; set by the waker */
	int result;		 /* the outcome; set by the waker */
	struct br__fiber *fiber; /* the task's fiber, NULL for a thread */
	/* The suspension wakers present; written only by the waiter under the
	 * queue's lock (plain waits) or before linking (multi) */
	uint64_t seq;
	struct br__task *task; /* the waiting task, NULL for a thread */
	/* The worker that ran br__wait_begin(); the task is still there when it
	 * first suspends. */
	struct br__worker *worker;
	_Atomic uint32_t *lock; /* plain waits: the lock of the queue */
	/* Unlink every waiter of this wait and repair the object. Plain
	 * waits: called with *lock held. Multi: called with no lock held
	 * (it takes each queue's lock itself). */
	void (*abort)(struct br__wait *wt);
	void *obj;	       /* for abort */
	struct br__wqe *ws;    /* for abort: the waiter(s) */
	struct br__wqe *later; /* claimed by abort, completed with 0
				   * once the lock is dropped (rwlock) */
};

struct br__wq {
	struct br__list list; /* of struct br__wqe; zero is empty */
};

static inline struct br__wqe *br__wq_first(const struct br__wq *q)
{
	return q->list.head ?
		       br__list_entry(q->list.head, struct br__wqe, link) :
		       NULL;
}

/* ---- queue operations; caller holds the queue's lock ---- */

static inline int br__wq_empty(const struct br__wq *q)
{
	return br__list_empty(&q->list);
}

static inline void br__wq_push(struct br__wq *q, struct br__wqe *w)
{
	br__list_push_back(&q->list, &w->link);
	w->linked = 1;
}

static inline void br__wq_push_front(struct br__wq *q, struct br__wqe *w)
{
	br__list_push_front(&q->list, &w->link);
	w->linked = 1;
}

static inline void br__wq_remove(struct br__wq *q, struct br__wqe *w)
{
	if (!w->linked)
		return;
	br__list_remove(&q->list, &w->link);
	w->linked = 0;
}

/*
 * br__wq_claim - unlink and claim the first waiter of q whose wait is
 * not self's (a select never meets itself). Waiters whose wait was
 * already claimed or aborted through another queue are unlinked and
 * skipped. Returns the claimed waiter, to be completed with
 * br__wq_complete() (after dropping the lock, if the caller likes), or
 * NULL. Caller holds q's lock.
 */
struct br__wqe *br__wq_claim_slow(struct br__wq *q,
				  const struct br__wait *self);

static inline struct br__wqe *br__wq_claim(struct br__wq *q,
					   const struct br__wait *self)
{
	struct br__wqe *w = br__wq_first(q);

	/* The common case, inline: a task's plain wait at the head. Its
	 * phase changes only under the lock the caller holds (waitq.c), so
	 * the claim is a plain store. */
	if (w && w->task_plain && w->wait != self) {
		br__wq_remove(q, w);
		atomic_store_explicit(&w->wait->state, BR__WS_CLAIMED,
				      memory_order_relaxed);
		return w;
	}
	return br__wq_claim_slow(q, self);
}

/*
 * br__wq_claim_all - claim every waiter of q (as br__wq_claim) and return
 * them chained through chain, in queue order. Caller holds q's lock.
 */
struct br__wqe *br__wq_claim_all(struct br__wq *q);

/*
 * br__wq_complete - finish a claimed waiter: record which case fired and
 * result (>= 0), and wake its task or thread. w must not be touched
 * afterwards: its owner may have returned. Context: any thread, no lock
 * needed.
 */
void br__wq_complete(struct br__wqe *w, int result);

/* Complete a chain from br__wq_claim_all(), every one with result. */
void br__wq_complete_all(struct br__wqe *chain, int result);

/* ---- the waiting side ---- */

/* Fill a queue entry of wt (after br__wait_begin()), unlinked. */
static inline void br__wqe_init(struct br__wqe *w, struct br__wait *wt,
				uint8_t kind, int index, void *buf,
				uint64_t arg)
{
	w->link.next = w->link.prev = NULL;
	w->chain = NULL;
	w->wait = wt;
	w->linked = 0;
	w->kind = kind;
	w->task_plain = !wt->multi && wt->fiber;
	w->index = index;
	w->buf = buf;
	w->arg = arg;
}

/*
 * br__wait_begin - start a wait for the calling task or plain thread:
 * arms the task's fiber (so it must reach br__wait_end() or
 * br__wait_cancel_begin() without suspending), then checks for a
 * cancellation. The caller fills lock/abort/obj/ws afterwards and links
 * the waiters. Returns 0; -ECANCELED if the task was cancelled (nothing
 * armed, nothing to undo); BR_EDEADLK from a loop callback, which must
 * not block its worker. Context: any thread.
 */
BR__MUST_CHECK int br__wait_begin(struct br__wait *wt, unsigned flags);

/*
 * br__wait_undo - the waiter was not linked after all (the caller found
 * what it wanted after br__wait_begin()): disarm the fiber.
 */
void br__wait_undo(struct br__wait *wt);

/*
 * br__wait_end - suspend the task (or block the thread) until a waker
 * completes the wait, deadline_ns passes (< 0: never) or the task is
 * cancelled (unless NOCANCEL). Called with no lock held, after every
 * waiter is linked.
 *
 * Returns the result the waker gave (>= 0; the case is in wt->index), or
 * -ETIMEDOUT / -ECANCELED after wt->abort has unlinked everything. A
 * completion that races the deadline or the cancellation wins: a result
 * is never dropped. A multi wait woken for nothing returns BR__WAIT_AGAIN
 * after aborting; the caller starts over. For a multi wait that returns a
 * result, the waiters of the other cases are still linked: the caller
 * unlinks them.
 */
int br__wait_end(struct br__wait *wt, int64_t deadline_ns);

#endif /* BR_WAITQ_H */
