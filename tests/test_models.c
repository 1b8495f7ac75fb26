/* SPDX-License-Identifier: MIT */
/*
 * test_models.c - bench/models, the threads vs processes vs async tool:
 * a tiny run of it (every workload under every model, the Python ones
 * when python3 is there) writes valid JSON in which every figure is
 * positive and the models agree on their results, and draws its plots
 * when gnuplot is there, and reports each measurement on stderr as it
 * goes; it answers --help and refuses an unknown option; its verdict line
 * follows the figures it is given
 * (the winner, the ratios, ties, missing figures); its summary statistics
 * are right.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../bench/models.h"
#include "helpers.h"

/* Every test leaves no descriptor, thread or child behind (helpers.h). */
TestSuite(models, .init = t_leak_init, .fini = t_leak_fini);

extern char **environ;

/* ---- a JSON syntax check, just enough for the tool's output ---- */

static const char *json_value(const char *p);

static const char *ws(const char *p)
{
	while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
		p++;
	return p;
}

static const char *json_string(const char *p)
{
	if (*p++ != '"')
		return NULL;
	for (; *p && *p != '"'; p++) {
		if ((unsigned char)*p < 0x20)
			return NULL;
		if (*p == '\\' && !*++p)
			return NULL;
	}
	return *p == '"' ? p + 1 : NULL;
}

static const char *json_list(const char *p, char close, int keyed)
{
	p = ws(p + 1);
	if (*p == close)
		return p + 1;
	for (;;) {
		if (keyed) {
			p = json_string(ws(p));
			if (!p)
				return NULL;
			p = ws(p);
			if (*p++ != ':')
				return NULL;
		}
		p = json_value(p);
		if (!p)
			return NULL;
		p = ws(p);
		if (*p == close)
			return p + 1;
		if (*p++ != ',')
			return NULL;
	}
}

static const char *json_value(const char *p)
{
	char *end;

	p = ws(p);
	switch (*p) {
	case '{':
		return json_list(p, '}', 1);
	case '[':
		return json_list(p, ']', 0);
	case '"':
		return json_string(p);
	case 't':
		return strncmp(p, "true", 4) ? NULL : p + 4;
	case 'f':
		return strncmp(p, "false", 5) ? NULL : p + 5;
	case 'n':
		return strncmp(p, "null", 4) ? NULL : p + 4;
	default:
		strtod(p, &end);
		return end == p ? NULL : end;
	}
}

/* ---- running the tool ---- */

static char dir[] = "/tmp/braid-test-models-XXXXXX";

/* The line of the results array for workload w under model m. */
static const char *result_line(const char *json, const char *w, const char *m)
{
	char key[160];
	const char *p;

	snprintf(key, sizeof(key), "{\"workload\": \"%s\", \"model\": \"%s\",",
		 w, m);
	p = strstr(json, key);
	cr_assert_not_null(p, "no result for %s under %s", w, m);
	return p;
}

/* The number after "key": in the line at p (before its end). */
static double field(const char *p, const char *key)
{
	const char *eol = strchr(p, '\n'), *at = strstr(p, key);

	cr_assert(at && (!eol || at < eol), "no %s in %.80s", key, p);
	return strtod(at + strlen(key), NULL);
}

static void rm_rf(const char *path)
{
	char *argv[] = { (char *)"rm", (char *)"-rf", (char *)path, NULL };
	pid_t pid;
	int st;

	if (posix_spawnp(&pid, "rm", NULL, NULL, argv, environ) == 0)
		waitpid(pid, &st, 0);
}

static int have(const char *prog)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", prog);
	return system(cmd) == 0;
}

Test(models, tiny_run_has_every_model_and_workload_with_positive_figures,
     .timeout = 120)
{
	static char exe[4096], tool[4200], json[200], out[200], err[200],
		png[200];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	posix_spawn_file_actions_t fa;
	char *argv[16], *text, *progress;
	int st, python, i = 0;
	pid_t pid;

	cr_assert_gt(n, 0);
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0'; /* .../tests */
	snprintf(tool, sizeof(tool), "%s/../bench/models", exe);
	if (access(tool, X_OK) != 0)
		cr_skip_test("%s is not built", tool);
	cr_assert_not_null(mkdtemp(dir));
	snprintf(json, sizeof(json), "%s/models.json", dir);
	snprintf(out, sizeof(out), "%s/out.txt", dir);
	snprintf(err, sizeof(err), "%s/err.txt", dir);
	argv[i++] = tool;
	argv[i++] = (char *)"--scale";
	argv[i++] = (char *)"0.01";
	argv[i++] = (char *)"--runs";
	argv[i++] = (char *)"1";
	argv[i++] = (char *)"--max-workers";
	argv[i++] = (char *)"2";
	argv[i++] = (char *)"--json";
	argv[i++] = json;
	argv[i++] = (char *)"--plot-dir";
	argv[i++] = dir;
	argv[i] = NULL;
	/* The progress lines checked below go to stderr, where the stall
	 * detector writes too: a loaded machine in a sanitizer build can
	 * make a CPU workload hold its worker past 25 ms, and the warning
	 * then lands in the middle of a progress line. */
	setenv("BRAID_STALL_MS", "0", 1);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT, 0644);
	posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT, 0644);
	cr_assert_eq(posix_spawn(&pid, tool, &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	text = t_read_file(out, NULL);
	progress = t_read_file(err, NULL);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "bench/models failed (status %d):\n%s\n%s", st, text,
		  progress);
	free(text);

	text = t_read_file(json, NULL);
	cr_assert_not_null(json_value(text), "not JSON:\n%s", text);
	cr_assert_eq(*ws(json_value(text)), '\0', "text after the JSON");
	python = strstr(text, "\"python\": true,") != NULL;
	if (!python)
		cr_log_warn("python3 missing: the Python models were not run");
	for (int w = 0; w < MW_COUNT; w++) {
		char key[64];

		snprintf(key, sizeof(key), "{\"name\": \"%s\",",
			 models_workload_names[w]);
		cr_assert_not_null(strstr(text, key), "no workload %s",
				   models_workload_names[w]);
		for (int m = 0; m < MM_COUNT; m++) {
			const char *p;

			if (models_models[m].python && !python)
				continue;
			snprintf(key, sizeof(key), ": %s under %s ... ",
				 models_workload_names[w],
				 models_models[m].name);
			cr_assert_not_null(strstr(progress, key),
					   "no progress line with '%s' in:\n%s",
					   key, progress);
			p = result_line(text, models_workload_names[w],
					models_models[m].name);
			cr_assert_not_null(strstr(p, "\"ok\": true"), "%.200s",
					   p);
			cr_assert_gt(field(p, "\"items\": "), 0);
			cr_assert_gt(field(p, "\"wall_s\": {\"median\": "), 0);
			cr_assert_gt(field(p, "\"cpu_s\": {\"median\": "), 0,
				     "%.300s", p);
			cr_assert_gt(field(p, "\"rss_kb\": {\"median\": "), 0);
			cr_assert_gt(field(p, "\"throughput\": {\"median\": "),
				     0);
			cr_assert_gt(field(p, "\"speedup\": "), 0);
		}
	}
	/* Every model computed the same results (a sum per workload). */
	cr_assert_null(strstr(text, "\"checks_agree\": false"));
	cr_assert_null(strstr(text, "no figures"));
	for (unsigned k = 1; k <= 2; k++) {
		static const char *const sm[] = { "thread-pool", "tasks-n",
						  "process-pool" };

		for (size_t s = 0; s < 3; s++) {
			char key[128];

			snprintf(key, sizeof(key),
				 "{\"model\": \"%s\", \"workers\": %u, "
				 "\"ok\": true",
				 sm[s], k);
			cr_assert_not_null(strstr(text, key), "no %s", key);
		}
	}
	free(text);
	free(progress);
	if (have("gnuplot"))
		for (int w = 0; w < MW_COUNT; w++) {
			struct stat sb;

			snprintf(png, sizeof(png), "%s/models_%s.png", dir,
				 models_workload_names[w]);
			cr_assert_eq(stat(png, &sb), 0, "no %s", png);
			cr_assert_gt(sb.st_size, 1000);
		}
	rm_rf(dir);
}

/* Run bench/models with one argument, its stdout and stderr into files
 * of dir; return its exit status (or -1 if it did not exit). */
static int run_tool_with(const char *arg, char **out, char **err)
{
	static char exe[4096], tool[4200], o[200], e[200];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *argv[] = { tool, (char *)arg, NULL };
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int st;

	cr_assert_gt(n, 0);
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0'; /* .../tests */
	snprintf(tool, sizeof(tool), "%s/../bench/models", exe);
	if (access(tool, X_OK) != 0)
		cr_skip_test("%s is not built", tool);
	snprintf(o, sizeof(o), "%s/out.txt", dir);
	snprintf(e, sizeof(e), "%s/err.txt", dir);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, o,
					 O_WRONLY | O_CREAT | O_TRUNC, 0644);
	posix_spawn_file_actions_addopen(&fa, 2, e,
					 O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert_eq(posix_spawn(&pid, tool, &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	*out = t_read_file(o, NULL);
	*err = t_read_file(e, NULL);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(models, help_prints_the_usage_on_stdout_and_exits_0, .timeout = 10)
{
	char *out, *err;

	cr_assert_not_null(mkdtemp(dir));
	cr_assert_eq(run_tool_with("--help", &out, &err), 0, "%s", err);
	cr_assert(!strncmp(out, "usage: models ", 14), "%s", out);
	cr_assert_str_eq(err, "");
	free(out);
	free(err);
	rm_rf(dir);
}

Test(models, an_unknown_option_prints_the_usage_on_stderr_and_exits_2,
     .timeout = 10)
{
	char *out, *err;

	cr_assert_not_null(mkdtemp(dir));
	cr_assert_eq(run_tool_with("--no-such-option", &out, &err), 2);
	cr_assert_str_eq(out, "", "measured something: %s", out);
	cr_assert(strstr(err, "usage: models "), "%s", err);
	free(out);
	free(err);
	rm_rf(dir);
}

/* ---- the verdict ---- */

static char buf[512];

Test(models, verdict_names_the_winning_family_and_its_ratios, .timeout = 5)
{
	const struct models_score s[] = {
		{ "pthread pool", MF_THREADS, 100 },
		{ "thread per job", MF_THREADS, 80 },
		{ "process pool", MF_PROCESSES, 190 },
		{ "tasks", MF_ASYNC, 50 },
	};

	cr_assert_eq(models_verdict("CPU-bound", s, 4, buf, sizeof(buf)),
		     MF_PROCESSES);
	cr_assert_str_eq(buf, "processes win CPU-bound by 1.90x over threads "
			      "and 3.80x over async (process pool vs pthread "
			      "pool, tasks)");
}

Test(models, verdict_follows_the_numbers_when_they_change, .timeout = 5)
{
	struct models_score s[] = {
		{ "pthread pool", MF_THREADS, 100 },
		{ "process pool", MF_PROCESSES, 190 },
		{ "tasks", MF_ASYNC, 570 },
	};

	cr_assert_eq(models_verdict("I/O-bound", s, 3, buf, sizeof(buf)),
		     MF_ASYNC);
	cr_assert_not_null(strstr(buf, "async wins I/O-bound by 3.00x over "
				       "processes and 5.70x over threads"),
			   "%s", buf);
	s[0].throughput = 1200;
	cr_assert_eq(models_verdict("I/O-bound", s, 3, buf, sizeof(buf)),
		     MF_THREADS);
	cr_assert_not_null(strstr(buf, "threads win I/O-bound by 2.11x over "
				       "async"),
			   "%s", buf);
}

Test(models, verdict_calls_figures_within_five_percent_a_tie, .timeout = 5)
{
	const struct models_score s[] = {
		{ "pthread pool", MF_THREADS, 100 },
		{ "tasks", MF_ASYNC, 104 },
		{ "process pool", MF_PROCESSES, 50 },
	};

	cr_assert_eq(models_verdict("mixed", s, 3, buf, sizeof(buf)), MF_ASYNC);
	cr_assert_not_null(strstr(buf, "mixed: async and threads tie (1.04x), "
				       "both ahead by 2.00x over processes"),
			   "%s", buf);
}

Test(models, verdict_leaves_out_models_without_figures, .timeout = 5)
{
	const struct models_score s[] = {
		{ "failed", MF_PROCESSES, 0 },
		{ "tasks", MF_ASYNC, 10 },
		{ "negative", MF_THREADS, -5 },
	};

	cr_assert_eq(models_verdict("tiny", s, 3, buf, sizeof(buf)), MF_ASYNC);
	cr_assert_str_eq(buf, "tiny: only async measured (tasks)");
	cr_assert_eq(models_verdict("tiny", s, 1, buf, sizeof(buf)), -1);
	cr_assert_str_eq(buf, "tiny: no figures");
	cr_assert_eq(models_verdict("tiny", s, 3, buf, 0), -1);
}

Test(models, verdict_is_cut_to_the_buffer, .timeout = 5)
{
	const struct models_score s[] = {
		{ "pthread pool", MF_THREADS, 100 },
		{ "tasks", MF_ASYNC, 300 },
	};
	char small[16];

	cr_assert_eq(models_verdict("CPU-bound", s, 2, small, sizeof(small)),
		     MF_ASYNC);
	cr_assert_eq(strlen(small), sizeof(small) - 1);
	cr_assert_eq(strncmp(small, "async wins CPU-", 15), 0);
}

Test(models, stats_give_median_min_and_max, .timeout = 5)
{
	double odd[] = { 5, 1, 3 }, even[] = { 4, 1, 3, 10 }, one[] = { 7 };
	struct models_stat s;

	s = models_stat_of(odd, 3);
	cr_assert(s.median == 3 && s.min == 1 && s.max == 5);
	s = models_stat_of(even, 4);
	cr_assert(s.median == 3.5 && s.min == 1 && s.max == 10);
	s = models_stat_of(one, 1);
	cr_assert(s.median == 7 && s.min == 7 && s.max == 7);
}
