/* SPDX-License-Identifier: MIT */
/*
 * sync.h - the layout every synchronisation object shares (mutex,
 * condition, semaphore, event, wait group, rwlock) and the entry points
 * they use from each other. See waitq.c for waiting, and mutex.c,
 * cond.c, rwlock.c and sync.c for each object.
 */
#ifndef BR_SYNC_H
#define BR_SYNC_H

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>

#include "braid.h"
#include "clock.h"
#include "internal.h"
#include "waitq.h"

/*
 * The storage behind br_mutex, br_cond, br_sem, br_event, br_waitgroup
 * and br_rwlock (braid.h gives each 32 opaque bytes):
 *
 *   +0   st     the object's state word; fast paths CAS it alone
 *   +8   magic  0 (statically initialised) or the type's magic: live;
 *               BR__MAGIC_DEAD once destroyed
 *   +12  lock   spin lock protecting q (waitq.h)
 *   +16  q      the waiters, FIFO
 *
 * All zeros is a valid unlocked, unset, empty object of every type, so
 * the BR_*_INIT initialisers are all zeros; BR_SEM_INIT(n) puts the count
 * in the low bits of st.
 */
struct br__sync {
	_Atomic uint64_t st;
	uint32_t magic;
	_Atomic uint32_t lock;
	struct br__wq q; /* protected by lock */
};

_Static_assert(sizeof(struct br__sync) <= sizeof(br_mutex), "br_mutex");
_Static_assert(sizeof(struct br__sync) <= sizeof(br_cond), "br_cond");
_Static_assert(sizeof(struct br__sync) <= sizeof(br_sem), "br_sem");
_Static_assert(sizeof(struct br__sync) <= sizeof(br_event), "br_event");
_Static_assert(sizeof(struct br__sync) <= sizeof(br_waitgroup), "br_waitgroup");
_Static_assert(sizeof(struct br__sync) <= sizeof(br_rwlock), "br_rwlock");
_Static_assert(_Alignof(struct br__sync) <= _Alignof(br_mutex), "align");

#define BR__MAGIC_MUTEX 0x62724d58u  /* "brMX" */
#define BR__MAGIC_COND 0x62724356u   /* "brCV" */
#define BR__MAGIC_SEM 0x6272534du    /* "brSM" */
#define BR__MAGIC_EVENT 0x62724556u  /* "brEV" */
#define BR__MAGIC_WG 0x62725747u     /* "brWG" */
#define BR__MAGIC_RWLOCK 0x62725257u /* "brRW" */

/*
 * br__sync_get - the object behind p, checked: stores it in *out and
 * returns 0, or returns -EINVAL for NULL and BR_EBADOBJ for an object
 * destroyed or never initialised as this type.
 */
static inline int br__sync_get(void *p, uint32_t magic, struct br__sync **out)
{
	struct br__sync *s = p;

	if (!s)
		return -EINVAL;
	if (s->magic != 0 && s->magic != magic)
		return BR_EBADOBJ;
	*out = s;
	return 0;
}

/* Make p a fresh object of the type with magic, state st. */
void br__sync_init(void *p, uint32_t magic, uint64_t st);

/*
 * br__sync_destroy - poison p if its state word is idle (st & busy is 0)
 * and nobody waits; -EBUSY otherwise. Errors as br__sync_get.
 */
int br__sync_destroy(void *p, uint32_t magic, uint64_t busy);

/*
 * br__sync_queue - the common slow path of a wait on s that found the
 * object unavailable, with s->lock held: link a waiter (kind, arg) at
 * the tail, drop the lock and wait until deadline. abort repairs the
 * object (it is called under s->lock after the waiter is unlinked; see
 * waitq.h); it is also called if the wait cannot begin, so the caller
 * may set a waiters bit before calling this. Returns the waker's result
 * or a negative code. Context: as br__wait_begin().
 */
int br__sync_queue(struct br__sync *s, uint8_t kind, uint64_t arg,
		   int64_t deadline, unsigned flags,
		   void (*abort)(struct br__wait *wt));

/* The queue of wt's object: for abort functions. */
static inline struct br__sync *br__sync_of(struct br__wait *wt)
{
	return (struct br__sync *)wt->obj;
}

/*
 * br__mutex_lock - lock m until deadline (< 0: never), with BR__WAIT_*
 * flags (the condition's re-lock passes NOCANCEL). m is checked.
 */
int br__mutex_lock(struct br__sync *m, int64_t deadline, unsigned flags);

/* br__mutex_unlock - unlock a checked m; -EPERM if it is not locked. */
int br__mutex_unlock(struct br__sync *m);

/* 1 if the checked mutex m is locked. */
int br__mutex_locked(struct br__sync *m);

#endif /* BR_SYNC_H */
