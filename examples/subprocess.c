/* SPDX-License-Identifier: MIT */
/*
 * subprocess.c - child processes as futures: a shell-style pipeline built
 * stage by stage, and several commands run at once and gathered.
 *
 * The pipeline is `printf words | sort | uniq -c | sort -rn`, but with no
 * shell: each stage is a br_exec() whose captured stdout becomes the next
 * stage's stdin_data. The runtime feeds the input and reads the output
 * through its loop at the same time, so no stage can deadlock on a full
 * pipe. Then a few independent commands start together and br_gather()
 * waits for all of them; one of them fails on purpose, and one, a shell
 * with a job in the background, runs past its timeout: it runs in a
 * process group of its own, so the whole group is killed (nothing is
 * left behind), and what it printed before stays readable.
 *
 * Run it: build/release/examples/subprocess
 */
#include <braid.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NCMDS 4

static const char *words = "braid\nfuture\ntask\nbraid\nloop\ntask\nbraid\n";

/* Print a future's captured output, indented. */
static void show(const char *title, br_future *f)
{
	size_t len;
	const char *out = br_future_bytes(f, &len);

	printf("%s (exit %d):\n", title, br_exec_exit_code(f));
	while (len) {
		const char *nl = memchr(out, '\n', len);
		size_t n = nl ? (size_t)(nl - out) + 1 : len;

		printf("    %.*s%s", (int)n, out, nl ? "" : "\n");
		out += n;
		len -= n;
	}
}

static int pipeline(br_runtime *rt)
{
	const char *const stages[][4] = {
		{ "sort", NULL },
		{ "uniq", "-c", NULL },
		{ "sort", "-rn", NULL },
	};
	br_future *prev = NULL;
	const void *in = words;
	size_t in_len = strlen(words), i;

	for (i = 0; i < sizeof(stages) / sizeof(stages[0]); i++) {
		br_exec_opts o = { .stdout_mode = BR_EXEC_CAPTURE,
				   .stdin_data = in,
				   .stdin_len = in_len };
		br_future *f = br_exec(rt, stages[i], &o);
		int err = br_await(f, NULL);

		/* The previous output fed this stage; it can go now. */
		br_future_release(prev);
		prev = f;
		if (err < 0 || br_exec_exit_code(f) != 0) {
			fprintf(stderr, "stage %s: %s\n", stages[i][0],
				err < 0 ? br_future_message(f) : "failed");
			br_future_release(f);
			return 1;
		}
		in = br_future_bytes(f, &in_len);
	}
	show("sort | uniq -c | sort -rn", prev);
	br_future_release(prev);
	return 0;
}

static int concurrent(br_runtime *rt)
{
	const char *const cmds[NCMDS][4] = {
		{ "uname", "-s", NULL },
		{ "sh", "-c", "echo $((6 * 7))", NULL },
		{ "sh", "-c", "echo to stderr >&2; exit 3", NULL },
		{ "sh", "-c", "echo working; sleep 5 & wait", NULL },
	};
	br_future *fs[NCMDS];
	int i;

	for (i = 0; i < NCMDS; i++) {
		/* The shell gets a second: time to say it is working. */
		br_exec_opts o = { .stdout_mode = BR_EXEC_CAPTURE,
				   .stderr_mode = BR_EXEC_CAPTURE,
				   .timeout_ms = i == NCMDS - 1 ? 1000 : 200,
				   .flags = BR_EXEC_NEW_PGROUP };

		fs[i] = br_exec(rt, cmds[i], &o);
	}
	/* Completes when all have; each keeps its own outcome. */
	br_gather(fs, NCMDS, NULL);
	for (i = 0; i < NCMDS; i++) {
		char title[64] = "";
		size_t k;

		for (k = 0; cmds[i][k]; k++)
			snprintf(title + strlen(title),
				 sizeof(title) - strlen(title), "%s%s",
				 k ? " " : "", cmds[i][k]);
		if (br_future_state(fs[i]) == BR_DONE) {
			show(title, fs[i]);
		} else {
			size_t len;
			const char *out = br_exec_output(fs[i], &len);

			printf("%s: %s (%s)\n", title,
			       br_strerror(br_future_error(fs[i])),
			       br_future_message(fs[i]));
			if (len)
				printf("    printed before that: %.*s",
				       (int)len, out);
		}
		br_future_release(fs[i]);
	}
	return 0;
}

/* The usage on stdout for --help (status 0), on stderr for a mistake
 * (status 2). */
static __attribute__((noreturn)) void usage(const char *name, int status)
{
	fprintf(status ? stderr : stdout,
		"usage: %s [--help]\n"
		"A pipeline of commands fed stage to stage, then commands run at "
		"once and gathered.\n",
		name);
	exit(status);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	br_runtime *rt;
	int rc;

	while ((rc = getopt_long(argc, argv, "h", opts, NULL)) != -1)
		usage(argv[0], rc == 'h' ? 0 : 2);
	if (optind < argc)
		usage(argv[0], 2);
	rc = br_runtime_new(&rt, NULL);
	if (rc < 0) {
		fprintf(stderr, "br_runtime_new: %s\n", br_strerror(rc));
		return 1;
	}
	rc = pipeline(rt);
	if (!rc)
		rc = concurrent(rt);
	br_runtime_free(rt);
	return rc;
}
