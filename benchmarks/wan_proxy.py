"""A TCP proxy on 127.0.0.1 that adds a fixed round-trip delay, like a CI runner talking to ghcr.io.

    python benchmarks/wan_proxy.py --upstream 127.0.0.1:5000 --rtt-ms 40 [--listen 127.0.0.1:0]

Prints `LISTENING 127.0.0.1:PORT` on stdout once it accepts connections, then runs until killed.

Model: every chunk read in either direction is delivered rtt/2 later, in order per connection and
direction (a pipe with latency, not a rate limit: chunks in flight overlap). A new connection also
pays one round trip before its first byte reaches the upstream, as a TCP handshake does. A request
and its response therefore cost one RTT, a fresh connection one more. (TLS, which ghcr.io needs,
would add another round trip per connection; the benchmark registry speaks plain HTTP.)
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys

CHUNK = 256 * 1024


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float,
                not_before: float) -> None:
    """Copy reader -> writer, delivering each chunk `delay` seconds after it was read, in order."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    async def deliver() -> None:
        try:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass

    sender = asyncio.create_task(deliver())
    last = not_before
    try:
        while True:
            data = await reader.read(CHUNK)
            last = max(loop.time() + delay, last)
            queue.put_nowait((last, data or None))
            if not data:
                break
    except (ConnectionError, OSError):
        queue.put_nowait((last, None))
    await sender


async def _handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter,
                  upstream: tuple[str, int], rtt: float) -> None:
    loop = asyncio.get_running_loop()
    handshake_done = loop.time() + rtt          # SYN, SYN-ACK: the client's first byte leaves after 1 RTT
    try:
        up_reader, up_writer = await asyncio.open_connection(*upstream)
    except OSError:
        client_writer.close()
        return
    for w in (client_writer, up_writer):
        sock = w.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        await asyncio.gather(_pump(client_reader, up_writer, rtt / 2, handshake_done),
                             _pump(up_reader, client_writer, rtt / 2, 0.0))
    finally:
        for w in (client_writer, up_writer):
            try:
                w.close()
            except Exception:
                pass


async def serve(listen: tuple[str, int], upstream: tuple[str, int], rtt_ms: float) -> None:
    rtt = rtt_ms / 1000.0
    server = await asyncio.start_server(lambda r, w: _handle(r, w, upstream, rtt), *listen, backlog=512)
    host, port = server.sockets[0].getsockname()[:2]
    print(f"LISTENING {host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the registry")
    parser.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT to listen on (default: a free port)")
    parser.add_argument("--rtt-ms", type=float, default=40.0, help="round-trip delay to add (default 40)")
    args = parser.parse_args()
    try:
        asyncio.run(serve(_addr(args.listen), _addr(args.upstream), args.rtt_ms))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
