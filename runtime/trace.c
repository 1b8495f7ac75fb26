/* SPDX-License-Identifier: MIT */
/*
 * trace.c - BRAID_TRACE: a ring of events per worker, written out as a
 * Chrome trace-event JSON file when the runtime is freed.
 *
 * Design
 *   Each worker records into its own ring of fixed-size records, with no
 *   lock and no allocation: a run slice of a task (from its switch-in to
 *   its switch-out, named after the task or its function), a park, an I/O wait
 *   (from the submission of the operation to its final completion), a
 *   steal. When the ring is full the oldest records are overwritten, so
 *   memory and the file stay bounded (BRAID_TRACE_EVENTS records per
 *   worker, default 65536, 72 bytes each) and the file keeps the end of
 *   the run, which is usually what one wants to look at. A slice carries
 *   the task's name when it has one (tasklocal.c), copied from its
 *   fiber's label when the slice begins. Process-pool
 *   jobs come from whichever thread completes them, so they go to one
 *   shared ring under a mutex; they are coarse (a job is a round trip to
 *   another process).
 *
 *   Every record is one whole event: a slice is written when it ends, with
 *   its start, and becomes an "X" (complete) event; an I/O wait becomes a
 *   "b"/"e" pair of async events with one id, since waits of different
 *   tasks on one worker overlap and would not nest on the worker's track.
 *   So dropping old records can never leave an unmatched begin or end.
 *   Timestamps are microseconds since the runtime started. Chrome's format
 *   does not ask for events in time order; each ring is written oldest
 *   first. Function names are resolved with dladdr() when the file is
 *   written, not when the event happens.
 *
 * Invariants
 *   - A worker's ring holds its last min(n, mask + 1) records.
 *
 * Concurrency
 *   - A worker's ring and open slice: its own thread only, until the
 *     workers are joined; br__trace_write() runs after that.
 *   - The jobs ring: any thread, under trace->lock.
 *
 * Memory ordering
 *   - None of its own: the join of the workers orders their records
 *     before the write-out.
 *
 * Lifetime
 *   br__trace_init() in br_runtime_new() before the workers start;
 *   br__trace_write() in br_runtime_free() after they are joined;
 *   br__trace_term() in free_runtime().
 */
#ifndef BR_NO_OBS /* else nothing: make OBS=0 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "stats.h"
#include "tasklocal.h"
#include "worker.h"

#define DEFAULT_EVENTS 65536u
#define MAX_EVENTS (1u << 24)
#define MIN_EVENTS 16u
/* Distinct pool processes named in the file's metadata. */
#define MAX_PIDS 256

struct rec {
	int64_t ts;    /* start, CLOCK_MONOTONIC ns */
	int64_t dur;   /* ns; 0 for an instant */
	uint64_t id;   /* SLICE: task id; IO: wait number; JOB: job id */
	uint64_t arg;  /* SLICE: function; IO: opcode; STEAL: victim;
			* JOB: pid */
	uint32_t kind; /* BR__TR_* */
	/* SLICE: the task's name, "" for none (the function names it) */
	char name[BR_TASK_NAME_MAX];
};

struct br__trace_buf {
	unsigned worker; /* the worker's index; ~0u for the jobs ring */
	uint32_t mask;	 /* capacity - 1, a power of two minus one */
	uint64_t n;	 /* records ever written */
	uint64_t io_seq; /* I/O waits ever recorded */
	int open;	 /* a slice is open */
	int64_t slice_ts;
	uint64_t slice_id;
	uintptr_t slice_fn;
	char slice_name[BR_TASK_NAME_MAX];
	struct rec rec[];
};

struct br__trace {
	char *path;
	int64_t t0;	      /* br_now_ns() at set-up: time 0 of the file */
	pthread_mutex_t lock; /* protects jobs */
	struct br__trace_buf *jobs; /* process-pool jobs */
};

static struct br__trace_buf *buf_new(unsigned worker, uint32_t cap)
{
	struct br__trace_buf *b =
		calloc(1, sizeof(*b) + (size_t)cap * sizeof(struct rec));

	if (!b)
		return NULL;
	b->worker = worker;
	b->mask = cap - 1;
	return b;
}

static struct rec *push(struct br__trace_buf *b)
{
	return &b->rec[b->n++ & b->mask];
}

void br__trace_slice_begin(struct br__trace_buf *b, struct br__fiber *f)
{
	b->slice_ts = br_now_ns();
	/* Relaxed: this thread labelled the fiber, or the queue that handed
	 * it over ordered the labels before this switch. */
	b->slice_id = atomic_load_explicit(&f->obs_id, memory_order_relaxed);
	b->slice_fn = atomic_load_explicit(&f->obs_fn, memory_order_relaxed);
	br__name_read(f, b->slice_name);
	b->open = 1;
}

void br__trace_slice_rename(struct br__trace_buf *b, const char *name)
{
	if (!b->open)
		return;
	memset(b->slice_name, 0, sizeof(b->slice_name));
	if (name)
		strncpy(b->slice_name, name, sizeof(b->slice_name) - 1);
}

void br__trace_slice_end(struct br__trace_buf *b)
{
	struct rec *r;

	if (!b->open)
		return;
	b->open = 0;
	r = push(b);
	r->ts = b->slice_ts;
	r->dur = br_now_ns() - b->slice_ts;
	r->id = b->slice_id;
	r->arg = b->slice_fn;
	r->kind = BR__TR_SLICE;
	memcpy(r->name, b->slice_name, sizeof(r->name));
}

void br__trace_span(struct br__trace_buf *b, unsigned kind, int64_t start,
		    uint64_t arg)
{
	struct rec *r = push(b);

	r->ts = start;
	r->dur = br_now_ns() - start;
	r->id = kind == BR__TR_IO ? ++b->io_seq : 0;
	r->arg = arg;
	r->kind = kind;
}

void br__trace_steal(struct br__trace_buf *b, unsigned victim)
{
	struct rec *r = push(b);

	r->ts = br_now_ns();
	r->dur = 0;
	r->id = 0;
	r->arg = victim;
	r->kind = BR__TR_STEAL;
}

void br__trace_proc_job(struct br_runtime *rt, int pid, uint64_t job,
			int64_t start_ns, int64_t end_ns)
{
	struct br__trace *tr;
	struct rec *r;

	if (!br__runtime_ok(rt) || !rt->obs.trace)
		return;
	tr = rt->obs.trace;
	pthread_mutex_lock(&tr->lock);
	r = push(tr->jobs);
	r->ts = start_ns;
	r->dur = end_ns > start_ns ? end_ns - start_ns : 0;
	r->id = job;
	r->arg = (uint64_t)pid;
	r->kind = BR__TR_JOB;
	pthread_mutex_unlock(&tr->lock);
}

/* BRAID_TRACE_EVENTS, rounded up to a power of two and clamped. */
static uint32_t events_per_worker(void)
{
	const char *s = getenv("BRAID_TRACE_EVENTS");
	unsigned long v = s && *s ? strtoul(s, NULL, 10) : 0;
	uint32_t cap = MIN_EVENTS;

	if (!v)
		return DEFAULT_EVENTS;
	if (v > MAX_EVENTS)
		v = MAX_EVENTS;
	while (cap < v)
		cap <<= 1;
	return cap;
}

int br__trace_init(struct br_runtime *rt, const char *path)
{
	struct br__trace *tr = calloc(1, sizeof(*tr));
	uint32_t cap = events_per_worker();
	unsigned i;

	if (!tr)
		return -ENOMEM;
	rt->obs.trace = tr;
	pthread_mutex_init(&tr->lock, NULL);
	tr->t0 = br_now_ns();
	tr->path = br__strdup(path);
	tr->jobs = buf_new(~0u, cap);
	if (!tr->path || !tr->jobs)
		return -ENOMEM;
	for (i = 0; i < rt->nworkers; i++) {
		rt->workers[i].obs.trace = buf_new(i, cap);
		if (!rt->workers[i].obs.trace)
			return -ENOMEM;
	}
	return 0;
}

void br__trace_term(struct br_runtime *rt)
{
	struct br__trace *tr = rt->obs.trace;
	unsigned i;

	if (!tr)
		return;
	for (i = 0; i < rt->nworkers; i++) {
		free(rt->workers[i].obs.trace);
		rt->workers[i].obs.trace = NULL;
	}
	free(tr->jobs);
	free(tr->path);
	pthread_mutex_destroy(&tr->lock);
	free(tr);
	rt->obs.trace = NULL;
}

/* ---- the JSON file ---- */

static const char *const op_names[] = {
	[IORING_OP_READV] = "readv",	 [IORING_OP_WRITEV] = "writev",
	[IORING_OP_FSYNC] = "fsync",	 [IORING_OP_POLL_ADD] = "poll",
	[IORING_OP_SENDMSG] = "sendmsg", [IORING_OP_RECVMSG] = "recvmsg",
	[IORING_OP_TIMEOUT] = "timeout", [IORING_OP_ACCEPT] = "accept",
	[IORING_OP_CONNECT] = "connect", [IORING_OP_OPENAT] = "openat",
	[IORING_OP_CLOSE] = "close",	 [IORING_OP_STATX] = "statx",
	[IORING_OP_READ] = "read",	 [IORING_OP_WRITE] = "write",
	[IORING_OP_SEND] = "send",	 [IORING_OP_RECV] = "recv",
	[IORING_OP_SPLICE] = "splice",	 [IORING_OP_SHUTDOWN] = "shutdown",
};

/* Write s as a JSON string, quotes included. */
static void put_str(FILE *f, const char *s)
{
	putc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			putc(c, f);
	}
	putc('"', f);
}

/* Microseconds since t0, as the format wants them. */
static double us(const struct br__trace *tr, int64_t ns)
{
	return (double)(ns - tr->t0) / BR__NS_PER_US;
}

struct out {
	FILE *f;
	const struct br__trace *tr;
	int pid;
	int first; /* no event written yet: no comma before the next */
	uintptr_t last_fn;
	char last_name[192];
	int pids[MAX_PIDS];
	unsigned npids;
};

static void sep(struct out *o)
{
	if (!o->first)
		fputs(",\n", o->f);
	o->first = 0;
}

static const char *fn_name(struct out *o, uintptr_t fn)
{
	if (fn != o->last_fn || !o->last_name[0]) {
		br__obs_fn_name(fn, o->last_name, sizeof(o->last_name));
		o->last_fn = fn;
	}
	return o->last_name;
}

static void meta(struct out *o, const char *what, int pid, unsigned tid,
		 const char *name)
{
	sep(o);
	fprintf(o->f,
		"{\"ph\":\"M\",\"name\":\"%s\",\"pid\":%d,\"tid\":%u,"
		"\"args\":{\"name\":",
		what, pid, tid);
	put_str(o->f, name);
	fputs("}}", o->f);
}

/* Name a pool process's track the first time one of its jobs appears. */
static void job_process(struct out *o, int pid)
{
	char name[64];
	unsigned i;

	for (i = 0; i < o->npids; i++)
		if (o->pids[i] == pid)
			return;
	if (o->npids < MAX_PIDS)
		o->pids[o->npids++] = pid;
	snprintf(name, sizeof(name), "braid pool worker %d", pid);
	meta(o, "process_name", pid, (unsigned)pid, name);
}

static void event(struct out *o, const struct br__trace_buf *b,
		  const struct rec *r)
{
	FILE *f = o->f;
	unsigned tid = b->worker + 1;
	const char *op;

	switch (r->kind) {
	case BR__TR_SLICE:
		/* Named after the task if it has a name, else its
		 * function; the function goes in args either way. */
		sep(o);
		fputs("{\"ph\":\"X\",\"cat\":\"task\",\"name\":", f);
		put_str(f,
			r->name[0] ? r->name : fn_name(o, (uintptr_t)r->arg));
		fprintf(f,
			",\"ts\":%.3f,\"dur\":%.3f,\"pid\":%d,\"tid\":%u,"
			"\"args\":{\"task\":\"%u.%llu\",\"fn\":",
			us(o->tr, r->ts), (double)r->dur / BR__NS_PER_US,
			o->pid, tid, (unsigned)(r->id >> 40),
			(unsigned long long)(r->id &
					     ((UINT64_C(1) << 40) - 1)));
		put_str(f, fn_name(o, (uintptr_t)r->arg));
		fputs("}}", f);
		break;
	case BR__TR_PARK:
		sep(o);
		fprintf(f,
			"{\"ph\":\"X\",\"cat\":\"sched\",\"name\":\"park\","
			"\"ts\":%.3f,\"dur\":%.3f,\"pid\":%d,\"tid\":%u}",
			us(o->tr, r->ts), (double)r->dur / BR__NS_PER_US,
			o->pid, tid);
		break;
	case BR__TR_IO:
		op = r->arg < BR__ARRAY_SIZE(op_names) && op_names[r->arg] ?
			     op_names[r->arg] :
			     "io";
		sep(o);
		fprintf(f,
			"{\"ph\":\"b\",\"cat\":\"io\",\"name\":\"%s\","
			"\"id\":\"w%u.%llu\",\"ts\":%.3f,\"pid\":%d,\"tid\":%u},\n"
			"{\"ph\":\"e\",\"cat\":\"io\",\"name\":\"%s\","
			"\"id\":\"w%u.%llu\",\"ts\":%.3f,\"pid\":%d,\"tid\":%u}",
			op, b->worker, (unsigned long long)r->id,
			us(o->tr, r->ts), o->pid, tid, op, b->worker,
			(unsigned long long)r->id, us(o->tr, r->ts + r->dur),
			o->pid, tid);
		break;
	case BR__TR_STEAL:
		sep(o);
		fprintf(f,
			"{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"sched\","
			"\"name\":\"steal\",\"ts\":%.3f,\"pid\":%d,\"tid\":%u,"
			"\"args\":{\"victim\":%llu}}",
			us(o->tr, r->ts), o->pid, tid,
			(unsigned long long)r->arg);
		break;
	case BR__TR_JOB:
		job_process(o, (int)r->arg);
		sep(o);
		fprintf(f,
			"{\"ph\":\"X\",\"cat\":\"pool\",\"name\":\"job\","
			"\"ts\":%.3f,\"dur\":%.3f,\"pid\":%d,\"tid\":%d,"
			"\"args\":{\"job\":%llu}}",
			us(o->tr, r->ts), (double)r->dur / BR__NS_PER_US,
			(int)r->arg, (int)r->arg, (unsigned long long)r->id);
		break;
	}
}

static uint64_t dump(struct out *o, const struct br__trace_buf *b)
{
	uint64_t cap = (uint64_t)b->mask + 1;
	uint64_t i = b->n > cap ? b->n - cap : 0;

	for (; i < b->n; i++)
		event(o, b, &b->rec[i & b->mask]);
	return b->n > cap ? b->n - cap : 0;
}

void br__trace_write(struct br_runtime *rt)
{
	struct br__trace *tr = rt->obs.trace;
	struct out *o = calloc(1, sizeof(*o));
	uint64_t dropped = 0;
	char name[32];
	unsigned i;

	if (!o)
		return;
	o->f = fopen(tr->path, "w");
	if (!o->f) {
		br__log(&rt->log, BR_LOG_ERR,
			"BRAID_TRACE: cannot write %s: %s", tr->path,
			strerror(errno));
		free(o);
		return;
	}
	o->tr = tr;
	o->pid = (int)getpid();
	o->first = 1;
	fputs("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n", o->f);
	meta(o, "process_name", o->pid, 0, "braid runtime");
	for (i = 0; i < rt->nworkers; i++) {
		snprintf(name, sizeof(name), "worker %u", i);
		meta(o, "thread_name", o->pid, i + 1, name);
	}
	for (i = 0; i < rt->nworkers; i++)
		dropped += dump(o, rt->workers[i].obs.trace);
	pthread_mutex_lock(&tr->lock);
	dropped += dump(o, tr->jobs);
	pthread_mutex_unlock(&tr->lock);
	fprintf(o->f,
		"\n],\"otherData\":{\"producer\":\"braid %s\","
		"\"dropped_events\":%llu}}\n",
		br_version_string(), (unsigned long long)dropped);
	if (fclose(o->f) != 0)
		br__log(&rt->log, BR_LOG_ERR,
			"BRAID_TRACE: cannot write %s: %s", tr->path,
			strerror(errno));
	free(o);
}
#endif /* BR_NO_OBS */
