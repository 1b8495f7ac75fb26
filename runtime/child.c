/* SPDX-License-Identifier: MIT */
/*
 * child.c - a child process held through its pidfd: open, kill, reap.
 *
 * Design
 *   A pidfd names one process for good, so signalling and waiting through
 *   it cannot hit a recycled pid. waitid(P_PIDFD) reaps; without a pidfd
 *   (pidfd_open failed) the pid itself is used, which is safe only while
 *   the child is not reaped, as it is until here.
 *
 * Concurrency
 *   None of its own: each child has one owner at a time (exec.c's task or
 *   completion callback, pool.c's watcher or br_pool_free).
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "internal.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

int br__child_pidfd(pid_t pid)
{
	if (BR__FAULT_ERRNO("braid/child/pidfd", EMFILE))
		return -1;
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

void br__child_kill(pid_t pid, int pidfd)
{
	if (pidfd >= 0)
		syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
	else
		kill(pid, SIGKILL);
}

int br__child_reap(pid_t pid, int pidfd, int kill_it)
{
	siginfo_t si;
	int r;

	if (kill_it)
		br__child_kill(pid, pidfd);
	memset(&si, 0, sizeof(si));
	do {
		if (pidfd >= 0)
			r = waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si,
				   WEXITED);
		else
			r = waitid(P_PID, (id_t)pid, &si, WEXITED);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (si.si_code == CLD_EXITED)
		return (si.si_status & 0xff) << 8;
	return (si.si_status & 0x7f) | (si.si_code == CLD_DUMPED ? 0x80 : 0);
}
