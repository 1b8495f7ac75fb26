/* SPDX-License-Identifier: MIT */
/*
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
 *   - "Context:" says from where the function may be called. A "task" is
 *     code running inside br_spawn()'s function; a "plain thread" is any
 *     other thread, including a runtime's worker thread outside a task
 *     (a br_call_soon() callback, for instance).
 */
#ifndef BRAID_H
#define BRAID_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Version and export                                                  */
/* ------------------------------------------------------------------ */

#define BR_VERSION_MAJOR 0
#define BR_VERSION_MINOR 1
#define BR_VERSION_PATCH 0

#if defined(__GNUC__)
#define BR_API __attribute__((visibility("default")))
#else
#define BR_API
#endif

/*
 * br_version_string - the library's version as "MAJOR.MINOR.PATCH".
 *
 * Returns a static string. Context: any thread.
 */
BR_API const char *br_version_string(void);

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

/*
 * braid's own codes live in a reserved range far below any errno
 * (Linux errnos stop below 200), as libuv reserves -4095..-3000.
 */
enum {
	BR_ECLOSED = -5001,	/* the runtime is closed or closing */
	BR_ENOTTASK = -5002,	/* a task-only call made outside a task */
	BR_EBADOBJ = -5003,	/* the pointer is not a live braid object */
	BR_EWORKERDIED = -5004, /* a process-pool worker died holding the job */
	BR_EDEADLK = -5005,	/* waiting here would block a loop forever */
	BR_EDONE = -5006,	/* the future has already completed */
	BR_ETASKFAILED = -5007, /* a task ended with br_fail() and no code */
};

/*
 * br_strerror - a one-line description of a braid or errno code.
 *
 * Accepts codes with either sign (-ENOENT and ENOENT both work). Returns a
 * static string, never NULL; unknown codes give "unknown error".
 * Context: any thread. Async-signal-safe.
 */
BR_API const char *br_strerror(int code);

/* ------------------------------------------------------------------ */
/* Time                                                                */
/* ------------------------------------------------------------------ */

/*
 * br_now_ns - CLOCK_MONOTONIC in nanoseconds.
 *
 * Context: any thread. Async-signal-safe.
 */
BR_API int64_t br_now_ns(void);

/*
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

/* br_sleep_ms - br_sleep_ns() in milliseconds. */
BR_API int br_sleep_ms(int64_t ms);

/*
 * br_sleep_until - sleep until br_now_ns() >= deadline_ns.
 *
 * A deadline in the past yields once and returns 0. Errors as br_sleep_ns.
 * Context: any thread; suspends a task, blocks a plain thread.
 */
BR_API int br_sleep_until(int64_t deadline_ns);

/*
 * br_yield - let the other runnable tasks of this worker run first.
 *
 * The task goes behind every task already runnable on its worker and may
 * resume on another worker. Returns 0, or -ECANCELED if the task has been
 * cancelled. From a plain thread it calls sched_yield() and returns 0.
 * Context: any thread.
 */
BR_API int br_yield(void);

/* ------------------------------------------------------------------ */
/* Configuration and runtime                                           */
/* ------------------------------------------------------------------ */

typedef struct br_runtime br_runtime;
typedef struct br_future br_future;

/* br_config.flags */
#define BR_CONFIG_NO_URING 0x1u /* use the futex fallback, not io_uring */
#define BR_CONFIG_QUIET 0x2u	/* no warning on stderr about fallbacks */

/*
 * Runtime configuration. A zero field means "the environment variable if
 * set, else the default", so NULL and &(br_config){ .workers = 4 } both
 * work.
 */
typedef struct br_config {
	/* BRAID_WORKERS, else one per online CPU;
	 * at most 1024 */
	unsigned workers;
	/* BRAID_STACK_SIZE (bytes, or with a K or M
	 * suffix), else 64 KiB; rounded up to whole
	 * pages, at least 16 KiB, at most 1 GiB */
	size_t stack_size;
	/* SQ entries per worker ring, default 256,
	 * at most 32768 */
	unsigned ring_entries;
	unsigned flags; /* BR_CONFIG_*; BRAID_NO_URING=1 sets NO_URING */
} br_config;

/* br_runtime_features() bits: what the kernel gave this runtime. */
#define BR_FEAT_URING 0x01u	    /* workers park in io_uring */
#define BR_FEAT_SINGLE_ISSUER 0x02u /* rings use IORING_SETUP_SINGLE_ISSUER */
#define BR_FEAT_DEFER_TASKRUN 0x04u /* rings use IORING_SETUP_DEFER_TASKRUN */
#define BR_FEAT_MSG_RING 0x08u	    /* workers wake each other by MSG_RING */
#define BR_FEAT_SEND_MSG_RING \
	0x10u /* plain threads wake by REGISTER_SEND_MSG_RING */
#define BR_FEAT_GUARD_INSTALL 0x20u /* stack guards by MADV_GUARD_INSTALL */
#define BR_FEAT_COOP_TASKRUN 0x40u  /* rings use IORING_SETUP_COOP_TASKRUN */

/*
 * br_runtime_new - start a runtime: its worker threads, each with a loop.
 *
 * Several runtimes may live in one process; they never share a worker.
 * If io_uring cannot be set up (old kernel, seccomp, io_uring_disabled),
 * the runtime still starts, prints one line on stderr (unless
 * BR_CONFIG_QUIET), and parks workers on futexes; br_runtime_features()
 * tells which.
 *
 * On success stores a new runtime in *out and returns 0. Errors: -EINVAL
 * (out NULL, a config field out of range), -ENOMEM, -EAGAIN (threads could
 * not be created). *out is untouched on failure. Context: any thread
 * outside a task's own runtime.
 */
BR_API int br_runtime_new(br_runtime **out, const br_config *cfg);

/*
 * br_runtime_free - shut a runtime down and free it.
 *
 * New spawns fail with BR_ECLOSED from the moment it is called. Every task
 * still alive is cancelled (each sees -ECANCELED at its next suspension
 * point) and the call waits for them to return, then joins the workers.
 * A task that never suspends again delays shutdown until it returns.
 * Futures of the runtime's tasks stay valid for whoever holds references.
 * NULL is a no-op. Context: a plain thread that is not one of rt's
 * workers (from inside rt it would wait for itself).
 */
BR_API void br_runtime_free(br_runtime *rt);

/*
 * br_runtime_workers - the number of worker threads, 0 if rt is not a live
 * runtime. Context: any thread.
 */
BR_API unsigned br_runtime_workers(const br_runtime *rt);

/*
 * br_runtime_features - the BR_FEAT_* bits in force for rt, 0 if rt is not
 * a live runtime. Context: any thread.
 */
BR_API unsigned br_runtime_features(const br_runtime *rt);

/*
 * br_current_runtime - the runtime whose task or loop is calling, or NULL
 * on a plain thread. Context: any thread.
 */
BR_API br_runtime *br_current_runtime(void);

/*
 * br_worker_id - the index (0..workers-1) of the worker running the
 * calling task or loop callback, -1 on a plain thread. A task may move
 * between workers at any suspension point, so the value is only a hint
 * unless the task is pinned. Context: any thread.
 */
BR_API int br_worker_id(void);

typedef void *(*br_task_fn)(void *arg);

/*
 * br_run - asyncio.run(): start a runtime, run main(arg) as a task, wait
 * for it, shut the runtime down.
 *
 * Stores main's value in *value if value is not NULL. Returns 0, the
 * task's error if it failed or was cancelled, or br_runtime_new()'s error.
 * Context: a plain thread.
 */
BR_API int br_run(const br_config *cfg, br_task_fn main, void *arg,
		  void **value);

/* ------------------------------------------------------------------ */
/* Futures and promises                                                */
/* ------------------------------------------------------------------ */

typedef enum br_state {
	BR_PENDING = 0,
	BR_DONE = 1,	  /* completed with a value */
	BR_FAILED = 2,	  /* completed with an error and a message */
	BR_CANCELLED = 3, /* cancelled; error is -ECANCELED */
} br_state;

typedef void (*br_future_fn)(br_future *f, void *arg);

/*
 * br_await - wait for f to complete.
 *
 * From a task the task suspends and its worker runs other tasks; a task
 * that awaits a child no worker has started yet runs it at once on its own
 * stack. From a plain thread the thread blocks. If the future is DONE,
 * stores its value in *value (when value is not NULL) and returns 0;
 * otherwise stores NULL and returns the future's error (-ECANCELED for
 * BR_CANCELLED). If the awaiting task itself is cancelled while it waits,
 * returns -ECANCELED at once and passes the cancellation on to f (use
 * br_shield() to prevent that).
 *
 * Borrows f. Errors: BR_EBADOBJ if f is not a live future, BR_EDEADLK if
 * called from a loop callback on a future not yet complete.
 * Context: any thread; suspends a task, blocks a plain thread.
 */
BR_API int br_await(br_future *f, void **value);

/*
 * br_future_state - the state of f now; BR_FAILED if f is not a live
 * future. Borrows f. Context: any thread.
 */
BR_API br_state br_future_state(const br_future *f);

/*
 * br_future_error - 0 while pending or DONE, the error once FAILED,
 * -ECANCELED once CANCELLED, BR_EBADOBJ if f is not a live future.
 * Context: any thread.
 */
BR_API int br_future_error(const br_future *f);

/*
 * br_future_message - a message describing the failure, "" unless FAILED
 * or CANCELLED. Valid while the caller holds a reference to f.
 * Context: any thread.
 */
BR_API const char *br_future_message(const br_future *f);

/*
 * br_future_bytes - the owned byte buffer of a DONE future (process jobs,
 * subprocess output, br_promise_resolve_bytes()), NULL if it has none.
 * Stores its length in *len when len is not NULL (0 if none). Valid while
 * the caller holds a reference to f. Context: any thread.
 */
BR_API const void *br_future_bytes(const br_future *f, size_t *len);

/*
 * br_future_retain - take another reference to f. Returns f.
 * Context: any thread.
 */
BR_API br_future *br_future_retain(br_future *f);

/*
 * br_future_release - drop a reference; the last one frees f. Releasing a
 * task's future does not cancel the task: it runs on, detached, and frees
 * itself when it ends. NULL is a no-op. Context: any thread.
 */
BR_API void br_future_release(br_future *f);

/*
 * br_future_on_done - call cb(f, arg) once f completes.
 *
 * If f has already completed, cb runs at once on the calling thread;
 * otherwise it runs on the thread that completes f, after f's state is
 * final. cb must not block for long. Borrows f (braid keeps f alive until
 * cb has returned). Returns 0, -EINVAL if cb is NULL, BR_EBADOBJ, -ENOMEM.
 * Context: any thread.
 */
BR_API int br_future_on_done(br_future *f, br_future_fn cb, void *arg);

/*
 * br_promise_new - a future that the caller completes (asyncio's
 * loop.create_future()).
 *
 * Returns a new reference, never NULL (a static FAILED(-ENOMEM) future
 * when memory is short). Context: any thread.
 */
BR_API br_future *br_promise_new(void);

/*
 * br_promise_resolve - complete p as DONE with value.
 *
 * Returns 0; BR_EDONE if p has already completed (p is unchanged);
 * -EINVAL if p is not a promise; BR_EBADOBJ. Borrows p.
 * Context: any thread.
 */
BR_API int br_promise_resolve(br_future *p, void *value);

/*
 * br_promise_resolve_bytes - complete p as DONE with a byte buffer, read
 * back with br_future_bytes(). Takes ownership of buf (malloc'd; freed with
 * the future, also on error). Errors as br_promise_resolve.
 * Context: any thread.
 */
BR_API int br_promise_resolve_bytes(br_future *p, void *buf, size_t len);

/*
 * br_promise_reject - complete p as FAILED with error (< 0) and a copy of
 * message (may be NULL). Errors as br_promise_resolve, and -EINVAL if
 * error >= 0. Context: any thread.
 */
BR_API int br_promise_reject(br_future *p, int error, const char *message);

/*
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

/* ------------------------------------------------------------------ */
/* Tasks                                                               */
/* ------------------------------------------------------------------ */

/* br_spawn_opts.flags */
#define BR_SPAWN_PINNED 0x1u /* run only on opts.worker; never stolen */

typedef struct br_spawn_opts {
	size_t stack_size; /* 0: the runtime's; rounded up to whole pages */
	unsigned worker;   /* with BR_SPAWN_PINNED: the worker index */
	unsigned flags;	   /* BR_SPAWN_* */
} br_spawn_opts;

/*
 * br_spawn - create a task running fn(arg) on rt (asyncio.create_task).
 *
 * The task is a small record until a worker starts it; then it gets a
 * fiber and a stack. Its future completes with fn's return value, or with
 * the error set by br_fail(). Spawned from a task of rt, it goes to the
 * spawning worker's queue, where idle workers steal it; from elsewhere,
 * to rt's injection queue.
 *
 * Returns a new reference, never NULL; a FAILED future with -EINVAL (fn
 * NULL), BR_EBADOBJ (rt not a runtime), BR_ECLOSED (rt shutting down) or
 * -ENOMEM. Context: any thread.
 */
BR_API br_future *br_spawn(br_runtime *rt, br_task_fn fn, void *arg);

/*
 * br_spawn_on - br_spawn() pinned to worker (0..workers-1): the task runs
 * only there and is never stolen (thread-per-core style).
 * Errors as br_spawn, and -EINVAL if worker is out of range.
 * Context: any thread.
 */
BR_API br_future *br_spawn_on(br_runtime *rt, unsigned worker, br_task_fn fn,
			      void *arg);

/*
 * br_spawn_ex - br_spawn() with options (opts may be NULL).
 * Errors as br_spawn_on, and -EINVAL for a stack size over 1 GiB or
 * unknown flags. Context: any thread.
 */
BR_API br_future *br_spawn_ex(br_runtime *rt, br_task_fn fn, void *arg,
			      const br_spawn_opts *opts);

/*
 * br_fail - make the calling task end FAILED with code (< 0) and a copy of
 * message when it returns. Returns NULL, so a task can write
 * `return br_fail(-EIO, "disk gone");`. A code >= 0 becomes
 * BR_ETASKFAILED. Outside a task it does nothing.
 * Context: task only.
 */
BR_API void *br_fail(int code, const char *message);

/*
 * br_cancelled - 1 if cancellation of the calling task has been requested,
 * else 0 (also outside a task). Context: any thread.
 */
BR_API int br_cancelled(void);

/*
 * br_current - the calling task's own future, borrowed (valid while the
 * task runs), NULL outside a task. Context: any thread.
 */
BR_API br_future *br_current(void);

/* ------------------------------------------------------------------ */
/* Combinators and task groups                                         */
/* ------------------------------------------------------------------ */

/* br_gather_ex flags */
#define BR_GATHER_FAIL_FAST 0x1u /* first failure cancels the rest */

/*
 * br_gather - wait for every future in fs[0..n) (asyncio.gather).
 *
 * Stores each DONE future's value in values[i] (NULL for the others) in
 * argument order, when values is not NULL. Always waits for all of them.
 * Returns 0 if all are DONE, else the error of the first one, in argument
 * order, that is not. Borrows fs[i]. Errors: -EINVAL (fs NULL with n > 0),
 * BR_EBADOBJ, and br_await's. n == 0 returns 0.
 * Context: any thread; suspends a task, blocks a plain thread.
 */
BR_API int br_gather(br_future *const *fs, size_t n, void **values);

/*
 * br_gather_ex - br_gather() with flags. With BR_GATHER_FAIL_FAST the first
 * input to fail or be cancelled (in completion order) cancels all the
 * others; the call still waits for every input, and returns that first
 * error. Context: as br_gather.
 */
BR_API int br_gather_ex(br_future *const *fs, size_t n, void **values,
			unsigned flags);

/*
 * br_wait_any - wait until at least one of fs[0..n) has completed
 * (asyncio.wait with FIRST_COMPLETED).
 *
 * Returns the lowest index of a completed future, or -ETIMEDOUT after
 * timeout_ms (< 0: no timeout; 0: just poll). Cancels nothing. Borrows
 * fs[i]. Errors: -EINVAL (fs NULL or n == 0), BR_EBADOBJ, -ECANCELED (the
 * waiting task was cancelled). Context: any thread; suspends a task,
 * blocks a plain thread.
 */
BR_API int br_wait_any(br_future *const *fs, size_t n, int64_t timeout_ms);

/*
 * br_wait_for - br_await() with a deadline (asyncio.wait_for).
 *
 * If f has not completed after timeout_ms (< 0: no timeout), requests its
 * cancellation and returns -ETIMEDOUT without waiting for it to end.
 * Otherwise as br_await. Borrows f. Context: as br_await.
 */
BR_API int br_wait_for(br_future *f, int64_t timeout_ms, void **value);

/*
 * br_shield - a future that completes as f does, but whose cancellation
 * does not reach f (asyncio.shield). Returns a new reference, never NULL.
 * Borrows f. Context: any thread.
 */
BR_API br_future *br_shield(br_future *f);

typedef struct br_as_completed br_as_completed;

/*
 * br_as_completed_new - an iterator over fs[0..n) in completion order.
 *
 * Returns a new iterator (free it with br_as_completed_free), or NULL if
 * fs is NULL with n > 0, an element is not a live future, or memory is
 * short. The iterator holds its own references to the futures.
 * Context: any thread.
 */
BR_API br_as_completed *br_as_completed_new(br_future *const *fs, size_t n);

/*
 * br_as_completed_next - wait for the next input to complete and return it
 * (one of the caller's own pointers from fs, borrowed). Inputs complete
 * before br_as_completed_new() come out first, in argument order. Returns
 * NULL when every input has been returned, or if the waiting task is
 * cancelled (the inputs are not cancelled), or from a loop callback when
 * nothing has completed.
 * Context: any thread; suspends a task, blocks a plain thread.
 */
BR_API br_future *br_as_completed_next(br_as_completed *it);

/* br_as_completed_free - free the iterator; NULL is a no-op. */
BR_API void br_as_completed_free(br_as_completed *it);

typedef struct br_group br_group;

/*
 * br_group_new - a task group (asyncio.TaskGroup, libdill bundles): tasks
 * spawned into it are waited for together, and the first one to fail
 * cancels all the others.
 *
 * Stores the group in *out. Errors: -EINVAL, BR_EBADOBJ, -ENOMEM.
 * Context: any thread.
 */
BR_API int br_group_new(br_group **out, br_runtime *rt);

/*
 * br_group_spawn - br_spawn() into the group. Returns a new reference,
 * never NULL. A group that has already seen a failure, or is being
 * waited for and finished, gives a CANCELLED future without running fn.
 * Context: any thread.
 */
BR_API br_future *br_group_spawn(br_group *g, br_task_fn fn, void *arg);

/*
 * br_group_wait - wait for every task of the group, including tasks
 * spawned while waiting. Returns 0 if none ended FAILED (tasks cancelled,
 * by the group or anyone else, are not failures), else the first
 * failure's error (in completion order). If the waiting task is cancelled,
 * cancels the group's tasks, still waits for them, and returns -ECANCELED.
 * Context: any thread; suspends a task, blocks a plain thread.
 */
BR_API int br_group_wait(br_group *g);

/* br_group_cancel - request cancellation of every task in the group. */
BR_API int br_group_cancel(br_group *g);

/*
 * br_group_free - cancel the group's remaining tasks, wait for them, free
 * the group. NULL is a no-op. Context: as br_group_wait.
 */
BR_API void br_group_free(br_group *g);

/* ------------------------------------------------------------------ */
/* Callbacks on the loop                                               */
/* ------------------------------------------------------------------ */

typedef void (*br_callback_fn)(void *arg);

/*
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

/*
 * br_call_later - br_call_soon() after delay_ms (<= 0: as soon as
 * possible). Cancel it with br_cancel() on the returned future.
 * Context: any thread.
 */
BR_API br_future *br_call_later(br_runtime *rt, int64_t delay_ms,
				br_callback_fn fn, void *arg);

/* ------------------------------------------------------------------ */
/* I/O on the loops                                                    */
/* ------------------------------------------------------------------ */

/*
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
 *
 * Cancellation: br_cancel() on a task blocked in one of these cancels the
 * operation in the kernel (IORING_OP_ASYNC_CANCEL on the ring that owns
 * it). The call still waits for the operation's final completion and
 * returns -ECANCELED, or the real result if the operation finished first:
 * a result is never dropped.
 *
 * Deadlines: br_io_timeout() gives the calling task a timeout applied to
 * each later call, and the *_timeout variants take one for a single call.
 * An operation still pending at its deadline is cancelled and the call
 * returns -ETIMEDOUT (or the result, if it won the race). Timeouts are
 * linked to the operation in the kernel (IORING_OP_LINK_TIMEOUT).
 *
 * Without io_uring (br_runtime_features() lacks BR_FEAT_URING) a task
 * waits for readiness on its loop and then makes the syscall; regular
 * files and calls without a readiness notion (openat, fsync, statx,
 * close) run as plain syscalls on the loop.
 *
 * Sockets made by braid (br_accept, br_socket, the tcp/unix/udp helpers)
 * are close-on-exec.
 */

/*
 * br_io_timeout - set the calling task's timeout for each later I/O call,
 * in milliseconds; < 0 means none (the default). Returns the previous
 * value. From a plain thread it sets the thread's own, which the calls
 * honour by polling first. Context: any thread.
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

/*
 * br_accept - accept a connection on listening socket fd. flags are
 * accept4()'s; SOCK_CLOEXEC is always added. Returns the new fd.
 */
BR_API int br_accept(int fd, struct sockaddr *addr, socklen_t *addrlen,
		     int flags);
BR_API int br_connect(int fd, const struct sockaddr *addr, socklen_t len);
BR_API int br_close(int fd);
BR_API int br_shutdown(int fd, int how);

/* br_openat - openat(2); O_CLOEXEC is always added. Returns the fd. */
BR_API int br_openat(int dirfd, const char *path, int flags, mode_t mode);

/* br_fsync - fsync(2), or fdatasync(2) when datasync is non-zero. */
BR_API int br_fsync(int fd, int datasync);

struct statx;
/* br_statx - statx(2). */
BR_API int br_statx(int dirfd, const char *path, int flags, unsigned mask,
		    struct statx *out);

/*
 * br_splice - splice(2): move up to len bytes from fd_in to fd_out, one of
 * which must be a pipe. An offset of -1 means the fd's own position.
 */
BR_API ssize_t br_splice(int fd_in, int64_t off_in, int fd_out, int64_t off_out,
			 size_t len, unsigned flags);

/*
 * br_poll - wait until fd is ready for events (POLLIN, POLLOUT, ...).
 * Returns the events that are ready (> 0), or a negative errno.
 */
BR_API int br_poll(int fd, short events);

/* Single-call deadlines: as the calls above, with timeout_ms (< 0: the
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

/*
 * br_write_all / br_send_all - write all len bytes, looping over short
 * writes. Returns len, or a negative errno (bytes already written are
 * lost to the caller's view: treat the stream as broken).
 */
BR_API ssize_t br_write_all(int fd, const void *buf, size_t len);
BR_API ssize_t br_send_all(int fd, const void *buf, size_t len, int flags);

/* ---- sockets ---- */

/*
 * br_tcp_listen - a TCP socket bound to host:port and listening, with
 * SO_REUSEADDR. host may be numeric or a name ("localhost"), or NULL for
 * every address; port 0 picks a free one (see br_local_port). backlog <= 0
 * means SOMAXCONN. Returns the fd or a negative errno (-ENOENT for a name
 * that does not resolve). Name resolution never runs on a loop: a task
 * waits for it on a separate thread.
 */
BR_API int br_tcp_listen(const char *host, uint16_t port, int backlog);

/*
 * br_tcp_connect - connect to host:port, trying each address the name
 * resolves to in turn; TCP_NODELAY is set. Returns the fd or the last
 * address's negative errno. Honours the task's br_io_timeout per address.
 */
BR_API int br_tcp_connect(const char *host, uint16_t port);

/* br_unix_listen / br_unix_connect - the same for a Unix-domain stream
 * socket at path (a leading '@' names an abstract socket). */
BR_API int br_unix_listen(const char *path, int backlog);
BR_API int br_unix_connect(const char *path);

/*
 * br_udp_bind - a UDP socket bound to host:port (NULL host: any). Use
 * br_sendto/br_recvfrom on it. Returns the fd or a negative errno.
 */
BR_API int br_udp_bind(const char *host, uint16_t port);

/* br_local_port - the local port socket fd is bound to, or a negative
 * errno. */
BR_API int br_local_port(int fd);

#ifdef __cplusplus
}
#endif

#endif /* BRAID_H */
