/* SPDX-License-Identifier: MIT */
/*
 * forkexec.h - start a child process that execs a program: a vfork-style
 * clone on a borrowed stack, or posix_spawnp(). Used by exec.c. See
 * forkexec.c.
 */
#ifndef BR_FORKEXEC_H
#define BR_FORKEXEC_H

#include <sys/types.h>

/* br__spawn_plan.stdio[i]: what the child's fd i becomes. */
enum {
	BR__STDIO_INHERIT = -1, /* the parent's fd i, as is */
	BR__STDIO_NULL = -2,	/* /dev/null, read-only for 0, else write */
	BR__STDIO_STDOUT = -3,	/* a copy of the child's fd 1 (2>&1) */
				/* >= 0: a copy of the parent's fd (dup2) */
};

/* br__spawn_plan.group */
enum {
	BR__GROUP_SAME = 0,    /* the parent's process group and session */
	BR__GROUP_NEW = 1,     /* a process group of its own (setpgid) */
	BR__GROUP_SESSION = 2, /* a session, hence a group, of its own */
};

/* What the child does between the fork and the exec. */
struct br__spawn_plan {
	const char *const *argv; /* argv[0] is searched in PATH without '/' */
	char *const *envp;	 /* the child's environment */
	const char *cwd;	 /* chdir first, or NULL */
	int stdio[3];		 /* BR__STDIO_* or an fd, for fds 0, 1, 2 */
	int group;		 /* BR__GROUP_* */
	const int *keep;	 /* fds (>= 3) kept open across the exec */
	size_t nkeep;
};

/*
 * br__spawn - start a child for plan p: its signal mask empty, SIGPIPE and
 * SIGXFSZ at their default action, every signal this process handles
 * back at its default (exec's rule), ignored signals still ignored; in a
 * group or session of its own when p->group says so, with the fds in
 * p->keep open under their own numbers (close-on-exec cleared). On
 * success *pid is the child and *pidfd a close-on-exec pidfd for it, or
 * -1 when the kernel gave none (the caller opens one). Returns 0, or a
 * negative errno from the fork or from the child's set-up or exec (then
 * no child is left). Context: any thread, also on a task's stack; the
 * thread is held until the child has exec'd, as with vfork.
 */
int br__spawn(const struct br__spawn_plan *p, pid_t *pid, int *pidfd);

/* Test hook: which way br__spawn() starts children. BEST picks clone3
 * (x86-64), else clone(), else posix_spawnp(); the others force one. */
enum {
	BR__SPAWN_BEST,
	BR__SPAWN_CLONE,
	BR__SPAWN_POSIX
};
extern int br__spawn_way;

#endif /* BR_FORKEXEC_H */
