/* SPDX-License-Identifier: MIT */
/*
 * list.h - intrusive lists: a doubly linked list with head and tail
 * pointers, and a singly linked FIFO.
 *
 * Design
 *   The node lives inside the object (a waiter, a job, a fiber, a task),
 *   so linking allocates nothing, and br__list_entry() / br__fifo_entry()
 *   get the object back. The doubly linked list unlinks any node in O(1)
 *   given its list, which is what cancellation and timeouts need; the FIFO
 *   is one pointer per node and serves queues that only push at the tail
 *   and pop at the head.
 *
 *   Both are NULL-terminated, and the zero value of either is an empty
 *   list, unlike the kernel's circular list_head: the synchronisation
 *   objects that hold waiter lists are initialised statically to zeros
 *   (BR_MUTEX_INIT), so a list must need no set-up. Whether a node is
 *   linked is its owner's state to keep (a waiter's state word, a job's
 *   where), not the list's.
 *
 * Concurrency
 *   None for the lists: every list belongs to its owner's lock or
 *   thread, as the file that embeds it says. struct br__returns is the
 *   exception, a stack for many threads: task.c says how it is used.
 */
#ifndef BR_LIST_H
#define BR_LIST_H

#include <stdatomic.h>
#include <stddef.h>

#include "internal.h"

struct br__list_node {
	struct br__list_node *next, *prev;
};

struct br__list {
	struct br__list_node *head, *tail; /* both NULL when empty */
};

#define br__list_entry(node, type, member) br__container_of(node, type, member)

static inline int br__list_empty(const struct br__list *l)
{
	return l->head == NULL;
}

static inline void br__list_push_back(struct br__list *l,
				      struct br__list_node *n)
{
	n->next = NULL;
	n->prev = l->tail;
	if (l->tail)
		l->tail->next = n;
	else
		l->head = n;
	l->tail = n;
}

static inline void br__list_push_front(struct br__list *l,
				       struct br__list_node *n)
{
	n->prev = NULL;
	n->next = l->head;
	if (l->head)
		l->head->prev = n;
	else
		l->tail = n;
	l->head = n;
}

/* Unlink n, which is on l. */
static inline void br__list_remove(struct br__list *l, struct br__list_node *n)
{
	if (n->prev)
		n->prev->next = n->next;
	else
		l->head = n->next;
	if (n->next)
		n->next->prev = n->prev;
	else
		l->tail = n->prev;
	n->next = n->prev = NULL;
}

/* Unlink and return the first node, or NULL if l is empty. */
static inline struct br__list_node *br__list_pop_front(struct br__list *l)
{
	struct br__list_node *n = l->head;

	if (n)
		br__list_remove(l, n);
	return n;
}

/*
 * Empty l and return its old first node: the nodes stay chained through
 * next, NULL-terminated. Lets a caller detach a whole list under a lock
 * and walk it after dropping the lock.
 */
static inline struct br__list_node *br__list_take_all(struct br__list *l)
{
	struct br__list_node *n = l->head;

	l->head = l->tail = NULL;
	return n;
}

/* ---- the singly linked FIFO ---- */

struct br__snode {
	struct br__snode *next;
};

/* Records freed away from where they were made, on their way back: a
 * stack that many threads push chains onto, taken whole by its owner or
 * popped under lock (task.c: "Records go home"). n: about how many. */
struct br__returns {
	_Atomic(struct br__snode *) head;
	_Atomic uint32_t n;
	_Atomic uint32_t lock;
};

struct br__fifo {
	struct br__snode *head, *tail; /* both NULL when empty */
};

#define br__fifo_entry(node, type, member) br__container_of(node, type, member)

static inline int br__fifo_empty(const struct br__fifo *q)
{
	return q->head == NULL;
}

static inline void br__fifo_push(struct br__fifo *q, struct br__snode *n)
{
	n->next = NULL;
	if (q->tail)
		q->tail->next = n;
	else
		q->head = n;
	q->tail = n;
}

/* Put n first: it is the next br__fifo_pop() takes. */
static inline void br__fifo_push_front(struct br__fifo *q, struct br__snode *n)
{
	n->next = q->head;
	q->head = n;
	if (!q->tail)
		q->tail = n;
}

/* The oldest node, unlinked, or NULL if q is empty. */
static inline struct br__snode *br__fifo_pop(struct br__fifo *q)
{
	struct br__snode *n = q->head;

	if (n) {
		q->head = n->next;
		if (!q->head)
			q->tail = NULL;
	}
	return n;
}

/* Append every node of from to q, in order; from is left empty. */
static inline void br__fifo_append(struct br__fifo *q, struct br__fifo *from)
{
	if (!from->head)
		return;
	if (q->tail)
		q->tail->next = from->head;
	else
		q->head = from->head;
	q->tail = from->tail;
	from->head = from->tail = NULL;
}

#endif /* BR_LIST_H */
