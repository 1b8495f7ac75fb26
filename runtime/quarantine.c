/* SPDX-License-Identifier: MIT */
/*
 * quarantine.c - a bounded FIFO of freed objects whose magic stays
 * readable, so that the API's magic check on a freed object reads
 * BR__MAGIC_DEAD instead of freed memory.
 *
 * Design
 *   braid.h promises BR_EBADOBJ for a freed acceptor, reader, writer or
 *   channel. Checking the magic of an object that free() has given back
 *   reads freed memory: undefined behaviour, an ASan report, and a wrong
 *   answer once malloc has handed the block to a new object of the same
 *   kind (the stale pointer then passes the check and acts on the new
 *   object). So these objects are not freed when the API frees them: their
 *   magic is poisoned and they join their kind's quarantine, and only the
 *   oldest block, once BR__QUARANTINE_LEN newer ones are queued, goes back
 *   to malloc. While a block is queued nothing else can be given its
 *   memory, so a check on it is well defined and says "freed".
 *
 *   The alternatives lose: type-stable slabs that never return memory to
 *   malloc keep a server's peak number of connections' objects for ever
 *   and still reuse a slot for a new object of the kind (the same stale
 *   pointer problem, later); a generation number in the pointer would
 *   change the API's handles. A bounded FIFO costs a few tens of KiB per
 *   kind and gives a guarantee the header can state exactly: until
 *   BR__QUARANTINE_LEN more objects of the kind have been freed.
 *
 *   Under ASan the queued object is poisoned except for its magic, so a
 *   use of any other field after free is still reported, as without the
 *   quarantine; the magic check alone is allowed.
 *
 * Invariants
 *   - blocks[(head + i) % LEN], i < n, are freed objects in the order they
 *     were freed, each with its magic set to BR__MAGIC_DEAD.
 *
 * Concurrency
 *   Any thread: q->lock guards head, n and blocks. Objects are the
 *   caller's until br__quarantine_free() is called, then the queue's.
 *
 * Lifetime
 *   A block leaves the queue only to be freed, when a newer one pushes it
 *   out. Blocks still queued at exit stay reachable from the queue, so
 *   LeakSanitizer does not count them.
 */
#include <stdlib.h>

#include "internal.h"
#include "quarantine.h"

#ifdef BR__ASAN
#include <sanitizer/asan_interface.h>
#endif

static void poison(struct br__quarantine *q, void *obj)
{
#ifdef BR__ASAN
	ASAN_POISON_MEMORY_REGION(obj, q->size);
	ASAN_UNPOISON_MEMORY_REGION((char *)obj + q->magic_off,
				    sizeof(uint32_t));
#else
	(void)q;
	(void)obj;
#endif
}

static void unpoison(struct br__quarantine *q, void *obj)
{
#ifdef BR__ASAN
	ASAN_UNPOISON_MEMORY_REGION(obj, q->size);
#else
	(void)q;
	(void)obj;
#endif
}

void br__quarantine_free(struct br__quarantine *q, void *obj)
{
	void *old = NULL;

	BR_DEBUG_ASSERT(*(uint32_t *)((char *)obj + q->magic_off) ==
			BR__MAGIC_DEAD);
	poison(q, obj);
	pthread_mutex_lock(&q->lock);
	if (q->n == BR__QUARANTINE_LEN) {
		old = q->blocks[q->head];
		q->blocks[q->head] = obj;
		q->head = (q->head + 1) % BR__QUARANTINE_LEN;
	} else {
		q->blocks[(q->head + q->n) % BR__QUARANTINE_LEN] = obj;
		q->n++;
	}
	pthread_mutex_unlock(&q->lock);
	if (old) {
		unpoison(q, old);
		free(old);
	}
}
