/* SPDX-License-Identifier: MIT */
/** @file
 * braid.h - the whole public API of braid.
 *
 * braid runs async tasks (stackful fibers on one io_uring-driven loop per
 * core, moved between loops by work stealing), blocking calls and process
 * jobs, and hands back the same thing for each: a br_future *.
 *
 * Conventions used by every declaration below:
 *   - Functions returning int give 0 (or a non-negative count) on success
 *     and a negative code on failure: -errno where an errno means exactly
 *     the right thing, or one of the BR_E* codes. br_strerror() names both.
 *     braid never reports through errno.
 *   - Functions that produce a future never return NULL: if the work cannot
 *     start, the future comes back already BR_FAILED with a code and a
 *     message, so errors arrive in one place, br_await().
 *   - "Returns a new reference." means the caller must release it;
 *     "Borrows x." means the caller keeps its reference; "Valid until ..."
 *     gives a pointer's lifetime.
 *   - BR_EBADOBJ means the pointer is not a live object of the kind the
 *     call takes. It is detected for a pointer to readable memory that
 *     does not hold such an object (its magic does not match), and for an
 *     acceptor, reader, writer or channel that has been freed, until 256
 *     more objects of its kind have been freed after it (its memory is
 *     kept, poisoned, until then); freeing it again within that time does
 *     nothing. Any other use of an object after its free or last release
 *     is undefined, as after free().
 *   - "Context:" says from where the function may be called. A "task" is
 *     code running inside br_spawn()'s function; a "plain thread" is any
 *     other thread, including a runtime's worker thread outside a task
 *     (a br_call_soon() callback, for instance).
 */
#ifndef BRAID_H
#define BRAID_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

/** <netdb.h>'s, for br_getaddrinfo(). */
struct addrinfo;

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Version and export                                                  */
/* ------------------------------------------------------------------ */

/**
 * @defgroup braid_version Version and export
 * @{
 */

#define BR_VERSION_MAJOR 0
#define BR_VERSION_MINOR 1
#define BR_VERSION_PATCH 0
/**
 * The version as one number, (MAJOR << 16) | (MINOR << 8) | PATCH, for
 * tests in the preprocessor: `#if BR_VERSION_HEX >= 0x000200` holds
 * from version 0.2.0 on.
 */
#define BR_VERSION_HEX \
	((BR_VERSION_MAJOR << 16) | (BR_VERSION_MINOR << 8) | BR_VERSION_PATCH)

#if defined(__GNUC__)
#define BR_API __attribute__((visibility("default")))
#else
#define BR_API
#endif

/**
 * br_version_string - the library's version as "MAJOR.MINOR.PATCH".
 *
 * Returns a static string. Context: any thread.
 */
BR_API const char *br_version_string(void);
/** @} */

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

/**
 * @defgroup braid_errors Errors
 *
 * braid's own codes live in a reserved range far below any errno
 * (Linux errnos stop below 200), as libuv reserves -4095..-3000.
 * @{
 */
enum {
	/** The runtime is closed or closing. */
	BR_ECLOSED = -5001,
	/** A task-only call was made outside a task. */
	BR_ENOTTASK = -5002,
	/** The pointer is not a live braid object. */
	BR_EBADOBJ = -5003,
	/** A process-pool worker died while it held the job. */
	BR_EWORKERDIED = -5004,
	/** Waiting here would block a loop forever. */
	BR_EDEADLK = -5005,
	/** The future has already completed. */
	BR_EDONE = -5006,
	/** A task ended with br_fail() and no code. */
	BR_ETASKFAILED = -5007,
};

/**
 * br_strerror - a one-line description of a braid or errno code.
 *
 * Accepts codes with either sign (-ENOENT and ENOENT both work). Returns a
 * static string, never NULL; unknown codes give "unknown error".
 * Context: any thread. Async-signal-safe.
 */
BR_API const char *br_strerror(int code);
/** @} */

/* ------------------------------------------------------------------ */
/* Time                                                                */
/* ------------------------------------------------------------------ */

/**
 * @defgroup braid_time Time
 *
 * Every delay, timeout and deadline this API takes may be any int64_t
 * value, INT64_MAX and INT64_MIN included: conversions saturate and never
 * wrap, so a limit too long to pass (about 146 years or more) never
 * passes, and nothing fires early. What zero and negative values mean is
 * given with each call.
 * @{
 */

/**
 * br_now_ns - CLOCK_MONOTONIC in nanoseconds.
 *
 * Context: any thread. Async-signal-safe.
 */
BR_API int64_t br_now_ns(void);

/**
 * br_sleep_ns - suspend the calling task for at least ns nanoseconds.
 *
 * With ns <= 0 the task yields once and returns 0 at once, as asyncio's
 * sleep() does for a negative delay. Sleeping tasks hold no ring entry and
 * no thread. From a plain thread it sleeps the thread (nanosleep).
 *
 * Returns 0, or -ECANCELED if the task was cancelled before or while it
 * slept; BR_ENOTTASK from a loop callback, which must not stall its loop.
 * Context: any thread; suspends a task, blocks a plain thread.
 */
BR_API int br_sleep_ns(int64_t ns);

/** br_sleep_ms - br_sleep_ns() in milliseconds. */
BR_API int br_sleep_ms(int64_t ms);

/**
 * br_sleep_until - sleep until br_now_ns() >= deadline_ns.
 *
 * A deadline in the past yields once and returns 0. Errors as br_sleep_ns.
 * Context: any thread; suspends a task, blocks a plain thread.
 */
BR_API int br_sleep_until(int64_t deadline_ns);

/**
 * br_yield - let the other runnable tasks of this worker run first.
 *
 * The task goes behind every task already runnable on its worker and may
 * resume on another worker. The worker fires its due timers and polls
 * its I/O when it runs out of tasks, and otherwise (a task that yields
 * counts as one) once every 61 turns, so a task that runs long between
 * yields delays them by up to 61 of its turns. Returns 0, or -ECANCELED
 * if the task has been cancelled (it yields all the same, so a cancelled
 * task that polls with br_yield lets others run). From a plain thread it
 * calls sched_yield() and returns 0.
 * Context: any thread.
 */
BR_API int br_yield(void);

/**
 * A repeating timer without drift (Go's time.Ticker, libuv's repeating
 * uv_timer): tick k falls at start + k * period, start being the moment
 * br_ticker_new() (or br_ticker_reset()) ran, however late each wake-up
 * is. It holds no timer while nobody waits on it.
 */
typedef struct br_ticker br_ticker;

/**
 * br_ticker_new - a ticker with a period of period_ms milliseconds (> 0;
 * a period too long to pass saturates). Stores it in *out and returns 0;
 * -EINVAL (out NULL, period_ms <= 0), -ENOMEM. Context: any thread.
 */
BR_API int br_ticker_new(br_ticker **out, int64_t period_ms);

/**
 * br_ticker_next - wait for the next tick not yet delivered, as
 * br_sleep_until() does (a task suspends, a plain thread sleeps).
 *
 * Returns how many ticks were skipped (>= 0): 0 when the caller was in
 * time; n when it came back after n + 1 ticks had passed, which it then
 * gets at once as one (the latest), so a slow caller is not handed a
 * burst of ticks. Errors: -ECANCELED (the calling task was cancelled),
 * -ETIMEDOUT (its deadline scope passed), BR_ENOTTASK (a loop callback),
 * -ENOMEM; the tick then stays due. -EINVAL (t NULL), BR_EBADOBJ,
 * -EBUSY (another call on t is in progress: one caller at a time).
 * Context: any thread; suspends a task, blocks a plain thread.
 */
BR_API int64_t br_ticker_next(br_ticker *t);

/**
 * br_ticker_reset - restart t from now with period_ms (> 0). Returns 0,
 * -EINVAL, BR_EBADOBJ, -EBUSY (a call on t is in progress).
 * Context: any thread.
 */
BR_API int br_ticker_reset(br_ticker *t, int64_t period_ms);

/** br_ticker_free - free t; no call may be in progress on it. NULL is a
 * no-op. Context: any thread. */
BR_API void br_ticker_free(br_ticker *t);

/**
 * A deadline scope (asyncio's `async with timeout()`, Trio's
 * move_on_after): storage for one, on the caller's stack, between
 * br_deadline_enter() and br_deadline_leave().
 *
 * Inside a scope, every wait of the calling task (or plain thread) that a
 * cancellation could end also ends, with -ETIMEDOUT, once the scope's
 * deadline has passed: I/O calls (the *_timeout variants and
 * br_io_timeout() included: the nearer deadline wins), sleeps, br_await()
 * and br_wait_for() (which then cancel what they awaited, as a
 * cancellation of the awaiting task would; wrap it in br_shield() to
 * spare it), br_wait_any(), br_gather() (which then cancels the inputs
 * still pending and waits for them), br_as_completed_next_ex(),
 * br_group_wait() (which cancels the group's tasks and waits for them),
 * br_imap_next(), every wait of the synchronisation objects, channels
 * and select, acceptors, readers (the line verbs included: the bytes
 * received stay readable), writers, signal objects, and the calls that
 * run on the blocking pool for their caller (br_getaddrinfo, br_listdir,
 * the file calls where the ring lacks them: such a call finishes on its
 * own and its result is dropped). A pool job's or a subprocess's future
 * awaited so is cancelled: the job's worker or the child is killed. A
 * wait that can complete at once still does, even past the deadline (a
 * free mutex is taken, bytes already there are read), and a result that
 * races the deadline is never dropped. A cancelled task still sees
 * -ECANCELED: a cancellation is the more precise answer. Once the
 * deadline has passed, every later wait in the scope ends at once: leave
 * the scope to wait again.
 *
 * Scopes nest: the nearest deadline of the scopes the caller is inside
 * applies, and leaving one restores what applied before it was entered.
 * A scope belongs to the task that entered it: tasks it spawns, and
 * children br_await() would run inline on its stack (inside a scope it
 * runs none), do not inherit it. From a plain thread, the scopes are
 * the thread's own.
 */
typedef struct br_deadline {
	uint64_t opaque_[4];
} br_deadline;

/**
 * br_deadline_enter - enter the scope *scope, whose deadline is
 * timeout_ms milliseconds from now. A negative timeout (or one too long
 * to ever pass) gives the scope no deadline of its own: the outer ones
 * still apply. 0 is a deadline that has passed already.
 *
 * Returns 0, -EINVAL (scope NULL), -EBUSY (scope is entered already).
 * Context: any thread; a task's scopes are its own wherever it runs.
 */
BR_API int br_deadline_enter(br_deadline *scope, int64_t timeout_ms);

/**
 * br_deadline_enter_at - br_deadline_enter() with an absolute deadline on
 * br_now_ns()'s clock; a negative one (or one over a century away) is
 * none. Context: any thread.
 */
BR_API int br_deadline_enter_at(br_deadline *scope, int64_t deadline_ns);

/**
 * br_deadline_leave - leave the scope *scope, and any scope entered in it
 * and not left, and restore the deadline that applied before it.
 *
 * Returns 0; -ETIMEDOUT if the scope's own deadline has passed (the
 * waits that failed in it may have failed for that); -EINVAL if scope is
 * NULL or not a scope the caller is inside (left already, or another
 * task's). Context: the task or thread that entered it.
 */
BR_API int br_deadline_leave(br_deadline *scope);

/**
 * br_deadline_current - the deadline (a br_now_ns() time) that the
 * calling task's or thread's scopes give its waits, -1 if none.
 * Context: any thread.
 */
BR_API int64_t br_deadline_current(void);
/** @} */

/* ------------------------------------------------------------------ */
/* Configuration and runtime                                           */
/* ------------------------------------------------------------------ */

/**
 * @defgroup braid_runtime Configuration and runtime
 * @{
 */

typedef struct br_runtime br_runtime;
typedef struct br_future br_future;

/* br_log_fn levels: the values of syslog(3)'s LOG_ERR, LOG_WARNING and
 * LOG_INFO, so that a hook may hand them to syslog() as they are. */
#define BR_LOG_ERR 3	 /**< misuse, or something that failed */
#define BR_LOG_WARNING 4 /**< a fallback in force, a stall */
#define BR_LOG_INFO 6	 /**< reports asked for (BRAID_STATS) */

/**
 * A receiver of braid's own messages (br_config.log): level is one of
 * BR_LOG_*, msg one message without the "braid: " prefix and without a
 * final newline (the BRAID_STATS table spans several lines), valid for
 * the call. It runs on the thread that has something to say: a worker,
 * the stall detector's thread, or the caller of br_runtime_new() or
 * br_runtime_free(), maybe on several at once. It must not block for
 * long, and must not wait for the runtime's tasks.
 */
typedef void (*br_log_fn)(int level, const char *msg, void *arg);

/* br_config.flags */
#define BR_CONFIG_NO_URING 0x1u	 /**< use the futex fallback, not io_uring */
#define BR_CONFIG_QUIET 0x2u	 /**< no warning about fallbacks */
#define BR_CONFIG_NO_ZYGOTE 0x4u /**< no process pools (see br_pool_new) */

/**
 * Runtime configuration. A zero field means "the environment variable if
 * set, else the default", so NULL and &(br_config){ .workers = 4 } both
 * work.
 */
typedef struct br_config {
	/**
	 * The number of worker threads, each with its loop: BRAID_WORKERS if
	 * set, else one per online CPU. At most 1024.
	 */
	unsigned workers;
	/**
	 * The size of each task's stack in bytes: BRAID_STACK_SIZE if set
	 * (bytes, or with a K or M suffix), else 64 KiB. A smaller size is
	 * raised to 16 KiB, and the size is rounded up to whole pages. At
	 * most 1 GiB.
	 */
	size_t stack_size;
	/**
	 * Submission-queue entries of each worker's ring: default 256, at
	 * most 32768.
	 */
	unsigned ring_entries;
	/** BR_CONFIG_* bits. BRAID_NO_URING=1 sets BR_CONFIG_NO_URING. */
	unsigned flags;
	/**
	 * The most threads the blocking pool runs at once:
	 * BRAID_BLOCKING_THREADS if set, else 64. At most 4096.
	 */
	unsigned blocking_threads;
	/**
	 * The most blocking calls queued while they wait for a thread:
	 * default 65536.
	 */
	unsigned blocking_queue;
	/**
	 * A blocking-pool thread idle this many milliseconds exits: default
	 * 10000.
	 */
	unsigned blocking_idle_ms;
	/**
	 * The stall detector's threshold in milliseconds: a task that holds
	 * its worker this long without suspending is reported once (see
	 * log). BRAID_STALL_MS if set, else 25. A negative value (or
	 * BRAID_STALL_MS=0) turns the detector off. At most 3600000.
	 */
	int stall_ms;
	/**
	 * Where braid's own messages go: the warning that io_uring is
	 * unavailable, stall reports, misuse such as br_runtime_free()
	 * from a worker, a BRAID_TRACE file that cannot be written, and
	 * the BRAID_STATS table. NULL writes each to stderr as
	 * "braid: <msg>" in one write. Two messages always go to stderr:
	 * a stack overflow's report (written from a signal handler) and a
	 * failed internal assertion (written as the process aborts).
	 */
	br_log_fn log;
	/** Passed to log as its last argument. */
	void *log_arg;
} br_config;

/* br_runtime_features() bits: what the kernel gave this runtime. */
/** Workers park in io_uring. */
#define BR_FEAT_URING 0x01u
/** Rings are set up with IORING_SETUP_SINGLE_ISSUER. */
#define BR_FEAT_SINGLE_ISSUER 0x02u
/** Rings are set up with IORING_SETUP_DEFER_TASKRUN. */
#define BR_FEAT_DEFER_TASKRUN 0x04u
/** Workers wake each other with IORING_OP_MSG_RING. */
#define BR_FEAT_MSG_RING 0x08u
/** Plain threads wake workers with IORING_REGISTER_SEND_MSG_RING. */
#define BR_FEAT_SEND_MSG_RING 0x10u
/** Stack guard pages are made with MADV_GUARD_INSTALL. */
#define BR_FEAT_GUARD_INSTALL 0x20u
/** Rings are set up with IORING_SETUP_COOP_TASKRUN. */
#define BR_FEAT_COOP_TASKRUN 0x40u
/** Writers send through registered files. */
#define BR_FEAT_FIXED_FILES 0x80u

/**
 * br_runtime_new - start a runtime: its worker threads, each with a loop.
 *
 * Several runtimes may live in one process; they never share a worker.
 * If io_uring cannot be set up (old kernel, seccomp, io_uring_disabled),
 * the runtime still starts, says so once (a BR_LOG_WARNING message, see
 * br_config.log; none with BR_CONFIG_QUIET), and parks workers in
 * ppoll() with I/O waiting for readiness; br_runtime_features() tells
 * which.
 *
 * On success stores a new runtime in *out and returns 0. Errors: -EINVAL
 * (out NULL, a config field out of range), -ENOMEM, -EAGAIN (threads could
 * not be created). *out is untouched on failure. Context: any thread
 * outside a task's own runtime.
 */
BR_API int br_runtime_new(br_runtime **out, const br_config *cfg);

/**
 * br_runtime_free - shut a runtime down and free it.
 *
 * New spawns and callbacks fail with BR_ECLOSED from the moment it is
 * called; one already under way on another thread is waited for, and
 * then fails with BR_ECLOSED, or its task is dropped (BR_CANCELLED) or
 * has run. Every task still alive is cancelled (each sees -ECANCELED at
 * its next suspension point) and the call waits for them to return, then
 * joins the workers.
 * A task that never suspends again delays shutdown until it returns.
 * Blocking calls (br_spawn_blocking) still queued are cancelled; those
 * already running cannot be interrupted, and the call waits for them to
 * return (after the tasks have ended), then joins the pool's threads. A
 * blocking call that never returns therefore keeps br_runtime_free from
 * returning. Futures of the runtime's tasks and blocking calls stay valid
 * for whoever holds references. NULL is a no-op. Context: a plain thread
 * that is not one of rt's workers or blocking-pool threads (from inside
 * rt it would wait for itself).
 */
BR_API void br_runtime_free(br_runtime *rt);

/**
 * br_runtime_workers - the number of worker threads, 0 if rt is not a live
 * runtime. Context: any thread.
 */
BR_API unsigned br_runtime_workers(const br_runtime *rt);

/**
 * br_runtime_features - the BR_FEAT_* bits in force for rt, 0 if rt is not
 * a live runtime. Context: any thread.
 */
BR_API unsigned br_runtime_features(const br_runtime *rt);

/**
 * br_current_runtime - the runtime whose task or loop is calling, or NULL
 * on a plain thread. Context: any thread.
 */
BR_API br_runtime *br_current_runtime(void);

/**
 * br_worker_id - the index (0..workers-1) of the worker running the
 * calling task or loop callback, -1 on a plain thread. A task may move
 * between workers at any suspension point, so the value is only a hint
 * unless the task is pinned. Context: any thread.
 */
BR_API int br_worker_id(void);

typedef void *(*br_task_fn)(void *arg);

/**
 * br_run - asyncio.run(): start a runtime, run main(arg) as a task, wait
 * for it, shut the runtime down.
 *
 * Stores main's value in *value if value is not NULL. Returns 0, the
 * task's error if it failed or was cancelled, or br_runtime_new()'s error.
 * Context: a plain thread.
 */
BR_API int br_run(const br_config *cfg, br_task_fn main, void *arg,
		  void **value);
/** @} */

/* ------------------------------------------------------------------ */
/* Futures and promises                                                */
/* ------------------------------------------------------------------ */

/**
 * @defgroup braid_futures Futures and promises
 * @{
 */

typedef enum br_state {
	BR_PENDING = 0,
	BR_DONE = 1,	  /**< completed with a value */
	BR_FAILED = 2,	  /**< completed with an error and a message */
	BR_CANCELLED = 3, /**< cancelled; error is -ECANCELED */
} br_state;

typedef void (*br_future_fn)(br_future *f, void *arg);

/**
 * br_await - wait for f to complete.
 *
 * From a task the task suspends and its worker runs other tasks; a task
 * that awaits a child no worker has started yet runs it at once on its own
 * stack. From a plain thread the thread blocks. If the future is DONE,
 * stores its value in *value (when value is not NULL) and returns 0;
 * otherwise stores NULL and returns the future's error (-ECANCELED for
 * BR_CANCELLED). If the awaiting task itself is cancelled while it waits,
 * returns -ECANCELED at once and passes the cancellation on to f (use
 * br_shield() to prevent that); the same when the caller's deadline
 * scope (br_deadline_enter) passes, with -ETIMEDOUT. Inside a scope a
 * task runs no child inline.
 *
 * Borrows f. Errors: BR_EBADOBJ if f is not a live future, BR_EDEADLK if
 * called from a loop callback on a future not yet complete.
 * Context: any thread; suspends a task, blocks a plain thread.
 */
BR_API int br_await(br_future *f, void **value);

/**
 * br_future_state - the state of f now; BR_FAILED if f is not a live
 * future. Borrows f. Context: any thread.
 */
BR_API br_state br_future_state(const br_future *f);

/**
 * br_future_error - 0 while pending or DONE, the error once FAILED,
 * -ECANCELED once CANCELLED, BR_EBADOBJ if f is not a live future.
 * Context: any thread.
 */
BR_API int br_future_error(const br_future *f);

/**
 * br_future_message - a message describing the failure, "" unless FAILED
 * or CANCELLED. Valid while the caller holds a reference to f.
 * Context: any thread.
 */
BR_API const char *br_future_message(const br_future *f);

/**
 * br_future_bytes - the owned byte buffer of a DONE future (process jobs,
 * subprocess output, br_promise_resolve_bytes()), NULL if it has none.
 * Stores its length in *len when len is not NULL (0 if none). Valid while
 * the caller holds a reference to f. Context: any thread.
 */
BR_API const void *br_future_bytes(const br_future *f, size_t *len);

/**
 * br_future_retain - take another reference to f. Returns f.
 * Context: any thread.
 */
BR_API br_future *br_future_retain(br_future *f);

/**
 * br_future_release - drop a reference; the last one frees f. Releasing a
 * task's future does not cancel the task: it runs on, detached, and frees
 * itself when it ends. NULL is a no-op. Context: any thread.
 */
BR_API void br_future_release(br_future *f);

/**
 * br_future_on_done - call cb(f, arg) once f completes.
 *
 * If f has already completed, cb runs at once on the calling thread;
 * otherwise it runs on the thread that completes f, after f's state is
 * final. cb must not block for long. Borrows f (braid keeps f alive until
 * cb has returned). Returns 0, -EINVAL if cb is NULL, BR_EBADOBJ, -ENOMEM.
 * Context: any thread.
 */
BR_API int br_future_on_done(br_future *f, br_future_fn cb, void *arg);

/**
 * br_promise_new - a future that the caller completes (asyncio's
 * loop.create_future()).
 *
 * Returns a new reference, never NULL (a static FAILED(-ENOMEM) future
 * when memory is short). Context: any thread.
 */
BR_API br_future *br_promise_new(void);

/**
 * br_promise_resolve - complete p as DONE with value.
 *
 * Returns 0; BR_EDONE if p has already completed (p is unchanged);
 * -EINVAL if p is not a promise; BR_EBADOBJ. Borrows p.
 * Context: any thread.
 */
BR_API int br_promise_resolve(br_future *p, void *value);

/**
 * br_promise_resolve_bytes - complete p as DONE with a byte buffer, read
 * back with br_future_bytes(). Takes ownership of buf (malloc'd; freed with
 * the future, also on error). buf may be NULL only with len 0 (no bytes).
 * Errors as br_promise_resolve, and -EINVAL for buf NULL with len > 0 (p
 * stays pending). Context: any thread.
 */
BR_API int br_promise_resolve_bytes(br_future *p, void *buf, size_t len);

/**
 * br_promise_reject - complete p as FAILED with error (< 0) and a copy of
 * message (may be NULL). Errors as br_promise_resolve, and -EINVAL if
 * error >= 0. Context: any thread.
 */
BR_API int br_promise_reject(br_future *p, int error, const char *message);

/**
 * br_cancel - request cancellation of f.
 *
 * A task that has not started never runs. A running task sees -ECANCELED
 * at its next suspension point (a sleep, an await, an I/O wait) and at
 * every one after it; it may clean up and return, and its future ends
 * BR_CANCELLED. A task that returns without reaching a suspension point
 * after the request keeps its value: a result is never dropped. A pending
 * promise, br_call_later() or combinator future becomes BR_CANCELLED at
 * once. A task that calls br_fail() ends FAILED even if it was cancelled:
 * an explicit failure is the more precise outcome. Returns 0 if the
 * request was made, BR_EDONE if f had already completed (or a callback
 * has already started), BR_EBADOBJ. Borrows f. Context: any thread.
 */
BR_API int br_cancel(br_future *f);
/** @} */

/* ------------------------------------------------------------------ */
/* Tasks                                                               */
/* ------------------------------------------------------------------ */

/**
 * @defgroup braid_tasks Tasks
 * @{
 */

/* br_spawn_opts.flags */
#define BR_SPAWN_PINNED 0x1u /**< run only on opts.worker; never stolen */

/** Bytes of a task's name that are kept, its final NUL included. */
#define BR_TASK_NAME_MAX 32

typedef struct br_spawn_opts {
	size_t stack_size; /**< 0: the runtime's; rounded up to whole pages */
	unsigned worker;   /**< with BR_SPAWN_PINNED: the worker index */
	unsigned flags;	   /**< BR_SPAWN_* */
	/**
	 * The task's name, copied (cut to BR_TASK_NAME_MAX - 1 bytes), or
	 * NULL for none: see br_task_set_name().
	 */
	const char *name;
} br_spawn_opts;

/**
 * br_spawn - create a task running fn(arg) on rt (asyncio.create_task).
 *
 * The task is a small record until a worker starts it; then it gets a
 * fiber and a stack. Its future completes with fn's return value, or with
 * the error set by br_fail(). Spawned from a task of rt, it goes to the
 * spawning worker's queue, where idle workers steal it; from elsewhere,
 * to rt's injection queue.
 *
 * Start order. Tasks spawned together from a task (or a loop callback) of rt
 * start newest first on the spawning worker (depth first, as Cilk and oneTBB
 * do: the child spawned last is still in cache, and br_await() or
 * br_gather() of a child that has not started runs it inline, after any
 * unstarted siblings spawned later), while idle workers steal the oldest
 * first. The wait is bounded all the same: one pick in 61 takes the worker's
 * oldest task instead of its newest, so a task never waits behind an endless
 * stream of newer ones. Tasks spawned from a plain thread (or another
 * runtime's task) start in creation order, as asyncio's do, each on
 * whichever worker takes it first, so consecutive ones may run at the same
 * time; a worker takes from that queue at least once in 61 picks. Code that
 * needs one task to start before another should wait for it, not rely on the
 * order.
 *
 * Returns a new reference, never NULL; a FAILED future with -EINVAL (fn
 * NULL), BR_EBADOBJ (rt not a runtime), BR_ECLOSED (rt shutting down) or
 * -ENOMEM. Context: any thread.
 */
BR_API br_future *br_spawn(br_runtime *rt, br_task_fn fn, void *arg);

/**
 * br_spawn_on - br_spawn() pinned to worker (0..workers-1): the task runs
 * only there and is never stolen (thread-per-core style). Tasks pinned to
 * one worker start in creation order, from any thread.
 * Errors as br_spawn, and -EINVAL if worker is out of range.
 * Context: any thread.
 */
BR_API br_future *br_spawn_on(br_runtime *rt, unsigned worker, br_task_fn fn,
			      void *arg);

/**
 * br_spawn_ex - br_spawn() with options (opts may be NULL).
 * Errors as br_spawn_on, and -EINVAL for a stack size over 1 GiB or
 * unknown flags. Context: any thread.
 */
BR_API br_future *br_spawn_ex(br_runtime *rt, br_task_fn fn, void *arg,
			      const br_spawn_opts *opts);

/**
 * br_fail - make the calling task end FAILED with code (< 0) and a copy of
 * message when it returns. Returns NULL, so a task can write
 * `return br_fail(-EIO, "disk gone");`. A code >= 0 becomes
 * BR_ETASKFAILED. Outside a task it does nothing.
 * Context: task only.
 */
BR_API void *br_fail(int code, const char *message);

/**
 * br_cancelled - 1 if cancellation of the calling task has been requested,
 * else 0 (also outside a task). Context: any thread.
 */
BR_API int br_cancelled(void);

/**
 * br_current - the calling task's own future, borrowed (valid while the
 * task runs), NULL outside a task. Context: any thread.
 */
BR_API br_future *br_current(void);

/**
 * br_task_set_name - name the calling task (a copy of name, cut to
 * BR_TASK_NAME_MAX - 1 bytes; NULL or "" removes it), as
 * br_spawn_opts.name does at spawn. The stall detector's reports and the
 * BRAID_TRACE timeline show a task's name in place of its function's. A
 * child that br_await() runs inline on its parent's stack has a name of
 * its own, but is reported under its parent's, as its run slices are
 * its parent's. Returns 0, BR_ENOTTASK outside a task, -ENOMEM (the name
 * is unchanged). Context: task only.
 */
BR_API int br_task_set_name(const char *name);

/**
 * br_task_name - the calling task's name, NULL if it has none or outside
 * a task. Valid until the task renames itself or ends.
 * Context: any thread.
 */
BR_API const char *br_task_name(void);

/**
 * Task-local values (asyncio's contextvars, Go's context values): a
 * pointer per task and key, for request ids and the like. Keys are made
 * once for the process (at most BR_TASK_LOCAL_KEYS of them) and valid in
 * every runtime. Each task starts with every value NULL, except those of
 * keys made with BR_TASK_LOCAL_INHERIT, which a task spawned (br_spawn
 * and its kin, br_group_spawn) starts with its spawner's, the same
 * pointer. A child that br_await() runs inline on its parent's stack is
 * a task of its own here too. Outside a task (a plain thread, a loop
 * callback) the values are the thread's own.
 */
typedef unsigned br_task_local_key;

/** Keys a process may make at most. */
#define BR_TASK_LOCAL_KEYS 128
/** br_task_local_key_new flag: tasks spawned start with the value. */
#define BR_TASK_LOCAL_INHERIT 0x1u

/**
 * br_task_local_key_new - make a key. destroy (may be NULL) is called
 * with each non-NULL value still set when its task ends (on the task's
 * stack, before its future completes: it must not wait, nor call the
 * br_task_local_* functions) or its thread exits. flags: 0 or
 * BR_TASK_LOCAL_INHERIT, which takes no destroy (several tasks share
 * such a value: the program frees it).
 *
 * Stores the key (never 0) in *key and returns 0; -EINVAL (key NULL,
 * unknown flags, BR_TASK_LOCAL_INHERIT with destroy), -EAGAIN (all
 * BR_TASK_LOCAL_KEYS are made). Keys are never freed. Context: any
 * thread.
 */
BR_API int br_task_local_key_new(br_task_local_key *key,
				 void (*destroy)(void *value), unsigned flags);

/**
 * br_task_local_set - set the calling task's (or thread's) value for key;
 * the value it replaces is not destroyed. Returns 0, -EINVAL (not a key
 * made by br_task_local_key_new), -ENOMEM. Context: any thread.
 */
BR_API int br_task_local_set(br_task_local_key key, void *value);

/**
 * br_task_local_get - the calling task's (or thread's) value for key,
 * NULL if none is set or key is not a key. Context: any thread.
 */
BR_API void *br_task_local_get(br_task_local_key key);
/** @} */

/* ------------------------------------------------------------------ */
/* Combinators and task groups                                         */
/* ------------------------------------------------------------------ */

/**
 * @defgroup braid_combinators Combinators and task groups
 * @{
 */

/* br_gather_ex flags */
#define BR_GATHER_FAIL_FAST 0x1u /**< first failure cancels the rest */

/**
 * br_gather - wait for every future in fs[0..n) (asyncio.gather).
 *
 * Stores each DONE future's value in values[i] (NULL for the others) in
 * argument order, when values is not NULL. Always waits for all of them.
 * Returns 0 if all are DONE, else the error of the first one, in argument
 * order, that is not. Borrows fs[i]. Errors: -EINVAL (fs NULL with n > 0),
 * BR_EBADOBJ, and br_await's: -ECANCELED or -ETIMEDOUT when the wait
 * itself ends (the caller was cancelled, or its deadline scope passed),
 * and the inputs still pending are cancelled then. n == 0 returns 0.
 * Context: any thread; suspends a task, blocks a plain thread.
 */
BR_API int br_gather(br_future *const *fs, size_t n, void **values);

/**
 * br_gather_ex - br_gather() with flags. With BR_GATHER_FAIL_FAST the first
 * input to fail or be cancelled (in completion order) cancels all the
 * others; the call still waits for every input, and returns that first
 * error. Context: as br_gather.
 */
BR_API int br_gather_ex(br_future *const *fs, size_t n, void **values,
			unsigned flags);

/**
 * br_wait_any - wait until at least one of fs[0..n) has completed
 * (asyncio.wait with FIRST_COMPLETED).
 *
 * Returns the lowest index of a completed future, or -ETIMEDOUT after
 * timeout_ms (< 0: no timeout; 0: just poll). Cancels nothing. Borrows
 * fs[i]. Errors: -EINVAL (fs NULL or n == 0), BR_EBADOBJ, -ECANCELED (the
 * waiting task was cancelled); -ETIMEDOUT also when the caller's deadline
 * scope passes. Context: any thread; suspends a task,
 * blocks a plain thread.
 */
BR_API int br_wait_any(br_future *const *fs, size_t n, int64_t timeout_ms);

/**
 * br_wait_for - br_await() with a deadline (asyncio.wait_for).
 *
 * If f has not completed after timeout_ms (< 0: no timeout), requests its
 * cancellation and returns -ETIMEDOUT without waiting for it to end.
 * Otherwise as br_await. Borrows f. Context: as br_await.
 */
BR_API int br_wait_for(br_future *f, int64_t timeout_ms, void **value);

/**
 * br_shield - a future that completes as f does, but whose cancellation
 * does not reach f (asyncio.shield). Returns a new reference, never NULL.
 * Borrows f. Context: any thread.
 */
BR_API br_future *br_shield(br_future *f);

typedef struct br_as_completed br_as_completed;

/**
 * br_as_completed_new - an iterator over fs[0..n) in completion order.
 *
 * Returns a new iterator (free it with br_as_completed_free), or NULL if
 * fs is NULL with n > 0, an element is not a live future, or memory is
 * short. The iterator holds its own references to the futures.
 * Context: any thread.
 */
BR_API br_as_completed *br_as_completed_new(br_future *const *fs, size_t n);

/**
 * br_as_completed_next_ex - wait for the next input to complete and store
 * it in *out (one of the caller's own pointers from fs, borrowed). Inputs
 * complete before br_as_completed_new() come out first, in argument
 * order.
 *
 * Returns 0 with *out set; otherwise stores NULL in *out and returns
 * BR_EDONE once every input has been returned, -ECANCELED if the waiting
 * task is cancelled (the inputs are not cancelled, and the iterator
 * stays usable), BR_EDEADLK from a loop callback when nothing has
 * completed, -EINVAL (it or out NULL), BR_EBADOBJ (it is not a live
 * iterator). Context: any thread; suspends a task, blocks a plain
 * thread.
 */
BR_API int br_as_completed_next_ex(br_as_completed *it, br_future **out);

/**
 * br_as_completed_next - br_as_completed_next_ex() returning the future,
 * or NULL for every outcome other than 0: the end, a cancellation of the
 * waiting task, a loop callback. Use the _ex form to tell them apart.
 * Context: as br_as_completed_next_ex.
 */
BR_API br_future *br_as_completed_next(br_as_completed *it);

/** br_as_completed_free - free the iterator; NULL is a no-op. */
BR_API void br_as_completed_free(br_as_completed *it);

typedef struct br_group br_group;

/**
 * br_group_new - a task group (asyncio.TaskGroup, libdill bundles): tasks
 * spawned into it are waited for together, and the first one to fail
 * cancels all the others.
 *
 * Stores the group in *out. Errors: -EINVAL, BR_EBADOBJ, -ENOMEM.
 * Context: any thread.
 */
BR_API int br_group_new(br_group **out, br_runtime *rt);

/**
 * br_group_spawn - br_spawn() into the group. Returns a new reference,
 * never NULL. A group that has already seen a failure, or is being
 * waited for and finished, gives a CANCELLED future without running fn.
 * Context: any thread.
 */
BR_API br_future *br_group_spawn(br_group *g, br_task_fn fn, void *arg);

/**
 * br_group_wait - wait for every task of the group, including tasks
 * spawned while waiting. Returns 0 if none ended FAILED (tasks cancelled,
 * by the group or anyone else, are not failures), else the first
 * failure's error (in completion order). If the waiting task is cancelled,
 * cancels the group's tasks, still waits for them, and returns -ECANCELED;
 * likewise with -ETIMEDOUT when the caller's deadline scope passes.
 * Context: any thread; suspends a task, blocks a plain thread.
 */
BR_API int br_group_wait(br_group *g);

/** br_group_cancel - request cancellation of every task in the group. */
BR_API int br_group_cancel(br_group *g);

/**
 * br_group_free - cancel the group's remaining tasks, wait for them, free
 * the group. NULL is a no-op. Context: as br_group_wait.
 */
BR_API void br_group_free(br_group *g);
/** @} */

/* ------------------------------------------------------------------ */
/* Callbacks on the loop                                               */
/* ------------------------------------------------------------------ */

/**
 * @defgroup braid_callbacks Callbacks on the loop
 * @{
 */

typedef void (*br_callback_fn)(void *arg);

/**
 * br_call_soon - run fn(arg) on one of rt's loops, on the worker's own
 * stack without a fiber (asyncio's loop.call_soon). fn must not suspend:
 * task-only calls return BR_ENOTTASK there.
 *
 * Returns a new reference to a future that completes (value NULL) once fn
 * has run; br_cancel() on it before then keeps fn from running. A
 * callback still pending when its runtime is freed ends BR_CANCELLED.
 * Errors on the future: -EINVAL, BR_EBADOBJ, BR_ECLOSED, -ENOMEM.
 * Context: any thread.
 */
BR_API br_future *br_call_soon(br_runtime *rt, br_callback_fn fn, void *arg);

/**
 * br_call_later - br_call_soon() after delay_ms (<= 0: as soon as
 * possible). Cancel it with br_cancel() on the returned future.
 * Context: any thread.
 */
BR_API br_future *br_call_later(br_runtime *rt, int64_t delay_ms,
				br_callback_fn fn, void *arg);

/**
 * br_call_every - run fn(arg) every period_ms milliseconds (> 0), on the
 * ticks of a br_ticker: the first a period from now, none skipped while
 * fn keeps up, none made up when it does not (a run of fn longer than
 * the period skips the ticks it overlapped). Unlike br_call_soon's, fn
 * runs in a task of rt, so it may wait.
 *
 * Returns a new reference to that task's future, never NULL. It stays
 * pending until br_cancel() (from anywhere, fn included: br_current()
 * is that future) or br_runtime_free() stops the task at its next wait,
 * and then ends BR_CANCELLED; a run of fn in progress finishes first.
 * Errors on the future: -EINVAL (fn NULL, period_ms <= 0), and
 * br_spawn's. Context: any thread.
 */
BR_API br_future *br_call_every(br_runtime *rt, int64_t period_ms,
				br_callback_fn fn, void *arg);
/** @} */

/**
 * Signals through the loop. A signal object reads the signals of a set
 * from a signalfd through the ring: a task waiting for SIGTERM costs
 * nothing until it comes, and then runs as ordinary task code.
 * br_signal_new blocks the set in the calling thread; braid's own threads
 * block every asynchronous signal, so a program that calls it from its
 * main thread before it starts threads of its own (or blocks the set in
 * them itself) gets every such signal there. The signals stay blocked
 * after br_signal_free.
 */
typedef struct br_signal br_signal;

/**
 * br_signal_new - a signal object for the signals in set. Returns 0,
 * -EINVAL (out or set NULL, or set holds SIGKILL, SIGSTOP or a fault
 * signal), -ENOMEM, or the error of signalfd(2). Context: any thread (the
 * program's main thread, see above).
 */
BR_API int br_signal_new(br_signal **out, const sigset_t *set);

/**
 * br_signal_next - wait for the next signal of s's set and return its
 * number; or -ECANCELED (the task was cancelled), -ETIMEDOUT (its
 * deadline scope passed), -EBUSY (another call waits on s), -EINVAL (s
 * NULL), BR_EBADOBJ. Context: any thread;
 * suspends a task, blocks a plain thread.
 */
BR_API int br_signal_next(br_signal *s);

/** br_signal_free - close s. NULL is a no-op. Context: any thread, with
 * no call in progress on s. */
BR_API void br_signal_free(br_signal *s);

/** A signal handler run on the loop: the signal's number, and the arg
 * given to br_signal_handler(). */
typedef void (*br_signal_fn)(int signo, void *arg);

/**
 * br_signal_handler - asyncio's loop.add_signal_handler: a task of rt that
 * calls fn(signo, arg) on the loop each time signo arrives, as ordinary
 * task code (not in a signal handler). Returns a new reference to the
 * task's future; br_cancel() removes the handler. FAILED with -EINVAL
 * (fn NULL, signo out of range), -ENOMEM or br_signal_new's error.
 * Context: as br_signal_new.
 */
BR_API br_future *br_signal_handler(br_runtime *rt, int signo, br_signal_fn fn,
				    void *arg);

/* ------------------------------------------------------------------ */
/* I/O on the loops                                                    */
/* ------------------------------------------------------------------ */

/**
 * @defgroup braid_io I/O on the loops
 *
 * Every call below looks blocking and returns what the kernel reports: a
 * byte count or 0 on success, a negative errno on failure (never through
 * errno). Called from a task, the operation goes through its worker's
 * io_uring and suspends only that task; submissions are batched, one
 * io_uring_enter per loop tick for all of them. Called from a plain
 * thread, it is the ordinary blocking syscall, so code written for braid
 * runs outside it too. From a loop callback (br_call_soon) they return
 * BR_ENOTTASK: a callback must not stall its loop.
 *
 * Buffers, iovecs, addresses and message headers must stay valid until
 * the call returns, and are never touched by the kernel after it has.
 * A negative descriptor gives -EBADF at once, from a task or a plain
 * thread, whatever the deadline.
 *
 * Cancellation: br_cancel() on a task blocked in one of these cancels the
 * operation in the kernel (IORING_OP_ASYNC_CANCEL on the ring that owns
 * it). The call still waits for the operation's final completion and
 * returns -ECANCELED, or the real result if the operation finished first:
 * a result is never dropped.
 *
 * Deadlines: br_io_timeout() gives the calling task a timeout applied to
 * each later call, and the *_timeout variants take one for a single call;
 * a deadline scope (br_deadline_enter) gives one to every call inside it.
 * A call's deadline is the nearer of its own and the scope's. An
 * operation still pending at its deadline is cancelled and the call
 * returns -ETIMEDOUT (or the result, if it won the race). Timeouts are
 * linked to the operation in the kernel (IORING_OP_LINK_TIMEOUT).
 *
 * Without io_uring (br_runtime_features() lacks BR_FEAT_URING) the calls
 * give the same answers, and none blocks the worker thread, whatever mode
 * the fd is in: a task makes each call non-blocking by itself
 * (MSG_DONTWAIT, RWF_NOWAIT) and waits for readiness on its loop when it
 * must. A regular file the page cache cannot serve at once, an fd that
 * refuses RWF_NOWAIT (a terminal), fsync, statx and an openat that needs
 * a disk are made on the blocking pool; such a call cannot be cancelled
 * once it runs. accept and connect on a blocking socket set O_NONBLOCK on
 * it for the one call. close and shutdown run as plain syscalls.
 *
 * Sockets made by braid (br_accept, br_socket, the tcp/unix/udp helpers)
 * are close-on-exec.
 * @{
 */

/**
 * br_io_timeout - set the calling task's timeout for each later I/O call,
 * in milliseconds; < 0 means none (the default). Returns the previous
 * value. From a plain thread it sets the thread's own, which the calls
 * honour by polling first. It is the per-call case of a deadline scope:
 * a call's deadline is the nearer of now + timeout_ms and the scope's
 * (br_deadline_enter). Context: any thread.
 */
BR_API int64_t br_io_timeout(int64_t timeout_ms);

BR_API ssize_t br_read(int fd, void *buf, size_t len);
BR_API ssize_t br_write(int fd, const void *buf, size_t len);
BR_API ssize_t br_pread(int fd, void *buf, size_t len, off_t offset);
BR_API ssize_t br_pwrite(int fd, const void *buf, size_t len, off_t offset);
BR_API ssize_t br_readv(int fd, const struct iovec *iov, int iovcnt);
BR_API ssize_t br_writev(int fd, const struct iovec *iov, int iovcnt);
BR_API ssize_t br_recv(int fd, void *buf, size_t len, int flags);
BR_API ssize_t br_send(int fd, const void *buf, size_t len, int flags);
BR_API ssize_t br_recvmsg(int fd, struct msghdr *msg, int flags);
BR_API ssize_t br_sendmsg(int fd, const struct msghdr *msg, int flags);
BR_API ssize_t br_recvfrom(int fd, void *buf, size_t len, int flags,
			   struct sockaddr *addr, socklen_t *addrlen);
BR_API ssize_t br_sendto(int fd, const void *buf, size_t len, int flags,
			 const struct sockaddr *addr, socklen_t addrlen);

/**
 * br_accept - accept a connection on listening socket fd. flags are
 * accept4()'s; SOCK_CLOEXEC is always added. Returns the new fd.
 */
BR_API int br_accept(int fd, struct sockaddr *addr, socklen_t *addrlen,
		     int flags);
BR_API int br_connect(int fd, const struct sockaddr *addr, socklen_t len);

/**
 * br_close - close(2). Like close(2), it releases fd whatever it
 * returns, and it is not cancellable: in a task that has been cancelled
 * it still closes fd and returns close's result (0, or its error), so a
 * cancelled task can release its descriptors; when the ring cannot take
 * the request (no SQE), fd is closed with close(2) at once. No deadline
 * applies. Returns 0 or a negative errno.
 */
BR_API int br_close(int fd);
BR_API int br_shutdown(int fd, int how);

/** br_openat - openat(2); O_CLOEXEC is always added. Returns the fd. */
BR_API int br_openat(int dirfd, const char *path, int flags, mode_t mode);

/** br_fsync - fsync(2), or fdatasync(2) when datasync is non-zero. */
BR_API int br_fsync(int fd, int datasync);

struct statx;
/** br_statx - statx(2). */
BR_API int br_statx(int dirfd, const char *path, int flags, unsigned mask,
		    struct statx *out);

/**
 * br_unlinkat - unlinkat(2) (flags 0 or AT_REMOVEDIR), br_renameat -
 * renameat(2), br_mkdirat - mkdirat(2): through the ring where the kernel
 * has the operation (Linux 5.11, 5.11 and 5.15), else on the runtime's
 * blocking pool, so a slow disk never blocks a loop; from a plain thread
 * the plain call. Return 0 or the call's negative errno; -EFAULT for a
 * NULL path. Context: any thread; suspends a task, blocks a plain
 * thread.
 */
BR_API int br_unlinkat(int dirfd, const char *path, int flags);
BR_API int br_renameat(int olddirfd, const char *oldpath, int newdirfd,
		       const char *newpath);
BR_API int br_mkdirat(int dirfd, const char *path, mode_t mode);

/**
 * br_listdir - the names in directory path, but "." and "..", sorted
 * (strcmp): stores a NULL-terminated array of them in *names, one
 * allocation to free() with the strings in it, and returns how many. Runs
 * on the runtime's blocking pool from a task (io_uring has no directory
 * read). Errors: -EFAULT (NULL argument), -ENOMEM, BR_ENOTTASK (a loop
 * callback), opendir's errno
 * (-ENOENT, -ENOTDIR, -EACCES, ...); *names is then NULL. Context: any
 * thread; suspends a task, blocks a plain thread.
 */
BR_API ssize_t br_listdir(const char *path, char ***names);

/**
 * br_read_file - the whole file at path, in one call: stores a malloc'd
 * buffer (to free(), with a zero byte after the data, for text) in *buf
 * and returns the file's length; -EFBIG if it holds more than max bytes,
 * or the error of open or read (*buf is then NULL). Context: any thread;
 * suspends a task, blocks a plain thread.
 */
BR_API ssize_t br_read_file(const char *path, void **buf, size_t max);

/**
 * br_write_file - make the file at path hold exactly len bytes of buf
 * (created with mode, or truncated): returns len, or the error of open,
 * write or close. Not atomic: a reader may see it part written (write to
 * a temporary and br_renameat() it for that). Context: any thread;
 * suspends a task, blocks a plain thread.
 */
BR_API ssize_t br_write_file(const char *path, const void *buf, size_t len,
			     mode_t mode);

/**
 * br_splice - splice(2): move up to len bytes from fd_in to fd_out, one of
 * which must be a pipe. An offset of -1 means the fd's own position.
 */
BR_API ssize_t br_splice(int fd_in, int64_t off_in, int fd_out, int64_t off_out,
			 size_t len, unsigned flags);

/**
 * br_poll - wait until fd is ready for events (POLLIN, POLLOUT, ...).
 * Returns the events that are ready (> 0), or a negative errno.
 */
BR_API int br_poll(int fd, short events);

/** Single-call deadlines: as the calls above, with timeout_ms (< 0: the
 * task's br_io_timeout). -ETIMEDOUT when it passes. */
BR_API ssize_t br_read_timeout(int fd, void *buf, size_t len,
			       int64_t timeout_ms);
BR_API ssize_t br_write_timeout(int fd, const void *buf, size_t len,
				int64_t timeout_ms);
BR_API ssize_t br_recv_timeout(int fd, void *buf, size_t len, int flags,
			       int64_t timeout_ms);
BR_API ssize_t br_send_timeout(int fd, const void *buf, size_t len, int flags,
			       int64_t timeout_ms);
BR_API int br_accept_timeout(int fd, struct sockaddr *addr, socklen_t *addrlen,
			     int flags, int64_t timeout_ms);
BR_API int br_connect_timeout(int fd, const struct sockaddr *addr,
			      socklen_t len, int64_t timeout_ms);
BR_API int br_poll_timeout(int fd, short events, int64_t timeout_ms);

/**
 * br_write_all / br_send_all - write all len bytes, looping over short
 * writes. Returns len, or a negative errno (bytes already written are
 * lost to the caller's view: treat the stream as broken).
 */
BR_API ssize_t br_write_all(int fd, const void *buf, size_t len);
BR_API ssize_t br_send_all(int fd, const void *buf, size_t len, int flags);

/* ---- sockets ---- */

/**
 * br_tcp_listen - a TCP socket bound to host:port and listening, with
 * SO_REUSEADDR. host may be numeric or a name ("localhost"), or NULL for
 * every address; port 0 picks a free one (see br_local_port). backlog <= 0
 * means SOMAXCONN. Returns the fd or a negative errno (-ENOENT for a name
 * that does not resolve). Name resolution never runs on a loop: a task
 * waits for it on the blocking pool (br_spawn_blocking).
 */
BR_API int br_tcp_listen(const char *host, uint16_t port, int backlog);

/**
 * br_getaddrinfo - getaddrinfo(3) that never blocks a loop: a name is
 * resolved on the runtime's blocking pool while the calling task waits
 * (a numeric host with a numeric service, or none, needs no resolver and
 * is answered at once, even in a loop callback; a name there gets
 * BR_ENOTTASK); from a plain thread it is the plain call. hints may be
 * NULL (any family, AI_ADDRCONFIG). Stores the list in *res, to free
 * with freeaddrinfo(3), and returns 0; or -EINVAL (res NULL, or host and service both NULL),
 * -ENOENT (no such name or service), -EAGAIN (try again later), -ENOMEM,
 * -EAFNOSUPPORT, -ECANCELED (the task was cancelled: the lookup finishes
 * on its own and is dropped), -ETIMEDOUT (its deadline scope passed;
 * likewise). Context: any thread; suspends a task,
 * blocks a plain thread.
 */
BR_API int br_getaddrinfo(const char *host, const char *service,
			  const struct addrinfo *hints, struct addrinfo **res);

/**
 * br_tcp_connect - connect to host:port, trying each address the name
 * resolves to in turn; TCP_NODELAY is set. Returns the fd or the last
 * address's negative errno. Honours the task's br_io_timeout per address.
 */
BR_API int br_tcp_connect(const char *host, uint16_t port);

/** br_unix_listen / br_unix_connect - the same for a Unix-domain stream
 * socket at path (a leading '@' names an abstract socket). */
BR_API int br_unix_listen(const char *path, int backlog);
BR_API int br_unix_connect(const char *path);

/**
 * br_udp_bind - a UDP socket bound to host:port (NULL host: any). Use
 * br_sendto/br_recvfrom on it. Returns the fd or a negative errno.
 */
BR_API int br_udp_bind(const char *host, uint16_t port);

/** br_local_port - the local port socket fd is bound to, or a negative
 * errno. */
BR_API int br_local_port(int fd);

/**
 * Acceptors: a server's stream of connections from one listening socket
 * through a single multishot accept (IORING_ACCEPT_MULTISHOT), so that a
 * busy listener costs no SQE per connection. Without io_uring, without
 * multishot accept in the kernel, or from a plain thread, each call is a
 * br_accept().
 */
typedef struct br_acceptor br_acceptor;

/**
 * br_acceptor_new - an acceptor for listening socket lfd, which it
 * borrows (close lfd after br_acceptor_free). Returns 0, -EINVAL (out
 * NULL), -EBADF (lfd < 0), -ENOMEM. Context: any thread.
 */
BR_API int br_acceptor_new(br_acceptor **out, int lfd);

/**
 * br_acceptor_next - the next connection: a new close-on-exec fd, or the
 * accept's negative errno (-EMFILE, ...; the acceptor stays usable), or
 * -ECANCELED if the calling task is cancelled while waiting, -ETIMEDOUT
 * if its deadline scope passes (connections that arrive meanwhile wait
 * for the next call). The first call from a
 * task ties the acceptor to that task's worker, and later calls move
 * there; only tasks of that runtime may call it then (-EINVAL
 * otherwise). One caller at a time: a call while another task waits in
 * one gives -EBUSY. BR_EBADOBJ for a freed acceptor (within the bound
 * the conventions at the top of braid.h give).
 * Context: a task (suspends), or a plain thread (blocks).
 */
BR_API int br_acceptor_next(br_acceptor *a);

/**
 * br_acceptor_free - stop accepting, close the connections accepted but
 * never taken, and free a; waits for the kernel to let go of it. No call
 * may be in progress on a. NULL is a no-op. Context: any thread; from a
 * plain thread it waits for a task on the acceptor's worker.
 */
BR_API void br_acceptor_free(br_acceptor *a);

/**
 * Readers: a connection's incoming bytes from one multishot recv into
 * buffers the kernel picks from its worker's provided-buffer ring
 * (IORING_RECV_MULTISHOT with IOSQE_BUFFER_SELECT), so a busy connection
 * costs no SQE per receive and holds no buffer while idle. The data is
 * lent, not copied. Without io_uring, without multishot recv or buffer
 * rings in the kernel, or from a plain thread, each call is a br_recv()
 * into the reader's own buffer; on a pipe, a file or a terminal, a
 * br_read(). The StreamReader verbs (readline, readuntil, readexactly)
 * read on top of it and keep what follows what they return for the next
 * call of any of them, br_reader_recv() included.
 */
typedef struct br_reader br_reader;

/**
 * br_reader_new - a reader for fd, a connected socket or any descriptor
 * open for reading (pipe, file at its current position, terminal), which
 * it borrows (close fd after br_reader_free). Returns 0, -EINVAL (out
 * NULL), -EBADF (fd < 0, not open for reading, a directory), the error of
 * fcntl or fstat, -ENOMEM. Context: any thread.
 */
BR_API int br_reader_new(br_reader **out, int fd);

/**
 * br_reader_recv - the next bytes received: stores a pointer to them in
 * *data and returns how many (at most 4096), 0 at end of stream, or the
 * receive's negative errno (-ECONNRESET, ...; -ECANCELED if the calling
 * task is cancelled while waiting, -ETIMEDOUT if its deadline scope
 * passes: bytes that arrive meanwhile wait for the next call). *data
 * stays valid until the next call on r or
 * br_reader_free(r). The first call from a task ties the reader to that
 * task's worker; later calls move there, and only tasks of that runtime
 * may call it (-EINVAL otherwise). One caller at a time: a call while
 * another task waits in one gives -EBUSY. BR_EBADOBJ for a freed reader
 * (within the bound the conventions at the top of braid.h give).
 * Context: a task (suspends), or a plain thread (blocks).
 */
BR_API ssize_t br_reader_recv(br_reader *r, const void **data);

/**
 * br_reader_readuntil - read up to and including the first dlen bytes
 * equal to delim (asyncio's StreamReader.readuntil): copies them into buf
 * and returns their length, at most max. Returns -EMSGSIZE if the
 * delimiter is not within the first max bytes, 0 at the end of the stream
 * with nothing pending, -EPIPE if the stream ends before a delimiter, or
 * the receive's error; in each of these cases every byte received stays
 * readable by the next call. -EINVAL (r, delim or buf NULL, dlen 0),
 * BR_EBADOBJ. Context: as br_reader_recv.
 */
BR_API ssize_t br_reader_readuntil(br_reader *r, const void *delim, size_t dlen,
				   void *buf, size_t max);

/**
 * br_reader_readline - br_reader_readuntil() with a newline as the
 * delimiter, but a last line without its newline is returned whole at the
 * end of the stream, as asyncio's readline does. Context: as
 * br_reader_recv.
 */
BR_API ssize_t br_reader_readline(br_reader *r, void *buf, size_t max);

/**
 * br_reader_readexactly - read exactly n bytes into buf and return n, or
 * -EPIPE if the stream ends first (what came stays readable), or the
 * receive's error. Context: as br_reader_recv.
 */
BR_API ssize_t br_reader_readexactly(br_reader *r, void *buf, size_t n);

/**
 * br_reader_free - stop receiving, give the buffers back and free r;
 * waits for the kernel to let go of it. Bytes received but not yet taken
 * are dropped. No call may be in progress on r, and a reader a task has
 * used must be freed before its runtime. NULL is a no-op. Context: any
 * thread; from a plain thread it waits for a task on the reader's
 * worker.
 */
BR_API void br_reader_free(br_reader *r);

/**
 * Writers: a descriptor's outgoing bytes (a stream socket, a pipe, a file,
 * a terminal), copied and sent in order by one IORING_OP_SEND (or WRITE,
 * for what is not a socket) at a time on the ring of the writer's worker, while
 * the writing task goes on (asyncio's StreamWriter.write()). A server
 * that answers requests waits only for the next request, not for its
 * answer's send. Sends carry MSG_NOSIGNAL; br_io_timeout() does not
 * apply to them. Without io_uring, or from a plain thread while no task
 * has used the writer, each write is a br_send_all() and returns when it
 * is done (a cancellation or deadline there ends the stream: part of the
 * bytes may have gone). For large payloads that should not be copied,
 * br_send_all() on the fd after br_writer_drain().
 */
typedef struct br_writer br_writer;

/**
 * br_writer_new - a writer for fd: a connected stream socket, or any
 * descriptor open for writing (pipe, file at its current position,
 * terminal). Borrows fd: close it after br_writer_free (until then the
 * writer may hold it open through its ring). Returns 0, -EINVAL (out
 * NULL), -EBADF (fd < 0, not open for writing, a directory), the error
 * of fcntl or fstat, -ENOMEM. Context: any thread.
 */
BR_API int br_writer_new(br_writer **out, int fd);

/**
 * br_writer_write - queue n bytes of data to be sent after those written
 * before; returns n once they are copied. It waits only while 64 KiB or
 * more are queued, until at most 16 KiB are. A send that fails drops
 * everything queued, and this call and every later one returns its
 * negative errno (-EPIPE, -ECONNRESET, ...; -EIO if the socket took no
 * byte of a send). Not queued, with the stream intact: -ECANCELED (the
 * calling task was cancelled while waiting for room), -ETIMEDOUT (its
 * deadline scope passed meanwhile), -EBUSY (another
 * task is waiting in a call on w, or the ring has no free SQE), -ENOMEM,
 * -EINVAL (w NULL, data NULL with n > 0, or a writer tied to another
 * runtime), BR_ECLOSED (a plain thread's call while the runtime
 * closes), BR_EBADOBJ for a freed writer (within the bound the
 * conventions at the top give). The first call from a task
 * ties the writer to that task's worker (and registers fd with its ring
 * when it can: BR_FEAT_FIXED_FILES); later calls move there, and a plain
 * thread's call runs there as a task. A plain thread's call on a writer
 * no task has used yet must not overlap a task's call. Context: a task
 * (suspends only for room), or a plain thread (blocks).
 */
BR_API ssize_t br_writer_write(br_writer *w, const void *data, size_t n);

/**
 * br_writer_drain - wait until every byte written has been sent (taken
 * by the socket). Returns 0, the sticky send error, -ECANCELED (the
 * calling task was cancelled; the bytes are still queued and still
 * sent), -ETIMEDOUT (its deadline scope passed; likewise), -EBUSY,
 * -EINVAL, BR_ECLOSED, BR_EBADOBJ, as br_writer_write.
 * Context: a task (suspends), or a plain thread (blocks).
 */
BR_API int br_writer_drain(br_writer *w);

/**
 * br_writer_free - stop sending and free w; waits for the kernel to let
 * go of its buffers and unregisters fd. Bytes not yet sent are dropped:
 * call br_writer_drain() first to keep them. No call may be in progress
 * on w, and a writer a task has used must be freed before its runtime
 * (from a plain thread while the runtime closes, it is left allocated).
 * NULL is a no-op. Context: any thread; from a plain thread it waits
 * for a task on the writer's worker.
 */
BR_API void br_writer_free(br_writer *w);
/** @} */

/* ------------------------------------------------------------------ */
/* Synchronisation                                                     */
/* ------------------------------------------------------------------ */

/**
 * @defgroup braid_sync Synchronisation
 *
 * Mutex, condition variable, semaphore, event, wait group and read-write
 * lock. Each is a fixed-size object the caller embeds or declares, made
 * ready by its BR_*_INIT initialiser or its _init function; neither
 * allocates. Tasks and plain threads may use the same object at once:
 * a waiting task suspends (its worker runs other tasks), a waiting plain
 * thread sleeps on a futex. Waiters are served in FIFO order unless a
 * declaration says otherwise, and one release wakes only the waiters it
 * lets through.
 *
 * Common rules for the functions below:
 *   - Errors: -EINVAL for a NULL object or a bad argument; BR_EBADOBJ for
 *     an object destroyed with its _destroy function (or never
 *     initialised, where that shows).
 *   - _until variants take an absolute br_now_ns() deadline (< 0: none)
 *     and _for variants a timeout in milliseconds (< 0: none); both give
 *     -ETIMEDOUT when it passes first. A deadline already past still
 *     takes what is available at once.
 *   - A task cancelled (br_cancel) while it waits gets -ECANCELED, and
 *     so does one cancelled before it would have to wait; the object is
 *     left consistent. If the object was handed to the waiter in the
 *     same instant (a lock, a semaphore unit, a signal), the wait
 *     succeeds instead: a grant is never dropped.
 *   - Inside a deadline scope (br_deadline_enter) a wait also ends with
 *     -ETIMEDOUT once the scope's deadline passes (the nearer of it and
 *     an _until or _for deadline applies), under the same rules.
 *   - Waiting from a loop callback (a worker outside any task) would
 *     stall its loop: a call that would have to wait returns BR_EDEADLK
 *     there; calls that do not wait work.
 *   - Context, unless a declaration says otherwise: any thread; suspends
 *     a task, blocks a plain thread.
 *   - _destroy is optional for objects nobody uses any more; it returns
 *     -EBUSY (and changes nothing) while the object is held or waited
 *     on. A destroyed object may be initialised again.
 * @{
 */

typedef struct br_mutex {
	uint64_t opaque_[4];
} br_mutex;
typedef struct br_cond {
	uint64_t opaque_[4];
} br_cond;
typedef struct br_sem {
	uint64_t opaque_[4];
} br_sem;
typedef struct br_event {
	uint64_t opaque_[4];
} br_event;
typedef struct br_waitgroup {
	uint64_t opaque_[4];
} br_waitgroup;
typedef struct br_rwlock {
	uint64_t opaque_[4];
} br_rwlock;

/* Static initialisers: all zeros, except a semaphore's count. */
/* clang-format off */
#define BR_MUTEX_INIT { { 0 } }
#define BR_COND_INIT { { 0 } }
#define BR_EVENT_INIT { { 0 } }
#define BR_WAITGROUP_INIT { { 0 } }
#define BR_RWLOCK_INIT { { 0 } }
/** A semaphore holding n units, 0 <= n <= BR_SEM_MAX. */
#define BR_SEM_INIT(n) { { (uint64_t)(n) } }
/* clang-format on */

#define BR_SEM_MAX 0x7fffffff	    /**< units a semaphore holds at most */
#define BR_WAITGROUP_MAX 0x7fffffff /**< a wait group's count at most */

/**
 * br_mutex_init - make *m an unlocked mutex (as BR_MUTEX_INIT does).
 * Returns 0 or -EINVAL. Context: any thread.
 */
BR_API int br_mutex_init(br_mutex *m);

/**
 * br_mutex_destroy - retire *m. Returns 0, -EBUSY if it is locked or
 * waited on. Context: any thread.
 */
BR_API int br_mutex_destroy(br_mutex *m);

/**
 * br_mutex_lock - lock m, waiting as long as it takes.
 *
 * Not recursive: locking a mutex the caller holds waits forever. A
 * locker that finds m held spins briefly when the holder may be running
 * on another thread, then queues. Unlocking frees m and wakes one waiter,
 * which competes with lockers arriving meanwhile (the running locker
 * usually wins, which keeps a contended mutex fast); a waiter that has
 * waited over 1 ms switches m to strict FIFO hand-off until the queue
 * drains, so no waiter starves. Returns 0, or as the common rules say.
 */
BR_API int br_mutex_lock(br_mutex *m);

/** br_mutex_lock_until, br_mutex_lock_for - br_mutex_lock() with a
 * deadline or a timeout: -ETIMEDOUT. */
BR_API int br_mutex_lock_until(br_mutex *m, int64_t deadline_ns);
BR_API int br_mutex_lock_for(br_mutex *m, int64_t timeout_ms);

/**
 * br_mutex_trylock - lock m if that needs no wait: 0, or -EBUSY.
 * Context: any thread (never waits).
 */
BR_API int br_mutex_trylock(br_mutex *m);

/**
 * br_mutex_unlock - unlock m. Any task or thread may unlock a locked
 * mutex (it need not be the one that locked it). Returns 0, or -EPERM if
 * m is not locked. Context: any thread (never waits).
 */
BR_API int br_mutex_unlock(br_mutex *m);

/**
 * br_cond_init, br_cond_destroy - as for the mutex (BR_COND_INIT).
 * Context: any thread.
 */
BR_API int br_cond_init(br_cond *c);
BR_API int br_cond_destroy(br_cond *c);

/**
 * br_cond_wait - unlock m, wait until c is signalled, lock m again.
 *
 * The caller must hold m (-EPERM if m is not locked at all). Whatever the
 * result, m is locked again when the call returns, except for BR_EDEADLK
 * and -ECANCELED found before waiting, where m was never released. A
 * wake-up is never spurious, but the predicate may have changed again by
 * the time m is relocked: test it in a loop. Returns 0, -ETIMEDOUT
 * (timed variants), -ECANCELED, or as the common rules say.
 */
BR_API int br_cond_wait(br_cond *c, br_mutex *m);
BR_API int br_cond_wait_until(br_cond *c, br_mutex *m, int64_t deadline_ns);
BR_API int br_cond_wait_for(br_cond *c, br_mutex *m, int64_t timeout_ms);

/**
 * br_cond_signal, br_cond_broadcast - wake the longest waiter of c, or
 * every waiter; nothing if none waits (a signal is not remembered).
 * Returns 0. Context: any thread (never waits).
 */
BR_API int br_cond_signal(br_cond *c);
BR_API int br_cond_broadcast(br_cond *c);

/**
 * br_sem_init - make *s a semaphore holding value units (BR_SEM_INIT(n)).
 * Returns 0, -EINVAL if value > BR_SEM_MAX. Context: any thread.
 */
BR_API int br_sem_init(br_sem *s, unsigned value);

/** br_sem_destroy - as br_mutex_destroy (-EBUSY while waited on). */
BR_API int br_sem_destroy(br_sem *s);

/**
 * br_sem_wait - take one unit, waiting until one is posted. A post hands
 * its unit to the longest waiter, so the count never goes negative and a
 * late arrival cannot take a unit a waiter was promised. Returns 0, or as
 * the common rules say.
 */
BR_API int br_sem_wait(br_sem *s);
BR_API int br_sem_wait_until(br_sem *s, int64_t deadline_ns);
BR_API int br_sem_wait_for(br_sem *s, int64_t timeout_ms);

/** br_sem_trywait - take a unit if one is there: 0, or -EAGAIN. Context:
 * any thread (never waits). */
BR_API int br_sem_trywait(br_sem *s);

/**
 * br_sem_post - add one unit, or give it to the longest waiter. Returns
 * 0, -EOVERFLOW at BR_SEM_MAX units. Context: any thread (never waits).
 */
BR_API int br_sem_post(br_sem *s);

/**
 * br_sem_value - the units available now (>= 0; a snapshot), or an
 * error. Context: any thread.
 */
BR_API int br_sem_value(br_sem *s);

/**
 * br_event_init, br_event_destroy - a clear event (BR_EVENT_INIT);
 * destroy as br_mutex_destroy. Context: any thread.
 */
BR_API int br_event_init(br_event *e);
BR_API int br_event_destroy(br_event *e);

/**
 * br_event_set - set e and release every waiter (asyncio.Event.set).
 * Waits that start while e is set return at once. Returns 0.
 * Context: any thread (never waits).
 */
BR_API int br_event_set(br_event *e);

/** br_event_clear - clear e: later waits wait. Returns 0. Context: any
 * thread. */
BR_API int br_event_clear(br_event *e);

/** br_event_is_set - 1 if e is set, 0 if not, or an error. Context: any
 * thread. */
BR_API int br_event_is_set(br_event *e);

/**
 * br_event_wait - wait until e is set. Returns 0, or as the common rules
 * say.
 */
BR_API int br_event_wait(br_event *e);
BR_API int br_event_wait_until(br_event *e, int64_t deadline_ns);
BR_API int br_event_wait_for(br_event *e, int64_t timeout_ms);

/**
 * br_waitgroup_init, br_waitgroup_destroy - a wait group with count 0
 * (BR_WAITGROUP_INIT); destroy gives -EBUSY while the count is not 0 or
 * somebody waits. Context: any thread.
 */
BR_API int br_waitgroup_init(br_waitgroup *g);
BR_API int br_waitgroup_destroy(br_waitgroup *g);

/**
 * br_waitgroup_add - add delta (may be negative) to g's count (Go's
 * sync.WaitGroup.Add). When the count reaches 0 every waiter is released.
 * Returns 0, or -EINVAL (the count would go below 0 or above
 * BR_WAITGROUP_MAX; it is left unchanged). Context: any thread (never
 * waits).
 */
BR_API int br_waitgroup_add(br_waitgroup *g, int64_t delta);

/** br_waitgroup_done - br_waitgroup_add(g, -1). */
BR_API int br_waitgroup_done(br_waitgroup *g);

/** br_waitgroup_count - g's count now, or an error. Context: any thread. */
BR_API int br_waitgroup_count(br_waitgroup *g);

/**
 * br_waitgroup_wait - wait until g's count is 0 (at once if it is).
 * Returns 0, or as the common rules say.
 */
BR_API int br_waitgroup_wait(br_waitgroup *g);
BR_API int br_waitgroup_wait_until(br_waitgroup *g, int64_t deadline_ns);
BR_API int br_waitgroup_wait_for(br_waitgroup *g, int64_t timeout_ms);

/**
 * br_rwlock_init, br_rwlock_destroy - an unlocked read-write lock
 * (BR_RWLOCK_INIT); destroy as br_mutex_destroy. Context: any thread.
 */
BR_API int br_rwlock_init(br_rwlock *l);
BR_API int br_rwlock_destroy(br_rwlock *l);

/**
 * br_rwlock_rdlock - lock l for reading: many readers may hold it at
 * once, never with a writer. A reader arriving while a writer waits
 * queues behind it, so writers are not starved; waiters are let in in
 * arrival order, every reader up to the next writer at once. Not
 * recursive. Returns 0, or as the common rules say.
 */
BR_API int br_rwlock_rdlock(br_rwlock *l);
BR_API int br_rwlock_rdlock_until(br_rwlock *l, int64_t deadline_ns);
BR_API int br_rwlock_rdlock_for(br_rwlock *l, int64_t timeout_ms);

/**
 * br_rwlock_wrlock - lock l for writing, alone. Returns 0, or as the
 * common rules say.
 */
BR_API int br_rwlock_wrlock(br_rwlock *l);
BR_API int br_rwlock_wrlock_until(br_rwlock *l, int64_t deadline_ns);
BR_API int br_rwlock_wrlock_for(br_rwlock *l, int64_t timeout_ms);

/**
 * br_rwlock_tryrdlock, br_rwlock_trywrlock - lock if that needs no wait:
 * 0, or -EBUSY. Context: any thread (never waits).
 */
BR_API int br_rwlock_tryrdlock(br_rwlock *l);
BR_API int br_rwlock_trywrlock(br_rwlock *l);

/**
 * br_rwlock_unlock - release the caller's hold, read or write, and let
 * the next waiters in. Returns 0, or -EPERM if l is not locked.
 * Context: any thread (never waits).
 */
BR_API int br_rwlock_unlock(br_rwlock *l);
/** @} */

/* ------------------------------------------------------------------ */
/* Channels                                                            */
/* ------------------------------------------------------------------ */

/**
 * @defgroup braid_channels Channels
 *
 * A br_chan carries elements of one fixed size between any number of
 * senders and receivers (tasks and plain threads alike), in FIFO order
 * per sender. It buffers up to its capacity; with capacity 0 every send
 * waits for a receiver (a rendezvous, as Go's unbuffered channels). A
 * sender and a receiver running on the same worker hand the element
 * over without a system call, and the woken task runs next on that
 * worker. Elements are copied in and out; send a pointer for anything
 * large.
 *
 * The common rules of the synchronisation section apply (_until, _for,
 * cancellation, loop callbacks, context). In addition BR_ECLOSED means
 * the channel is closed: senders get it at once; receivers get the
 * elements still buffered first, then BR_ECLOSED.
 * @{
 */
typedef struct br_chan br_chan;

#define BR_CHAN_ELEM_MAX 65536	   /**< bytes per element at most */
#define BR_CHAN_CAP_MAX (1u << 24) /**< capacity at most */
#define BR_CHAN_SELECT_MAX 1024	   /**< cases of a select at most */

/**
 * br_chan_new - a channel of elements of elem_size bytes holding up to
 * capacity of them (0: unbuffered). Stores it in *out and returns 0;
 * -EINVAL (out NULL, elem_size 0 or over BR_CHAN_ELEM_MAX, capacity over
 * BR_CHAN_CAP_MAX), -ENOMEM. Context: any thread.
 */
BR_API int br_chan_new(br_chan **out, size_t elem_size, size_t capacity);

/**
 * br_chan_free - free ch and any elements still buffered. Nobody may be
 * using ch, or wait on it, any more (close it and let them finish
 * first). NULL is a no-op; calls on a freed channel give BR_EBADOBJ
 * within the bound the conventions at the top of braid.h give.
 * Context: any thread.
 */
BR_API void br_chan_free(br_chan *ch);

/**
 * br_chan_close - close ch: every waiting sender gets BR_ECLOSED (its
 * element is not sent) and every waiting receiver BR_ECLOSED (nothing
 * was buffered, or it would not wait). Returns 0, BR_ECLOSED if ch was
 * already closed. Context: any thread (never waits).
 */
BR_API int br_chan_close(br_chan *ch);

/**
 * br_chan_send - copy elem_size bytes from elem into ch: to a waiting
 * receiver, else into the buffer, else wait for room or a receiver.
 * Returns 0 once the element is in ch or delivered; BR_ECLOSED; -EINVAL
 * if elem is NULL; or as the common rules say. An element that a
 * receiver took is never reported as not sent.
 */
BR_API int br_chan_send(br_chan *ch, const void *elem);
BR_API int br_chan_send_until(br_chan *ch, const void *elem,
			      int64_t deadline_ns);
BR_API int br_chan_send_for(br_chan *ch, const void *elem, int64_t timeout_ms);

/** br_chan_try_send - send if that needs no wait: 0, -EAGAIN, BR_ECLOSED.
 * Context: any thread (never waits). */
BR_API int br_chan_try_send(br_chan *ch, const void *elem);

/**
 * br_chan_recv - take the oldest element of ch into out (elem_size bytes;
 * out may be NULL to drop it), waiting for one if none is there. Returns
 * 0; BR_ECLOSED once ch is closed and empty; or as the common rules say.
 */
BR_API int br_chan_recv(br_chan *ch, void *out);
BR_API int br_chan_recv_until(br_chan *ch, void *out, int64_t deadline_ns);
BR_API int br_chan_recv_for(br_chan *ch, void *out, int64_t timeout_ms);

/** br_chan_try_recv - receive if that needs no wait: 0, -EAGAIN,
 * BR_ECLOSED. Context: any thread (never waits). */
BR_API int br_chan_try_recv(br_chan *ch, void *out);

/** br_chan_len, br_chan_cap - elements buffered now (a snapshot) and the
 * capacity, or an error. Context: any thread. */
BR_API long br_chan_len(br_chan *ch);
BR_API long br_chan_cap(br_chan *ch);

/* br_chan_case.op */
/** The case sends *elem on its channel. */
#define BR_CHAN_SEND 1
/** The case receives from its channel into elem. */
#define BR_CHAN_RECV 2

/** One case of br_chan_select(). */
typedef struct br_chan_case {
	/** The channel; NULL skips the case (it is never ready). */
	br_chan *chan;
	/** BR_CHAN_SEND or BR_CHAN_RECV. */
	unsigned op;
	/**
	 * For a send, the element to send; for a receive, where to store the
	 * element received (or NULL to drop it).
	 */
	void *elem;
	/** Out: 0 or BR_ECLOSED, set for the case that fired. */
	int result;
} br_chan_case;

/**
 * br_chan_select - do the first of several sends and receives that can
 * proceed (Go's select).
 *
 * If several cases are ready, one is chosen at random, so no channel is
 * starved. Otherwise the caller waits until a case can proceed and does
 * exactly that one. A send on a closed channel and a receive on a closed
 * empty channel are ready: they fire with result BR_ECLOSED. Returns the
 * index of the case done, with its result set; -ETIMEDOUT (timed
 * variants; a deadline in the past or timeout 0 just polls); -EINVAL (cs
 * NULL, n 0 or over BR_CHAN_SELECT_MAX, a bad op, a send without elem,
 * no case with a channel); BR_EBADOBJ; -ENOMEM (over 8 cases); or as the
 * common rules say.
 */
BR_API int br_chan_select(br_chan_case *cs, size_t n);
BR_API int br_chan_select_until(br_chan_case *cs, size_t n,
				int64_t deadline_ns);
BR_API int br_chan_select_for(br_chan_case *cs, size_t n, int64_t timeout_ms);
/** @} */

/* ------------------------------------------------------------------ */
/* Blocking pool                                                       */
/* ------------------------------------------------------------------ */

/**
 * @defgroup braid_blocking Blocking pool
 * @{
 */

/**
 * br_spawn_blocking - run fn(arg) on a thread of rt's blocking pool
 * (tokio::spawn_blocking, asyncio.to_thread): for code that blocks its
 * thread, which must not run in a task.
 *
 * The pool starts threads on demand, up to br_config.blocking_threads,
 * and a thread idle for blocking_idle_ms exits. A call goes to an idle
 * thread, else to a new thread when every thread is inside a call, else
 * into a queue of at most blocking_queue calls. The future completes
 * DONE with fn's return value; awaiting it from a task suspends only that
 * task. br_cancel() on it before fn starts keeps fn from running; once fn
 * runs it cannot be interrupted (the future still ends CANCELLED at once,
 * and fn's value is dropped). br_runtime_free() cancels queued calls and
 * waits for running ones.
 *
 * Returns a new reference, never NULL: a FAILED future with -EINVAL (fn
 * NULL), BR_EBADOBJ, BR_ECLOSED (rt shutting down), -EAGAIN (the queue is
 * full, or no thread could be started), or -ENOMEM. Context: any thread.
 */
BR_API br_future *br_spawn_blocking(br_runtime *rt, br_task_fn fn, void *arg);
/** @} */

/* ------------------------------------------------------------------ */
/* Subprocesses                                                        */
/* ------------------------------------------------------------------ */

/**
 * @defgroup braid_subprocess Subprocesses
 * @{
 */

/** What a child's stdin, stdout or stderr is (br_exec_opts.*_mode). */
enum {
	/** The parent's own fd (the default). */
	BR_EXEC_INHERIT = 0,
	/** /dev/null. */
	BR_EXEC_NULL = 1,
	/** A pipe, whose parent end the caller gets. */
	BR_EXEC_PIPE = 2,
	/** For stdout and stderr only: collected into the future's bytes. */
	BR_EXEC_CAPTURE = 3,
};

/**
 * br_exec_opts - options of br_exec(); all zeros means "inherit
 * everything, no timeout". The input fields must stay valid until
 * br_exec() returns, except stdin_data (see below).
 *
 *   envp         the child's environment, a NULL-terminated array of
 *                "NAME=value"; NULL inherits the parent's (with
 *                BR_EXEC_CLEAN_ENV: entries added to the kept ones). The
 *                program is looked up in the parent's PATH either way.
 *   cwd          the child's working directory; NULL inherits it.
 *   stdin_mode   BR_EXEC_INHERIT, BR_EXEC_NULL or BR_EXEC_PIPE. stdin is
 *                a connected stream socket, not a pipe, so writes after
 *                the child has gone fail with -EPIPE instead of raising
 *                SIGPIPE when sent with br_send(..., MSG_NOSIGNAL).
 *   stdout_mode, stderr_mode
 *                any BR_EXEC_* mode. With BR_EXEC_CAPTURE the output is
 *                read through the loop into a growing buffer, which
 *                becomes the future's bytes (br_future_bytes). When both
 *                are captured, stderr goes into the same buffer as stdout
 *                (the shell's 2>&1), in the order the child wrote them.
 *   stdin_data, stdin_len
 *                bytes fed to the child's stdin by the runtime, then
 *                stdin is closed (so the child sees end of file). Written
 *                concurrently with the capture of its output, so a child
 *                that reads and writes a lot never deadlocks. stdin_mode
 *                must then be left 0. A non-NULL stdin_data with
 *                stdin_len 0 gives the child an empty stdin. Not copied:
 *                must stay valid until the future completes.
 *   timeout_ms   > 0: at this many milliseconds after br_exec() the child
 *                (with its group, see flags) is killed (SIGKILL),
 *                reaped, and the future FAILS with -ETIMEDOUT; what it
 *                wrote before is kept (br_exec_output); <= 0: no limit.
 *   stdin_fd, stdout_fd, stderr_fd
 *                out: for each BR_EXEC_PIPE stream, the parent's end
 *                (close-on-exec; the caller reads or writes it, e.g. with
 *                br_read/br_send, and must close it); -1 otherwise. Set
 *                when br_exec() returns a future that is not FAILED.
 *   flags        BR_EXEC_* bits below; 0: none.
 *   max_output   > 0: the most bytes of captured output kept. Output
 *                past it kills the child (with its group, see flags),
 *                and the future FAILS with -EMSGSIZE, its first
 *                max_output bytes readable with br_exec_output(); 0: no
 *                limit (but memory).
 *   pass_fds, npass_fds
 *                fds of this process (each >= 3) that the child gets
 *                too, open under the same numbers: their close-on-exec
 *                is cleared in the child only. Every other fd but the
 *                child's stdin, stdout and stderr stays closed to it.
 *   env_keep     with BR_EXEC_CLEAN_ENV: a NULL-terminated list of names
 *                of variables the child gets from this process's
 *                environment (those set), an allowlist.
 */
typedef struct br_exec_opts {
	const char *const *envp;
	const char *cwd;
	int stdin_mode;
	int stdout_mode;
	int stderr_mode;
	const void *stdin_data;
	size_t stdin_len;
	int64_t timeout_ms;
	int stdin_fd;  /**< out */
	int stdout_fd; /**< out */
	int stderr_fd; /**< out */
	unsigned flags;
	size_t max_output;
	const int *pass_fds;
	size_t npass_fds;
	const char *const *env_keep;
} br_exec_opts;

/* br_exec_opts.flags */
/**
 * The child leads a process group of its own (setpgid), as a shell job:
 * a time limit, br_cancel(), max_output or the runtime closing kill the
 * whole group, so what it started in the background (sh -c 'sleep 9 &')
 * goes with it. Nothing is killed when the child exits by itself.
 */
#define BR_EXEC_NEW_PGROUP 0x1u
/** As BR_EXEC_NEW_PGROUP, in a session of its own (setsid): no
 * controlling terminal either. */
#define BR_EXEC_NEW_SESSION 0x2u
/**
 * The child's environment is only the variables env_keep names (from
 * this process's) and then the entries of envp (which win over a kept
 * variable of the same name): nothing else leaks from this process.
 */
#define BR_EXEC_CLEAN_ENV 0x4u

/**
 * br_exec - run the program argv[0] with arguments argv (NULL-terminated)
 * as a child process (asyncio.create_subprocess_exec).
 *
 * The child is started before br_exec() returns, with a vfork-style clone
 * that execs at once (posix_spawnp() under ThreadSanitizer or valgrind, or
 * if the kernel refuses the clone): no copy of this multi-threaded process
 * runs user code. It starts with no signal blocked, SIGPIPE and SIGXFSZ at
 * their default, the signals this process handles at their default and
 * those it ignores still ignored (exec's rule); it gets only its
 * stdin, stdout and stderr, every other fd of braid's being close-on-exec.
 * A task of rt then feeds stdin_data, captures output, and waits for the
 * exit through a pidfd polled on its loop; the returned future is that
 * task's, so it mixes with br_gather(), br_wait_any() and the rest.
 *
 * The future completes DONE once the child has exited and been reaped,
 * whatever its exit status; the value encodes the status as waitpid(2)
 * does (WIFEXITED(s), WEXITSTATUS(s), WIFSIGNALED(s), WTERMSIG(s) apply to
 * (int)(intptr_t)value); read it with br_exec_status() or
 * br_exec_exit_code(). With a capture, the output is the future's bytes.
 *
 * br_cancel() on the future kills the child (SIGKILL; its whole group
 * with BR_EXEC_NEW_PGROUP or _NEW_SESSION), reaps it, and the future ends
 * CANCELLED. Whatever ends the future (exit, timeout, cancel, the
 * runtime closing), the child has been reaped by then: braid never
 * leaves a zombie. Output captured up to a time limit, a cancellation or
 * max_output stays readable with br_exec_output().
 *
 * Returns a new reference, never NULL: a FAILED future with -EINVAL (argv
 * NULL or empty, a bad mode, stdin_data with stdin_mode set, stdin_len
 * without stdin_data, unknown flags, npass_fds without pass_fds, a
 * pass_fds entry below 3, env_keep without BR_EXEC_CLEAN_ENV), -EBADF (a
 * pass_fds entry that is not open), BR_EBADOBJ (rt not a runtime), BR_ECLOSED,
 * -ENOENT (no such program, or no such cwd), -EACCES (not executable) or
 * another error of the clone, the child's set-up or its execve(), of pipe
 * creation or pidfd_open() (-ENOSYS before Linux 5.3), or -ENOMEM. The
 * future fails with -ECHILD if the child was reaped by someone else: a
 * waitpid(-1) elsewhere in the program, or SIGCHLD set to SIG_IGN (which
 * makes the kernel reap every child).
 * From a task, the spawn itself blocks its worker until the child has
 * exec'd (0.1 to 2 ms, more for a large program), and the
 * task watching the child is pinned to that worker (it only waits on the
 * loop, so there is nothing to balance); from a plain thread it goes to
 * any worker.
 * Context: any thread.
 */
BR_API br_future *br_exec(br_runtime *rt, const char *const *argv,
			  br_exec_opts *opts);

/**
 * br_exec_output - the output a br_exec() future captured
 * (BR_EXEC_CAPTURE), whatever its end: for a DONE future, the same as
 * br_future_bytes(); for one FAILED (-ETIMEDOUT, -EMSGSIZE, ...) or
 * CANCELLED, what the child wrote before its end, as far as it was read
 * (bytes still in the pipe when the child was killed included). Stores
 * the length in *len when len is not NULL. NULL (and 0) while pending,
 * without a capture, or for a future that is not a br_exec() child's (a
 * br_exec() that could not start the child gives such a FAILED one).
 * Valid while the caller holds a reference to f. Context: any thread.
 */
BR_API const void *br_exec_output(const br_future *f, size_t *len);

/**
 * br_exec_status - how the child of a DONE br_exec() future ended: stores
 * its exit code in *code (-1 if it was killed by a signal) and the signal
 * in *signo (0 if it exited); either pointer may be NULL.
 *
 * Returns 0, the future's error if it is FAILED or CANCELLED, -EAGAIN if
 * it is still pending, BR_EBADOBJ. Borrows f. Context: any thread.
 */
BR_API int br_exec_status(const br_future *f, int *code, int *signo);

/**
 * br_exec_exit_code - the child's exit code, or 128 + the signal that
 * killed it (the shell's $?), or a negative error as br_exec_status().
 * Borrows f. Context: any thread.
 */
BR_API int br_exec_exit_code(const br_future *f);
/** @} */

/* ------------------------------------------------------------------ */
/* Process pool                                                        */
/* ------------------------------------------------------------------ */

/**
 * @defgroup braid_pool Process pool
 *
 * A pool of worker processes for CPU-bound jobs (Python's
 * multiprocessing.Pool and ProcessPoolExecutor), awaited like any task.
 *
 * Where workers come from. Forking a multi-threaded process is unsafe, so
 * workers are forked by a zygote: a copy of the program made while the
 * process has exactly one thread, which forks workers on request. It is
 * made by br_zygote_start() if the program calls it (first thing in
 * main, or in a constructor, before any thread starts; that zygote lives
 * until the process exits), else by the first br_runtime_new() that finds
 * the process single-threaded, before that runtime starts any thread
 * (that zygote is shared by every runtime of the process, and the last
 * br_runtime_free() ends and reaps it). A runtime created while the
 * process already has other threads and no zygote exists cannot have
 * pools (br_pool_new() gives -ENOTSUP), nor can one created with
 * BR_CONFIG_NO_ZYGOTE or BRAID_NO_ZYGOTE=1.
 *
 * What a worker sees. The program as it was when the zygote was forked:
 * its code (so function pointers from the program and the libraries it
 * had loaded are valid; not from a library dlopen()ed later), its globals
 * as they were then, and only stdin, stdout and stderr of its fds. It
 * runs br_pool_config.init once, then jobs, one at a time. Workers are
 * children of the thread that created the runtime, get SIGKILL when it
 * ends (PR_SET_PDEATHSIG), and leave with _exit() (no atexit handlers, no
 * stdio flush). A program that reaps children itself (waitpid(-1), or
 * SIGCHLD set to SIG_IGN) loses the exit status of workers that die: the
 * job still fails, with a message saying so.
 *
 * Jobs. A job is a function and input bytes; it writes output bytes with
 * br_job_write() and returns 0, or fails by returning a negative code
 * (br_job_fail() adds a message). Inputs are copied into shared memory
 * (inline in a ring slot, or an arena for large ones; there is no per-job
 * system call while workers are busy), idle workers take the next job
 * (pull, not push), and the output comes back as the future's bytes
 * (br_future_bytes).
 *
 * Faults. A worker that dies (a crash, abort(), SIGKILL from anyone)
 * fails only the job it was running, with BR_EWORKERDIED and a message
 * naming the signal or exit code, and is replaced; nothing else is lost.
 * A job over its timeout fails with -ETIMEDOUT and only its worker is
 * killed and replaced. br_cancel() on a queued job removes it; on a
 * running one it kills that job's worker (which is replaced) and the
 * future ends CANCELLED.
 *
 * Isolation. Each worker runs in a process group of its own: a job that
 * signals its group (kill(0, ...)) reaches its own worker and the
 * processes it started, never the zygote or another worker. When a worker
 * dies or is killed, its whole group is killed with it, so children a job
 * left behind do not outlive it (unless they left the group: setsid()).
 * A job may close or replace its process's descriptors: a worker that can
 * no longer report leaves after pushing its result, and is replaced. A
 * job may create a runtime of its own (br_run, br_runtime_new, br_exec).
 * The zygote keeps a spare copy of itself; if the zygote dies, the spare
 * takes over. A worker stopped by SIGSTOP is not detected: its job waits
 * until it continues, its time limit passes, or br_cancel() kills it.
 * @{
 */
typedef struct br_pool br_pool;
typedef struct br_job br_job;

/**
 * br_zygote_start - fork the zygote now, for a program that will have
 * threads before its first br_runtime_new() (see above). Returns 0 (also
 * when already done), -EBUSY if the process already has other threads,
 * or the error of socketpair() or fork(). Context: the only thread.
 */
BR_API int br_zygote_start(void);

/**
 * br_mpi_serve - join the MPI job this program was launched in, so that
 * pools made with br_pool_config.mpi span its ranks. Call it first thing
 * in main(), before any thread starts, with main's argc and argv.
 *
 * Rank 0 returns 0 and runs the program; every other rank serves pool
 * jobs here (on its own workers: br_pool_config.workers per rank) and
 * exits when rank 0 exits, never returning. Outside an MPI launch
 * (mpirun, srun) it returns 0 at once and the program runs as usual, its
 * pools local. It initialises MPI with MPI_THREAD_MULTIPLE asked (braid's
 * own thread calls MPI on rank 0, on a duplicate of MPI_COMM_WORLD) and
 * finalises it at exit: the program must not call MPI_Finalize itself.
 * Under mpirun --enable-recovery a rank that dies fails only the jobs it
 * held, with BR_EWORKERDIED naming the rank and its host, within 2 s;
 * without it, MPI ends the whole job.
 *
 * Returns 0, or -EIO if MPI_Init fails, -ENOMEM. Defined in
 * libbraid-mpi (pkg-config braid-mpi), not in libbraid.
 * Context: the only thread, once.
 */
BR_API int br_mpi_serve(int *argc, char ***argv);

/** A job: reads len bytes at in (valid for the call), writes its output
 * with br_job_write(), returns 0 or a negative error. Runs in a worker
 * process, on its only thread, outside any runtime. */
typedef int (*br_job_fn)(br_job *job, const void *in, size_t len);

/** How long a worker may take to start and run its initializer, unless
 * br_pool_config.init_timeout_ms says otherwise. */
#define BR_POOL_INIT_TIMEOUT_MS 30000

/** A worker's initializer: arg/len are a copy of br_pool_config's init_arg
 * bytes. Returns 0, or a negative error that fails br_pool_new(). */
typedef int (*br_pool_init_fn)(const void *arg, size_t len);

/**
 * br_pool_config - zero fields take the defaults.
 *
 *   workers       worker processes: default the number of online CPUs,
 *                 at most 256.
 *   init          run once in each worker before its first job
 *                 (replacements included); NULL: none. It must return
 *                 within init_timeout_ms: past it the worker is killed,
 *                 and br_pool_new fails with -ETIMEDOUT (a replacement
 *                 counts as a failed initializer).
 *   init_arg, init_len
 *                 bytes copied to each worker for init, at most 64 KiB.
 *   max_jobs      a worker that has run this many jobs exits and is
 *                 replaced (maxtasksperchild); 0: no limit.
 *   timeout_ms    default per-job time limit, counted from when a worker
 *                 starts the job; 0: none.
 *   max_payload   largest input or output of one job (or one br_map
 *                 chunk), default 64 MiB, at most 1 GiB.
 *   init_timeout_ms
 *                 how long a worker may take to start and run init, from
 *                 its fork; default BR_POOL_INIT_TIMEOUT_MS.
 *   mpi           1: the pool spans every rank of the MPI job that
 *                 br_mpi_serve() joined (libbraid-mpi): each rank runs
 *                 workers of its own (workers per rank; 0: its CPUs), and
 *                 jobs go wherever there is room; rank 0 keeps more
 *                 of them in its own ring the shorter they run. Ranks
 *                 that share rank 0's CPUs get only what rank 0's own
 *                 workers leave of them; where that is nothing, one job
 *                 each at a time, and only a job that has waited 1 ms
 *                 for rank 0's workers. Without MPI (no br_mpi_serve(),
 *                 or a job of one rank) the pool is an ordinary local
 *                 one.
 */
typedef struct br_pool_config {
	unsigned workers;
	br_pool_init_fn init;
	const void *init_arg;
	size_t init_len;
	unsigned max_jobs;
	int64_t timeout_ms;
	size_t max_payload;
	int mpi;
	int64_t init_timeout_ms;
} br_pool_config;

/**
 * br_pool_new - start a pool of worker processes for rt.
 *
 * Returns once every worker has run its initializer. Stores the pool in
 * *out and returns 0. Errors: -EINVAL (out or rt NULL, a field out of
 * range), BR_EBADOBJ, BR_ECLOSED, -ENOTSUP (rt has no zygote: see above),
 * the first worker's initializer error, -ETIMEDOUT (an initializer ran past
 * its time limit, see init), -ENOMEM, or the error of a system
 * call (memfd_create, eventfd, fork in the zygote). Context: any thread
 * (a task suspends; a plain thread blocks).
 */
BR_API int br_pool_new(br_pool **out, br_runtime *rt,
		       const br_pool_config *cfg);

/**
 * br_pool_free - cancel every job still queued or running (their futures
 * end CANCELLED), kill and reap every worker, and free the pool. When it
 * returns, every future of the pool's jobs has completed; they stay valid
 * for whoever holds them. To drain instead, await the futures first. Must
 * be called before br_runtime_free() of the pool's runtime. NULL is a
 * no-op. Context: any thread (a task suspends; a plain thread blocks), not
 * a job, nor a done-callback of one of the pool's own futures.
 */
BR_API void br_pool_free(br_pool *pool);

/**
 * br_submit - run fn(in, len) in a worker (ProcessPoolExecutor.submit).
 * in is copied before the call returns. The future completes DONE with
 * the job's output as its bytes, or FAILED with the job's error (and
 * message), BR_EWORKERDIED or -ETIMEDOUT, or CANCELLED.
 *
 * Returns a new reference, never NULL: a FAILED future with -EINVAL (fn
 * NULL, in NULL with len > 0), BR_EBADOBJ, BR_ECLOSED (the pool or its
 * runtime is closing), -EMSGSIZE (len over max_payload) or -ENOMEM.
 * Context: any thread.
 */
BR_API br_future *br_submit(br_pool *pool, br_job_fn fn, const void *in,
			    size_t len);

/** br_submit_timeout - br_submit() with its own time limit: > 0 ms, or 0
 * for none (the pool's default does not apply). */
BR_API br_future *br_submit_timeout(br_pool *pool, br_job_fn fn, const void *in,
				    size_t len, int64_t timeout_ms);

/**
 * br_map - run fn on each of the n items of item_size bytes at items
 * (Pool.map), chunk items per job (0: about n / (4 * workers), bounded by
 * the size of a ring slot). items is read as chunks are handed to
 * workers, so it must stay valid until the future completes.
 *
 * The future completes DONE once every item has; its outputs are read in
 * input order with br_map_result(). By default one failed item fails the
 * map: it ends FAILED with the error of the lowest-numbered failed item
 * and a message naming it, and the other items' outputs are dropped (use
 * br_map_ex() with BR_MAP_ITEM_ERRORS to keep them). An item fails when
 * its job returns an error, when its output runs past max_payload
 * (-EMSGSIZE), or with its whole chunk: the chunk's worker died
 * (BR_EWORKERDIED), its time limit passed (-ETIMEDOUT), or it was
 * cancelled. br_cancel() cancels every chunk. n == 0 completes DONE at
 * once. Returns a new reference, never NULL; errors as br_submit(), and
 * -EINVAL for items NULL with n > 0 or item_size 0.
 */
BR_API br_future *br_map(br_pool *pool, br_job_fn fn, const void *items,
			 size_t item_size, size_t n, size_t chunk);

/* br_map_ex flags */
/**
 * A failed item fails only itself: the map ends DONE once every item has
 * ended, and each item's output, or its error and message, is read with
 * br_map_item(). br_cancel() on the map still ends it CANCELLED.
 */
#define BR_MAP_ITEM_ERRORS 0x1u

/**
 * br_map_ex - br_map() with flags (BR_MAP_ITEM_ERRORS, or 0 for br_map's
 * behaviour). Errors as br_map, and -EINVAL for unknown flags.
 * Context: any thread.
 */
BR_API br_future *br_map_ex(br_pool *pool, br_job_fn fn, const void *items,
			    size_t item_size, size_t n, size_t chunk,
			    unsigned flags);

/**
 * br_map_result - the output of item i of a DONE br_map() future: its
 * address and its length in *len. NULL (and 0) if i is out of range, f
 * is not such a future, or item i failed (BR_MAP_ITEM_ERRORS). The
 * outputs lie back to back, so an item's bytes have no alignment: copy
 * them out (memcpy) to read a number. Valid while the caller holds f.
 * Context: any thread.
 */
BR_API const void *br_map_result(const br_future *f, size_t i, size_t *len);

/**
 * br_map_item - item i of a br_map() or br_map_ex() future, success or
 * failure: if it succeeded, stores 0 in *err and its length in *len and
 * returns its output (as br_map_result); otherwise returns NULL, stores
 * 0 in *len and in *err the item's error (BR_MAP_ITEM_ERRORS), or why
 * there is no item: -EAGAIN (f still pending), the map's own error (f
 * FAILED or CANCELLED), -EINVAL (i out of range, or f not a map),
 * BR_EBADOBJ. len and err may be NULL. Valid while the caller holds f.
 * Context: any thread.
 */
BR_API const void *br_map_item(const br_future *f, size_t i, size_t *len,
			       int *err);

/**
 * br_map_item_message - the message of item i when it failed (what its
 * job gave br_job_fail(), or its chunk's failure), "" otherwise. Valid
 * while the caller holds f. Context: any thread.
 */
BR_API const char *br_map_item_message(const br_future *f, size_t i);

/* br_imap_new flags */
#define BR_IMAP_UNORDERED 0x1u /**< completion order, not input order */

typedef struct br_imap br_imap;

/**
 * br_imap_new - start running fn over items as br_map() does, and iterate
 * over the results as they come (Pool.imap, imap_unordered). items must
 * stay valid until br_imap_free(). Errors as br_map(), returned.
 * Context: any thread.
 */
BR_API int br_imap_new(br_imap **out, br_pool *pool, br_job_fn fn,
		       const void *items, size_t item_size, size_t n,
		       size_t chunk, unsigned flags);

/**
 * br_imap_next - wait for the next item: in input order, or with
 * BR_IMAP_UNORDERED in the order chunks complete. Stores its index in
 * *index and, if it succeeded, its output in *out and *len (valid until the
 * next call or br_imap_free; any pointer may be NULL) and returns 0; if
 * it failed, returns its error (br_imap_message() says more). BR_EDONE
 * once every item has been returned. -ECANCELED if the calling task is
 * cancelled, -ETIMEDOUT if its deadline scope passes (the chunk waited
 * for is cancelled then, as br_await() does). -EBUSY while another call
 * on it is in progress (one caller at a time). Context: any thread (a
 * task suspends; a thread blocks).
 */
BR_API int br_imap_next(br_imap *it, size_t *index, const void **out,
			size_t *len);

/** br_imap_message - the message of the item br_imap_next last returned an
 * error for, "" otherwise. */
BR_API const char *br_imap_message(const br_imap *it);

/** br_imap_free - cancel what is left and free it. NULL is a no-op. */
BR_API void br_imap_free(br_imap *it);

/**
 * br_job_write - append len bytes to the output of the running job.
 * Returns 0, -EINVAL (job NULL, or data NULL with len > 0), -EMSGSIZE
 * (the output would pass max_payload). Context: the job, in its worker.
 */
BR_API int br_job_write(br_job *job, const void *data, size_t len);

/**
 * br_job_fail - set the message the job's future fails with; returns
 * error, so a job can end with `return br_job_fail(job, -EINVAL, "...")`.
 * error must be negative (-EINVAL is used otherwise). message may be
 * NULL. Context: the job, in its worker.
 */
BR_API int br_job_fail(br_job *job, int error, const char *message);

/**
 * br_pool_pids - store up to n of the pool's current worker pids in pids;
 * returns how many workers the pool has, or -EINVAL / BR_EBADOBJ.
 * A pid is 0 while that worker is being replaced. Context: any thread.
 */
BR_API int br_pool_pids(br_pool *pool, pid_t *pids, size_t n);
/** @} */

/* ------------------------------------------------------------------ */
/* Stats and tracing                                                   */
/* ------------------------------------------------------------------ */

/**
 * @defgroup braid_stats Stats and tracing
 * @{
 */

/**
 * Counters of one worker (or, in br_runtime_stats.total, of the whole
 * runtime) since the runtime started. Each worker writes its own with
 * plain stores and br_stats() reads them without stopping anybody, so a
 * figure read while the runtime is busy may be a little behind; once the
 * work has ended (its futures awaited), the figures are exact. The
 * struct is 32 counters long whatever the version: new counters take the
 * place of reserved ones, so its size and the fields' offsets never
 * change.
 */
typedef struct br_worker_stats {
	/**
	 * Tasks started here, children that br_await() ran inline included.
	 * A task is counted once, where it starts, however often it resumes.
	 */
	uint64_t tasks_run;
	/**
	 * Run slices: the times a task was switched in (its first run and
	 * every resumption). Counted under BRAID_STATS or BRAID_TRACE only.
	 */
	uint64_t slices;
	/**
	 * Steals tried: a victim's queue looked non-empty, and a task was
	 * taken from it or lost to a race.
	 */
	uint64_t steals_tried;
	/** Steals won: at least one task came back. */
	uint64_t steals_won;
	/**
	 * Times the worker slept in its ring wait (or in ppoll without
	 * io_uring).
	 */
	uint64_t parks;
	/**
	 * Those sleeps that another thread ended by handing the worker work,
	 * rather than its own I/O or timers.
	 */
	uint64_t wakeups;
	/**
	 * Ring operations of tasks submitted here. Multishot accepts and
	 * receives are not counted.
	 */
	uint64_t io_submitted;
	/**
	 * Final completions of those operations reaped here. Multishot
	 * accepts and receives are not counted.
	 */
	uint64_t io_completed;
	/**
	 * Timers that fired: sleeps and deadlines that woke a task, and
	 * br_call_later() callbacks.
	 */
	uint64_t timers_fired;
	/** br_spawn_blocking() calls made from here. */
	uint64_t blocking_calls;
	/** Process-pool jobs finished and handed back. */
	uint64_t proc_jobs;
	/** Run slices that the stall detector reported. */
	uint64_t stalls;
	/** Room for later counters; br_stats() stores 0 there. */
	uint64_t reserved[20];
} br_worker_stats;

/**
 * What br_stats() fills. The caller provides the array for the per-worker
 * figures (or none), so the struct stays small whatever the worker count.
 *
 *   workers   in: an array of nworkers entries, or NULL with nworkers 0
 *             when only the totals are wanted.
 *   nworkers  in: the entries in workers; out: the runtime's worker count.
 *             The first min(in, out) entries are filled.
 *   total     out: the sum over the workers, plus what plain threads did
 *             (blocking calls and process jobs submitted from outside the
 *             runtime's workers are counted only here).
 */
typedef struct br_runtime_stats {
	br_worker_stats *workers;
	unsigned nworkers;
	br_worker_stats total;
} br_runtime_stats;

/**
 * br_stats - read rt's counters into *stats (see br_runtime_stats).
 *
 * Counting costs each worker a few plain increments of its own memory.
 * tasks_run, counted as each task starts, is kept while the stall
 * detector (on by default), BRAID_STATS or BRAID_TRACE is on; slices,
 * counted at every switch into a task, only under BRAID_STATS or
 * BRAID_TRACE, so that the default switch pays a predicted branch and no
 * count. Otherwise they stay 0. The other counters are always kept. With
 * BRAID_STATS=1 in the environment when the runtime is created,
 * br_runtime_free() prints the table (a BR_LOG_INFO message, see
 * br_config.log), and a line on how long runnable tasks waited from
 * being queued (spawned or woken; not after br_yield()) to running:
 * median, p99, p99.9 and max, over every worker. Those waits cost a
 * clock read at each queueing and each switch into a task, under
 * BRAID_STATS only.
 *
 * The stall detector (br_config.stall_ms, on by default at 25 ms) watches
 * from a thread of its own that sleeps while every worker is parked:
 * a task that has held its worker past the threshold without suspending
 * is reported once per run slice, while it is still running, as
 *   braid: stall: task 1.57 (crunch) has held worker 1
 *          for 26 ms (threshold 25 ms)
 * The task id is W.N, where W is the worker where it started and N its
 * start count there. The task's name (br_task_set_name) is given if it
 * has one, else its function, named through dladdr(), which
 * needs -rdynamic for functions of the program itself (otherwise the
 * object and offset are given, for addr2line). A child run inline by
 * br_await() is reported under the task that awaited it. Loop callbacks
 * (br_call_soon) are not watched.
 *
 * BRAID_TRACE=file.json writes a Chrome trace-event timeline of the
 * runtime when br_runtime_free() runs: each task's run slices on its
 * worker's track (named after the task, or its function), parks,
 * steals, I/O waits, and process-pool jobs on their worker process's
 * track; ui.perfetto.dev and chrome://tracing open it.
 * Each worker keeps its last BRAID_TRACE_EVENTS events (default 65536) in
 * a ring, so the file stays bounded however long the program runs. Several
 * runtimes with the same file overwrite each other's.
 *
 * Returns the runtime's worker count (>= 1). Errors: BR_EBADOBJ (rt not a
 * live runtime), -EINVAL (stats NULL, or workers NULL with nworkers > 0).
 * Context: any thread.
 */
BR_API int br_stats(br_runtime *rt, br_runtime_stats *stats);
/** @} */

#ifdef __cplusplus
}
#endif

#endif /* BRAID_H */
