/* SPDX-License-Identifier: MIT */
/*
 * exec.c - subprocesses: br_exec() and the task that watches each child.
 *
 * Design
 *   br_exec() starts the child at once, on the calling thread, with
 *   br__spawn() (forkexec.c: a vfork-style clone, or posix_spawnp()), so
 *   no copy of this multi-threaded process ever runs user code. The plan
 *   gives the child its stdin, stdout and stderr (dup2 of our
 *   close-on-exec ends, or /dev/null), and a chdir when asked. Spawning
 *   synchronously is what lets BR_EXEC_PIPE hand the caller its fds when
 *   br_exec() returns, and lets a missing program fail the future at once.
 *
 *   The child is then owned by a pidfd (from the clone, else pidfd_open)
 *   and by one task of the runtime, exec_task(), whose future is the one
 *   returned:
 *     1. with stdin_data, it spawns a feeder task that writes the bytes
 *        with br_send_all(MSG_NOSIGNAL) and closes stdin, concurrently
 *        with step 2, so a child filling its stdout pipe while we fill its
 *        stdin cannot deadlock;
 *     2. with a capture, it reads the output pipe with br_read into a
 *        buffer that doubles, until end of file;
 *     3. it waits for the exit with br_poll(pidfd, POLLIN), which goes
 *        through the worker's ring (IORING_OP_POLL_ADD) or the fallback
 *        loop, and reaps with waitid(P_PIDFD, WEXITED);
 *     4. it cancels the feeder (a grandchild may still hold stdin open)
 *        and waits for it without being cancellable, since the feeder
 *        reads the record and the caller's stdin_data.
 *   A timeout or a cancellation at any suspension of steps 2-3 kills the
 *   child with pidfd_send_signal(SIGKILL) and reaps it at once with a
 *   blocking waitid: after SIGKILL the exit is a matter of microseconds,
 *   and a cancelled task could not wait on the loop anyway (its every
 *   later suspension returns -ECANCELED).
 *
 *   Where the task runs: spawned from a task of the runtime, it is
 *   pinned to the spawning worker. It spends its life waiting on that
 *   worker's ring, so there is nothing to balance, and a plain spawn
 *   would wake an idle worker to steal it, a tenth of the whole cost of
 *   a short-lived child (docs/ARCHITECTURE.md). A large capture
 *   is then copied by that worker only, which is the price.
 *
 *   stdin is a socketpair rather than a pipe so that writing to a child
 *   that has gone is -EPIPE, not a SIGPIPE that would kill this process
 *   (libuv makes the same choice for its stdio streams).
 *
 * Invariants
 *   - Every fd braid creates here is close-on-exec in the parent; the
 *     child's 0/1/2 come only from the plan.
 *   - No zombie: the child is reaped before anyone waiting on the future
 *     is woken. Either exec_task() runs, and reaps on every path out of
 *     it before it returns; or it never runs (the spawn of the task
 *     failed, or the runtime dropped it before it started), and then
 *     exec_done(), the future's completion callback, sees the record
 *     unclaimed and kills and reaps the child itself. exec_done() is the
 *     future's first waiter (registered before br_exec() returns it) and
 *     waiters fire in order, so it runs before any other; only a caller
 *     polling br_future_state() could see the end a moment before the
 *     reap, and only on that path.
 *   - The pid cannot be reused before pidfd_open() (when the clone gave
 *     no pidfd): a zombie keeps its
 *     pid until reaped, and braid does not reap it before. A program
 *     that reaps children itself (waitpid(-1), SIGCHLD set to SIG_IGN)
 *     breaks this; braid then reports -ECHILD and sends no signal by pid
 *     once pidfd_open() has said the process is gone.
 *
 * Concurrency
 *   - br_exec(): any thread. exec_task(): a task of rt, pinned to the
 *     spawning worker or on any worker (see above); the feeder: a task of
 *     rt on any worker. exec_done(): the thread that completes the
 *     future.
 *   - claimed decides, once, whether the task or exec_done() owns the
 *     child; everything else in the record is written before the task is
 *     spawned (published by the spawn) or by the task alone. in_fd is
 *     handed to the feeder when it is spawned and back when it is awaited.
 *
 * Memory ordering
 *   - claimed: atomic exchange (seq_cst) by both parties; the loser only
 *     frees.
 *
 * Lifetime
 *   The record is freed by exec_done(), which runs after the task (if it
 *   ran) has returned. stdin_data belongs to the caller and must outlive
 *   the future; the capture buffer becomes the future's bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "clock.h"
#include "future.h"
#include "forkexec.h"
#include "task.h"
#include "wait.h"
#include "worker.h"

#define CAPTURE_MIN (64u << 10)

struct exec {
	br_runtime *rt;
	pid_t pid;
	int pidfd;
	int in_fd;  /* feeder's socket end, -1 if none */
	int cap_fd; /* capture pipe's read end, -1 if none */
	const void *in_data;
	size_t in_len;
	int64_t deadline; /* monotonic ns, -1: none */
	_Atomic int claimed;
};

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Milliseconds left before x's deadline: -1 for none, 0 once passed. */
static int64_t left_ms(const struct exec *x)
{
	int64_t ns;

	if (x->deadline < 0)
		return -1;
	ns = x->deadline - br_now_ns();
	if (ns <= 0)
		return 0;
	return (ns + BR__NS_PER_MS - 1) / BR__NS_PER_MS;
}

static void *feed_task(void *arg)
{
	struct exec *x = arg;

	/* The result does not matter: a child that stops reading (or
	 * exits) before taking everything just makes this end early. */
	(void)br_send_all(x->in_fd, x->in_data, x->in_len, MSG_NOSIGNAL);
	close_fd(&x->in_fd);
	return NULL;
}

/* Read cap_fd to end of file into *buf; 0 or a negative errno. */
static int capture(struct exec *x, char **buf, size_t *len)
{
	size_t cap = 0;
	char *b = NULL;

	*len = 0;
	for (;;) {
		int64_t ms = left_ms(x);
		ssize_t n;

		if (ms == 0)
			break;
		if (cap - *len < CAPTURE_MIN / 2) {
			size_t ncap = cap ? cap * 2 : CAPTURE_MIN;
			char *nb = realloc(b, ncap);

			if (!nb) {
				free(b);
				return -ENOMEM;
			}
			b = nb;
			cap = ncap;
		}
		n = br_read_timeout(x->cap_fd, b + *len, cap - *len, ms);
		if (n == -EINTR || n == -EAGAIN)
			continue;
		if (n < 0) {
			free(b);
			return (int)n;
		}
		if (n == 0) {
			*buf = b;
			return 0;
		}
		*len += (size_t)n;
	}
	free(b);
	return -ETIMEDOUT;
}

/* Wait for the child to exit (not reaped yet); 0 or a negative errno. */
static int wait_exit(struct exec *x)
{
	for (;;) {
		int64_t ms = left_ms(x);
		int r;

		if (ms == 0)
			return -ETIMEDOUT;
		r = br_poll_timeout(x->pidfd, POLLIN, ms);
		if (r > 0)
			return 0;
		if (r != -EINTR && r != -EAGAIN)
			return r;
	}
}

static void *exec_task(void *arg)
{
	struct exec *x = arg;
	br_future *feeder = NULL;
	char *out = NULL;
	size_t out_len = 0;
	int err = 0, status;

	if (atomic_exchange(&x->claimed, 1))
		return NULL; /* not reached: exec_done() runs after us */
	if (x->in_fd >= 0) {
		feeder = br_spawn(x->rt, feed_task, x);
		/* feed_task never fails, so FAILED means it never ran. */
		if (br_future_state(feeder) == BR_FAILED) {
			err = br_future_error(feeder);
			br_future_release(feeder);
			feeder = NULL;
			close_fd(&x->in_fd);
		}
	}
	if (!err && x->cap_fd >= 0)
		err = capture(x, &out, &out_len);
	if (!err)
		err = wait_exit(x);
	status = br__child_reap(x->pid, x->pidfd, err != 0);
	if (status < 0 && !err)
		err = status;
	if (feeder) {
		br_cancel(feeder);
		br__wait_any(&feeder, 1, -1, BR__WAIT_NOCANCEL);
		br_future_release(feeder);
	}
	close_fd(&x->cap_fd);
	close_fd(&x->pidfd);
	if (err)
		free(out);
	if (err == -ECANCELED)
		return NULL; /* the task ends CANCELLED */
	if (err == -ETIMEDOUT)
		return br_fail(err, "br_exec: timed out; the child was killed");
	if (err == -ECHILD)
		return br_fail(err, "br_exec: the child was reaped elsewhere "
				    "(is SIGCHLD ignored?)");
	if (err)
		return br_fail(err, "br_exec: waiting for the child failed");
	if (out)
		br__task_set_bytes(out, out_len);
	return (void *)(intptr_t)status;
}

static void exec_done(br_future *f, void *arg)
{
	struct exec *x = arg;

	if (!atomic_exchange(&x->claimed, 1)) {
		/* The task never ran: the child is ours to end. */
		br__child_reap(x->pid, x->pidfd, 1);
		close_fd(&x->in_fd);
		close_fd(&x->cap_fd);
		close_fd(&x->pidfd);
	}
	free(x);
}

static int mode_ok(int mode, int capture_ok)
{
	return mode == BR_EXEC_INHERIT || mode == BR_EXEC_NULL ||
	       mode == BR_EXEC_PIPE || (capture_ok && mode == BR_EXEC_CAPTURE);
}

/*
 * What child fd `fd` gets in `mode`, in plan->stdio[fd]. For PIPE and
 * CAPTURE, *parent gets our end and *child the end the child gets (both
 * close-on-exec). stdin uses a socketpair (see the header comment).
 */
static int stdio_setup(struct br__spawn_plan *plan, int fd, int mode,
		       int *parent, int *child)
{
	int p[2];

	plan->stdio[fd] = BR__STDIO_INHERIT;
	if (mode == BR_EXEC_NULL)
		plan->stdio[fd] = BR__STDIO_NULL;
	if (mode != BR_EXEC_PIPE && mode != BR_EXEC_CAPTURE)
		return 0;
	if (fd == 0) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) < 0)
			return -errno;
		*parent = p[0];
		*child = p[1];
	} else {
		if (pipe2(p, O_CLOEXEC) < 0)
			return -errno;
		*parent = p[0];
		*child = p[1];
		/* Fewer wake-ups for big outputs; the default is kept if the
		 * system limit is lower. */
		if (mode == BR_EXEC_CAPTURE)
			(void)fcntl(p[0], F_SETPIPE_SZ, 1 << 20);
	}
	plan->stdio[fd] = *child;
	return 0;
}

/*
 * Start exec_task() for x. From a worker of rt it stays on that worker
 * (see "Where the task runs" above); from anywhere else it goes to rt's
 * injection queue as any spawn does.
 */
static br_future *spawn_watcher(br_runtime *rt, struct exec *x)
{
	int id = br_worker_id();

	if (id >= 0 && br_current_runtime() == rt) {
		br_spawn_opts so = { .worker = (unsigned)id,
				     .flags = BR_SPAWN_PINNED };

		return br_spawn_ex(rt, exec_task, x, &so);
	}
	return br_spawn(rt, exec_task, x);
}

static br_future *fail(int code, const char *msg)
{
	return br__future_failed(code, msg);
}

br_future *br_exec(br_runtime *rt, const char *const *argv, br_exec_opts *opts)
{
	static const br_exec_opts none;
	const br_exec_opts *o = opts ? opts : &none;
	int par[3] = { -1, -1, -1 }, chi[3] = { -1, -1, -1 };
	int modes[3] = { o->stdin_mode, o->stdout_mode, o->stderr_mode };
	struct br__spawn_plan plan;
	struct exec *x;
	br_future *f;
	int64_t start = br_now_ns();
	pid_t pid;
	int err, i, pidfd;

	if (opts)
		opts->stdin_fd = opts->stdout_fd = opts->stderr_fd = -1;
	if (!br__runtime_ok(rt))
		return fail(BR_EBADOBJ, "br_exec: not a runtime");
	if (!argv || !argv[0] || !argv[0][0])
		return fail(-EINVAL, "br_exec: argv is NULL or empty");
	if (!mode_ok(o->stdin_mode, 0) || !mode_ok(o->stdout_mode, 1) ||
	    !mode_ok(o->stderr_mode, 1))
		return fail(-EINVAL, "br_exec: bad stdio mode");
	if ((o->stdin_len && !o->stdin_data) ||
	    (o->stdin_data && o->stdin_mode != BR_EXEC_INHERIT))
		return fail(-EINVAL, "br_exec: stdin_data needs stdin_mode 0");
	if (atomic_load_explicit(&rt->closing, memory_order_relaxed))
		return fail(BR_ECLOSED, "br_exec: the runtime is closing");
	x = calloc(1, sizeof(*x));
	if (!x)
		return fail(-ENOMEM, "br_exec: out of memory");
	if (o->stdin_data)
		modes[0] = BR_EXEC_CAPTURE; /* fed by the feeder task */

	plan.argv = argv;
	plan.envp = o->envp ? (char *const *)o->envp : environ;
	plan.cwd = o->cwd;
	for (i = 0; i < 3; i++) {
		/* stderr joins stdout's capture pipe (2>&1). */
		if (i == 2 && modes[2] == BR_EXEC_CAPTURE &&
		    modes[1] == BR_EXEC_CAPTURE) {
			plan.stdio[2] = BR__STDIO_STDOUT;
			break;
		}
		err = stdio_setup(&plan, i, modes[i], &par[i], &chi[i]);
		if (err)
			goto err_fds;
	}

	err = br__spawn(&plan, &pid, &pidfd);
	for (i = 0; i < 3; i++)
		close_fd(&chi[i]);
	if (err)
		goto err_fds;
	if (pidfd < 0)
		pidfd = br__child_pidfd(pid);
	if (pidfd < 0) {
		/* ESRCH: the child has already gone and someone else reaped
		 * it (SIGCHLD ignored). Its pid may be reused by now, so no
		 * kill then. Otherwise the child is still ours to end. */
		if (errno == ESRCH) {
			err = -ECHILD;
		} else {
			err = -errno;
			br__child_reap(pid, -1, 1);
		}
		goto err_fds;
	}

	x->rt = rt;
	x->pid = pid;
	x->pidfd = pidfd;
	x->in_fd = -1;
	x->cap_fd = -1;
	x->in_data = o->stdin_data;
	x->in_len = o->stdin_len;
	x->deadline =
		o->timeout_ms > 0 ?
			br__deadline_add(start, br__ms_to_ns(o->timeout_ms)) :
			-1;
	if (o->stdin_data)
		x->in_fd = par[0];
	for (i = 0; i < 3; i++) {
		if (modes[i] == BR_EXEC_CAPTURE && i > 0 && x->cap_fd < 0)
			x->cap_fd = par[i];
		if (modes[i] != BR_EXEC_PIPE || !opts)
			continue;
		if (i == 0)
			opts->stdin_fd = par[0];
		else if (i == 1)
			opts->stdout_fd = par[1];
		else
			opts->stderr_fd = par[2];
	}
	atomic_init(&x->claimed, 0);

	f = spawn_watcher(rt, x);
	if (br_future_on_done(f, exec_done, x) < 0) {
		/* Only for a static out-of-memory future: the task never
		 * runs, so end the child here. */
		exec_done(f, x);
	}
	if (br_future_state(f) == BR_FAILED) {
		/* The task could not start (or failed already): hand out no
		 * fds, as documented, and close the caller's pipe ends. */
		for (i = 0; i < 3; i++)
			if (modes[i] == BR_EXEC_PIPE)
				close_fd(&par[i]);
		if (opts)
			opts->stdin_fd = opts->stdout_fd = opts->stderr_fd = -1;
	}
	return f;

err_fds:
	for (i = 0; i < 3; i++) {
		close_fd(&par[i]);
		close_fd(&chi[i]);
	}
	free(x);
	if (err == -ENOENT)
		return fail(err, "br_exec: no such program");
	if (err == -ECHILD)
		return fail(err, "br_exec: the child was reaped elsewhere "
				 "(is SIGCHLD ignored?)");
	return fail(err, "br_exec: could not start the child");
}

int br_exec_status(const br_future *f, int *code, int *signo)
{
	int s;

	if (!br__future_ok(f))
		return BR_EBADOBJ;
	switch (br__future_state(f)) {
	case BR_PENDING:
		return -EAGAIN;
	case BR_DONE:
		break;
	default:
		return f->error;
	}
	s = (int)(intptr_t)f->value;
	if (code)
		*code = WIFEXITED(s) ? WEXITSTATUS(s) : -1;
	if (signo)
		*signo = WIFSIGNALED(s) ? WTERMSIG(s) : 0;
	return 0;
}

int br_exec_exit_code(const br_future *f)
{
	int code, signo, r = br_exec_status(f, &code, &signo);

	if (r < 0)
		return r;
	return signo ? 128 + signo : code;
}
