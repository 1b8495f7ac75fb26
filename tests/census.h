/* SPDX-License-Identifier: MIT */
/*
 * census.h - what a test process holds, counted from procfs: its
 * descriptors, threads and children. Header-only, so that the Criterion
 * suites (helpers.c), the fault scenario, the soak and the fuzzers, which
 * link differently, share one copy.
 *
 * Concurrency: each count is a snapshot; callers compare two of them
 * taken when nothing else of theirs starts or ends.
 */
#ifndef T_CENSUS_H
#define T_CENSUS_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>
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

/*
 * Live or zombie children of this process; with own_only, leave out the
 * zygote and its spare, which live for good. With out, print each one
 * counted there.
 */
static inline int census_children(int own_only, FILE *out)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char path[300], buf[512], *p, *comm;
		FILE *fp;
		int ppid;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		fp = fopen(path, "r");
		if (!fp)
			continue;
		p = fgets(buf, sizeof(buf), fp);
		fclose(fp);
		/* The command name may hold spaces: parse after its ')'. */
		if (!p || !(p = strrchr(buf, ')')))
			continue;
		if (sscanf(p + 1, " %*c %d", &ppid) != 1 || ppid != getpid())
			continue;
		*p = '\0';
		comm = strchr(buf, '(');
		comm = comm ? comm + 1 : buf;
		if (own_only && (strcmp(comm, "braid-zygote") == 0 ||
				 strcmp(comm, "braid-spare") == 0))
			continue;
		if (out)
			fprintf(out, "  child %s (%s)\n", e->d_name, comm);
		n++;
	}
	closedir(d);
	return n;
}

#endif /* T_CENSUS_H */
