/* SPDX-License-Identifier: MIT */
/*
 * tasklocal.c - task names (br_spawn_opts.name, br_task_set_name) and
 * task-local values (br_task_local_*).
 *
 * Design
 *   Names. A task's name is a malloc'd copy in its record, made only
 *   when one is given. The stall detector and the trace read names from
 *   other threads, while the task may rename itself or end, so they do
 *   not read the record: the worker that starts a task copies its name
 *   into its fiber's label (obs_name, next to the id and function the
 *   detector already reads there), and br_task_set_name() rewrites it.
 *   Fiber headers are never freed, and the label is words written and
 *   read with relaxed atomics, so a reader racing a change gets one name
 *   or the other (or a mix, at worst), always NUL-terminated by the
 *   reader. A child that br_await() runs inline keeps its own name in
 *   its record, but the fiber's label stays its parent's, under which
 *   the stall detector reports it.
 *
 *   Values. Keys are process-wide indices (at most BR_TASK_LOCAL_KEYS),
 *   like pthread keys, each with an optional destructor. Each task holds
 *   an array of values, allocated at its first set and indexed by key;
 *   a plain thread holds one in a thread-local, whose destructors run
 *   when the thread exits (a pthread key's destructor). Values belong to
 *   the task record, not to the fiber: a child run inline on its
 *   parent's stack has values of its own, as it would on a fiber of its
 *   own. Keys made with BR_TASK_LOCAL_INHERIT pass their value (the
 *   pointer, shared) to every task spawned while it is set, asyncio's
 *   contextvars copied into a new task: a request id set by the task
 *   that handles the request is seen by the tasks it spawns. Such keys
 *   take no destructor, since several tasks hold the value.
 *
 * Invariants
 *   - keys[i] is written once, before br_task_local_key_new() returns
 *     key i + 1; nkeys only grows.
 *   - A task's (or thread's) ninherit counts its non-NULL values of
 *     inheriting keys, so a spawn from one without any reads one word.
 *
 * Concurrency
 *   - A task's name and values: code on its fiber only (and the spawner,
 *     before the task is queued, for inherited values and the name).
 *   - keys[]: written by br_task_local_key_new(), read anywhere.
 *   - Fiber labels: see Names above.
 *
 * Memory ordering
 *   - keys[i].flags is stored with release after keys[i].destroy, and
 *     loaded with acquire before it: a key handed to another thread
 *     however carelessly still finds its destructor.
 *   - Label words are relaxed; the worker's release store of its fiber
 *     at the switch (stats.c) orders a starting task's label before the
 *     watchdog's acquire load of that fiber.
 *
 * Lifetime
 *   A task's values and name go with its record (task.c: finished, or
 *   dropped, or freed). A thread's values go when it exits.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "fiber.h"
#include "task.h"
#include "tasklocal.h"
#include "worker.h"

/* Destructor rounds at a task's end, as PTHREAD_DESTRUCTOR_ITERATIONS:
 * a destructor may set values again. */
#define DESTROY_ROUNDS 4

struct key {
	_Atomic(void (*)(void *)) destroy;
	_Atomic unsigned flags; /* BR_TASK_LOCAL_*, | USED once made */
};

#define KEY_USED 0x80000000u

static struct key keys[BR_TASK_LOCAL_KEYS];
static atomic_uint nkeys;

/* ---- names ---- */

char *br__name_copy(const char *name, int *err)
{
	size_t n;
	char *c;

	if (err)
		*err = 0;
	if (!name || !*name)
		return NULL;
	n = strnlen(name, BR_TASK_NAME_MAX - 1);
	c = malloc(n + 1);
	if (!c) {
		if (err)
			*err = -ENOMEM;
		return NULL;
	}
	memcpy(c, name, n);
	c[n] = '\0';
	return c;
}

#ifndef BR_NO_OBS
#define LABEL_WORDS (BR_TASK_NAME_MAX / 8)
_Static_assert(sizeof(((struct br__fiber *)0)->obs_name) == BR_TASK_NAME_MAX,
	       "a fiber's label holds a whole name");

void br__name_label(struct br__fiber *f, const char *name)
{
	uint64_t w[LABEL_WORDS] = { 0 };
	unsigned i;

	if (name)
		memcpy(w, name, strnlen(name, BR_TASK_NAME_MAX - 1));
	/* Relaxed: see the header. Word 0 last, so that a name that
	 * replaces none appears whole or not at all to most readers. */
	for (i = LABEL_WORDS; i-- > 0;)
		atomic_store_explicit(&f->obs_name[i], w[i],
				      memory_order_relaxed);
}

void br__name_read(const struct br__fiber *f, char *buf)
{
	uint64_t w[LABEL_WORDS];
	unsigned i;

	for (i = 0; i < LABEL_WORDS; i++)
		w[i] = atomic_load_explicit(&f->obs_name[i],
					    memory_order_relaxed);
	memcpy(buf, w, BR_TASK_NAME_MAX);
	buf[BR_TASK_NAME_MAX - 1] = '\0';
}
#endif

int br_task_set_name(const char *name)
{
	struct br__task *t = br__task_current();
	struct br__worker *w;
	struct br__fiber *f;
	char *c;
	int err;

	if (!t)
		return BR_ENOTTASK;
	c = br__name_copy(name, &err);
	if (err)
		return err;
	free(t->name);
	t->name = c;
#ifndef BR_NO_OBS
	/* Only the fiber's own task labels it; a child run inline is
	 * reported under its parent. */
	w = br__worker_current();
	f = br__worker_fiber(w);
	if (f && f->root == t) {
		br__name_label(f, c);
		/* The slice it runs in is named as it ends. */
		if (br__unlikely(w->obs.trace != NULL))
			br__trace_slice_rename(w->obs.trace, c);
	}
#else
	(void)w;
	(void)f;
#endif
	return 0;
}

const char *br_task_name(void)
{
	struct br__task *t = br__task_current();

	return t ? t->name : NULL;
}

/* ---- keys and values ---- */

int br_task_local_key_new(br_task_local_key *key, void (*destroy)(void *),
			  unsigned flags)
{
	unsigned id = atomic_load_explicit(&nkeys, memory_order_relaxed);

	if (!key || (flags & ~BR_TASK_LOCAL_INHERIT) ||
	    ((flags & BR_TASK_LOCAL_INHERIT) && destroy))
		return -EINVAL;
	do {
		if (id >= BR_TASK_LOCAL_KEYS)
			return -EAGAIN;
		/* Relaxed: the slot is ours once the CAS wins; flags'
		 * release below publishes it. */
	} while (!atomic_compare_exchange_weak_explicit(&nkeys, &id, id + 1,
							memory_order_relaxed,
							memory_order_relaxed));
	atomic_store_explicit(&keys[id].destroy, destroy, memory_order_relaxed);
	/* Release: pairs with key_flags()'s acquire. */
	atomic_store_explicit(&keys[id].flags, flags | KEY_USED,
			      memory_order_release);
	*key = id + 1;
	return 0;
}

/* The flags of key (with KEY_USED), 0 if it was never made. */
static unsigned key_flags(br_task_local_key key)
{
	if (key == 0 || key > BR_TASK_LOCAL_KEYS)
		return 0;
	/* Acquire: pairs with br_task_local_key_new()'s release. */
	return atomic_load_explicit(&keys[key - 1].flags, memory_order_acquire);
}

/* Run the destructors of *lp's values and free them. */
static void destroy_all(struct br__locals **lp)
{
	for (int round = 0; round < DESTROY_ROUNDS && *lp; round++) {
		struct br__locals *l = *lp;
		int any = 0;

		for (unsigned i = 0; i < l->n; i++) {
			void *v = l->v[i];
			void (*d)(void *);

			if (!v)
				continue;
			l->v[i] = NULL;
			d = atomic_load_explicit(&keys[i].destroy,
						 memory_order_relaxed);
			if (d) {
				d(v);
				any = 1;
				l = *lp; /* a destructor may have grown it */
			}
		}
		if (!any)
			break;
	}
	free(*lp);
	*lp = NULL;
}

static pthread_key_t thread_key;
static pthread_once_t thread_key_once = PTHREAD_ONCE_INIT;
static __thread struct br__locals *thread_locals;

static void thread_exit(void *arg)
{
	(void)arg;
	destroy_all(&thread_locals);
}

static void thread_key_make(void)
{
	if (pthread_key_create(&thread_key, thread_exit) != 0)
		thread_key = (pthread_key_t)-1; /* values then leak at exit */
}

/* The calling task's values, or the thread's. */
static BR__NOINLINE struct br__locals **locals_of(struct br__task *t)
{
	return t ? &t->locals : &thread_locals;
}

int br_task_local_set(br_task_local_key key, void *value)
{
	struct br__task *t = br__task_current();
	struct br__locals **lp = locals_of(t), *l = *lp;
	unsigned flags = key_flags(key), i = key - 1;
	void *old;

	if (!flags)
		return -EINVAL;
	if (!l || l->n <= i) {
		unsigned n = l ? l->n : 0, cap = i + 1 < 8 ? 8 : i + 1;
		struct br__locals *nl;

		if (!value)
			return 0; /* nothing to clear */
		nl = realloc(l, sizeof(*l) + cap * sizeof(void *));
		if (!nl)
			return -ENOMEM;
		if (!l) {
			nl->ninherit = 0;
			if (!t) {
				pthread_once(&thread_key_once, thread_key_make);
				if (thread_key != (pthread_key_t)-1)
					pthread_setspecific(thread_key, nl);
			}
		}
		memset(nl->v + n, 0, (cap - n) * sizeof(void *));
		nl->n = cap;
		*lp = l = nl;
	}
	old = l->v[i];
	l->v[i] = value;
	if (flags & BR_TASK_LOCAL_INHERIT)
		l->ninherit += (value != NULL) - (old != NULL);
	return 0;
}

void *br_task_local_get(br_task_local_key key)
{
	struct br__locals *l = *locals_of(br__task_current());

	if (!l || key == 0 || key > l->n)
		return NULL;
	return l->v[key - 1];
}

/* The calling thread's values. A worker's loop callbacks read them too, so
 * off the caller's inlining (worker.c, "Fiber hazards"). */
static BR__NOINLINE struct br__locals *thread_values(void)
{
	return thread_locals;
}

int br__locals_inherit(struct br__task *t, struct br__task *spawner)
{
	/* The spawner, if a task, is the caller: alive through this call. */
	struct br__locals *from = spawner ? spawner->locals : thread_values();
	struct br__locals *l;
	unsigned i, last = 0;

	if (!from || !from->ninherit)
		return 0;
	for (i = 0; i < from->n; i++)
		if (from->v[i] && (key_flags(i + 1) & BR_TASK_LOCAL_INHERIT))
			last = i + 1;
	l = calloc(1, sizeof(*l) + last * sizeof(void *));
	if (!l)
		return -ENOMEM;
	l->n = last;
	for (i = 0; i < last; i++)
		if (from->v[i] && (key_flags(i + 1) & BR_TASK_LOCAL_INHERIT)) {
			l->v[i] = from->v[i];
			l->ninherit++;
		}
	t->locals = l;
	return 0;
}

void br__locals_end(struct br__task *t)
{
	if (t->locals)
		destroy_all(&t->locals);
}

void br__locals_free(struct br__task *t)
{
	free(t->locals);
	t->locals = NULL;
}
