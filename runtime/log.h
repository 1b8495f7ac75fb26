/* SPDX-License-Identifier: MIT */
/*
 * log.h - braid's own messages (warnings, stall reports, the stats
 * table): through the runtime's br_config.log hook, or to stderr.
 * See log.c.
 */
#ifndef BR_LOG_H
#define BR_LOG_H

#include "braid.h"

struct br_runtime;

/*
 * br__log - format a message and hand it to rt's hook (br_config.log),
 * or write it to stderr as one line "braid: <msg>" when rt has none or
 * rt is NULL. The message has no "braid: " prefix and no final newline.
 * Context: any thread; not a signal handler (the hook may take locks).
 */
__attribute__((format(printf, 3, 4))) void
br__log(const struct br_runtime *rt, int level, const char *fmt, ...);

#endif /* BR_LOG_H */
