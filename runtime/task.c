/* SPDX-License-Identifier: MIT */
/*
 * task.c - task records: spawn, schedule, cancel, run, and the suspension
 * points that belong to no other object (sleep, yield).
 *
 * Design
 *   A task is its own future (the future is the record's first member),
 *   so spawning is one allocation, from a per-thread cache of records on
 *   worker threads, and a task is only this small record until a worker
 *   starts it (worker.c gives it a fiber then). A spawned task holds one
 *   counted reference, the caller's (the returned future); being pending
 *   keeps it alive too, so a detached task frees itself when it completes
 *   (the ORPHAN bit, future.c). That saves the locked decrement a counted
 *   run reference would cost every task. Callbacks keep a counted run
 *   reference instead: a cancelled callback completes while its record is
 *   still in a queue or a timer heap.
 *
 *   Where a runnable task goes (br__task_schedule):
 *     - pinned (or on a pinned fiber): its worker's LIFO slot when that
 *       is the calling worker, else that worker's mail slot or, when that
 *       is taken, its remote queue (worker.c: "Remote wake-ups");
 *     - the calling worker belongs to the task's runtime: its LIFO slot,
 *       so a task woken by a message runs next, hot in cache (Go runnext);
 *     - otherwise the runtime's injection queue, with a notification.
 *   New tasks spawned from a task of the runtime go to the bottom of the
 *   spawning worker's deque instead, where br_await() can take a child
 *   back and run it inline, and thieves can take the oldest. New pinned
 *   tasks go behind their worker's other pinned tasks (its FIFO queue
 *   when spawned there, else its remote queue, also FIFO), never to the
 *   LIFO slot, which is for tasks woken by a message: so pinned tasks
 *   start in creation order. worker.c's "Start order" gives the order of
 *   the others.
 *
 *   Cancellation is a request: the cancel flag is stored (seq_cst), then the
 *   task's fiber, if it has one, is woken from whatever suspension it is in.
 *   Every suspension point arms its fiber (seq_cst) and only then checks the
 *   flag of the task and of the tasks running it inline, so either the
 *   suspension sees the flag or the canceller sees the armed fiber and wakes
 *   it (fiber.c). A task not started yet is dropped by the worker that picks
 *   it up. Once a suspension has returned -ECANCELED to it, the task ends
 *   CANCELLED whatever it returns; if it never sees the request, it keeps its
 *   value.
 *
 *   A sleep ends at the nearer of its own end and the task's deadline
 *   scope (deadline.c), with -ETIMEDOUT when the scope's came first.
 *
 * Invariants
 *   - The live count (br__live_sum) counts tasks, not callbacks, spawned
 *     and not yet completed.
 *   - A task's fiber pointer is set before its first instruction runs and
 *     cleared after its future is complete.
 *
 * Concurrency
 *   - spawn, schedule, cancel: any thread.
 *   - fail_code, fail_msg, cancel_seen, inline_parent: code on the task's
 *     fiber only.
 *   - Record caches (free_tasks, returned, the outgoing batch): their
 *     worker only. A returns stack: pushed by any worker of the runtime;
 *     taken by its worker, or popped by plain threads under its lock.
 *
 * Memory ordering
 *   - cancel: seq_cst store then seq_cst load of the fiber's wake word,
 *     paired with br__fiber_arm()'s seq_cst exchange and
 *     br__task_cancel_pending()'s seq_cst load (fiber.c).
 *   - live counts: see br__live_add() in worker.h.
 *   - outside_calls: a wake-up's relaxed increment before its task is
 *     published; a spawn's or callback's seq_cst increment before it
 *     reads closing (seq_cst); release decrements (outside_begin()).
 *   - A returns stack: a push is a release CAS, a take an acquire
 *     exchange, a plain thread's pop an acquire load and CAS. Every write
 *     of the head is a read-modify-write, so a taker that reads a later
 *     push also synchronises with every earlier one: it sees the links,
 *     and the records as their last user left them.
 *
 * Lifetime
 *   Records come from the calling worker's cache (w->free_tasks), then
 *   from those that came home (below), then from malloc; always from
 *   malloc in ASan builds, so that ASan sees every use after free. The
 *   last br_future_release() returns them to the cache of the worker it
 *   runs on, or home.
 *
 * Records go home
 *   A record remembers where it was given out (t->home): a worker, or the
 *   runtime's plain threads. When another worker of the same runtime frees
 *   it, as happens to a task one worker spawns and another steals when
 *   nobody awaits it there (a detached task, or one whose last reference
 *   goes on the thief), and to a task a plain thread spawns and drops, it
 *   goes back there in batches of
 *   OUT_BATCH, pushed with one CAS: a worker takes its stack whole with one
 *   exchange when its own cache is empty, plain threads pop one record at
 *   a time under the stack's lock (one popper and only pushers besides: no
 *   ABA). Without it the spawner and the thief pass malloc's records
 *   between two arenas and meet on the spawner's arena lock at each one
 *   (the spawn storm of bench/handoff spent most of its time there). With
 *   about RETURNS_MAX records waiting in one place, more go to malloc. At
 *   its exit a worker sends its batch home and frees its cache and what
 *   it took; br_runtime_free, once every worker is joined, frees what
 *   is left in every stack (br__task_returns_drain()). A worker's stack
 *   is never popped, so its lock is unused.
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "fiber.h"
#include "task.h"
#include "tasklocal.h"
#include "timer.h"
#include "worker.h"

/* Records a worker keeps (w->free_tasks, linked through link). */
#define CACHE_MAX 256
/* Records that may wait in one returns stack, about: past it, the
 * workers that free more give them to malloc. */
#define RETURNS_MAX 4096
/* Records a worker gathers for another before it sends them. */
#define OUT_BATCH 32
/* t->home of a record made on a plain thread: it goes back to the
 * runtime's plain_returns. */
#define HOME_PLAIN UINT_MAX

/* Records are recycled but under ASan, which must see every use after
 * free; TSan checks the recycling's ordering as it checks the rest. */
#ifndef BR__ASAN
#define RECYCLE 1
#endif

#ifdef RECYCLE
/* The next record the other workers sent back to w, or NULL. Context:
 * worker w. */
BR__NOINLINE static struct br__snode *take_returned(struct br__worker *w)
{
	struct br__snode *n = w->returned;

	/* Relaxed: a first look, so that an empty stack costs no locked
	 * instruction. */
	if (!n &&
	    atomic_load_explicit(&w->returns.head, memory_order_relaxed)) {
		/* Acquire: pairs with send_home()'s release of the links. */
		n = atomic_exchange_explicit(&w->returns.head, NULL,
					     memory_order_acquire);
		/* Relaxed: only a cap, read approximately (header). */
		atomic_store_explicit(&w->returns.n, 0, memory_order_relaxed);
	}
	if (n)
		w->returned = n->next;
	return n;
}

/* One record the workers sent back to rt's plain threads, or NULL.
 * Context: a plain thread. */
BR__NOINLINE static struct br__snode *pop_returned(struct br__returns *r)
{
	struct br__snode *n;

	/* Relaxed: a first look, as above. */
	if (!atomic_load_explicit(&r->head, memory_order_relaxed))
		return NULL;
	br__spin_lock(&r->lock);
	/* Acquire: pairs with send_home()'s release of the links. One popper
	 * at a time, and besides only pushers: a node seen at the top stays
	 * there, with its link, until it is popped here (no ABA). */
	n = atomic_load_explicit(&r->head, memory_order_acquire);
	while (n && !atomic_compare_exchange_weak_explicit(
			    &r->head, &n, n->next, memory_order_acquire,
			    memory_order_acquire))
		;
	br__spin_unlock(&r->lock);
	if (n)
		atomic_fetch_sub_explicit(&r->n, 1, memory_order_relaxed);
	return n;
}
#endif

/* A record for a task of rt made on w's thread (NULL: a plain thread). */
static struct br__task *task_alloc(struct br__worker *w, struct br_runtime *rt)
{
	struct br__snode *n = NULL;
	struct br__task *t;

	if (BR__FAULT("braid/task/alloc"))
		return NULL;
#ifdef RECYCLE
	if (w) {
		n = w->free_tasks;
		if (br__likely(n)) {
			w->free_tasks = n->next;
			w->nfree_tasks--;
		} else {
			n = take_returned(w);
		}
	} else {
		n = pop_returned(&rt->plain_returns);
	}
#endif
	t = n ? br__fifo_entry(n, struct br__task, link) : malloc(sizeof(*t));
	if (t)
		t->home = w ? w->id : HOME_PLAIN;
	return t;
}

static void free_chain(struct br__snode *n)
{
	struct br__snode *next;

	for (; n; n = next) {
		next = n->next;
		free(br__fifo_entry(n, struct br__task, link));
	}
}

#ifdef RECYCLE
/* Send w's batch where it belongs, or to malloc if plenty wait there
 * already. Context: worker w. */
BR__NOINLINE static void send_home(struct br__worker *w)
{
	struct br__returns *h = w->out_home;
	struct br__snode *head = w->out_head, *old;

	if (!head)
		return;
	/* Relaxed: the count is only a cap (header). */
	if (atomic_load_explicit(&h->n, memory_order_relaxed) >= RETURNS_MAX) {
		free_chain(head);
	} else {
		atomic_fetch_add_explicit(&h->n, w->out_n,
					  memory_order_relaxed);
		old = atomic_load_explicit(&h->head, memory_order_relaxed);
		/* Release: publishes the links to the taker's acquire. */
		do
			w->out_tail->next = old;
		while (!atomic_compare_exchange_weak_explicit(
			&h->head, &old, head, memory_order_release,
			memory_order_relaxed));
	}
	w->out_head = w->out_tail = NULL;
	w->out_home = NULL;
	w->out_n = 0;
}

/* Keep t, freed on worker w, for where it came from: h. Context: worker
 * w. */
BR__NOINLINE static void return_home(struct br__worker *w,
				     struct br__returns *h, struct br__task *t)
{
	if (w->out_home != h)
		send_home(w);
	w->out_home = h;
	t->link.next = w->out_head;
	if (!w->out_head)
		w->out_tail = &t->link;
	w->out_head = &t->link;
	if (++w->out_n == OUT_BATCH)
		send_home(w);
}
#endif

void br__task_free(struct br__task *t)
{
	BR_DEBUG_ASSERT(br__future_state(&t->fut) != BR_PENDING);
	/* Most tasks have none of these: spare them three calls. */
	if (br__unlikely(t->fail_msg || t->name || t->locals)) {
		free(t->fail_msg);
		free(t->name);
		br__locals_free(t);
	}
	br__future_destroy(&t->fut);
#ifdef RECYCLE
	struct br__worker *w = br__worker_current();

	if (w) {
		struct br_runtime *rt = w->rt;

		/* Made elsewhere in w's runtime: it goes back there. t->rt is
		 * only compared: its runtime may be gone. */
		if (t->home != w->id && t->rt == rt) {
			return_home(w,
				    t->home < rt->nworkers ?
					    &rt->workers[t->home].returns :
					    &rt->plain_returns,
				    t);
			return;
		}
		if (w->nfree_tasks < CACHE_MAX) {
			t->link.next = w->free_tasks;
			w->free_tasks = &t->link;
			w->nfree_tasks++;
			return;
		}
	}
#endif
	free(t);
}

/* A record that never left br_spawn_ex(): its future is still pending,
 * which br__task_free() would not accept. */
static void free_unstarted(struct br__task *t)
{
	free(t->name);
	br__locals_free(t);
	free(t->fail_msg);
	free(t);
}

void br__task_cache_drain(struct br__worker *w)
{
#ifdef RECYCLE
	send_home(w);
#endif
	free_chain(w->free_tasks);
	w->free_tasks = NULL;
	w->nfree_tasks = 0;
	free_chain(w->returned);
	w->returned = NULL;
}

void br__task_returns_drain(struct br__returns *r)
{
	/* Relaxed: every worker has been joined. */
	free_chain(
		atomic_exchange_explicit(&r->head, NULL, memory_order_relaxed));
	atomic_store_explicit(&r->n, 0, memory_order_relaxed);
}

static void task_free_op(struct br_future *f)
{
	br__task_free((struct br__task *)f);
}

static int task_cancel_op(struct br_future *f)
{
	return br__task_cancel((struct br__task *)f);
}

/* A task is kept alive by being pending (future.c, BR__FOPS_ORPHAN). */
const struct br__future_ops br__task_ops = {
	.name = "task",
	.free = task_free_op,
	.cancel = task_cancel_op,
	.flags = BR__FOPS_ORPHAN,
};

/* A loop callback holds a counted run reference instead: a cancelled
 * callback completes while its record is still queued. */
static const struct br__future_ops callback_ops = {
	.name = "callback",
	.free = task_free_op,
	.cancel = task_cancel_op,
};

BR__NOINLINE struct br__task *br__task_current(void)
{
	struct br__worker *w = br__tls_worker;

	return w ? w->current : NULL;
}

/* Task ids come in blocks of ID_BLOCK from one counter, so that a
 * worker pays a locked instruction once a block. 0 is nobody's. */
#define ID_BLOCK 4096

static _Atomic uint64_t ids = 1;

/* Context: worker w (only a task spawns, and only tasks get ids). */
static uint64_t task_id(struct br__worker *w)
{
	if (br__unlikely(w->next_id == w->end_id)) {
		/* Relaxed: only uniqueness is asked of it. */
		w->next_id = atomic_fetch_add_explicit(&ids, ID_BLOCK,
						       memory_order_relaxed);
		w->end_id = w->next_id + ID_BLOCK;
	}
	return w->next_id++;
}

/* A new task of rt, made on w's thread (NULL: a plain thread). */
static struct br__task *task_new(struct br__worker *w, struct br_runtime *rt,
				 uint32_t flags)
{
	struct br__task *t = task_alloc(w, rt);

	if (!t)
		return NULL;
	/* The caller's reference; callbacks also a run reference. */
	br__future_init(&t->fut,
			(flags & BR__T_CALLBACK) ? &callback_ops :
						   &br__task_ops,
			(flags & BR__T_CALLBACK) ? 2 : 1);
	t->rt = rt;
	t->link.next = NULL;
	atomic_init(&t->fiber, NULL);
	t->inline_parent = NULL;
	t->id = 0; /* given at its first spawn (spawn_open()) */
	t->spawner_id = 0;
	atomic_init(&t->cancel, 0);
	t->flags = flags;
	t->pin = 0;
	t->stack_size = 0;
	t->cancel_seen = 0;
	t->io_timeout = -1;
	t->dl = BR__DL_NONE;
	t->name = NULL;
	t->locals = NULL;
	t->last_send_fd = -1;
	t->fail_code = 0;
	t->fail_msg = NULL;
	t->out_bytes = NULL;
	t->out_len = 0;
	t->ready_ns = 0;
	t->out_keep = 0;
	atomic_init(&t->claimed, 0);
	t->cb = NULL;
	t->deadline = 0;
	return t;
}

/*
 * A thread outside rt (a plain thread, a blocking-pool thread, another
 * runtime's worker) counts itself in rt->outside_calls while a call of
 * its may still touch rt with no live task holding br_runtime_free()
 * back, and br_runtime_free() waits for the count to drop (runtime.c):
 *   - a wake-up, from before it makes the task runnable to after it has
 *     woken the task's worker (outside_begin, br__outside_end): the task
 *     may run and end in between, but it is live when the count goes
 *     up. Relaxed: the task is published after the increment (a seq_cst
 *     or release store), so whoever sees the task end sees the
 *     increment too;
 *   - a spawn, a callback or a blocking call (blocking.c), from before
 *     it looks at closing to its return (br__outside_enter): nothing
 *     holds the runtime open yet, so the count and closing are a Dekker
 *     pair. The caller adds (seq_cst) then reads closing (seq_cst);
 *     br_runtime_free() stores closing (seq_cst) and later reads the
 *     count (seq_cst): either the caller sees closing and fails, or
 *     br_runtime_free() sees the caller and waits for its call to end.
 * Release decrements: the caller's last touches of the runtime come
 * before the load that sees the count drop.
 */
static void outside_begin(struct br_runtime *rt)
{
	atomic_fetch_add_explicit(&rt->outside_calls, 1, memory_order_relaxed);
}

void br__outside_end(struct br_runtime *rt)
{
	atomic_fetch_sub_explicit(&rt->outside_calls, 1, memory_order_release);
}

int br__outside_enter(struct br__worker *w, struct br_runtime *rt)
{
	if (br__worker_of(w, rt))
		/* A task of rt holds br_runtime_free() back. */
		return atomic_load_explicit(&rt->closing,
					    memory_order_relaxed) ?
			       -1 :
			       0;
	atomic_fetch_add_explicit(&rt->outside_calls, 1, memory_order_seq_cst);
	if (atomic_load_explicit(&rt->closing, memory_order_seq_cst)) {
		br__outside_end(rt);
		return -1;
	}
	/* In a faults build, held up here as a preempted caller would be. */
	br__outside_late(rt);
	return 1;
}

void br__outside_leave(struct br_runtime *rt, int entered)
{
	if (entered > 0)
		br__outside_end(rt);
}

/* Make t runnable; w is the calling thread's worker. counted: the caller
 * is outside t's runtime and already counted (br__outside_enter). */
static void schedule(struct br__worker *w, struct br__task *t, int counted)
{
	struct br_runtime *rt = t->rt;
	struct br__fiber *f =
		atomic_load_explicit(&t->fiber, memory_order_relaxed);
	unsigned pin = t->pin;
	int pinned = !!(t->flags & BR__T_PINNED);

	if (f && f->pinned) {
		pinned = 1;
		pin = f->pin;
	}
	if (br__worker_of(w, rt)) {
		if (!pinned || w == &rt->workers[pin])
			br__worker_push_lifo(w, t);
		else
			br__worker_remote_wake(&rt->workers[pin], t);
		return;
	}
	if (!counted)
		outside_begin(rt);
	if (pinned) {
		br__worker_remote_wake(&rt->workers[pin], t);
	} else {
		br__obs_ready(&rt->obs, &t->ready_ns);
		br__inject_push(&rt->inject, t);
		br__outside_late(rt);
		br__idle_notify(rt, 1);
	}
	if (!counted)
		br__outside_end(rt);
}

void br__task_schedule(struct br__task *t)
{
	schedule(br__worker_current(), t, 0);
}

/* Queue a task that has never run; w is the calling thread's worker. A
 * caller outside the task's runtime is counted (br__outside_enter). */
static void schedule_new(struct br__worker *w, struct br__task *t)
{
	struct br_runtime *rt = t->rt;

	if (t->flags & BR__T_PINNED) {
		/* Behind the worker's other pinned tasks, not in its LIFO
		 * slot: pinned tasks start in creation order (header). */
		if (w == &rt->workers[t->pin])
			br__worker_push_pinned(w, t);
		else
			br__worker_remote_push(&rt->workers[t->pin], t);
		return;
	}
	if (br__worker_of(w, rt)) {
		br__worker_push_local(w, t);
		return;
	}
	schedule(w, t, 1);
}

/* The rest of a spawn, once rt was seen open (and a caller outside it
 * counted). */
static br_future *spawn_open(struct br__worker *w, br_runtime *rt,
			     br_task_fn fn, void *arg,
			     const br_spawn_opts *opts, uint32_t flags)
{
	struct br__task *spawner = w ? w->current : NULL;
	struct br__task *t;

	t = task_new(w, rt, flags);
	if (!t)
		return &br__future_enomem;
	t->fn = fn;
	t->arg = arg;
	if (spawner) {
		/* Most tasks never spawn: an id only for those that do. The
		 * spawner's own code writes and reads it (wait.c). */
		if (!spawner->id)
			spawner->id = task_id(w);
		t->spawner_id = spawner->id;
	}
	if (opts) {
		t->pin = opts->worker;
		if (opts->stack_size)
			t->stack_size = opts->stack_size < BR__STACK_MIN ?
						BR__STACK_MIN :
						opts->stack_size;
		t->name = br__name_copy(opts->name, NULL);
		if (opts->name && opts->name[0] && !t->name) {
			free_unstarted(t);
			return &br__future_enomem;
		}
	}
	if (br__locals_inherit(t, spawner) < 0) {
		free_unstarted(t);
		return &br__future_enomem;
	}
	br__live_add_on(w, rt, 1);
	/* A spawn racing br_runtime_free may miss closing here; the task is
	 * then dropped by whoever finds it (runtime.c explains why none is
	 * lost). */
	if (atomic_load_explicit(&rt->closing, memory_order_relaxed)) {
		br__live_add_on(w, rt, -1);
		free_unstarted(t);
		return br__future_failed(BR_ECLOSED,
					 "br_spawn: the runtime is closing");
	}
	schedule_new(w, t);
	return &t->fut;
}

br_future *br__spawn_task(br_runtime *rt, br_task_fn fn, void *arg,
			  const br_spawn_opts *opts, uint32_t flags)
{
	struct br__worker *w = br__worker_current();
	br_future *f;
	int in;

	if (!br__runtime_ok(rt))
		return br__future_failed(BR_EBADOBJ,
					 "br_spawn: not a live runtime");
	if (!fn)
		return br__future_failed(-EINVAL, "br_spawn: fn is NULL");
	if (opts) {
		if (opts->flags & ~BR_SPAWN_PINNED)
			return br__future_failed(-EINVAL,
						 "br_spawn: unknown flags");
		if ((opts->flags & BR_SPAWN_PINNED) &&
		    opts->worker >= rt->nworkers)
			return br__future_failed(
				-EINVAL, "br_spawn: worker index out of range");
		if (opts->stack_size > BR__STACK_MAX)
			return br__future_failed(
				-EINVAL, "br_spawn: stack size over 1 GiB");
		if (opts->flags & BR_SPAWN_PINNED)
			flags |= BR__T_PINNED;
	}
	in = br__outside_enter(w, rt);
	if (in < 0)
		return br__future_failed(BR_ECLOSED,
					 "br_spawn: the runtime is closing");
	f = spawn_open(w, rt, fn, arg, opts, flags);
	br__outside_leave(rt, in);
	return f;
}

br_future *br_spawn_ex(br_runtime *rt, br_task_fn fn, void *arg,
		       const br_spawn_opts *opts)
{
	return br__spawn_task(rt, fn, arg, opts, 0);
}

br_future *br_spawn(br_runtime *rt, br_task_fn fn, void *arg)
{
	return br_spawn_ex(rt, fn, arg, NULL);
}

br_future *br_spawn_on(br_runtime *rt, unsigned worker, br_task_fn fn,
		       void *arg)
{
	br_spawn_opts o = { .worker = worker, .flags = BR_SPAWN_PINNED };

	return br_spawn_ex(rt, fn, arg, &o);
}

int br__task_cancel(struct br__task *t)
{
	struct br__fiber *f;
	int exp = 0;

	if (t->flags & BR__T_CALLBACK) {
		if (!atomic_compare_exchange_strong_explicit(
			    &t->claimed, &exp, 1, memory_order_acq_rel,
			    memory_order_relaxed))
			return BR_EDONE;
		br__future_complete(&t->fut, BR_CANCELLED, NULL, NULL, 0,
				    -ECANCELED, "cancelled");
		return 0;
	}
	/* seq_cst: pairs with br__fiber_arm(); see the header. */
	atomic_store_explicit(&t->cancel, 1, memory_order_seq_cst);
	f = atomic_load_explicit(&t->fiber, memory_order_seq_cst);
	if (f) {
		/* seq_cst: pairs with the worker's PARKED CAS (fiber.c). */
		atomic_store_explicit(&f->cancel_hint, 1, memory_order_seq_cst);
		br__fiber_wake_any(f);
	}
	return 0;
}

int br__task_cancel_pending(struct br__task *t)
{
	for (; t; t = t->inline_parent)
		if (atomic_load_explicit(&t->cancel, memory_order_seq_cst))
			return 1;
	return 0;
}

static void task_finish(struct br__worker *w, struct br__task *t, void *value,
			int sole)
{
	struct br_runtime *rt = t->rt; /* t may be gone after completion */
	void *bytes = t->out_bytes;
	int (*complete)(struct br_future *, br_state, void *, void *, size_t,
			int, const char *) = sole ? br__future_complete_sole :
						    br__future_complete;

	/* Only its runner completes a task (a callback never gets here). */
	BR_DEBUG_ASSERT(!(t->flags & BR__T_CALLBACK) &&
			br__future_state(&t->fut) == BR_PENDING);
	/* Before the future completes: whoever awaits it sees the
	 * destructors done. */
	br__locals_end(t);
	t->out_bytes = NULL;
	if ((t->fail_code || t->cancel_seen) && !t->out_keep) {
		free(bytes);
		bytes = NULL;
		t->out_len = 0;
	}
	if (t->fail_code)
		complete(&t->fut, BR_FAILED, NULL, bytes, t->out_len,
			 t->fail_code, t->fail_msg);
	else if (t->cancel_seen)
		complete(&t->fut, BR_CANCELLED, NULL, bytes, t->out_len,
			 -ECANCELED, "cancelled");
	else
		complete(&t->fut, BR_DONE, value, bytes, t->out_len, 0, NULL);
	br__live_add_on(w, rt, -1);
}

void br__task_finish(struct br__worker *w, struct br__task *t, void *value)
{
	task_finish(w, t, value, 0);
}

void br__task_finish_sole(struct br__worker *w, struct br__task *t, void *value)
{
	task_finish(w, t, value, 1);
}

void br__task_drop(struct br__task *t)
{
	struct br_runtime *rt = t->rt; /* t may be gone after completion */

	if (t->flags & BR__T_CALLBACK) {
		br__task_cancel(t);
		br_future_release(&t->fut); /* a callback's run reference */
		return;
	}
	br__future_complete(&t->fut, BR_CANCELLED, NULL, NULL, 0, -ECANCELED,
			    atomic_load_explicit(&rt->closing,
						 memory_order_relaxed) ?
				    "cancelled: the runtime closed" :
				    "cancelled before it started");
	br__live_add(rt, -1);
}

void br__task_run_callback(struct br__task *t)
{
	struct br__worker *w = br__worker_current();
	int exp = 0;

	if (t->deadline > br_now_ns()) {
		struct br__timer *tm = calloc(1, sizeof(*tm));

		/* Not due yet: park it in this worker's heap, which owns
		 * the run reference from now on. */
		if (tm) {
			tm->deadline = t->deadline;
			tm->cb = t;
			if (br__timer_add(w, tm) == 0)
				return;
			free(tm);
		}
	}
	if (atomic_compare_exchange_strong_explicit(&t->claimed, &exp, 1,
						    memory_order_acq_rel,
						    memory_order_relaxed)) {
		t->cb(t->arg);
		br__future_complete(&t->fut, BR_DONE, NULL, NULL, 0, 0, NULL);
	}
	br_future_release(&t->fut);
}

static br_future *call_at(br_runtime *rt, int64_t deadline, br_callback_fn fn,
			  void *arg)
{
	struct br__worker *w = br__worker_current();
	struct br__task *t;
	int in;

	if (!br__runtime_ok(rt))
		return br__future_failed(BR_EBADOBJ,
					 "br_call_soon: not a live runtime");
	if (!fn)
		return br__future_failed(-EINVAL, "br_call_soon: fn is NULL");
	in = br__outside_enter(w, rt);
	if (in < 0)
		return br__future_failed(
			BR_ECLOSED, "br_call_soon: the runtime is closing");
	t = task_new(w, rt, BR__T_CALLBACK);
	if (t) {
		t->cb = fn;
		t->arg = arg;
		t->deadline = deadline;
		schedule_new(w, t);
	}
	br__outside_leave(rt, in);
	return t ? &t->fut : &br__future_enomem;
}

br_future *br_call_soon(br_runtime *rt, br_callback_fn fn, void *arg)
{
	return call_at(rt, 0, fn, arg);
}

br_future *br_call_later(br_runtime *rt, int64_t delay_ms, br_callback_fn fn,
			 void *arg)
{
	return call_at(
		rt, delay_ms > 0 ? br__deadline_in(br__ms_to_ns(delay_ms)) : 0,
		fn, arg);
}

void br__task_suspend(int cancellable)
{
	struct br__worker *w = br__worker_current();

	br__worker_leave(w, br__worker_fiber(w), BR__AFTER_PARK, cancellable);
}

/* ---- public task API ---- */

void *br_fail(int code, const char *message)
{
	struct br__task *t = br__task_current();

	if (!t)
		return NULL;
	t->fail_code = code < 0 ? code : BR_ETASKFAILED;
	free(t->fail_msg);
	t->fail_msg = br__strdup(message ? message : br_strerror(t->fail_code));
	return NULL;
}

int br__task_set_bytes(void *buf, size_t len)
{
	struct br__task *t = br__task_current();

	if (!t) {
		free(buf);
		return BR_ENOTTASK;
	}
	free(t->out_bytes);
	t->out_bytes = buf;
	t->out_len = len;
	return 0;
}

int br__task_set_output(void *buf, size_t len)
{
	int r = br__task_set_bytes(buf, len);

	if (r == 0)
		br__task_current()->out_keep = 1;
	return r;
}

int br_cancelled(void)
{
	struct br__task *t = br__task_current();

	return t ? br__task_cancel_pending(t) : 0;
}

br_future *br_current(void)
{
	struct br__task *t = br__task_current();

	return t ? &t->fut : NULL;
}

int br_yield(void)
{
	struct br__task *t = br__task_current();
	struct br__worker *w;

	if (!t) {
		sched_yield();
		return 0;
	}
	/* Cancelled, it yields all the same: a task that loops on br_yield
	 * while it winds down must not starve its worker. */
	w = br__worker_current();
	br__worker_leave(w, br__worker_fiber(w), BR__AFTER_YIELD, 0);
	if (br__task_cancel_pending(t)) {
		t->cancel_seen = 1;
		return -ECANCELED;
	}
	return 0;
}

int br__yield_to_loop(void)
{
	if (br__task_current())
		br__worker_run_due(br__worker_current());
	return br_yield();
}

int br_sleep_until(int64_t deadline)
{
	struct br__task *t = br__task_current();
	int64_t scope = br__task_deadline(t), until;
	struct br__worker *w;
	struct br__timer *tm;
	uint64_t seq;
	/* A deadline scope nearer than the sleep's end cuts it short. */
	int cut = scope >= 0 && scope < deadline;

	until = cut ? scope : deadline;
	if (!t) {
		struct timespec ts;

		if (br__worker_current())
			return BR_ENOTTASK; /* would stall the loop */
		if (deadline <= br_now_ns())
			return 0;
		ts = br__ns_to_ts(until);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts,
				       NULL) == EINTR)
			;
		return cut ? -ETIMEDOUT : 0;
	}
	if (deadline <= br_now_ns())
		return br_yield();
	for (;;) {
		w = br__worker_current();
		seq = br__fiber_arm(br__worker_fiber(w));
		if (br__task_cancel_pending(t)) {
			br__fiber_disarm(br__worker_fiber(w), seq);
			t->cancel_seen = 1;
			return -ECANCELED;
		}
		if (br_now_ns() >= until) {
			/* Only a scope's deadline can have passed here. */
			br__fiber_disarm(br__worker_fiber(w), seq);
			return cut ? -ETIMEDOUT : 0;
		}
		tm = br__timer_wake_at(w, until, br__worker_fiber(w), seq);
		if (!tm) {
			br__fiber_disarm(br__worker_fiber(w), seq);
			return -ENOMEM;
		}
		br__task_suspend(1);
		br__timer_cancel(br__worker_current(), tm);
		if (br__task_cancel_pending(t)) {
			t->cancel_seen = 1;
			return -ECANCELED;
		}
		if (br_now_ns() >= until)
			return cut ? -ETIMEDOUT : 0;
		/* Woken early but not cancelled: a stale wake-up. */
	}
}

int br_sleep_ns(int64_t ns)
{
	if (ns <= 0)
		return br__task_current() ? br_yield() : 0;
	return br_sleep_until(br__deadline_in(ns));
}

int br_sleep_ms(int64_t ms)
{
	return br_sleep_ns(br__ms_to_ns(ms));
}
