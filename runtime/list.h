/* SPDX-License-Identifier: MIT */
/*
 * list.h - intrusive lists: a circular doubly linked list with a sentinel
 * (the kernel's list_head, libuv's queue.h), and a singly linked FIFO.
 *
 * Design
 *   The node lives inside the object (a waiter, a job, a fiber, a task),
 *   so linking allocates nothing, and br__list_entry() / br__fifo_entry()
 *   get the object back. The doubly linked list unlinks any node in O(1)
 *   without knowing its list, which is what cancellation and timeouts
 *   need; the FIFO is one pointer per node and serves queues that only
 *   push at the tail and pop at the head.
 *
 *   A list head is its own sentinel: an empty list points at itself, so
 *   no operation tests for NULL. An unlinked node points at itself too
 *   (br__list_del() leaves it so), which makes br__list_linked() exact
 *   and a second del harmless.
 *
 * Concurrency
 *   None: every list belongs to its owner's lock or thread, as the file
 *   that embeds it says.
 */
#ifndef BR_LIST_H
#define BR_LIST_H

#include <stddef.h>

#include "internal.h"

struct br__list {
	struct br__list *next, *prev;
};

#define BR__LIST_INIT(name)      \
	{                        \
		&(name), &(name) \
	}

#define br__list_entry(node, type, member) br__container_of(node, type, member)

static inline void br__list_init(struct br__list *n)
{
	n->next = n->prev = n;
}

static inline int br__list_empty(const struct br__list *head)
{
	return head->next == head;
}

/* n is on some list (not a head, not unlinked). */
static inline int br__list_linked(const struct br__list *n)
{
	return n->next != n;
}

static inline void br__list_insert(struct br__list *n, struct br__list *prev,
				   struct br__list *next)
{
	n->prev = prev;
	n->next = next;
	prev->next = n;
	next->prev = n;
}

static inline void br__list_push_back(struct br__list *head, struct br__list *n)
{
	br__list_insert(n, head->prev, head);
}

static inline void br__list_push_front(struct br__list *head,
				       struct br__list *n)
{
	br__list_insert(n, head, head->next);
}

/* Unlink n from whatever list holds it; n is left unlinked. */
static inline void br__list_del(struct br__list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	br__list_init(n);
}

/* The first node of the list, or NULL if it is empty. */
static inline struct br__list *br__list_first(const struct br__list *head)
{
	return br__list_empty(head) ? NULL : head->next;
}

/*
 * Move every node of from to the empty list to (which may be on another
 * stack frame): from is left empty. Lets a caller detach a whole list
 * under a lock and walk it after dropping the lock.
 */
static inline void br__list_move_all(struct br__list *to, struct br__list *from)
{
	if (br__list_empty(from)) {
		br__list_init(to);
		return;
	}
	to->next = from->next;
	to->prev = from->prev;
	to->next->prev = to;
	to->prev->next = to;
	br__list_init(from);
}

#define br__list_for_each(pos, head) \
	for ((pos) = (head)->next; (pos) != (head); (pos) = (pos)->next)

/* The same, where the body may unlink or free pos. */
#define br__list_for_each_safe(pos, tmp, head)                           \
	for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head); \
	     (pos) = (tmp), (tmp) = (pos)->next)

/* ---- the singly linked FIFO ---- */

struct br__snode {
	struct br__snode *next;
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
