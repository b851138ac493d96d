"""A TCP proxy that adds a fixed delay to each direction, to stand for a relay across the internet.

    .venv/bin/python bench/latency_proxy.py --listen 2526 --upstream 127.0.0.1:2525 --delay-ms 10

Every chunk read from one side is written to the other ``delay`` later: each direction of each
connection has its own queue (so order within a direction holds) and its own writer task (so
a chunk waiting on one connection never holds up another). Bandwidth is not limited; only
latency is added, the way a round trip to a provider's relay costs it.
"""

import argparse
import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

CHUNK = 64 * 1024


async def _forward(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float
) -> None:
    """Copy ``reader`` to ``writer``, each chunk ``delay`` seconds after it arrived."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, chunk = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not chunk:
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            writer.write(chunk)
            await writer.drain()

    sender = asyncio.create_task(deliver())
    try:
        while True:
            chunk = await reader.read(CHUNK)
            queue.put_nowait((loop.time() + delay, chunk))
            if not chunk:
                break
        await sender
    except (OSError, asyncio.IncompleteReadError):
        sender.cancel()
    finally:
        writer.close()


async def serve(listen_port: int, upstream: tuple[str, int], delay: float) -> None:
    """Accept on loopback ``listen_port`` and relay each connection to ``upstream``."""

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*upstream)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(
            _forward(client_r, server_w, delay),
            _forward(server_r, client_w, delay),
            return_exceptions=True,
        )

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    async with server:
        await server.serve_forever()


@contextmanager
def latency_proxy(listen_port: int, upstream: tuple[str, int], delay_ms: float) -> Iterator[int]:
    """The proxy as a process of its own (so it never competes with the measured client for
    this interpreter) for a ``with`` block; yields the port it listens on."""
    process = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--listen",
            str(listen_port),
            "--upstream",
            f"{upstream[0]}:{upstream[1]}",
            "--delay-ms",
            str(delay_ms),
        ]
    )
    try:
        for _ in range(200):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", listen_port)) == 0:
                    break
            if process.poll() is not None:
                raise RuntimeError("the latency proxy did not start")
            time.sleep(0.05)
        yield listen_port
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", type=int, required=True, help="loopback port to listen on")
    parser.add_argument("--upstream", required=True, help="host:port to relay to")
    parser.add_argument("--delay-ms", type=float, default=10.0, help="delay per direction")
    args = parser.parse_args()
    host, _, port = args.upstream.rpartition(":")
    asyncio.run(serve(args.listen, (host, int(port)), args.delay_ms / 1000))


if __name__ == "__main__":
    main()
