/* SPDX-License-Identifier: MIT */
/*
 * models.c - threads vs processes vs async: the same workloads under each
 * concurrency model, as a table, JSON and PNG plots.
 *
 * What it measures
 *   Five workloads (models.h gives their constants):
 *     cpu    CPU-bound: count primes by trial division in ranges.
 *     sleep  I/O-bound: many sleeps of 2 ms.
 *     net    I/O-bound: connections to a loopback echo server, each making
 *            round trips of 64 bytes.
 *     mixed  make a text record, parse it, hash it, write it to a file of
 *            its own (in a new directory under --tmpdir, by default
 *            /dev/shm, removed afterwards).
 *     tiny   fine-grained: a million tiny tasks.
 *   under nine models: pthreads (a thread per job; a pool of one thread
 *   per CPU taking submitted jobs from a shared queue), braid tasks on
 *   one worker (pure async, one loop) and on all workers (async and work
 *   stealing),
 *   braid's process pool and blocking pool (models_run.c says how each
 *   runs a workload), and, when python3 is there, Python's asyncio,
 *   threading and multiprocessing (bench/peers/models_py.py).
 *
 *   Each measurement is a process of its own: this program with --child,
 *   or the Python peer. It reports wall time, CPU time (self and reaped
 *   children, so process pools count their workers), peak RSS (the
 *   workers' included) and the work done; the driver takes --runs rounds,
 *   each in a new shuffled order of models, and reports the median, min
 *   and max, the throughput (units of work per second) and the speed-up
 *   against one thread (braid tasks on one worker: a single thread doing
 *   the work). A model too slow for the full size of a workload runs a
 *   stated fraction of it; throughput and speed-up compare per unit of
 *   work, so the figures stay comparable. Every model's check value must
 *   agree with the others that did the same number of jobs.
 *
 *   The verdict line per workload compares the best model of each family
 *   (models_verdict.c). A scaling run measures the CPU-bound workload on
 *   1 to --max-workers threads or processes for the thread pool, braid
 *   tasks and the process pool.
 *
 *   The 1-minute load average before and after is printed and kept in
 *   the JSON: other work on the machine shows in every figure.
 *
 *   The echo server for net is an epoll loop on a thread of this driver
 *   (one thread, 127.0.0.1, an ephemeral port): the same server for every
 *   model, outside the measured process.
 *
 * Output
 *   The table on stdout; JSON (--json, default build/bench/models.json);
 *   with gnuplot, one PNG per workload and models_scaling.png in
 *   --plot-dir (default build/bench), with the data and the script
 *   beside them; --markdown writes the table as markdown. On stderr, a
 *   line per measurement, begun as it starts and ended with its wall time
 *   when it finishes, so a long run shows where it is (--quiet: none;
 *   --verbose: each child's command line as well).
 *
 * Concurrency
 *   - The driver is its main thread plus the echo server's thread, which
 *     shares nothing with it but the listening port and the stop eventfd.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "braid.h"
#include "models.h"

extern char **environ;

#define MAX_RUNS 50
#define MAX_SCALE_WORKERS 16
#define CHILD_TIMEOUT_MS 120000

struct workload_info {
	const char *title; /* for the verdict and the plot */
	const char *unit;  /* what one item of work is */
};

static const struct workload_info workloads[MW_COUNT] = {
	[MW_CPU] = { "CPU-bound", "ranges" },
	[MW_SLEEP] = { "I/O-bound (sleeps)", "sleeps" },
	[MW_NET] = { "I/O-bound (sockets)", "round trips" },
	[MW_MIXED] = { "mixed", "files" },
	[MW_TINY] = { "fine-grained", "tasks" },
};

/* The models of the scaling run. */
static const enum models_model scale_models[] = { MM_THREAD_POOL, MM_TASKS_N,
						  MM_PROCESS_POOL };
#define NSCALE (sizeof(scale_models) / sizeof(scale_models[0]))

struct cell {
	long jobs, k;	/* the size this model runs */
	char note[128]; /* why it runs less than the full size */
	int n;		/* successful runs */
	int failed;	/* runs that failed */
	struct models_result r[MAX_RUNS];
};

struct summary {
	int ok;
	long items;
	struct models_stat wall, cpu, rss, thr;
	double speedup; /* median throughput / the one-thread model's */
};

static struct opts {
	double scale;
	int runs;
	unsigned workers;
	unsigned max_workers;
	const char *json;
	const char *plot_dir;
	const char *markdown;
	const char *python_script;
	const char *tmpdir; /* where mixed writes its files */
	int plots, python, scaling;
	int quiet;   /* no progress lines */
	int verbose; /* each child's command line too */
	unsigned seed;
	int only[MW_COUNT]; /* all 1 unless --only */
} o;

static char self_exe[4096];
static double load_start, load_end; /* 1-minute load averages */
static int echo_port;
static int python_ok;
static struct cell cells[MW_COUNT][MM_COUNT];
static struct summary sums[MW_COUNT][MM_COUNT];
static char verdicts[MW_COUNT][512];
static int checks_agree[MW_COUNT];
static struct cell scells[NSCALE][MAX_SCALE_WORKERS];
static int progress_n, progress_total; /* measurements started, planned */
static int progress_round;	       /* 1 to o.runs */
static int progress_scaling;	       /* measuring the scaling run */

static __attribute__((noreturn, format(printf, 1, 2))) void die(const char *fmt,
								...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("models: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

/* ---- the echo server ---- */

static int echo_stop = -1;
static pthread_t echo_thread;

static void *echo_main(void *arg)
{
	int lfd = (int)(intptr_t)arg, ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN }, evs[64];
	char buf[4096];

	if (ep < 0)
		die("epoll_create1: %s", strerror(errno));
	ev.data.fd = lfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	ev.data.fd = echo_stop;
	epoll_ctl(ep, EPOLL_CTL_ADD, echo_stop, &ev);
	for (;;) {
		int n = epoll_wait(ep, evs, 64, -1);

		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd, one = 1;
			ssize_t got;

			if (fd == echo_stop) {
				close(ep);
				return NULL;
			}
			if (fd == lfd) {
				while ((fd = accept4(lfd, NULL, NULL,
						     SOCK_CLOEXEC)) >= 0) {
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY,
						   &one, sizeof(one));
					ev.data.fd = fd;
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
				}
				continue;
			}
			/* Readable and blocking: one read never waits, and
			 * a write of what was read fits the socket buffer. */
			got = read(fd, buf, sizeof(buf));
			if (got <= 0 || write(fd, buf, (size_t)got) != got)
				close(fd); /* also leaves the epoll set */
		}
	}
}

static void echo_start(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int lfd =
		socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(lfd, 4096) || getsockname(lfd, (struct sockaddr *)&a, &len))
		die("echo server: %s", strerror(errno));
	echo_port = ntohs(a.sin_port);
	echo_stop = eventfd(0, EFD_CLOEXEC);
	if (echo_stop < 0 || pthread_create(&echo_thread, NULL, echo_main,
					    (void *)(intptr_t)lfd))
		die("echo server: cannot start");
}

static void echo_end(void)
{
	uint64_t one = 1;

	if (echo_stop < 0)
		return;
	if (write(echo_stop, &one, sizeof(one)) != sizeof(one))
		die("echo server: cannot stop");
	pthread_join(echo_thread, NULL);
	/* Connections still open were the children's; they are gone. */
}

/* The 1-minute load average: work of others on the machine shows in the
 * figures, so the report says how busy it was. */
static double loadavg(void)
{
	double v = -1;
	FILE *f = fopen("/proc/loadavg", "re");

	if (f) {
		if (fscanf(f, "%lf", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

/* ---- sizes ---- */

static long scaled(double base, long min)
{
	long v = lround(base * o.scale);

	return v < min ? min : v;
}

/* The size model m runs of workload w: jobs, round trips per job (net),
 * and a note when it is a fraction of the full size. */
static void plan(enum models_workload w, enum models_model m, struct cell *c)
{
	long div = 1;

	c->k = 0;
	switch (w) {
	case MW_CPU:
		c->jobs = scaled(512, 4);
		if (models_models[m].python)
			div = 32;
		break;
	case MW_SLEEP:
		c->jobs = scaled(500, 4);
		break;
	case MW_NET:
		c->jobs = 64;
		c->k = scaled(200, 1);
		break;
	case MW_MIXED:
		c->jobs = scaled(4000, 8);
		if (models_models[m].python)
			div = 40;
		break;
	default:
		c->jobs = scaled(1000000, 200);
		if (m == MM_THREAD_PER_JOB)
			div = 50;
		else if (m == MM_BLOCKING_POOL)
			div = 10;
		else if (models_models[m].python)
			div = 20;
		break;
	}
	c->note[0] = '\0';
	if (div > 1) {
		long full = c->jobs;

		c->jobs = full / div < 2 ? 2 : full / div;
		snprintf(c->note, sizeof(c->note),
			 "1/%ld of the work (%ld of %ld)", div, c->jobs, full);
	}
}

/* ---- running one measurement ---- */

static int spawn_read(char *const argv[], char *line, size_t size)
{
	posix_spawn_file_actions_t fa;
	struct pollfd pfd;
	size_t got = 0;
	int fds[2], status, err;
	pid_t pid;
	int64_t deadline = br_now_ns() + (int64_t)CHILD_TIMEOUT_MS * 1000000;

	if (pipe2(fds, O_CLOEXEC))
		die("pipe: %s", strerror(errno));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
	err = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	if (err) {
		close(fds[0]);
		return -err;
	}
	pfd.fd = fds[0];
	pfd.events = POLLIN;
	while (got + 1 < size && !memchr(line, '\n', got)) {
		int64_t left = (deadline - br_now_ns()) / 1000000;
		ssize_t n;

		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) {
			fprintf(stderr, "models: %s %s %s timed out\n", argv[1],
				argv[2], argv[3]);
			kill(pid, SIGKILL);
			break;
		}
		n = read(fds[0], line + got, size - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	line[got] = '\0';
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return -ECHILD;
	return 0;
}

static int measure(enum models_workload w, enum models_model m,
		   const struct cell *c, unsigned workers,
		   struct models_result *r)
{
	char a_n[32], a_k[32], a_w[32], a_p[32], line[512];
	char *argv[16];
	int i = 0, err;

	snprintf(a_n, sizeof(a_n), "%ld", c->jobs);
	snprintf(a_k, sizeof(a_k), "%ld", c->k);
	snprintf(a_w, sizeof(a_w), "%u", workers);
	snprintf(a_p, sizeof(a_p), "%d", echo_port);
	if (models_models[m].python) {
		argv[i++] = (char *)"python3";
		argv[i++] = (char *)o.python_script;
	} else {
		argv[i++] = self_exe;
		argv[i++] = (char *)"--child";
	}
	argv[i++] = (char *)models_workload_names[w];
	argv[i++] = (char *)models_models[m].name;
	argv[i++] = (char *)"--n";
	argv[i++] = a_n;
	argv[i++] = (char *)"--k";
	argv[i++] = a_k;
	argv[i++] = (char *)"--workers";
	argv[i++] = a_w;
	argv[i++] = (char *)"--port";
	argv[i++] = a_p;
	argv[i] = NULL;
	/* The line is begun here and ended below, so a slow measurement
	 * shows which one it is while it runs. */
	progress_n++;
	if (o.verbose) {
		fputs("models: $", stderr);
		for (int j = 0; argv[j]; j++)
			fprintf(stderr, " %s", argv[j]);
		fputc('\n', stderr);
	}
	if (!o.quiet && progress_scaling)
		fprintf(stderr,
			"models: [%*d/%d] round %d of %d: scaling: %s under %s, "
			"%u worker%s ...",
			progress_total >= 100 ? 3 : 2, progress_n,
			progress_total, progress_round, o.runs,
			models_workload_names[w], models_models[m].name,
			workers, workers == 1 ? "" : "s");
	else if (!o.quiet)
		fprintf(stderr,
			"models: [%*d/%d] round %d of %d: %s under %s ...",
			progress_total >= 100 ? 3 : 2, progress_n,
			progress_total, progress_round, o.runs,
			models_workload_names[w], models_models[m].name);
	err = spawn_read(argv, line, sizeof(line));
	if (err == 0) {
		unsigned long long check;

		if (sscanf(line, "%lf %lf %ld %ld %llu", &r->wall_s, &r->cpu_s,
			   &r->rss_kb, &r->items, &check) != 5 ||
		    r->wall_s <= 0 || r->items <= 0)
			err = -EBADMSG;
		r->check = check;
	}
	if (err && o.quiet)
		fprintf(stderr, "models: %s under %s failed (%s)\n",
			models_workload_names[w], models_models[m].name,
			err == -EBADMSG ? "bad output" : strerror(-err));
	else if (err)
		fprintf(stderr, " failed (%s)\n",
			err == -EBADMSG ? "bad output" : strerror(-err));
	else if (!o.quiet)
		fprintf(stderr, " %.3f s\n", r->wall_s);
	return err;
}

static void record(struct cell *c, int err, const struct models_result *r)
{
	if (err)
		c->failed++;
	else if (c->n < MAX_RUNS)
		c->r[c->n++] = *r;
}

static int available(enum models_model m)
{
	return !models_models[m].python || python_ok;
}

static void shuffle(int *v, int n)
{
	for (int i = n - 1; i > 0; i--) {
		int j = rand() % (i + 1), t = v[i];

		v[i] = v[j];
		v[j] = t;
	}
}

static void run_all(void)
{
	for (int w = 0; w < MW_COUNT; w++)
		for (int m = 0; m < MM_COUNT; m++)
			plan(w, m, &cells[w][m]);
	for (size_t s = 0; s < NSCALE; s++)
		for (unsigned k = 1; k <= o.max_workers; k++)
			plan(MW_CPU, scale_models[s], &scells[s][k - 1]);

	for (int w = 0; w < MW_COUNT; w++)
		for (int m = 0; m < MM_COUNT; m++)
			progress_total += o.only[w] && available(m);
	if (o.scaling && o.only[MW_CPU])
		progress_total += (int)(NSCALE * o.max_workers);
	progress_total *= o.runs;

	for (int run = 0; run < o.runs; run++) {
		progress_round = run + 1;
		progress_scaling = 0;
		for (int w = 0; w < MW_COUNT; w++) {
			int order[MM_COUNT];

			if (!o.only[w])
				continue;
			for (int m = 0; m < MM_COUNT; m++)
				order[m] = m;
			shuffle(order, MM_COUNT);
			for (int i = 0; i < MM_COUNT; i++) {
				struct cell *c = &cells[w][order[i]];
				struct models_result r;

				if (!available(order[i]))
					continue;
				record(c,
				       measure(w, order[i], c, o.workers, &r),
				       &r);
			}
		}
		if (!o.scaling || !o.only[MW_CPU])
			continue;
		progress_scaling = 1;
		for (unsigned k = 1; k <= o.max_workers; k++) {
			int order[NSCALE];

			for (size_t s = 0; s < NSCALE; s++)
				order[s] = (int)s;
			shuffle(order, NSCALE);
			for (size_t i = 0; i < NSCALE; i++) {
				struct cell *c = &scells[order[i]][k - 1];
				struct models_result r;

				record(c,
				       measure(MW_CPU, scale_models[order[i]],
					       c, k, &r),
				       &r);
			}
		}
	}
}

/* ---- summaries ---- */

static struct summary summarize(const struct cell *c)
{
	double wall[MAX_RUNS], cpu[MAX_RUNS], rss[MAX_RUNS], thr[MAX_RUNS];
	struct summary s = { 0 };

	if (c->n == 0)
		return s;
	for (int i = 0; i < c->n; i++) {
		wall[i] = c->r[i].wall_s;
		cpu[i] = c->r[i].cpu_s;
		rss[i] = (double)c->r[i].rss_kb;
		thr[i] = (double)c->r[i].items / c->r[i].wall_s;
	}
	s.ok = 1;
	s.items = c->r[0].items;
	s.wall = models_stat_of(wall, (size_t)c->n);
	s.cpu = models_stat_of(cpu, (size_t)c->n);
	s.rss = models_stat_of(rss, (size_t)c->n);
	s.thr = models_stat_of(thr, (size_t)c->n);
	return s;
}

/* Models that did the same number of jobs must report the same check:
 * it is a sum over the jobs of what each computed. */
static int checks_match(int w)
{
	int ok = 1;

	for (int a = 0; a < MM_COUNT; a++)
		for (int b = a + 1; b < MM_COUNT; b++) {
			const struct cell *x = &cells[w][a], *y = &cells[w][b];

			if (!x->n || !y->n || x->jobs != y->jobs)
				continue;
			for (int i = 0; i < x->n; i++)
				for (int j = 0; j < y->n; j++)
					if (x->r[i].check != y->r[j].check) {
						fprintf(stderr,
							"models: %s: %s and %s "
							"disagree (%llu, %llu)\n",
							models_workload_names[w],
							models_models[a].name,
							models_models[b].name,
							(unsigned long long)x
								->r[i]
								.check,
							(unsigned long long)y
								->r[j]
								.check);
						ok = 0;
					}
		}
	return ok;
}

static void summarize_all(void)
{
	for (int w = 0; w < MW_COUNT; w++) {
		struct models_score sc[MM_COUNT];
		double base;
		int n = 0;

		if (!o.only[w])
			continue;
		for (int m = 0; m < MM_COUNT; m++)
			sums[w][m] = summarize(&cells[w][m]);
		base = sums[w][MM_TASKS_1].ok ? sums[w][MM_TASKS_1].thr.median :
						0;
		for (int m = 0; m < MM_COUNT; m++) {
			struct summary *s = &sums[w][m];

			if (!s->ok)
				continue;
			s->speedup = base > 0 ? s->thr.median / base : 0;
			sc[n++] = (struct models_score){
				models_models[m].label,
				models_models[m].family,
				s->thr.median,
			};
		}
		models_verdict(workloads[w].title, sc, (size_t)n, verdicts[w],
			       sizeof(verdicts[w]));
		checks_agree[w] = checks_match(w);
	}
}

/* ---- the table ---- */

static void describe(int w, char *buf, size_t size)
{
	const struct cell *c = &cells[w][MM_TASKS_1];

	switch (w) {
	case MW_CPU:
		snprintf(buf, size,
			 "count primes by trial division in %ld ranges of "
			 "%u numbers near %u",
			 c->jobs, CPU_WIDTH, CPU_BASE);
		break;
	case MW_SLEEP:
		snprintf(buf, size, "%ld sleeps of %d ms", c->jobs, SLEEP_MS);
		break;
	case MW_NET:
		snprintf(buf, size,
			 "%ld connections x %ld round trips of %d bytes to a "
			 "loopback echo server",
			 c->jobs, c->k, NET_MSG);
		break;
	case MW_MIXED:
		snprintf(buf, size,
			 "%ld records of %d numbers: make, parse, hash, write "
			 "a file each in %s",
			 c->jobs, MIXED_NUMS, o.tmpdir);
		break;
	default:
		snprintf(buf, size, "%ld tiny tasks", c->jobs);
		break;
	}
}

static void fmt_si(double v, char *buf, size_t size)
{
	if (v >= 1e6)
		snprintf(buf, size, "%.2fM", v / 1e6);
	else if (v >= 1e4)
		snprintf(buf, size, "%.1fk", v / 1e3);
	else if (v >= 100)
		snprintf(buf, size, "%.0f", v);
	else
		snprintf(buf, size, "%.1f", v);
}

/* Print the table to f, as text or as markdown. */
static void print_table(FILE *f, int md)
{
	static const char *const head[] = { "model",   "n",	     "wall s",
					    "min-max", "CPU s",	     "peak RSS",
					    "per s",   "vs 1 thread" };
	char what[256], thr[32], rng[64];

	for (int w = 0; w < MW_COUNT; w++) {
		if (!o.only[w])
			continue;
		describe(w, what, sizeof(what));
		if (md) {
			fprintf(f, "\n**%s** (%s; per s = %s per second)\n\n",
				workloads[w].title, what, workloads[w].unit);
			fprintf(f, "|");
			for (size_t i = 0; i < 8; i++)
				fprintf(f, " %s |", head[i]);
			fprintf(f, "\n|---|--:|--:|--:|--:|--:|--:|--:|\n");
		} else {
			fprintf(f, "\n%s: %s (per s = %s per second)\n",
				workloads[w].title, what, workloads[w].unit);
			fprintf(f, "  %-27s %8s %8s %17s %7s %9s %8s %11s\n",
				head[0], head[1], head[2], head[3], head[4],
				head[5], head[6], head[7]);
		}
		for (int m = 0; m < MM_COUNT; m++) {
			const struct summary *s = &sums[w][m];
			const struct cell *c = &cells[w][m];

			if (!available(m))
				continue;
			if (!s->ok) {
				fprintf(f,
					md ? "| %s | failed |||||||\n" :
					     "  %-27s failed\n",
					models_models[m].label);
				continue;
			}
			fmt_si(s->thr.median, thr, sizeof(thr));
			snprintf(rng, sizeof(rng), "%.3f-%.3f", s->wall.min,
				 s->wall.max);
			fprintf(f,
				md ? "| %s%s | %ld | %.3f | %s | %.2f | %.1f MB "
				     "| %s | %.2fx |\n" :
				     "  %-27s%s %8ld %8.3f %17s %7.2f %6.1f MB "
				     "%8s %10.2fx\n",
				models_models[m].label, c->note[0] ? "*" : "",
				s->items, s->wall.median, rng, s->cpu.median,
				s->rss.median / 1024, thr, s->speedup);
		}
		for (int m = 0; m < MM_COUNT; m++)
			if (available(m) && cells[w][m].note[0])
				fprintf(f,
					"%s* %s: %s; throughput and speed-up "
					"are per unit of work\n",
					md ? "\n" : "  ",
					models_models[m].label,
					cells[w][m].note);
		fprintf(f, md ? "\nVerdict: %s.\n" : "  verdict: %s\n",
			verdicts[w]);
		if (!checks_agree[w])
			fprintf(f, "  WARNING: the models' results disagree\n");
	}
}

static void print_scaling(FILE *f)
{
	if (!o.scaling || !o.only[MW_CPU])
		return;
	fprintf(f, "\nScaling, CPU-bound, %s per second by workers:\n",
		workloads[MW_CPU].unit);
	fprintf(f, "  %-27s", "model");
	for (unsigned k = 1; k <= o.max_workers; k++)
		fprintf(f, " %8u", k);
	fputc('\n', f);
	for (size_t s = 0; s < NSCALE; s++) {
		fprintf(f, "  %-27s", models_models[scale_models[s]].label);
		for (unsigned k = 1; k <= o.max_workers; k++) {
			struct summary x = summarize(&scells[s][k - 1]);

			if (x.ok)
				fprintf(f, " %8.1f", x.thr.median);
			else
				fprintf(f, " %8s", "failed");
		}
		fputc('\n', f);
	}
}

/* ---- JSON ---- */

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	bench_json_fchars(f, s);
	fputc('"', f);
}

static void json_stat(FILE *f, const char *name, struct models_stat s)
{
	fprintf(f, ", \"%s\": {\"median\": %.6g, \"min\": %.6g, \"max\": %.6g}",
		name, s.median, s.min, s.max);
}

static void read_line(const char *path, const char *key, char *buf, size_t size)
{
	char line[512];
	FILE *f = fopen(path, "re");

	snprintf(buf, size, "unknown");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (strncmp(line, key, strlen(key)) || !colon)
			continue;
		colon += 1 + strspn(colon + 1, " \t");
		colon[strcspn(colon, "\n")] = '\0';
		snprintf(buf, size, "%s", colon);
		break;
	}
	fclose(f);
}

static void mkdirs(const char *path)
{
	char buf[4096], *p;

	snprintf(buf, sizeof(buf), "%s", path);
	for (p = buf + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			mkdir(buf, 0755);
			*p = '/';
		}
	mkdir(buf, 0755);
}

/* Make the directory that will hold the file path. */
static void mkdir_for(const char *path)
{
	char buf[4096], *slash;

	snprintf(buf, sizeof(buf), "%s", path);
	slash = strrchr(buf, '/');
	if (slash && slash != buf) {
		*slash = '\0';
		mkdirs(buf);
	}
}

static void write_json(void)
{
	char cpu[256], what[256];
	struct utsname u;
	FILE *f;
	int first = 1;

	mkdir_for(o.json);
	f = fopen(o.json, "we");
	if (!f)
		die("cannot write %s: %s", o.json, strerror(errno));
	read_line("/proc/cpuinfo", "model name", cpu, sizeof(cpu));
	uname(&u);
	fprintf(f, "{\n\"machine\": {\"cpus\": %ld, \"cpu\": ",
		sysconf(_SC_NPROCESSORS_ONLN));
	json_str(f, cpu);
	fprintf(f, ", \"kernel\": ");
	json_str(f, u.release);
	fprintf(f, ", \"loadavg_start\": %.2f, \"loadavg_end\": %.2f",
		load_start, load_end);
	fprintf(f,
		"},\n\"scale\": %g, \"runs\": %d, \"workers\": %u, "
		"\"python\": %s,\n\"workloads\": [\n",
		o.scale, o.runs, o.workers, python_ok ? "true" : "false");
	for (int w = 0; w < MW_COUNT; w++) {
		if (!o.only[w])
			continue;
		describe(w, what, sizeof(what));
		fprintf(f,
			"%s{\"name\": \"%s\", \"title\": ", first ? "" : ",\n",
			models_workload_names[w]);
		json_str(f, workloads[w].title);
		fprintf(f, ", \"unit\": \"%s\", \"what\": ", workloads[w].unit);
		json_str(f, what);
		fprintf(f, ", \"verdict\": ");
		json_str(f, verdicts[w]);
		fprintf(f, ", \"checks_agree\": %s}",
			checks_agree[w] ? "true" : "false");
		first = 0;
	}
	fprintf(f, "\n],\n\"results\": [\n");
	first = 1;
	for (int w = 0; w < MW_COUNT; w++)
		for (int m = 0; m < MM_COUNT; m++) {
			const struct summary *s = &sums[w][m];

			if (!o.only[w] || !available(m))
				continue;
			fprintf(f,
				"%s{\"workload\": \"%s\", \"model\": \"%s\", "
				"\"label\": ",
				first ? "" : ",\n", models_workload_names[w],
				models_models[m].name);
			json_str(f, models_models[m].label);
			fprintf(f,
				", \"family\": \"%s\", \"python\": %s, "
				"\"ok\": %s, \"runs\": %d, \"failed\": %d, "
				"\"items\": %ld, \"note\": ",
				models_family_names[models_models[m].family],
				models_models[m].python ? "true" : "false",
				s->ok ? "true" : "false", cells[w][m].n,
				cells[w][m].failed, s->items);
			json_str(f, cells[w][m].note);
			json_stat(f, "wall_s", s->wall);
			json_stat(f, "cpu_s", s->cpu);
			json_stat(f, "rss_kb", s->rss);
			json_stat(f, "throughput", s->thr);
			fprintf(f, ", \"speedup\": %.6g}", s->speedup);
			first = 0;
		}
	fprintf(f, "\n],\n\"scaling\": [\n");
	first = 1;
	for (size_t s = 0; o.scaling && o.only[MW_CPU] && s < NSCALE; s++)
		for (unsigned k = 1; k <= o.max_workers; k++) {
			struct summary x = summarize(&scells[s][k - 1]);

			fprintf(f,
				"%s{\"model\": \"%s\", \"workers\": %u, "
				"\"ok\": %s, \"items\": %ld",
				first ? "" : ",\n",
				models_models[scale_models[s]].name, k,
				x.ok ? "true" : "false", x.items);
			json_stat(f, "wall_s", x.wall);
			json_stat(f, "throughput", x.thr);
			fputc('}', f);
			first = 0;
		}
	fprintf(f, "\n]\n}\n");
	if (fclose(f))
		die("cannot write %s", o.json);
}

/* ---- plots ---- */

static FILE *open_in(const char *dir, const char *name, char *path, size_t size)
{
	FILE *f;

	snprintf(path, size, "%s/%s", dir, name);
	f = fopen(path, "we");
	if (!f)
		die("cannot write %s: %s", path, strerror(errno));
	return f;
}

static void plot(void)
{
	static char path[4200], gp[4200];
	char name[64], what[256];
	posix_spawn_file_actions_t fa;
	char *argv[3];
	FILE *g, *d;
	pid_t pid;
	int status, err;

	mkdirs(o.plot_dir);
	g = open_in(o.plot_dir, "models.gp", gp, sizeof(gp));
	fprintf(g, "# Written by bench/models; run from the plot directory.\n"
		   "set terminal pngcairo size 900,480 font \",10\"\n"
		   "set style fill solid 0.85 border -1\n"
		   "set grid ytics\nset key top right\n"
		   "set xtics rotate by -25 nomirror\n");
	for (int w = 0; w < MW_COUNT; w++) {
		double lo = INFINITY;
		int x = 0;

		if (!o.only[w])
			continue;
		snprintf(name, sizeof(name), "models_%s.dat",
			 models_workload_names[w]);
		d = open_in(o.plot_dir, name, path, sizeof(path));
		fprintf(d, "# x label median min max python\n");
		for (int m = 0; m < MM_COUNT; m++) {
			const struct summary *s = &sums[w][m];

			if (!s->ok)
				continue;
			fprintf(d, "%d \"%s\" %.6g %.6g %.6g %d\n", x++,
				models_models[m].label, s->thr.median,
				s->thr.min, s->thr.max,
				models_models[m].python);
			if (s->thr.min < lo)
				lo = s->thr.min;
		}
		fclose(d);
		if (x == 0)
			continue;
		describe(w, what, sizeof(what));
		fprintf(g,
			"\nset output 'models_%s.png'\n"
			"set title \"%s: %s\\n(median of %d runs, whiskers min-max;"
			" higher is better)\" noenhanced\n"
			"set logscale y\nset format y '%%.0s%%c'\n"
			"set ylabel '%s per second (log scale)'\n"
			"set xrange [-0.6:%d.6]\nset yrange [%g:*]\n"
			"plot '%s' using 1:($6==0?$3:1/0):4:5:(0.3):xtic(2) "
			"with boxerrorbars lc rgb '#3a6ea5' title 'C, braid', \\\n"
			"     '' using 1:($6==1?$3:1/0):4:5:(0.3):xtic(2) "
			"with boxerrorbars lc rgb '#e0a030' title 'python'\n",
			models_workload_names[w], workloads[w].title, what,
			o.runs, workloads[w].unit, x - 1,
			pow(10, floor(log10(lo / 2))), name);
	}
	if (o.scaling && o.only[MW_CPU]) {
		d = open_in(o.plot_dir, "models_scaling.dat", path,
			    sizeof(path));
		fprintf(d, "# workers, then median min max per model\n");
		for (unsigned k = 1; k <= o.max_workers; k++) {
			fprintf(d, "%u", k);
			for (size_t s = 0; s < NSCALE; s++) {
				struct summary x = summarize(&scells[s][k - 1]);

				if (x.ok)
					fprintf(d, " %.6g %.6g %.6g",
						x.thr.median, x.thr.min,
						x.thr.max);
				else
					fprintf(d, " NaN NaN NaN");
			}
			fputc('\n', d);
		}
		fclose(d);
		fprintf(g,
			"\nset output 'models_scaling.png'\n"
			"set title \"CPU-bound scaling on %ld CPUs (median of %d"
			" runs, whiskers min-max)\" noenhanced\n"
			"unset logscale y\nset format y '%%g'\n"
			"set ylabel '%s per second'\n"
			"set xlabel 'threads, workers or processes'\n"
			"set xrange [0.5:%u.5]\nset yrange [0:*]\n"
			"set xtics 1 norotate\nset key top left\nplot ",
			sysconf(_SC_NPROCESSORS_ONLN), o.runs,
			workloads[MW_CPU].unit, o.max_workers);
		for (size_t s = 0; s < NSCALE; s++)
			fprintf(g,
				"%s'models_scaling.dat' using 1:%zu:%zu:%zu "
				"with yerrorlines lw 2 pt 7 title '%s'",
				s ? ", \\\n     " : "", 2 + 3 * s, 3 + 3 * s,
				4 + 3 * s,
				models_models[scale_models[s]].label);
		fputc('\n', g);
	}
	fclose(g);

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addchdir_np(&fa, o.plot_dir);
	argv[0] = (char *)"gnuplot";
	argv[1] = (char *)"models.gp";
	argv[2] = NULL;
	err = posix_spawnp(&pid, "gnuplot", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (err) {
		printf("\nplots skipped: gnuplot not found (apt-get install "
		       "gnuplot-nox); the data and %s are there\n",
		       gp);
		return;
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		printf("\nplots failed: gnuplot %s did not succeed\n", gp);
	else
		printf("\nplots: %s/models_*.png\n", o.plot_dir);
}

/* ---- options ---- */

/* The usage on stdout for --help (status 0), on stderr for a mistake
 * (status 2). */
static __attribute__((noreturn)) void usage(int code)
{
	fprintf(code ? stderr : stdout,
		"usage: models [--scale F] [--runs N] [--workers N] "
		"[--max-workers N]\n"
		"              [--only cpu,sleep,net,mixed,tiny] [--json PATH] "
		"[--plot-dir DIR]\n"
		"              [--markdown PATH] [--no-plots] [--no-python] "
		"[--no-scaling]\n"
		"              [--python-script PATH] [--tmpdir DIR] [--seed N] "
		"[--quiet] [--verbose]\n"
		"Runs each workload under each concurrency model and compares "
		"them\n(see the top of bench/models.c). Progress goes to "
		"stderr, a line per\nmeasurement (--quiet: none; --verbose: "
		"each child's command too).\n");
	exit(code);
}

static long num(const char *opt, const char *s, long lo, long hi)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		die("%s wants an integer from %ld to %ld, not '%s'", opt, lo,
		    hi, s);
	return v;
}

static int lookup(const char *s, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(s, names[i]))
			return (int)i;
	return -1;
}

/* models --child WORKLOAD MODEL --n N --k K --workers W --port P: one
 * measurement, run by measure() in a process of its own. */
static int child_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "child", no_argument, NULL, 'c' },
		{ "n", required_argument, NULL, 'n' },
		{ "k", required_argument, NULL, 'k' },
		{ "workers", required_argument, NULL, 'w' },
		{ "port", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	long jobs = 0, k = 0;
	unsigned workers = 1;
	int port = 0, w, m = -1, c;
	struct models_result r;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			break;
		case 'n':
			jobs = num("--n", optarg, 1, 100000000);
			break;
		case 'k':
			k = num("--k", optarg, 0, 100000000);
			break;
		case 'w':
			workers = (unsigned)num("--workers", optarg, 1, 256);
			break;
		case 'p':
			port = (int)num("--port", optarg, 0, 65535);
			break;
		default:
			die("--child: unknown option");
		}
	}
	if (argc - optind != 2)
		die("--child wants a workload and a model");
	w = lookup(argv[optind], models_workload_names, MW_COUNT);
	for (int i = 0; i < MM_COUNT; i++)
		if (!strcmp(argv[optind + 1], models_models[i].name))
			m = i;
	if (w < 0 || m < 0)
		die("--child: unknown workload or model");
	if (models_run(w, m, jobs, k, workers, port, &r))
		return 1;
	printf("%.6f %.6f %ld %ld %llu\n", r.wall_s, r.cpu_s, r.rss_kb, r.items,
	       (unsigned long long)r.check);
	return 0;
}

enum {
	O_SCALE = 256,
	O_RUNS,
	O_WORKERS,
	O_MAX_WORKERS,
	O_ONLY,
	O_JSON,
	O_PLOT_DIR,
	O_MARKDOWN,
	O_NO_PLOTS,
	O_NO_PYTHON,
	O_NO_SCALING,
	O_PYTHON_SCRIPT,
	O_TMPDIR,
	O_SEED,
	O_QUIET,
	O_VERBOSE,
};

static void parse(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "scale", required_argument, NULL, O_SCALE },
		{ "runs", required_argument, NULL, O_RUNS },
		{ "workers", required_argument, NULL, O_WORKERS },
		{ "max-workers", required_argument, NULL, O_MAX_WORKERS },
		{ "only", required_argument, NULL, O_ONLY },
		{ "json", required_argument, NULL, O_JSON },
		{ "plot-dir", required_argument, NULL, O_PLOT_DIR },
		{ "markdown", required_argument, NULL, O_MARKDOWN },
		{ "no-plots", no_argument, NULL, O_NO_PLOTS },
		{ "no-python", no_argument, NULL, O_NO_PYTHON },
		{ "no-scaling", no_argument, NULL, O_NO_SCALING },
		{ "python-script", required_argument, NULL, O_PYTHON_SCRIPT },
		{ "tmpdir", required_argument, NULL, O_TMPDIR },
		{ "seed", required_argument, NULL, O_SEED },
		{ "quiet", no_argument, NULL, O_QUIET },
		{ "verbose", no_argument, NULL, O_VERBOSE },
		{ NULL, 0, NULL, 0 },
	};
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int c;

	o.scale = 1;
	o.runs = 3;
	o.workers = ncpu > 0 ? (unsigned)ncpu : 1;
	o.max_workers = 0;
	o.json = "build/bench/models.json";
	o.plot_dir = "build/bench";
	o.plots = o.python = o.scaling = 1;
	o.seed = (unsigned)time(NULL);
	for (int w = 0; w < MW_COUNT; w++)
		o.only[w] = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(0);
		case O_NO_PLOTS:
			o.plots = 0;
			break;
		case O_NO_PYTHON:
			o.python = 0;
			break;
		case O_NO_SCALING:
			o.scaling = 0;
			break;
		case O_QUIET:
			o.quiet = 1;
			break;
		case O_VERBOSE:
			o.verbose = 1;
			break;
		case O_SCALE: {
			char *end;

			errno = 0;
			o.scale = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(o.scale > 0) ||
			    o.scale > 100)
				die("--scale wants a number in (0, 100]");
			break;
		}
		case O_RUNS:
			o.runs = (int)num("--runs", optarg, 1, MAX_RUNS);
			break;
		case O_WORKERS:
			o.workers = (unsigned)num("--workers", optarg, 1, 256);
			break;
		case O_MAX_WORKERS:
			o.max_workers = (unsigned)num("--max-workers", optarg,
						      1, MAX_SCALE_WORKERS);
			break;
		case O_SEED:
			o.seed = (unsigned)num("--seed", optarg, 0, 0x7fffffff);
			break;
		case O_JSON:
			o.json = optarg;
			break;
		case O_PLOT_DIR:
			o.plot_dir = optarg;
			break;
		case O_MARKDOWN:
			o.markdown = optarg;
			break;
		case O_PYTHON_SCRIPT:
			o.python_script = optarg;
			break;
		case O_TMPDIR:
			o.tmpdir = optarg;
			break;
		case O_ONLY: {
			char buf[256], *save = NULL, *t;

			snprintf(buf, sizeof(buf), "%s", optarg);
			for (int w = 0; w < MW_COUNT; w++)
				o.only[w] = 0;
			for (t = strtok_r(buf, ",", &save); t;
			     t = strtok_r(NULL, ",", &save)) {
				int w = lookup(t, models_workload_names,
					       MW_COUNT);

				if (w < 0)
					die("--only: unknown workload '%s'", t);
				o.only[w] = 1;
			}
			break;
		}
		default:
			usage(2);
		}
	}
	if (optind < argc)
		usage(2);
	/* A tmpfs by default: the mixed workload is about the system calls
	 * and the work around them, not about a disk's journal (on a shared
	 * virtual disk a file's creation can cost a millisecond of system
	 * time, and that time varies from one minute to the next). */
	if (!o.tmpdir) {
		struct stat st;

		o.tmpdir = !stat("/dev/shm", &st) && S_ISDIR(st.st_mode) &&
					   !access("/dev/shm", W_OK) ?
				   "/dev/shm" :
			   getenv("TMPDIR") ? getenv("TMPDIR") :
					      "/tmp";
	}
	if (setenv("TMPDIR", o.tmpdir, 1))
		die("setenv: %s", strerror(errno));
	if (!o.max_workers) {
		long mw = 2 * (long)o.workers;

		o.max_workers = mw > MAX_SCALE_WORKERS ? MAX_SCALE_WORKERS :
							 (unsigned)mw;
	}
}

/* python3 is there, and so is the peer script. */
static int python_check(void)
{
	static char path[4200];
	char *argv[] = { (char *)"python3", (char *)"-c", (char *)"0", NULL };
	char *dir;
	pid_t pid;
	int status;

	if (!o.python)
		return 0;
	if (!o.python_script) {
		/* build/<variant>/bench/models -> bench/peers/ */
		snprintf(path, sizeof(path), "%s", self_exe);
		for (int i = 0; i < 4 && (dir = strrchr(path, '/')); i++)
			*dir = '\0';
		strncat(path, "/bench/peers/models_py.py",
			sizeof(path) - strlen(path) - 1);
		o.python_script =
			access(path, R_OK) ? "bench/peers/models_py.py" : path;
	}
	if (access(o.python_script, R_OK)) {
		printf("python models skipped: no %s\n", o.python_script);
		return 0;
	}
	if (posix_spawnp(&pid, "python3", NULL, NULL, argv, environ)) {
		printf("python models skipped: no python3\n");
		return 0;
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int main(int argc, char **argv)
{
	ssize_t n;
	int64_t t0 = br_now_ns();

	if (argc > 1 && !strcmp(argv[1], "--child"))
		return child_main(argc, argv);
	parse(argc, argv);
	n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
	if (n <= 0)
		die("readlink /proc/self/exe: %s", strerror(errno));
	self_exe[n] = '\0';
	srand(o.seed);
	signal(SIGPIPE, SIG_IGN);
	python_ok = python_check();
	if (o.only[MW_NET])
		echo_start();
	load_start = loadavg();
	printf("models: %d run(s) at scale %g, %u workers, %ld CPUs, load "
	       "%.2f%s\n",
	       o.runs, o.scale, o.workers, sysconf(_SC_NPROCESSORS_ONLN),
	       load_start, python_ok ? ", python included" : "");
	if (load_start > 0.5)
		printf("models: the machine is busy (load %.2f): the figures "
		       "will show it\n",
		       load_start);
	fflush(stdout);
	run_all();
	load_end = loadavg();
	echo_end();
	summarize_all();
	print_table(stdout, 0);
	print_scaling(stdout);
	write_json();
	printf("\njson: %s\n", o.json);
	if (o.markdown) {
		FILE *f;

		mkdir_for(o.markdown);
		f = fopen(o.markdown, "we");
		if (!f)
			die("cannot write %s: %s", o.markdown, strerror(errno));
		print_table(f, 1);
		fclose(f);
		printf("markdown: %s\n", o.markdown);
	}
	if (o.plots)
		plot();
	else
		printf("plots skipped (--no-plots)\n");
	printf("total %.1f s, load at the end %.2f\n",
	       (double)(br_now_ns() - t0) / 1e9, load_end);
	for (int w = 0; w < MW_COUNT; w++)
		for (int m = 0; m < MM_COUNT; m++)
			if (o.only[w] && available(m) && !sums[w][m].ok)
				return 1;
	for (int w = 0; w < MW_COUNT; w++)
		if (o.only[w] && !checks_agree[w])
			return 1;
	return 0;
}
