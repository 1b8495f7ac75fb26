/* SPDX-License-Identifier: MIT */
/*
 * child.h - a child process held through its pidfd: open, kill, reap.
 * Shared by subprocesses (exec.c) and process-pool workers (pool.c).
 * See child.c.
 */
#ifndef BR_CHILD_H
#define BR_CHILD_H

#include <sys/types.h>

/* br__child_pidfd - pidfd_open(pid): the pidfd, or -1 with errno. */
int br__child_pidfd(pid_t pid);

/* br__child_kill - SIGKILL the child: through pidfd when it is >= 0,
 * else by pid (safe while the child is unreaped: its pid cannot be
 * reused). */
void br__child_kill(pid_t pid, int pidfd);

/*
 * br__child_reap - reap the child, killing it first when kill_it is set;
 * returns its wait status (waitpid's encoding), or -ECHILD if someone
 * else reaped it (a waitpid(-1) elsewhere, or SIGCHLD set to SIG_IGN).
 * Blocks the thread only until the exit, which after SIGKILL is
 * immediate. Context: a thread that may block that long.
 */
int br__child_reap(pid_t pid, int pidfd, int kill_it);

#endif /* BR_CHILD_H */
