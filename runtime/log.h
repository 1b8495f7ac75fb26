/* SPDX-License-Identifier: MIT */
/*
 * log.h - braid's own messages (warnings, stall reports, the stats
 * table): through the runtime's br_config.log hook, or to stderr.
 * See log.c.
 */
#ifndef BR_LOG_H
#define BR_LOG_H

#include "braid.h"

/* Where a runtime's messages go: br_config.log and its argument. */
struct br__log_sink {
	br_log_fn fn; /* NULL: stderr */
	void *arg;
};

/*
 * br__log - format a message and hand it to the sink's hook (a runtime's
 * br_config.log), or write it to stderr as one line "braid: <msg>" when
 * it has none or to is NULL. The message has no "braid: " prefix and no
 * final newline.
 * Context: any thread; not a signal handler (the hook may take locks).
 */
__attribute__((format(printf, 3, 4))) void
br__log(const struct br__log_sink *to, int level, const char *fmt, ...);

#endif /* BR_LOG_H */
