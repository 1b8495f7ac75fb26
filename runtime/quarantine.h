/* SPDX-License-Identifier: MIT */
/*
 * quarantine.h - freed objects kept allocated for a while, so that a
 * call on one reads its poisoned magic, not freed memory. See
 * quarantine.c.
 */
#ifndef BR_QUARANTINE_H
#define BR_QUARANTINE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Freed objects of one kind kept before their memory goes back to malloc:
 * braid.h promises BR_EBADOBJ for a freed acceptor, reader, writer or
 * channel until this many more of its kind have been freed after it.
 */
#define BR__QUARANTINE_LEN 256

/* The quarantine of one kind of object: a FIFO of freed blocks. */
struct br__quarantine {
	pthread_mutex_t lock;
	size_t size;	  /* every object's size (fixed per kind) */
	size_t magic_off; /* where its uint32_t magic is */
	unsigned head, n; /* protected by lock */
	void *blocks[BR__QUARANTINE_LEN]; /* protected by lock; oldest at head */
};

#define BR__QUARANTINE_INIT(type, magic)                                 \
	{                                                                \
		.lock = PTHREAD_MUTEX_INITIALIZER, .size = sizeof(type), \
		.magic_off = offsetof(type, magic),                      \
	}

/*
 * br__quarantine_free - free obj (a malloc'd object of q's kind whose
 * magic the caller has set to BR__MAGIC_DEAD), later: it stays allocated,
 * and under ASan poisoned but for its magic, until BR__QUARANTINE_LEN more
 * objects of its kind have been freed. Context: any thread.
 */
void br__quarantine_free(struct br__quarantine *q, void *obj);

#endif /* BR_QUARANTINE_H */
