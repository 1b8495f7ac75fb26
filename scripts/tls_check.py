#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""tls_check.py - every thread-local of the runtime is read where a fiber
cannot carry a stale thread pointer across a suspension.

Usage: scripts/tls_check.py [FILE ...]   (default: runtime/*.c runtime/*.h)

A task's fiber may resume on another worker thread after any call that
suspends, and a compiler keeps the thread pointer (or a thread-local's
address) in a register across calls. Release builds optimise across files
(the Makefile's LTOFLAGS), so a small function that reads a thread-local
can be inlined into one that suspends, far from where it was written.
runtime/worker.c ("Fiber hazards") states the rule this script checks:
a thread-local may be named only

  - inside a function declared BR__NOINLINE, which takes the thread
    pointer afresh at each call; or
  - for a variable that only plain threads use (PLAIN below); or
  - inside a function that runs outside every fiber (OUTSIDE below):
    a thread's start or exit, a signal handler; or
  - in a debug-only assertion macro (DEBUG_MACROS).

It finds the thread-locals by their __thread declarations, then every
use of their names in function bodies, with comments and strings taken
out. Exit status 1, and one line per offence, if any use breaks the rule.
"""
import glob
import re
import sys

# Read only on paths a task never takes: a plain thread's deadline
# scopes, spin budget and I/O timeout.
PLAIN = {"br__thread_dl", "thread_spin", "thread_io_timeout"}
# Functions that never run on a fiber.
OUTSIDE = {
    "worker_start",   # worker.c: the thread's start, before any fiber
    "worker_exit",    # worker.c: after the last fiber
    "thread_main",    # blocking.c: a blocking-pool thread, never a fiber
    "thread_exit",    # tasklocal.c: the thread-exit destructor
    "on_segv",        # stack.c: the SIGSEGV handler
}
DEBUG_MACROS = {"BR__ASSERT_OWNER"}

# "__thread T name;", "__thread T name = v;", "__thread struct {...} name;"
TLS_DECL = re.compile(r"__thread\b(?:[^;={(]*\{[^}]*\})?[^;=(]*?\b(\w+)\s*"
                      r"(?:=[^;]*)?;")
# A function definition starts at column 0 with a return type and a name
# followed by "(", and is not a prototype (the line or the next ones end
# in "{" before any ";").
FUNC_START = re.compile(r"^(?!static_assert|typedef|struct\s+\w+\s*{)"
                        r"[A-Za-z_][\w\s\*\(\),]*?\b(\w+)\s*\(")


def strip(text):
    """Comments and string literals out, line breaks kept."""
    out, i, n = [], 0, len(text)
    while i < n:
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text[i] in "\"'":
            q, j = text[i], i + 1
            while j < n and text[j] != q:
                j += 2 if text[j] == "\\" else 1
            out.append(" " * (min(j + 1, n) - i))
            i = j + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def tls_names(files):
    names = set()
    for f in files:
        for m in TLS_DECL.finditer(strip(open(f).read())):
            names.add(m.group(1))
    return names


def uses(path, names):
    """(line, function, header, name) for each use of a name in a body."""
    lines = strip(open(path).read()).split("\n")
    found, depth = [], 0
    func, header, pending = None, "", None
    pat = re.compile(r"\b(" + "|".join(sorted(names)) + r")\b")
    for no, line in enumerate(lines, 1):
        if depth == 0:
            m = FUNC_START.match(line)
            if m and not line.startswith("#"):
                pending, header = m.group(1), line
            elif pending and not line.startswith("{"):
                header += " " + line
            if pending and ";" in line and "{" not in line:
                pending, header = None, ""
        if line.startswith("#define"):
            m = re.match(r"#define\s+(\w+)", line)
            for u in pat.findall(line):
                if m.group(1) not in DEBUG_MACROS:
                    found.append((no, "#define " + m.group(1), "", u))
            continue
        if depth > 0 or "{" in line:
            if depth == 0 and pending:
                func = pending
            for u in pat.findall(line):
                if func:  # not a declaration at file scope
                    found.append((no, func, header, u))
        depth += line.count("{") - line.count("}")
        if depth == 0 and func:
            func, header, pending = None, "", None
    return found


def main(argv):
    files = argv or sorted(glob.glob("runtime/*.c") + glob.glob("runtime/*.h"))
    names = tls_names(files)
    bad = 0
    for f in files:
        for no, func, header, name in uses(f, names):
            if name in PLAIN or func in OUTSIDE:
                continue
            if func and "BR__NOINLINE" in header:
                continue
            print("%s:%d: %s reads the thread-local %s; do it in a "
                  "BR__NOINLINE function (runtime/worker.c, \"Fiber "
                  "hazards\")" % (f, no, func or "(file scope)", name))
            bad = 1
    if not bad:
        print("tls_check: %d thread-locals, every use safe for fibers"
              % len(names))
    return bad


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
