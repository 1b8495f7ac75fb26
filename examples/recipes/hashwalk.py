# SPDX-License-Identifier: MIT
# hashwalk.py - hashwalk.c's Python twin: the 64-bit FNV-1a hash of every
# regular file under a directory, in a pool of worker processes.
#
#   python3 hashwalk.py DIR
import os
import stat
import sys
from concurrent.futures import ProcessPoolExecutor


def fnv1a(path):
    h = 0xcbf29ce484222325
    try:
        with open(path, "rb") as f:
            while block := f.read(65536):
                for b in block:
                    h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    except OSError as e:
        return None, e.strerror
    return f"{h:016x}", None


def walk(d):
    for name in sorted(os.listdir(d)):
        path = os.path.join(d, name)
        mode = os.lstat(path).st_mode
        if stat.S_ISDIR(mode):
            yield from walk(path)
        elif stat.S_ISREG(mode):
            yield path


if __name__ == "__main__":
    paths = list(walk(sys.argv[1]))
    failed = False
    with ProcessPoolExecutor() as pool:
        for path, (h, err) in zip(paths, pool.map(fnv1a, paths, chunksize=64)):
            if h:
                print(f"{h}  {path}")
            else:
                print(f"{path}: {err}", file=sys.stderr)
                failed = True
    sys.exit(failed)
