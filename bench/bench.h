/* SPDX-License-Identifier: MIT */
/*
 * bench.h - helpers shared by the braid benchmark programs.
 *
 * Design
 *   Each benchmark program makes one measurement per invocation and prints
 *   it as one JSON object on one line, so that scripts/bench.py can run
 *   every configuration of braid and of its peers in a shuffled order and
 *   take medians itself. A single measurement is written with
 *   median = min = max = value and runs = 1; the runner merges the lines.
 *
 *   The fields are: workload, impl, metric, unit, n, threads, median, min,
 *   max, runs, values and cmd (the program's own command line). The peers
 *   in bench/peers/ print the same shape with impl set to their name.
 *
 * Concurrency
 *   - Everything here is called from the main thread only.
 */
#ifndef BENCH_H
#define BENCH_H

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* The options every benchmark understands; a program uses the ones it needs. */
struct bench_opts {
	long n;		  /* problem size; the meaning is per workload */
	unsigned workers; /* braid worker threads */
	long warmup;	  /* size of an untimed warm-up run, 0 for none */
	long ms;	  /* a duration in milliseconds (sleep) */
	const char *mode; /* a sub-measurement (switch) */
};

static inline void bench_die(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

static inline void bench_die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static inline int64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU time (user + system) of the whole process so far, in ns. */
static inline int64_t bench_cpu_ns(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) < 0)
		bench_die("getrusage: %s", strerror(errno));
	return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
	       ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

/* Parent pid of pid from /proc/PID/stat, or -1. */
static inline pid_t bench_ppid(pid_t pid)
{
	char path[64], buf[512], *p;
	FILE *f;
	int ppid = -1;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* the name may hold spaces and parens */
	if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1)
		return -1;
	return (pid_t)ppid;
}

/* The CPU time of every thread of pid, in ns (schedstat), or 0. */
static inline int64_t bench_proc_ns(pid_t pid)
{
	char path[80];
	struct dirent *e;
	int64_t ns = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		long long run = 0;
		FILE *f;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%.20s/schedstat",
			 (int)pid, e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fscanf(f, "%lld", &run) == 1)
			ns += run;
		fclose(f);
	}
	closedir(d);
	return ns;
}

/* The CPU time so far of root and every process under it (threads
 * included: a pool's zygote and workers), in ns. */
static inline int64_t bench_tree_ns(pid_t root)
{
	struct dirent *e;
	int64_t ns = 0;
	DIR *d = opendir("/proc");

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		pid_t pid = (pid_t)atoi(e->d_name), p = pid;
		int depth;

		if (pid <= 0)
			continue;
		for (depth = 0; depth < 16 && p > 1 && p != root; depth++)
			p = bench_ppid(p);
		if (p == root)
			ns += bench_proc_ns(pid);
	}
	closedir(d);
	return ns;
}

static inline long bench_parse_long(const char *opt, const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0)
		bench_die("%s wants a non-negative integer, not '%s'", opt, s);
	return v;
}

/*
 * bench_parse - fill *o from argv. Accepts "--opt value" and "--opt=value"
 * for --n, --workers, --warmup, --ms and --mode; fields not given keep the
 * defaults the caller put in *o. Exits with a message on anything else.
 */
static inline void bench_parse(struct bench_opts *o, int argc, char **argv,
			       const char *usage)
{
	static const char *const names[] = { "--n", "--workers", "--warmup",
					     "--ms", "--mode" };
	int i;
	size_t k;

	for (i = 1; i < argc; i++) {
		const char *arg = argv[i], *val = NULL;
		size_t len;

		if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
			printf("usage: %s %s\n", argv[0], usage);
			exit(0);
		}
		for (k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
			len = strlen(names[k]);
			if (strncmp(arg, names[k], len))
				continue;
			if (arg[len] == '=') {
				val = arg + len + 1;
				break;
			}
			if (arg[len] == '\0' && i + 1 < argc) {
				val = argv[++i];
				break;
			}
		}
		if (!val)
			bench_die("bad option '%s'; usage: %s %s", arg, argv[0],
				  usage);
		switch (k) {
		case 0:
			o->n = bench_parse_long("--n", val);
			break;
		case 1:
			o->workers =
				(unsigned)bench_parse_long("--workers", val);
			break;
		case 2:
			o->warmup = bench_parse_long("--warmup", val);
			break;
		case 3:
			o->ms = bench_parse_long("--ms", val);
			break;
		default:
			o->mode = val;
			break;
		}
	}
}

/* Write s to f escaped for the inside of a JSON string. */
static inline void bench_json_fchars(FILE *f, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
}

/* Print s escaped for the inside of a JSON string. */
static inline void bench_json_chars(const char *s)
{
	bench_json_fchars(stdout, s);
}

/* Print s as a JSON string, quotes included. */
static inline void bench_json_str(const char *s)
{
	putchar('"');
	bench_json_chars(s);
	putchar('"');
}

/*
 * bench_report - print one measurement as one JSON line and flush it.
 * impl is "braid" for these programs; threads is the number of worker
 * threads the measurement used.
 */
static inline void bench_report(const char *workload, const char *impl,
				const char *metric, const char *unit, long n,
				unsigned threads, double value, int argc,
				char **argv)
{
	int i;

	printf("{\"workload\": ");
	bench_json_str(workload);
	printf(", \"impl\": ");
	bench_json_str(impl);
	printf(", \"metric\": ");
	bench_json_str(metric);
	printf(", \"unit\": ");
	bench_json_str(unit);
	printf(", \"n\": %ld, \"threads\": %u", n, threads);
	printf(", \"median\": %.6g, \"min\": %.6g, \"max\": %.6g", value, value,
	       value);
	printf(", \"runs\": 1, \"values\": [%.6g], \"cmd\": \"", value);
	for (i = 0; i < argc; i++) {
		if (i)
			putchar(' ');
		bench_json_chars(argv[i]);
	}
	printf("\"}\n");
	fflush(stdout);
}

#endif /* BENCH_H */
