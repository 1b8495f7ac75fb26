/* SPDX-License-Identifier: MIT */
/*
 * pool_shm.h - the memory a process pool shares with its workers, and the
 * job ring both sides use.
 *
 * Layout (one memfd, mapped MAP_SHARED by the parent and every worker)
 *   [header][init arg][job ring: JOBS slots][per worker: state + results]
 *   [per worker: big-output area][input arena]
 *   Offsets are in the header; nothing in it is a pointer, since each
 *   process maps it at its own address. The big areas and the arena are
 *   sparse: pages exist only once written, and the parent punches large
 *   ones out again after use.
 *
 * The job ring (parent produces, workers and the parent consume)
 *   A bounded ring of JOBS slots whose state word says, for the position
 *   pos it holds: EMPTY(pos) (free for the producer of pos), FULL(pos) (a
 *   job waits), or CLAIMED(pos, owner) (a worker runs it, or the parent
 *   took it back to cancel it). A consumer claims by one CAS of the slot's
 *   state from FULL to CLAIMED, then helps head past it; the claimer runs
 *   the job reading its input in place, pushes the result, and only then
 *   frees the slot (EMPTY(pos + JOBS)). So a worker that dies holding a
 *   job leaves a CLAIMED slot naming it, and the parent finds exactly the
 *   job it held: no window loses or doubles one (Vyukov's bounded queue
 *   with a claim state in place of its sequence-only slots).
 *
 * Results (one SPSC ring per worker, worker produces, parent consumes)
 *   Entries of SLOT bytes; a chunk's items are encoded back to back as
 *   {int32 error, uint32 len, len bytes, padding to 8}, where an item
 *   that failed carries its message as its bytes. Output over an entry's
 *   room goes to the worker's big area; the parent copies it out and
 *   clears big_busy before the worker may write there again.
 *
 * Doorbells (futexes work across processes on shared mappings)
 *   - Idle workers sleep on job_bell after setting their bit in sleepers;
 *     a producer that sees a bit set bumps the bell and wakes workers.
 *     Busy workers never cost the parent a system call. A bit, not a
 *     count: a worker killed asleep leaves its bit set, and the parent
 *     clears it when it settles the death; a count would stay one too
 *     high for ever.
 *   - The parent's collector sleeps in a read of an eventfd through its
 *     loop after raising collector_waiting; a worker that pushes a result
 *     and finds the flag up takes it down and writes the eventfd. Both
 *     sides use seq_cst between their store and their check (Dekker).
 *   - A worker with a full result ring sleeps on res_bell; the parent
 *     bumps and wakes it after it drains.
 */
#ifndef BR_POOL_SHM_H
#define BR_POOL_SHM_H

#include <fcntl.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "internal.h"

#define BR__POOL_MAGIC 0x62725053u /* "brPS" */
#define BR__POOL_SLOT (64u << 10)  /* bytes in a job slot or result entry */
#define BR__POOL_JOBS 128u	   /* job ring slots, a power of two */
#define BR__POOL_RESULTS 8u	   /* result entries per worker */
#define BR__POOL_OWNER_PARENT 0x3fffu
/* One worker process per bit of the sleepers mask, and a fixed bound so
 * that shutdown needs no allocation. */
#define BR__POOL_MAX_WORKERS 256
#define BR__POOL_SLEEPER_WORDS (BR__POOL_MAX_WORKERS / 64)

/* Slot state: pos << 16 | tag << 14 | owner. */
enum {
	BR__JS_EMPTY = 0,
	BR__JS_FULL = 1,
	BR__JS_CLAIMED = 2
};
#define BR__JS(pos, tag, owner) \
	(((uint64_t)(pos) << 16) | ((uint64_t)(tag) << 14) | (owner))
#define BR__JS_POS(s) ((s) >> 16)
#define BR__JS_TAG(s) (((s) >> 14) & 3u)
#define BR__JS_OWNER(s) ((unsigned)((s)&0x3fffu))

/* Job flags */
#define BR__JOB_BIG 0x1u /* input is in the arena at arena_off */

struct br__pool_slot {
	_Atomic uint64_t state;
	uint64_t id;	    /* the parent's job id, echoed in the result */
	uint64_t fn;	    /* br_job_fn */
	uint64_t len;	    /* input bytes */
	uint64_t arena_off; /* BR__JOB_BIG: input offset in the mapping */
	int64_t timeout_ns; /* 0: none */
	uint32_t nitems;    /* items in this chunk; 1 for br_submit */
	uint32_t flags;	    /* BR__JOB_* */
	char data[];	    /* inline input */
};
#define BR__POOL_SLOT_ROOM (BR__POOL_SLOT - sizeof(struct br__pool_slot))

/* Result flags */
#define BR__RES_BIG 0x1u /* the items are in the worker's big area */

struct br__pool_result {
	uint64_t id;
	uint64_t len; /* bytes of encoded items */
	uint32_t nitems;
	uint32_t flags;
	int64_t start_ns, end_ns; /* when the worker ran it (monotonic) */
	int32_t pid;		  /* the worker process */
	uint32_t pad;
	char data[];
};
#define BR__POOL_RESULT_ROOM (BR__POOL_SLOT - sizeof(struct br__pool_result))

/* An encoded item of a result. */
struct br__pool_item {
	int32_t error; /* 0, or the job's negative error */
	uint32_t len;  /* bytes that follow: output, or the message */
};

/* Walk the encoded items of a chunk: *pos advances. Returns 1 with the
 * item in *it and its bytes at *data, 0 at the end or on nonsense. */
static inline int br__pool_next_item(const char *buf, size_t len, size_t *pos,
				     struct br__pool_item *it,
				     const char **data)
{
	size_t at = *pos;

	if (len < sizeof(*it) || at > len - sizeof(*it))
		return 0;
	memcpy(it, buf + at, sizeof(*it));
	at += sizeof(*it);
	if (it->len > len - at)
		return 0;
	*data = buf + at;
	at += it->len;
	at = (at + 7) & ~(size_t)7;
	*pos = at < len ? at : len;
	return 1;
}

/* A worker's exit status when a job took the descriptors it reports
 * through: its results are in the rings, and it needs replacing. */
#define BR__POOL_EXIT_LOST 117

/* Worker states */
enum {
	BR__PW_STARTING = 0,
	BR__PW_READY = 1,
	BR__PW_INIT_FAILED = 2,
	BR__PW_RETIRED = 3, /* left after max_jobs */
};

/*
 * A worker's index is taken by the worker of one fork request: the
 * parent stores BR__PW_OWNER(gen, 0) with a new generation before it
 * asks the zygote, and the worker that request made swaps its pid in
 * before it touches anything else. A worker whose request the parent
 * gave up on (the zygote's answer was lost) finds another generation
 * there and leaves: two workers never serve one index.
 */
#define BR__PW_OWNER(gen, pid) ((uint64_t)(gen) << 32 | (uint32_t)(pid))
#define BR__PW_OWNER_PID(o) ((pid_t)(uint32_t)(o))

struct br__pool_wstate {
	BR__CACHE_ALIGNED _Atomic uint64_t res_tail; /* worker writes */
	_Atomic uint32_t res_wait;		     /* worker sleeps */
	_Atomic uint32_t state;			     /* BR__PW_* */
	_Atomic int32_t init_err;
	_Atomic uint32_t big_busy; /* 1 until the parent took big out */
	_Atomic uint64_t cur_id;   /* the job running, 0 between jobs */
	_Atomic int64_t deadline;  /* its deadline (monotonic ns), 0: none */
	_Atomic uint64_t owner;	   /* BR__PW_OWNER: who took the index */
	BR__CACHE_ALIGNED _Atomic uint64_t res_head; /* parent writes */
	_Atomic uint32_t res_bell;
};

struct br__pool_shm {
	uint32_t magic;
	uint32_t nworkers;
	uint64_t size;
	uint64_t init_off, init_len, init_fn;
	uint64_t jobs_off;
	uint64_t workers_off; /* wstate, then RESULTS entries, per worker */
	uint64_t worker_stride;
	uint64_t big_off, big_size; /* per worker, big_size apart */
	uint64_t arena_off, arena_size;
	uint64_t max_payload;
	uint32_t max_jobs;
	int32_t parent_pid;
	BR__CACHE_ALIGNED _Atomic uint64_t head;
	BR__CACHE_ALIGNED _Atomic uint64_t tail;
	BR__CACHE_ALIGNED _Atomic uint32_t job_bell;
	_Atomic uint64_t sleepers[BR__POOL_SLEEPER_WORDS]; /* bit per worker */
	BR__CACHE_ALIGNED _Atomic uint32_t collector_waiting;
	_Atomic uint32_t closing;
};

static inline struct br__pool_slot *br__pool_slot(struct br__pool_shm *s,
						  uint64_t pos)
{
	return (struct br__pool_slot *)((char *)s + s->jobs_off +
					(pos & (BR__POOL_JOBS - 1)) *
						BR__POOL_SLOT);
}

static inline struct br__pool_wstate *br__pool_ws(struct br__pool_shm *s,
						  unsigned w)
{
	return (struct br__pool_wstate *)((char *)s + s->workers_off +
					  (uint64_t)w * s->worker_stride);
}

static inline struct br__pool_result *br__pool_res(struct br__pool_shm *s,
						   unsigned w, uint64_t i)
{
	return (struct br__pool_result *)((char *)br__pool_ws(s, w) +
					  BR__POOL_SLOT +
					  (i & (BR__POOL_RESULTS - 1)) *
						  BR__POOL_SLOT);
}

static inline char *br__pool_big(struct br__pool_shm *s, unsigned w)
{
	return (char *)s + s->big_off + (uint64_t)w * s->big_size;
}

/*
 * br__pool_claim - take the oldest FULL slot for owner: returns it, with
 * its position in *pos, or NULL if no job waits. Context: a worker, or
 * the parent (owner BR__POOL_OWNER_PARENT is only used by cancel, which
 * claims one known position instead: br__pool_claim_at).
 */
static inline struct br__pool_slot *
br__pool_claim(struct br__pool_shm *s, unsigned owner, uint64_t *pos)
{
	for (;;) {
		uint64_t p =
			atomic_load_explicit(&s->head, memory_order_acquire);
		struct br__pool_slot *sl = br__pool_slot(s, p);
		uint64_t st =
			atomic_load_explicit(&sl->state, memory_order_acquire);

		uint64_t sp = BR__JS_POS(st);

		if (sp < p)
			return NULL; /* the last lap's job still holds it */
		if (sp > p) {
			/* The job at p is over (a slot only moves to a later
			 * position once freed), but head was not moved past
			 * it: the parent took it back to cancel it while
			 * head was behind it. Help. */
			uint64_t h = p;

			atomic_compare_exchange_strong_explicit(
				&s->head, &h, p + 1, memory_order_release,
				memory_order_relaxed);
			continue;
		}
		if (BR__JS_TAG(st) == BR__JS_EMPTY)
			return NULL; /* nothing published at head */
		if (BR__JS_TAG(st) == BR__JS_FULL &&
		    atomic_compare_exchange_strong_explicit(
			    &sl->state, &st, BR__JS(p, BR__JS_CLAIMED, owner),
			    memory_order_acq_rel, memory_order_relaxed)) {
			uint64_t h = p; /* a failed CAS overwrites h */

			atomic_compare_exchange_strong_explicit(
				&s->head, &h, p + 1, memory_order_release,
				memory_order_relaxed);
			*pos = p;
			return sl;
		}
		if (BR__JS_TAG(st) == BR__JS_CLAIMED)
			/* Claimed, head not past it yet: help. */
			atomic_compare_exchange_strong_explicit(
				&s->head, &p, p + 1, memory_order_release,
				memory_order_relaxed);
	}
}

/* br__pool_release - free the slot at pos after its job. */
static inline void br__pool_release(struct br__pool_shm *s, uint64_t pos)
{
	atomic_store_explicit(&br__pool_slot(s, pos)->state,
			      BR__JS(pos + BR__POOL_JOBS, BR__JS_EMPTY, 0),
			      memory_order_release);
}

/* Worker w's bit in the sleepers mask: the word, and the bit in it. */
static inline _Atomic uint64_t *br__pool_sleeper_word(struct br__pool_shm *s,
						      unsigned w)
{
	return &s->sleepers[w / 64];
}

static inline uint64_t br__pool_sleeper_bit(unsigned w)
{
	return (uint64_t)1 << (w % 64);
}

/* Worker w is no longer asleep, whatever it was doing when it died. */
static inline void br__pool_sleeper_gone(struct br__pool_shm *s, unsigned w)
{
	atomic_fetch_and_explicit(br__pool_sleeper_word(s, w),
				  ~br__pool_sleeper_bit(w),
				  memory_order_relaxed);
}

/*
 * The doorbell's mark. A job may close its worker's descriptors and open
 * others in their place, eventfds too: the doorbell's number would then
 * name the job's file, a wake-up written there would be lost, and the
 * pool would hang. So the parent marks the doorbell's open file with its
 * own pid as owner (no O_ASYNC: no signal is ever sent), and a worker
 * writes only to a descriptor that carries the mark: a file a job opened
 * has another owner, 0 unless it set one. One system call, where a path
 * lookup in /proc cost several. A job that re-owns every descriptor
 * takes the mark away: its worker leaves, and the parent marks the
 * doorbell again before it starts the replacement (pool_procs.c).
 */
static inline int br__pool_mark_doorbell(const struct br__pool_shm *s, int efd)
{
	return fcntl(efd, F_SETOWN, s->parent_pid);
}

static inline int br__pool_is_doorbell(const struct br__pool_shm *s, int efd)
{
	return fcntl(efd, F_GETOWN) == s->parent_pid;
}

/*
 * br__pool_populate - fault in the job ring and the result rings of the
 * mapping s (every worker's, or only worker w's when w > 0: w - 1), so
 * their first use takes no page fault. Best effort. Context: the parent
 * after it made s, or a worker after it mapped it.
 */
void br__pool_populate(struct br__pool_shm *s, unsigned w);

/*
 * br__pool_worker_main - the body of a worker process: map fd, take
 * index idx for request gen (or leave), run the initializer, then jobs
 * until told to close or max_jobs. Never returns.
 * Context: a fresh child of the zygote.
 */
__attribute__((noreturn)) void br__pool_worker_main(int memfd, int efd,
						    unsigned idx, uint32_t gen);

#endif /* BR_POOL_SHM_H */
