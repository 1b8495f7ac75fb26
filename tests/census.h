/* SPDX-License-Identifier: MIT */
/*
 * census.h - what a test process holds, counted from procfs: its
 * descriptors, threads and children, and what /proc/<pid>/stat says of a
 * process. Header-only, so that the Criterion
 * suites (helpers.c), the fault scenario, the soak and the fuzzers, which
 * link differently, share one copy.
 *
 * Concurrency: each count is a snapshot; callers compare two of them
 * taken when nothing else of theirs starts or ends.
 */
#ifndef T_CENSUS_H
#define T_CENSUS_H

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

/* Entries of a directory, leaving out "." and ".."; -1 if unreadable. */
static inline int census_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static inline int census_fds(void)
{
	/* opendir() holds one descriptor of its own while counting. */
	return census_dir("/proc/self/fd") - 1;
}

static inline int census_threads(void)
{
	return census_dir("/proc/self/task");
}

/* Which of the first CENSUS_FDS descriptors are open, one bit each. */
#define CENSUS_FDS 1024
struct census_fdset {
	unsigned char open[CENSUS_FDS / 8];
};

static inline int census_fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

/* Remember in *s which descriptors are open now. */
static inline void census_fds_note(struct census_fdset *s)
{
	memset(s->open, 0, sizeof(s->open));
	for (int fd = 0; fd < CENSUS_FDS; fd++)
		if (census_fd_is_open(fd))
			s->open[fd / 8] |= (unsigned char)(1u << (fd % 8));
}

/* Print on out, each line after prefix, every descriptor open now and
 * not in *s (with what it names), or the reverse. */
static inline void census_fds_say(const struct census_fdset *s, FILE *out,
				  const char *prefix)
{
	char path[64], target[256];
	ssize_t n;

	for (int fd = 0; fd < CENSUS_FDS; fd++) {
		int was = s->open[fd / 8] >> (fd % 8) & 1;
		int is = census_fd_is_open(fd);

		if (was == is)
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = '\0';
		fprintf(out, "%sfd %d %s %s\n", prefix, fd,
			is ? "opened:" : "closed (was open before)", target);
	}
}

/* What /proc/<pid>/stat says of a process. */
struct census_proc {
	char comm[64];
	char state; /* 'R', 'S', 'Z', ... */
	int ppid;
	int pgrp;
};

/* Parse /proc/<pid>/stat of pid (its number, as text) into *p. Returns 0,
 * or -1 if it is gone or unreadable. */
static inline int census_stat(const char *pid, struct census_proc *p)
{
	char path[300], buf[512], *open, *close;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%s/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	open = fgets(buf, sizeof(buf), f);
	fclose(f);
	/* The command name may hold spaces and parentheses: it runs from
	 * the first '(' to the last ')'. */
	if (!open || !(open = strchr(buf, '(')) ||
	    !(close = strrchr(buf, ')')) || close < open)
		return -1;
	n = (size_t)(close - open - 1);
	if (n >= sizeof(p->comm))
		n = sizeof(p->comm) - 1;
	memcpy(p->comm, open + 1, n);
	p->comm[n] = '\0';
	return sscanf(close + 1, " %c %d %d", &p->state, &p->ppid, &p->pgrp) ==
			       3 ?
		       0 :
		       -1;
}

/* A visitor of census_each_child(): non-zero stops the walk. */
typedef int census_fn(const char *pid, const struct census_proc *p, void *arg);

/*
 * Call fn for every live or zombie child of this process: each thread's
 * children, from /proc/self/task/<tid>/children (much cheaper than a scan
 * of /proc on a busy machine). Returns what fn returned when it stopped
 * the walk, 0 at the end, -1 if procfs cannot be read or has no children
 * files (a kernel without CONFIG_PROC_CHILDREN): a count of 0 then would
 * hide every leaked child.
 */
static inline int census_each_child(census_fn *fn, void *arg)
{
	DIR *d = opendir("/proc/self/task");
	struct census_proc p;
	struct dirent *e;
	int r = 0, read = 0;

	if (!d)
		return -1;
	while (!r && (e = readdir(d))) {
		char path[300], pid[16];
		FILE *f;
		int k;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/children",
			 e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue; /* a thread that has just exited */
		read = 1;
		while (!r && fscanf(f, "%d", &k) == 1) {
			snprintf(pid, sizeof(pid), "%d", k);
			if (census_stat(pid, &p) == 0)
				r = fn(pid, &p, arg);
		}
		fclose(f);
	}
	closedir(d);
	return read ? r : -1;
}

/* The zygote and its spare, which live as long as the process. */
static inline int census_is_zygote(const struct census_proc *p)
{
	return strcmp(p->comm, "braid-zygote") == 0 ||
	       strcmp(p->comm, "braid-spare") == 0;
}

struct census_count {
	int own_only;
	FILE *out;
	int n;
};

static inline int census_count_child(const char *pid,
				     const struct census_proc *p, void *arg)
{
	struct census_count *c = arg;

	if (c->own_only && census_is_zygote(p))
		return 0;
	if (c->out)
		fprintf(c->out, "  child %s (%s)\n", pid, p->comm);
	c->n++;
	return 0;
}

/*
 * Live or zombie children of this process; with own_only, leave out the
 * zygote and its spare. With out, print each one counted there. -1
 * without procfs.
 */
static inline int census_children(int own_only, FILE *out)
{
	struct census_count c = { own_only, out, 0 };

	return census_each_child(census_count_child, &c) < 0 ? -1 : c.n;
}

static inline int census_match_comm(const char *pid,
				    const struct census_proc *p, void *arg)
{
	return strcmp(p->comm, arg) == 0 ? atoi(pid) : 0;
}

/* The pid of this process's child named comm, or 0. */
static inline pid_t census_child_named(const char *comm)
{
	int pid = census_each_child(census_match_comm, (void *)comm);

	return pid > 0 ? (pid_t)pid : 0;
}

#endif /* T_CENSUS_H */
