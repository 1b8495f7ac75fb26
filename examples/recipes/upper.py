# SPDX-License-Identifier: MIT
# upper.py - upper.c's asyncio twin: a line server with a deadline per
# request and a clean shutdown on SIGTERM or SIGINT.
#
#   python3 upper.py [PORT [DEADLINE_MS]]
import asyncio
import signal
import sys

deadline = 10.0


async def client(reader, writer):
    try:
        while True:
            async with asyncio.timeout(deadline):
                line = await reader.readline()
                if not line:
                    break
                writer.write(line.upper())
                await writer.drain()
    except TimeoutError:
        writer.write(b"timeout\n")
    except (ConnectionError, ValueError, asyncio.CancelledError):
        pass  # gone, a line too long, or the server is stopping
    writer.close()


async def main(port):
    server = await asyncio.start_server(client, "127.0.0.1", port)
    print(f"listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}",
          flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    if len(sys.argv) > 2:
        deadline = int(sys.argv[2]) / 1000
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 8000))
