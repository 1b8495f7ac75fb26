/* SPDX-License-Identifier: MIT */
/*
 * forkexec.c - start a child process that execs a program: a vfork-style
 * clone on a borrowed stack, or posix_spawnp().
 *
 * Design
 *   A child of a multi-threaded process may run nothing but system calls
 *   before it execs: another thread may hold any lock of libc. glibc's
 *   posix_spawnp() honours that with clone(CLONE_VM|CLONE_VFORK), but it
 *   maps a fresh stack for the child and unmaps it after, and an munmap
 *   in a multi-threaded process costs a TLB shootdown on every core that
 *   runs one of its threads; and the caller needs one more call,
 *   pidfd_open(), to get a pidfd. Here:
 *     - the child runs on a stack that is idle while the parent thread
 *       waits for the exec: on a worker thread, the worker's alternate
 *       signal stack (no signal can be delivered to the thread then: it
 *       blocks them all, and it runs no code); on any other thread, a
 *       buffer on the caller's own stack below its frame, as musl does.
 *       Nothing is mapped or unmapped per child;
 *     - CLONE_PIDFD returns the pidfd with the pid;
 *     - clone3() with CLONE_CLEAR_SIGHAND (Linux 5.5) has the
 *       kernel put every handled signal back to SIG_DFL in the child, so
 *       the child need not ask about each of the 64 with a system call
 *       of its own. clone3's child starts on the new stack with
 *       nothing to return to, so clone3_call() is a few lines of asm
 *       that call child_main(). When clone3 is refused, glibc's
 *       clone() starts the child;
 *     - the child runs child_main(), which makes raw system calls only
 *       (inline asm: no errno, no PLT, no libc lock) and is built without
 *       sanitizer instrumentation, since it runs on memory shared with a
 *       parent that is frozen mid-call. It calls setpgid or setsid first
 *       when asked, so the group exists before the parent learns the
 *       pid and may signal it;
 *     - a failure before or at the exec (chdir, open, dup, execve) is
 *       written to the parent's memory before the child exits 127; the
 *       parent reads it after clone() returns (CLONE_VFORK: after the
 *       child's exec or exit), reaps the child, and returns the errno.
 *   The parent blocks every signal around the clone, so the child starts
 *   with all of them blocked and no handler of this process can run on
 *   its stack. The child then has every handled signal back at SIG_DFL
 *   (what exec does anyway; after clone() it asks the kernel about each
 *   of the 64, as glibc's child does, since a handler installed by any
 *   thread at any time must be seen), and SIGPIPE and SIGXFSZ too, and
 *   only then empties its signal mask.
 *
 *   posix_spawnp() with the same file actions remains: under
 *   ThreadSanitizer (which intercepts clone and would track the child as
 *   a thread of ours), under valgrind (which turns a vfork into a fork,
 *   so the child's error report would not reach us), on architectures
 *   other than x86-64 (the raw calls are written and tested for it only),
 *   when the kernel refuses the clone flags (ENOSYS, EINVAL, EPERM;
 *   remembered for the process), and when a test sets br__spawn_way.
 *
 * Invariants
 *   - No fd is created in the child except its 0, 1 and 2; every fd of
 *     the parent is close-on-exec or the caller's business (the plan's
 *     keep list, whose close-on-exec the child clears in its own copy
 *     of the descriptor table). A source fd
 *     below 3 that must move out of the way is copied above 2 by the
 *     parent, before either way of starting the child, and closed after.
 *   - The child never returns from child_main() into code of the parent.
 *
 * Concurrency
 *   Any thread, any number at once: each call uses its own stack for the
 *   child (a thread spawns one child at a time, held by CLONE_VFORK).
 *   posix_off and clone3_off are set once, relaxed: a stale read costs
 *   one refused clone.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define BR__VALGRIND 1
#endif

#include "child.h"
#include "fiber.h"
#include "forkexec.h"
#include "worker.h"

#if defined(__SANITIZE_THREAD__)
#define NO_VFORK 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define NO_VFORK 1
#endif
#endif
/* The raw calls below are written, and the path tested, for x86-64. */
#if !defined(__x86_64__)
#define NO_VFORK 1
#endif

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x1000
#endif

int br__spawn_way;

static int spawn_posix(const struct br__spawn_plan *p, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t sigs;
	int err, i, flags;

	err = posix_spawn_file_actions_init(&fa);
	if (err)
		return -err;
	err = posix_spawnattr_init(&attr);
	if (err) {
		posix_spawn_file_actions_destroy(&fa);
		return -err;
	}
	sigemptyset(&sigs);
	posix_spawnattr_setsigmask(&attr, &sigs);
	sigaddset(&sigs, SIGPIPE);
	sigaddset(&sigs, SIGXFSZ);
	posix_spawnattr_setsigdefault(&attr, &sigs);
	flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
	if (p->group == BR__GROUP_NEW) {
		flags |= POSIX_SPAWN_SETPGROUP;
		posix_spawnattr_setpgroup(&attr, 0);
	} else if (p->group == BR__GROUP_SESSION) {
		flags |= POSIX_SPAWN_SETSID;
	}
	posix_spawnattr_setflags(&attr, (short)flags);
	if (p->cwd)
		err = posix_spawn_file_actions_addchdir_np(&fa, p->cwd);
	/* dup2 of an fd onto itself clears its close-on-exec (glibc 2.29,
	 * POSIX.1-2024). */
	for (size_t k = 0; k < p->nkeep && !err; k++)
		err = posix_spawn_file_actions_adddup2(&fa, p->keep[k],
						       p->keep[k]);
	for (i = 0; i < 3 && !err; i++) {
		int s = p->stdio[i];

		if (s == BR__STDIO_NULL)
			err = posix_spawn_file_actions_addopen(
				&fa, i, "/dev/null", i ? O_WRONLY : O_RDONLY,
				0);
		else if (s == BR__STDIO_STDOUT)
			err = posix_spawn_file_actions_adddup2(&fa, 1, i);
		else if (s >= 0)
			err = posix_spawn_file_actions_adddup2(&fa, s, i);
	}
	if (!err)
		err = posix_spawnp(pid, p->argv[0], &fa, &attr,
				   (char *const *)p->argv, p->envp);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	return -err;
}

#ifndef NO_VFORK

static const char default_path[] = "/bin:/usr/bin"; /* glibc's, unset PATH */

/* The kernel's struct sigaction on x86-64 (handler, flags, restorer,
 * mask); all zero is SIG_DFL. */
struct ksigaction {
	unsigned long handler, flags, restorer, mask;
};

/* Shared by the parent and the child (on the parent's stack). */
struct child {
	const struct br__spawn_plan *p;
	const char *path; /* PATH to search, or NULL for a name with '/' */
	int cleared;	  /* the kernel reset the handlers (clone3) */
	volatile int err; /* set by the child: 0, or why it did not exec */
};

/*
 * The child's code must make no call: no libc (locks, errno, PLT
 * resolution on a shared address space), no sanitizer runtime, no loop
 * the compiler turns into memcpy().
 */
#if defined(__clang__)
#define CHILD_CODE                                                     \
	__attribute__((no_sanitize("address", "undefined", "memory"))) \
	__attribute__((noinline))
#else
#define CHILD_CODE                                                    \
	__attribute__((no_sanitize("address", "undefined"), noinline, \
		       optimize("no-tree-loop-distribute-patterns")))
#endif

static inline __attribute__((always_inline)) long rsys(long n, long a, long b,
						       long c, long d)
{
	register long r10 __asm__("r10") = d;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10)
			 : "rcx", "r11", "memory");
	return ret;
}

/* execve() name in each directory of c->path, as execvp() does: go on
 * past a directory where it is missing, remember EACCES. */
static CHILD_CODE long child_search(struct child *c)
{
	const char *name = c->p->argv[0], *d = c->path, *e;
	char buf[PATH_MAX];
	size_t nlen = 0, dlen, k;
	int eacces = 0;
	long r = -ENOENT;

	while (name[nlen])
		nlen++;
	if (nlen > NAME_MAX)
		return -ENAMETOOLONG;
	for (;;) {
		for (e = d; *e && *e != ':'; e++)
			;
		dlen = (size_t)(e - d);
		if (dlen + nlen + 2 <= sizeof(buf)) {
			for (k = 0; k < dlen; k++)
				buf[k] = d[k];
			if (dlen) /* an empty entry is the working directory */
				buf[dlen++] = '/';
			for (k = 0; k <= nlen; k++)
				buf[dlen + k] = name[k];
			r = rsys(SYS_execve, (long)buf, (long)c->p->argv,
				 (long)c->p->envp, 0);
			switch (-r) {
			case EACCES:
				eacces = 1;
				break;
			case ENOENT:
			case ENOTDIR:
			case ESTALE:
			case ENODEV:
			case ETIMEDOUT:
				break;
			default:
				return r;
			}
		}
		if (!*e)
			break;
		d = e + 1;
	}
	return eacces ? -EACCES : r;
}

static CHILD_CODE int child_main(void *arg)
{
	struct child *c = arg;
	const struct br__spawn_plan *p = c->p;
	struct ksigaction sa;
	unsigned long none = 0;
	int i, sig;
	long r = 0;

	/* Back to SIG_DFL: every handled signal (a handler of the parent
	 * must not run here), and SIGPIPE and SIGXFSZ even if ignored.
	 * After CLONE_CLEAR_SIGHAND only the last two are left. */
	for (sig = 1; sig <= 64; sig++) {
		if (c->cleared && sig != SIGPIPE && sig != SIGXFSZ)
			continue;
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		if (sig != SIGPIPE && sig != SIGXFSZ) {
			if (rsys(SYS_rt_sigaction, sig, 0, (long)&sa, 8) < 0 ||
			    sa.handler == (unsigned long)SIG_DFL ||
			    sa.handler == (unsigned long)SIG_IGN)
				continue;
		}
		sa.handler = sa.flags = sa.restorer = sa.mask = 0;
		rsys(SYS_rt_sigaction, sig, (long)&sa, 0, 8);
	}
	if (p->group == BR__GROUP_NEW)
		r = rsys(SYS_setpgid, 0, 0, 0, 0);
	else if (p->group == BR__GROUP_SESSION)
		r = rsys(SYS_setsid, 0, 0, 0, 0);
	if (r < 0)
		goto fail;
	if (p->cwd) {
		r = rsys(SYS_chdir, (long)p->cwd, 0, 0, 0);
		if (r < 0)
			goto fail;
	}
	/* The child's own copy of the table: the parent's flags stay. */
	for (size_t k = 0; k < p->nkeep; k++) {
		r = rsys(SYS_fcntl, p->keep[k], F_SETFD, 0, 0);
		if (r < 0)
			goto fail;
	}
	for (i = 0; i < 3; i++) {
		int s = p->stdio[i];

		if (s == BR__STDIO_INHERIT)
			continue;
		if (s == BR__STDIO_NULL) {
			s = (int)rsys(SYS_openat, AT_FDCWD, (long)"/dev/null",
				      i ? O_WRONLY : O_RDONLY, 0);
			if (s < 0) {
				r = s;
				goto fail;
			}
			if (s == i)
				continue;
			r = rsys(SYS_dup3, s, i, 0, 0);
			rsys(SYS_close, s, 0, 0, 0);
		} else {
			if (s == BR__STDIO_STDOUT)
				s = 1;
			if (s == i) /* keep it across the exec */
				r = rsys(SYS_fcntl, i, F_SETFD, 0, 0);
			else
				r = rsys(SYS_dup3, s, i, 0, 0);
		}
		if (r < 0)
			goto fail;
	}
	rsys(SYS_rt_sigprocmask, SIG_SETMASK, (long)&none, 0, 8);
	if (c->path)
		r = child_search(c);
	else
		r = rsys(SYS_execve, (long)p->argv[0], (long)p->argv,
			 (long)p->envp, 0);
fail:
	c->err = (int)r;
	for (;;)
		rsys(SYS_exit_group, 127, 0, 0, 0);
	return 0;
}

/* Room for child_search()'s path buffer and both frames. */
#define CHILD_STACK (PATH_MAX + 2048)

/* clone3(), struct clone_args as of Linux 5.5 (CLONE_ARGS_SIZE_VER0). */
struct clone3_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack,
		stack_size, tls;
};

#define CLONE_CLEAR_SIGHAND_ 0x100000000ULL

/* clone3() whose child calls fn(arg) on its new stack and never comes
 * back here: fn must end with exit_group. Returns as the system call. */
static long clone3_call(struct clone3_args *ca, int (*fn)(void *), void *arg)
{
	register void *r12 __asm__("r12") = (void *)fn;
	register void *r13 __asm__("r13") = arg;
	long ret = SYS_clone3;

	__asm__ volatile("syscall\n\t"
			 "test %%rax, %%rax\n\t"
			 "jnz 1f\n\t"
			 "xor %%ebp, %%ebp\n\t"
			 "mov %%r13, %%rdi\n\t"
			 "call *%%r12\n\t"
			 "ud2\n"
			 "1:"
			 : "+a"(ret)
			 : "D"(ca), "S"(sizeof(*ca)), "r"(r12), "r"(r13)
			 : "rcx", "r11", "memory");
	return ret;
}

/* clone3 is refused (before Linux 5.5, or by a filter): glibc's clone. */
static _Atomic int clone3_off;

/*
 * Clone a child onto the CHILD_STACK bytes below top and wait for its
 * exec; see the header. Returns 0, a negative errno, or 1 when the kernel
 * refused the clone.
 */
static int spawn_vfork(struct child *c, char *top, pid_t *pid, int *pidfd)
{
	uint64_t all = ~(uint64_t)0, old;
	int fd = -1, e = 0;
	long r = -ENOSYS;

	c->err = 0;
	c->cleared = 0;
	rsys(SYS_rt_sigprocmask, SIG_SETMASK, (long)&all, (long)&old, 8);
	if (br__spawn_way == BR__SPAWN_BEST &&
	    !atomic_load_explicit(&clone3_off, memory_order_relaxed)) {
		struct clone3_args ca = {
			.flags = CLONE_VM | CLONE_VFORK | CLONE_PIDFD |
				 CLONE_CLEAR_SIGHAND_,
			.pidfd = (uintptr_t)&fd,
			.exit_signal = SIGCHLD,
			.stack = (uintptr_t)(top - CHILD_STACK),
			.stack_size = CHILD_STACK,
		};

		c->cleared = 1;
		r = clone3_call(&ca, child_main, c);
		if (r == -ENOSYS || r == -EINVAL || r == -E2BIG ||
		    r == -EPERM) {
			atomic_store_explicit(&clone3_off, 1,
					      memory_order_relaxed);
			c->cleared = 0;
		}
	}
	if (!c->cleared) {
		r = clone(child_main, top,
			  CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, c,
			  &fd);
		if (r < 0)
			r = -errno;
	}
	rsys(SYS_rt_sigprocmask, SIG_SETMASK, (long)&old, 0, 8);
	if (r < 0)
		return r == -ENOSYS || r == -EINVAL || r == -EPERM ? 1 : (int)r;
	if (c->err) {
		/* It has exited (127) or is about to: reap it now. */
		e = c->err;
		br__child_reap((pid_t)r, fd, 0);
		if (fd >= 0)
			close(fd);
		return e;
	}
	*pid = (pid_t)r;
	*pidfd = fd;
	return 0;
}

/* A thread that is not a worker lends the child stack below its frame. */
static __attribute__((noinline)) int spawn_here(struct child *c, pid_t *pid,
						int *pidfd)
{
	char stack[CHILD_STACK] __attribute__((aligned(16)));

	return spawn_vfork(c, stack + sizeof(stack), pid, pidfd);
}

static _Atomic int posix_off;

static int spawn_clone(const struct br__spawn_plan *p, pid_t *pid, int *pidfd)
{
	struct br__worker *w;
	struct child c = { .p = p };
	char *top;
	int r;

	if (!strchr(p->argv[0], '/')) {
		c.path = getenv("PATH");
		if (!c.path)
			c.path = default_path;
	}
	w = br__worker_current();
	top = w ? br__stack_alt_top(w) : NULL;
	if (top)
		r = spawn_vfork(&c, top, pid, pidfd);
	else
		r = spawn_here(&c, pid, pidfd);
	if (r > 0)
		atomic_store_explicit(&posix_off, 1, memory_order_relaxed);
	return r;
}
#endif /* !NO_VFORK */

/*
 * A source fd below 3 that is not its own target would be closed by the
 * dup onto an earlier target before its own turn: q gets a close-on-exec
 * copy above 2 in its place (in moved[], for the caller to close once the
 * child has exec'd). Returns 0 or a negative errno.
 */
static int lift_low_sources(struct br__spawn_plan *q, int moved[3])
{
	int i, j;

	for (i = 0; i < 3; i++) {
		int s = q->stdio[i];

		if (s < 0 || s >= 3 || s == i)
			continue;
		moved[i] = fcntl(s, F_DUPFD_CLOEXEC, 3);
		if (moved[i] < 0)
			return -errno;
		for (j = i; j < 3; j++)
			if (q->stdio[j] == s)
				q->stdio[j] = moved[i];
	}
	return 0;
}

static int spawn_plan(const struct br__spawn_plan *p, pid_t *pid, int *pidfd)
{
#ifndef NO_VFORK
	if (br__spawn_way != BR__SPAWN_POSIX &&
	    !atomic_load_explicit(&posix_off, memory_order_relaxed)
#ifdef BR__VALGRIND
	    && !RUNNING_ON_VALGRIND
#endif
	) {
		int r = spawn_clone(p, pid, pidfd);

		if (r <= 0)
			return r;
	}
#endif
	return spawn_posix(p, pid);
}

int br__spawn(const struct br__spawn_plan *p, pid_t *pid, int *pidfd)
{
	struct br__spawn_plan q = *p;
	int moved[3] = { -1, -1, -1 }, r, i;

	*pidfd = -1;
	if (BR__FAULT("braid/exec/spawn"))
		return -EAGAIN;
	r = lift_low_sources(&q, moved);
	if (r == 0)
		r = spawn_plan(&q, pid, pidfd);
	/* The child has exec'd (or failed): it holds its own copies. */
	for (i = 0; i < 3; i++)
		if (moved[i] >= 0)
			close(moved[i]);
	return r;
}
