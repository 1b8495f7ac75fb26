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
 *   later suspension returns -ECANCELED). A child started in a group of
 *   its own (BR_EXEC_NEW_PGROUP, _NEW_SESSION: setpgid or setsid in the
 *   child before its exec) has its whole group killed first, with
 *   kill(-pid): the group's id is the child's pid, which nobody can take
 *   before the child is reaped, just after. Then whatever the child (and
 *   its group) wrote and is still in the capture pipe is read without
 *   waiting, so the output up to the end is kept: the task hands its
 *   buffer to the future however it ends (br__task_set_output), where
 *   br_exec_output() finds it. Output past max_output ends the child the
 *   same way, with -EMSGSIZE and its first max_output bytes. The task
 *   starts even when it was cancelled before it started
 *   (BR__T_RUNS_CANCELLED), so what the child wrote by then is kept too.
 *   The stdin feeder is an ordinary task: if it never started, the
 *   watcher closes its end of the socketpair.
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
 *     child's 0/1/2 come only from the plan, and pass_fds are the only
 *     others it gets.
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
#include <stdio.h>
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
	size_t max_out;	  /* captured bytes kept at most; 0: no limit */
	int group;	  /* the child leads a process group of its own */
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

/* The captured bytes so far, in a buffer that doubles. */
struct out {
	char *b;
	size_t len, cap;
};

/* Room for at least CAPTURE_MIN / 2 more bytes; 0 or -ENOMEM. */
static int out_room(struct out *o)
{
	size_t ncap;
	char *nb;

	if (o->cap - o->len >= CAPTURE_MIN / 2)
		return 0;
	ncap = o->cap ? o->cap * 2 : CAPTURE_MIN;
	nb = realloc(o->b, ncap);
	if (!nb)
		return -ENOMEM;
	o->b = nb;
	o->cap = ncap;
	return 0;
}

/* How much the next read may take: up to one byte past max_out, which
 * tells that the output passed it. */
static size_t out_want(const struct exec *x, const struct out *o)
{
	size_t want = o->cap - o->len;

	if (x->max_out && want > x->max_out + 1 - o->len)
		want = x->max_out + 1 - o->len;
	return want;
}

/* The output passed max_out: keep max_out bytes. */
static int out_over(const struct exec *x, struct out *o)
{
	if (!x->max_out || o->len <= x->max_out)
		return 0;
	o->len = x->max_out;
	return -EMSGSIZE;
}

/* Read cap_fd to end of file into o; 0 or a negative errno, with what
 * was read before it kept in o. */
static int capture(struct exec *x, struct out *o)
{
	for (;;) {
		int64_t ms = left_ms(x);
		ssize_t n;
		int r;

		if (ms == 0)
			return -ETIMEDOUT;
		r = out_room(o);
		if (r < 0)
			return r;
		n = br_read_timeout(x->cap_fd, o->b + o->len, out_want(x, o),
				    ms);
		if (n == -EINTR || n == -EAGAIN)
			continue;
		if (n <= 0)
			return (int)n;
		o->len += (size_t)n;
		r = out_over(x, o);
		if (r < 0)
			return r;
	}
}

/*
 * After a time limit or a cancellation killed the child: take what it
 * wrote before its end and is still in the pipe, without waiting (a
 * process outside the group may hold the pipe open). Plain reads: a
 * cancelled task's every wait would end at once.
 */
static void drain(struct exec *x, struct out *o)
{
	int fl = fcntl(x->cap_fd, F_GETFL);

	if (fl < 0 || fcntl(x->cap_fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return;
	while (out_room(o) == 0) {
		ssize_t n = read(x->cap_fd, o->b + o->len, out_want(x, o));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		o->len += (size_t)n;
		if (out_over(x, o) < 0)
			break;
	}
}

/*
 * Reap the child, killing it first (and its whole group, when it leads
 * one) if kill_it: the group's id is the child's pid, which cannot be
 * reused before the child is reaped, so the signal cannot reach a
 * stranger. Returns the wait status or -ECHILD (br__child_reap).
 */
static int end_child(pid_t pid, int pidfd, int group, int kill_it)
{
	if (kill_it && group)
		kill(-pid, SIGKILL);
	return br__child_reap(pid, pidfd, kill_it);
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
	struct out out = { NULL, 0, 0 };
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
		err = capture(x, &out);
	if (!err)
		err = wait_exit(x);
	status = end_child(x->pid, x->pidfd, x->group, err != 0);
	if (status < 0 && !err)
		err = status;
	if ((err == -ETIMEDOUT || err == -ECANCELED) && x->cap_fd >= 0)
		drain(x, &out);
	if (feeder) {
		br_cancel(feeder);
		br__wait_any(&feeder, 1, -1, BR__WAIT_NOCANCEL);
		br_future_release(feeder);
	}
	/* A feeder cancelled before it started never closed its end. */
	close_fd(&x->in_fd);
	close_fd(&x->cap_fd);
	close_fd(&x->pidfd);
	/* Kept however the future ends: br_exec_output() reads it. */
	if (out.b)
		br__task_set_output(out.b, out.len);
	if (err == -ECANCELED)
		return NULL; /* the task ends CANCELLED */
	if (err == -ETIMEDOUT)
		return br_fail(err, x->group ?
					    "br_exec: timed out; the child's "
					    "process group was killed" :
					    "br_exec: timed out; the child "
					    "was killed");
	if (err == -EMSGSIZE)
		return br_fail(err, "br_exec: the output passed max_output; "
				    "the child was killed");
	if (err == -ECHILD)
		return br_fail(err, "br_exec: the child was reaped elsewhere "
				    "(is SIGCHLD ignored?)");
	if (err)
		return br_fail(err, "br_exec: waiting for the child failed");
	return (void *)(intptr_t)status;
}

static void exec_done(br_future *f, void *arg)
{
	struct exec *x = arg;

	if (!atomic_exchange(&x->claimed, 1)) {
		/* The task never ran: the child is ours to end. */
		end_child(x->pid, x->pidfd, x->group, 1);
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

		return br__spawn_task(rt, exec_task, x, &so,
				      BR__T_RUNS_CANCELLED);
	}
	return br__spawn_task(rt, exec_task, x, NULL, BR__T_RUNS_CANCELLED);
}

static br_future *fail(int code, const char *msg)
{
	return br__future_failed(code, msg);
}

#define EXEC_FLAGS \
	(BR_EXEC_NEW_PGROUP | BR_EXEC_NEW_SESSION | BR_EXEC_CLEAN_ENV)

/* The options added after the first release; NULL if they are fine,
 * else why not (-EINVAL, or -EBADF for a pass_fds entry not open). */
static const char *check_more(const br_exec_opts *o, int *err)
{
	*err = -EINVAL;
	if (o->flags & ~EXEC_FLAGS)
		return "br_exec: unknown flags";
	if (o->npass_fds && !o->pass_fds)
		return "br_exec: npass_fds without pass_fds";
	if (o->env_keep && !(o->flags & BR_EXEC_CLEAN_ENV))
		return "br_exec: env_keep needs BR_EXEC_CLEAN_ENV";
	for (size_t k = 0; k < o->npass_fds; k++) {
		if (o->pass_fds[k] < 3)
			return "br_exec: pass_fds may not hold 0, 1 or 2 "
			       "(use the stdio modes)";
		if (fcntl(o->pass_fds[k], F_GETFD) < 0) {
			*err = -EBADF;
			return "br_exec: a pass_fds entry is not open";
		}
	}
	*err = 0;
	return NULL;
}

static void env_free(char **env)
{
	if (!env)
		return;
	for (char **e = env; *e; e++)
		free(*e);
	free(env);
}

/* Does env entry "NAME=value" set name (len bytes)? */
static int env_sets(const char *entry, const char *name, size_t len)
{
	return !strncmp(entry, name, len) && entry[len] == '=';
}

/*
 * BR_EXEC_CLEAN_ENV: the variables named in keep, as this process has
 * them, then every entry of add (which wins over a kept one of the same
 * name). A NULL-terminated array of malloc'd strings, or NULL (-ENOMEM).
 */
static char **clean_env(const char *const *keep, const char *const *add)
{
	size_t nk = 0, na = 0, n = 0;
	char **env;

	while (keep && keep[nk])
		nk++;
	while (add && add[na])
		na++;
	env = calloc(nk + na + 1, sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < nk; i++) {
		size_t len = strlen(keep[i]);
		const char *v = getenv(keep[i]);
		int dup = 0;

		for (size_t j = 0; j < na && !dup; j++)
			dup = env_sets(add[j], keep[i], len);
		if (!v || dup || !len || strchr(keep[i], '='))
			continue;
		env[n] = malloc(len + strlen(v) + 2);
		if (!env[n])
			goto nomem;
		sprintf(env[n++], "%s=%s", keep[i], v);
	}
	for (size_t j = 0; j < na; j++) {
		env[n] = br__strdup(add[j]);
		if (!env[n++])
			goto nomem;
	}
	return env;
nomem:
	env_free(env);
	return NULL;
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
	char **env = NULL;
	const char *why;
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
	why = check_more(o, &err);
	if (why)
		return fail(err, why);
	if (atomic_load_explicit(&rt->closing, memory_order_relaxed))
		return fail(BR_ECLOSED, "br_exec: the runtime is closing");
	if (o->flags & BR_EXEC_CLEAN_ENV) {
		env = clean_env(o->env_keep, o->envp);
		if (!env)
			return fail(-ENOMEM, "br_exec: out of memory");
	}
	x = calloc(1, sizeof(*x));
	if (!x) {
		env_free(env);
		return fail(-ENOMEM, "br_exec: out of memory");
	}
	if (o->stdin_data)
		modes[0] = BR_EXEC_CAPTURE; /* fed by the feeder task */

	plan.argv = argv;
	plan.envp = env ? env : o->envp ? (char *const *)o->envp : environ;
	plan.cwd = o->cwd;
	plan.group = (o->flags & BR_EXEC_NEW_SESSION) ? BR__GROUP_SESSION :
		     (o->flags & BR_EXEC_NEW_PGROUP)  ? BR__GROUP_NEW :
							BR__GROUP_SAME;
	plan.keep = o->pass_fds;
	plan.nkeep = o->npass_fds;
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
	env_free(env);
	env = NULL;
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
			end_child(pid, -1, plan.group != BR__GROUP_SAME, 1);
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
	x->max_out = o->max_output;
	x->group = plan.group != BR__GROUP_SAME;
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
	env_free(env);
	free(x);
	if (err == -ENOENT)
		return fail(err, "br_exec: no such program");
	if (err == -ECHILD)
		return fail(err, "br_exec: the child was reaped elsewhere "
				 "(is SIGCHLD ignored?)");
	return fail(err, "br_exec: could not start the child");
}

const void *br_exec_output(const br_future *f, size_t *len)
{
	if (len)
		*len = 0;
	/* An exec future is exec_task()'s; a child that never started
	 * gives a plain FAILED future, with no output. */
	if (!br__future_ok(f) || !br__future_is_task(f) ||
	    ((const struct br__task *)f)->fn != exec_task ||
	    br__future_state(f) == BR_PENDING)
		return NULL;
	if (len)
		*len = f->len;
	return f->bytes;
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
	/* Set for the compiler: br_exec_status() fills both whenever it
	 * returns 0, which it cannot see across files. */
	int code = -1, signo = 0, r = br_exec_status(f, &code, &signo);

	if (r < 0)
		return r;
	return signo ? 128 + signo : code;
}
