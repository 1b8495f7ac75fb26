/* SPDX-License-Identifier: MIT */
/*
 * tasklocal.h - task names and task-local values: what task.c, the
 * stall detector and the trace need of them. See tasklocal.c.
 */
#ifndef BR_TASKLOCAL_H
#define BR_TASKLOCAL_H

#include <stddef.h>

struct br__task;
struct br__fiber;

/*
 * A task's (or a plain thread's) values, indexed by key - 1. Allocated
 * on the first set; grown to the highest key set.
 */
struct br__locals {
	unsigned n;	   /* slots in v */
	unsigned ninherit; /* non-NULL values of BR_TASK_LOCAL_INHERIT keys */
	void *v[];
};

/*
 * br__locals_inherit - give t, just spawned by the calling task or
 * thread, the caller's values of inheriting keys. Cheap when there are
 * none (one load). spawner: the calling task, or NULL on a plain thread.
 * -ENOMEM leaves t without them. Context: the spawner, before t is
 * queued.
 */
int br__locals_inherit(struct br__task *t, struct br__task *spawner);

/*
 * br__locals_end - run the destructors of t's values and free them.
 * Context: code on t's fiber as it ends (task.c), before its future
 * completes.
 */
void br__locals_end(struct br__task *t);

/* br__locals_free - free t's values without destructors (a task that
 * never ran holds only inherited ones, which have none). Any thread. */
void br__locals_free(struct br__task *t);

/*
 * br__name_copy - a malloc'd copy of name cut to BR_TASK_NAME_MAX - 1
 * bytes, NULL for NULL or "" (and on -ENOMEM, in *err when err is not
 * NULL). Context: any thread.
 */
char *br__name_copy(const char *name, int *err);

#ifndef BR_NO_OBS
/*
 * br__name_label - write name (NULL: none) into fiber f's label for the
 * stall detector and the trace, which read it from other threads.
 * Context: the worker that starts f's root, or code on f.
 */
void br__name_label(struct br__fiber *f, const char *name);

/* br__name_read - copy f's label into buf (BR_TASK_NAME_MAX bytes, NUL
 * terminated; "" for none). Any thread: a stale read gives at worst
 * another task's name, never an unterminated one. */
void br__name_read(const struct br__fiber *f, char *buf);
#endif

#endif /* BR_TASKLOCAL_H */
