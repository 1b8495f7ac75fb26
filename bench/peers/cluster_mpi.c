/* SPDX-License-Identifier: MIT */
/*
 * cluster_mpi.c - the by-hand peer of bench/cluster.c: a plain MPI
 * master/worker program, rank 0 the master, ranks 1..n-1 the workers,
 * which sum the ints of each job themselves (no worker processes, no
 * isolation of crashes). Run under mpirun -np 3.
 *
 * What it measures
 *   --mode job: --n jobs (default 20,000) of 100 ints (400 bytes in, the
 *   8-byte sum out), one in flight per worker: the master sends each
 *   worker a job, then for every result that comes back (MPI_Recv from
 *   any source) sends that worker the next. us per job: wall / n.
 *   --mode map: --n items (default 100,000) of 100 ints, in chunks of 100
 *   items per message (40,000 bytes out, 800 back), two chunks in flight
 *   per worker so that a worker has the next chunk while its last result
 *   travels. us per item: the median wall / n of 5 maps.
 *   --mode idle: the workers wait in a blocking MPI_Recv, as a by-hand
 *   worker does between jobs, while the master sleeps --ms (default
 *   5,000) ms; reported: the CPU time each rank burns meanwhile, in ms
 *   per second, the highest of the ranks (Open MPI polls in MPI_Recv).
 *   Each first runs an untimed warm-up of --warmup (default 2,000) jobs.
 *
 * Output: one JSON line as bench/bench.h writes them, workload cluster,
 * impl mpi, metric job, map or idle, threads the number of ranks.
 */
#include <mpi.h>
#include <unistd.h>

#include "../bench.h"
#include "../cluster.h"

#define CHUNK 100
#define CHUNKS_IN_FLIGHT 2
#define MAP_REPS 5

enum {
	TAG_WORK = 1,
	TAG_STOP = 2
};

/* A worker: sum each message's items (CLUSTER_INTS ints each), send the
 * sums back, until told to stop. */
static void worker(void)
{
	int32_t *in = malloc(CHUNK * CLUSTER_INTS * sizeof(int32_t));
	int64_t out[CHUNK];

	if (!in)
		bench_die("cluster_mpi: out of memory");
	for (;;) {
		MPI_Status st;
		int count, items;

		MPI_Recv(in, CHUNK * CLUSTER_INTS, MPI_INT32_T, 0, MPI_ANY_TAG,
			 MPI_COMM_WORLD, &st);
		if (st.MPI_TAG == TAG_STOP)
			break;
		MPI_Get_count(&st, MPI_INT32_T, &count);
		items = count / CLUSTER_INTS;
		for (int i = 0; i < items; i++) {
			int64_t s = 0;

			for (int k = 0; k < CLUSTER_INTS; k++)
				s += in[i * CLUSTER_INTS + k];
			out[i] = s;
		}
		MPI_Send(out, items, MPI_INT64_T, 0, TAG_WORK, MPI_COMM_WORLD);
	}
	free(in);
}

/* Send the chunk c of n items (per a message) to worker w, and note it in
 * w's queue: a worker answers in the order it was sent work. */
static void send_chunk(const int32_t *items, long n, int per, long c, int w,
		       long *queue, int inflight)
{
	long lo = c * per;
	int m = n - lo < per ? (int)(n - lo) : per;
	long *q = queue + (size_t)w * (inflight + 2);

	/* q[0] counts the chunks sent to w, q[1] those answered; the ring
	 * of chunk numbers follows. */
	q[2 + q[0]++ % inflight] = c;
	MPI_Send(items + lo * CLUSTER_INTS, m * CLUSTER_INTS, MPI_INT32_T, w,
		 TAG_WORK, MPI_COMM_WORLD);
}

/* Run n items in messages of per items, inflight messages per worker,
 * and check every sum. */
static void master(int size, const int32_t *items, long n, int per,
		   int inflight)
{
	long chunks = (n + per - 1) / per, next = 0, done = 0, bad = 0;
	int64_t *out = malloc((size_t)n * sizeof(int64_t));
	long *queue = calloc((size_t)size * (inflight + 2), sizeof(long));
	int64_t sums[CHUNK];

	if (!out || !queue)
		bench_die("cluster_mpi: out of memory");
	for (int k = 0; k < inflight; k++)
		for (int w = 1; w < size && next < chunks; w++)
			send_chunk(items, n, per, next++, w, queue, inflight);
	while (done < chunks) {
		MPI_Status st;
		long *q;
		int m;

		MPI_Recv(sums, CHUNK, MPI_INT64_T, MPI_ANY_SOURCE, TAG_WORK,
			 MPI_COMM_WORLD, &st);
		q = queue + (size_t)st.MPI_SOURCE * (inflight + 2);
		MPI_Get_count(&st, MPI_INT64_T, &m);
		memcpy(out + q[2 + q[1]++ % inflight] * per, sums,
		       (size_t)m * sizeof(int64_t));
		done++;
		if (next < chunks)
			send_chunk(items, n, per, next++, st.MPI_SOURCE, queue,
				   inflight);
	}
	for (long i = 0; i < n; i++)
		bad += out[i] != cluster_item_sum(i);
	if (bad)
		bench_die("cluster_mpi: %ld of %ld sums wrong", bad, n);
	free(queue);
	free(out);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* The highest CPU-ms per second of any rank over ms of idleness. */
static double idle_cost(int size, long ms)
{
	int64_t a[CLUSTER_MAX_RANKS], b[CLUSTER_MAX_RANKS], la, lb, t0, t;
	double worst = 0;

	cluster_cpu(a, &la);
	t0 = bench_now_ns();
	usleep((useconds_t)ms * 1000);
	cluster_cpu(b, &lb);
	t = bench_now_ns() - t0;
	for (int r = 0; r < size && r < CLUSTER_MAX_RANKS; r++) {
		double v = (double)(b[r] - a[r]) / 1e6 / ((double)t / 1e9);

		fprintf(stderr, "cluster_mpi: idle: rank %d %.2f CPU-ms/s\n", r,
			v);
		if (v > worst)
			worst = v;
	}
	fprintf(stderr, "cluster_mpi: idle: launcher %.2f CPU-ms/s\n",
		(double)(lb - la) / 1e6 / ((double)t / 1e9));
	return worst;
}

int main(int argc, char **argv)
{
	struct bench_opts o = {
		.n = 0, .mode = "job", .warmup = 2000, .ms = 5000
	};
	int rank, size, provided;
	int32_t *items;
	double v;

	MPI_Init_thread(&argc, &argv, MPI_THREAD_SINGLE, &provided);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	bench_parse(&o, argc, argv,
		    "[--mode job|map|idle] [--n N] [--warmup N] [--ms MS]");
	if (strcmp(o.mode, "job") && strcmp(o.mode, "map") &&
	    strcmp(o.mode, "idle"))
		bench_die("cluster_mpi: --mode is job, map or idle");
	if (size < 2)
		bench_die("cluster_mpi: run it under mpirun -np 2 or more");
	if (rank) {
		worker();
		MPI_Finalize();
		return 0;
	}
	if (!o.n)
		o.n = !strcmp(o.mode, "map") ? 100000 : 20000;
	items = cluster_items(o.n > o.warmup ? o.n : o.warmup);
	if (!items)
		bench_die("cluster_mpi: out of memory");
	if (o.warmup)
		master(size, items, o.warmup, 1, 1);
	if (!strcmp(o.mode, "job")) {
		int64_t t0 = bench_now_ns();

		master(size, items, o.n, 1, 1);
		v = (double)(bench_now_ns() - t0) / 1e3 / (double)o.n;
		bench_report("cluster", "mpi", "job", "us", o.n, (unsigned)size,
			     v, argc, argv);
	} else if (!strcmp(o.mode, "map")) {
		int64_t t[MAP_REPS];

		for (int i = 0; i < MAP_REPS; i++) {
			int64_t t0 = bench_now_ns();

			master(size, items, o.n, CHUNK, CHUNKS_IN_FLIGHT);
			t[i] = bench_now_ns() - t0;
		}
		qsort(t, MAP_REPS, sizeof(t[0]), cmp_i64);
		v = (double)t[MAP_REPS / 2] / 1e3 / (double)o.n;
		bench_report("cluster", "mpi", "map", "us", o.n, (unsigned)size,
			     v, argc, argv);
	} else {
		v = idle_cost(size, o.ms);
		bench_report("cluster", "mpi", "idle", "CPU-ms/s", o.n,
			     (unsigned)size, v, argc, argv);
	}
	for (int w = 1; w < size; w++)
		MPI_Send(NULL, 0, MPI_INT32_T, w, TAG_STOP, MPI_COMM_WORLD);
	free(items);
	MPI_Finalize();
	return 0;
}
