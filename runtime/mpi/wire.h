/* SPDX-License-Identifier: MIT */
/*
 * wire.h - libbraid-mpi's messages between rank 0 (the driver) and the
 * other ranks (the servers), and what both sides share.
 *
 * Design
 *   Every message is one MPI message of bytes on braid's own duplicate of
 *   MPI_COMM_WORLD, its tag the message type, opening with struct
 *   mw_head. Messages between two ranks are matched in the order they
 *   were sent (MPI's non-overtaking rule, with MPI_ANY_TAG receives), so
 *   a function's name is always known before the first job that uses it.
 *
 *     driver -> server                    server -> driver
 *     MW_POOL_NEW  start a pool           MW_POOL_READY  its workers, CPUs, node
 *     MW_FN        name a job function    MW_RESULTS     settled jobs
 *     MW_JOBS      run these jobs         MW_BEAT        still here
 *     MW_CANCEL    cancel these jobs
 *     MW_POOL_FREE the pool is gone
 *     MW_BYE       rank 0 is done: exit
 *
 *   A job function crosses ranks as its object's name ("" for the main
 *   program) and its offset in that object (names.c): the same binary on
 *   every node needs nothing registered.
 *
 * Concurrency
 *   Only the driver thread (rank 0) or the serving thread (other ranks)
 *   makes MPI calls, after br_mpi_serve() has initialised MPI.
 */
#ifndef BR_MPI_WIRE_H
#define BR_MPI_WIRE_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "braid.h"
#include "clock.h"

enum {
	MW_POOL_NEW = 1,
	MW_POOL_READY,
	MW_POOL_FREE,
	MW_FN,
	MW_JOBS,
	MW_RESULTS,
	MW_CANCEL,
	MW_BEAT,
	MW_BYE,
};

struct mw_head {
	uint32_t type;
	uint32_t pool;	/* the pool's id, where it has one */
	uint32_t count; /* entries that follow, per type */
	uint32_t pad;
};

/* MW_POOL_NEW: the head, this, then the initializer's name (name_len
 * bytes, if init_offset is not UINT64_MAX) and its argument (init_len). */
struct mw_pool_new {
	uint32_t workers; /* per rank; 0: its CPUs */
	uint32_t max_jobs;
	int64_t timeout_ms;
	int64_t init_timeout_ms;
	uint64_t max_payload;
	uint64_t init_offset; /* UINT64_MAX: no initializer */
	uint32_t name_len;
	uint32_t init_len;
};

/* CPUs a rank may run on, as a bit set (CPUs 0 to 1023). */
#define MW_CPU_WORDS 16

/* MW_POOL_READY: workers (> 0), or a negative error; its machine (the
 * lowest rank there) and the CPUs the rank may run on; the host's name,
 * for messages. */
struct mw_ready {
	int32_t workers;
	int32_t node;
	uint64_t cpus[MW_CPU_WORDS];
	char host[72]; /* HOST_NAME_MAX is 64 */
};

/* MW_FN: the head (count = the function's id), this, the name. */
struct mw_fn {
	uint64_t offset;
	uint32_t name_len;
	uint32_t pad;
};

/* MW_JOBS: the head (count jobs), count of these, then each input,
 * padded to 8 bytes. */
struct mw_job {
	uint64_t id;
	uint32_t fn; /* an MW_FN id */
	uint32_t nitems;
	int64_t timeout_ns;
	uint64_t len;
};

/* MW_RESULTS: the head (count results), then for each this and its len
 * bytes, padded to 8: the encoded items when error is 0, else the
 * message of the job's failure. */
struct mw_result {
	uint64_t id;
	int32_t error;
	uint32_t len;
};

/* MW_CANCEL: the head (count ids), then the ids (uint64_t). */

static inline size_t mw_pad8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

/* The job's state shared by driver.c, server.c and serve.c. */
extern MPI_Comm br__mpi_comm;
extern int br__mpi_rank, br__mpi_size;
extern char br__mpi_host[72];
extern uint64_t br__mpi_cpus[MW_CPU_WORDS]; /* this rank's, at the start */
extern int br__mpi_node; /* the lowest rank on this rank's machine */

/*
 * br__mpi_nap - one step of waiting for MPI with nothing else to do: spin
 * while work was seen recently, then sleep on *bell (a futex word that a
 * thread with news for the caller bumps through br__mpi_ring), for a nap
 * that doubles up to max_ns. *idle counts the empty rounds so far; a
 * round with progress resets it.
 */
void br__mpi_nap(_Atomic uint32_t *bell, _Atomic uint32_t *sleeping,
		 unsigned *idle, int64_t max_ns);
/* Sleep on *bell for ns at most, at once; returns 1 if it was rung. */
int br__mpi_sleep(_Atomic uint32_t *bell, _Atomic uint32_t *sleeping,
		  int64_t ns);
void br__mpi_ring(_Atomic uint32_t *bell, _Atomic uint32_t *sleeping);

/* A server's beat: how often it tells rank 0 it lives (server.c), which
 * the driver's death check counts on (driver.c). */
#define BR__MPI_BEAT_NS (100 * BR__NS_PER_MS)

/* A message on its way: freed once MPI is done with its buffer. */
struct br__mpi_out {
	MPI_Request req;
	int rank;
	struct br__mpi_out *next;
	char data[];
};

/* A message of len bytes to fill, or NULL. */
struct br__mpi_out *br__mpi_out_new(size_t len);

/* Send out's first len bytes to rank as tag, and keep it on *list until
 * MPI is done with it (br__mpi_test). br__mpi_send_copy: the same for a
 * copy of msg. */
void br__mpi_send(struct br__mpi_out **list, struct br__mpi_out *out,
		  size_t len, int rank, int tag);
void br__mpi_send_copy(struct br__mpi_out **list, int rank, int tag,
		       const void *msg, size_t len);

/* Free what MPI is done with on *list; messages to a rank r with
 * dead[r] set (dead may be NULL) are left alone. Returns how many. */
int br__mpi_test(struct br__mpi_out **list, const uint8_t *dead);

/* The next message from source (or MPI_ANY_SOURCE) that has arrived, in
 * a malloc'd buffer with its source, tag and length; NULL if none. */
char *br__mpi_recv(int source, int *src, int *tag, size_t *len);

/* names.c: a function's object and offset, and back. */
int br__mpi_name_of(const void *fn, const char **name, uint64_t *offset);
void *br__mpi_resolve(const char *name, uint64_t offset);

/* driver.c, server.c */
int br__mpi_driver_start(void);
void br__mpi_driver_stop(void);
__attribute__((noreturn)) void br__mpi_serve_forever(void);

#endif /* BR_MPI_WIRE_H */
