# SPDX-License-Identifier: MIT
# runner.py - runner.c's asyncio twin: shell commands side by side, each
# in a process group of its own with a time limit, output kept.
#
#   python3 runner.py LIMIT_MS COMMAND...
import asyncio
import os
import signal
import sys


async def run(cmd, limit):
    p = await asyncio.create_subprocess_shell(
        cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        start_new_session=True)
    out = bytearray()

    async def read():
        while chunk := await p.stdout.read(65536):
            out.extend(chunk)
        return await p.wait()

    try:
        code = await asyncio.wait_for(read(), limit)
        return out, f"[exit {code}]", code != 0
    except TimeoutError:
        os.killpg(p.pid, signal.SIGKILL)
        await p.wait()
        return out, "[killed at the time limit]", True


async def main(limit, cmds):
    results = await asyncio.gather(*(run(c, limit) for c in cmds))
    for cmd, (out, end, failed) in zip(cmds, results):
        sys.stdout.write(f"$ {cmd}\n{out.decode(errors='replace')}{end}\n")
    return any(failed for _, _, failed in results)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(int(sys.argv[1]) / 1000, sys.argv[2:])))
