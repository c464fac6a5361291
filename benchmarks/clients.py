"""The client side of a measurement, run in its own process so that decoding frames does not
take the server's core: `python -m benchmarks.clients MODE VARIANT PORT CONTROL_PORT [options]`.

Modes:
  latency   one share of N connections (two per user, the users split over `--shards`
            processes), driven by the runner on stdin (`benchmarks.harness.run_latency`):
            `connected` once open, `reset` -> `ok`, `collect FIRST COUNT` -> the result; the
            publish-to-decoded latency of the user events numbered FIRST to FIRST + COUNT - 1
  saturate  N connections; bursts of user events kept in flight; deliveries/s, server CPU per
            delivery
  idle      N idle connections; the server's RSS before and after

Prints one JSON object on its last line.

The clients run on uvloop: one process holds the connections of 50 consoles, and on the
default loop the wake-ups of 100 receivers after each market tick put 1.5 to 3 ms of the
client's own work in every variant's tail, the floor's included. The servers run on the
default asyncio loop, as `ginie-server` does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop
from websockets.asyncio.client import ClientConnection, connect

from benchmarks.servers.control import USERS, raise_fd_limit
from ginie_protocol import decode_server


@dataclass
class Tally:
    """What the receivers counted; latencies of user events in nanoseconds."""

    user_events: int = 0
    market_events: int = 0
    frames: int = 0
    samples: list[int] = field(default_factory=list)
    """Per user-event delivery, its number (`data.id`) then its latency in nanoseconds."""

    def reset(self) -> None:
        self.user_events = self.market_events = self.frames = 0
        self.samples = []


class Control:
    """The server's control port: one command, one reply line."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Control:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def ask(self, line: str) -> str:
        self.writer.write((line + "\n").encode())
        await self.writer.drain()
        reply = (await self.reader.readline()).decode().strip()
        if reply.startswith("error"):
            raise RuntimeError(reply)
        return reply

    async def wait_connections(self, count: int, limit_s: float = 30.0) -> None:
        deadline = time.monotonic() + limit_s
        while int(await self.ask("conns")) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"server has not got {count} subscribed connections")
            await asyncio.sleep(0.02)


async def open_client(variant: str, port: int, user: str, token: str | None) -> ClientConnection:
    """Connect and complete the variant's handshake and subscription to every topic."""
    subscribe = json.dumps({"op": "subscribe", "topics": ["*"]})
    if variant.startswith("ginie"):
        ws = await connect(
            f"ws://127.0.0.1:{port}/ws",
            additional_headers={"Authorization": f"Bearer {token}"},
            compression=None,
            max_size=None,
        )
        hello = json.loads(await ws.recv())
        if hello.get("type") != "HELLO":
            raise RuntimeError(f"expected HELLO, got {hello}")
        await ws.send(subscribe)
        subscribed = json.loads(await ws.recv())
        if subscribed.get("type") != "SUBSCRIBED":
            raise RuntimeError(f"expected SUBSCRIBED, got {subscribed}")
        return ws
    if variant == "socketio":
        ws = await connect(
            f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket",
            compression=None,
            max_size=None,
        )
        opened = await ws.recv()
        if not str(opened).startswith("0"):
            raise RuntimeError(f"expected an engine.io open packet, got {opened!r}")
        await ws.send("40" + json.dumps({"user": user}))
        joined = await ws.recv()
        if not str(joined).startswith("40"):
            raise RuntimeError(f"expected a socket.io connect packet, got {joined!r}")
        await ws.send("42" + json.dumps(["subscribe", {"topics": ["*"]}]))
        return ws
    ws = await connect(f"ws://127.0.0.1:{port}/ws?user={user}", compression=None, max_size=None)
    if variant == "fastapi":
        await ws.send(subscribe)
    return ws


def event_text(variant: str, frame: str) -> str | None:
    """The Ginie envelope inside a frame, or None for a transport's own control frame."""
    if variant != "socketio":
        return frame
    if frame.startswith("42"):
        return str(json.loads(frame[2:])[1])
    return None


async def receive(variant: str, ws: ClientConnection, tally: Tally, decode: bool) -> None:
    """Count (and, when `decode`, decode and time) every event until the connection closes."""
    socketio = variant == "socketio"
    try:
        async for message in ws:
            frame = message if isinstance(message, str) else message.decode()
            tally.frames += 1
            if socketio and frame == "2":
                await ws.send("3")  # engine.io ping -> pong
                continue
            if not decode:
                if not socketio or frame.startswith("42"):
                    tally.user_events += 1
                continue
            if MARKET_MARK in frame[:MARKET_MARK_WITHIN]:
                # 100 consoles would each decode their market ticks in their own process;
                # here one process holds them all, so ticks are counted, not decoded.
                tally.market_events += 1
                continue
            text = event_text(variant, frame)
            if text is None:
                continue
            event = decode_server(text)
            arrived = time.monotonic_ns()
            if event.type == "LIFECYCLE_EVENT":
                tally.user_events += 1
                tally.samples.append(event.data.id)
                tally.samples.append(arrived - int(event.data.details["pub_ns"]))
    except Exception as exc:  # a closed or failed connection ends its receiver
        if not _closing:
            print(f"receiver stopped: {exc!r}", file=sys.stderr)


_closing = False
MARKET_MARK = '"type":"FUTURES_MARK_PRICE_UPDATE"'
MARKET_MARK_WITHIN = 80


async def open_all(
    args: argparse.Namespace, count: int, users: tuple[str, ...] = USERS
) -> list[ClientConnection]:
    """`count` connections, to `users` in turn."""
    tokens: dict[str, str] = args.token_map
    gate = asyncio.Semaphore(50)

    async def one(i: int) -> ClientConnection:
        user = users[i % len(users)]
        async with gate:
            return await open_client(args.variant, args.port, user, tokens.get(user))

    return list(await asyncio.gather(*(one(i) for i in range(count))))


def shard_users(shard: int, shards: int) -> tuple[str, ...]:
    """The users whose connections client process `shard` of `shards` holds."""
    return USERS[shard::shards]


async def wait_until(condition: Any, limit_s: float) -> bool:
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


async def latency(args: argparse.Namespace, control: Control) -> dict[str, Any]:
    """Hold this process's share of the connections; the runner drives the load (see module)."""
    del control  # the runner asks for the load
    users = shard_users(args.shard, args.shards)
    per_user = args.conns // len(USERS)
    tally = Tally()
    clients = await open_all(args, per_user * len(users), users)
    tasks = [asyncio.create_task(receive(args.variant, ws, tally, decode=True)) for ws in clients]
    print("connected", flush=True)
    cpu0 = time.process_time()
    while True:
        words = (await asyncio.to_thread(sys.stdin.readline)).split()
        if words == ["reset"]:
            tally.reset()
            cpu0 = time.process_time()
            print("ok", flush=True)
        elif len(words) == 3 and words[0] == "collect":
            break
        else:
            raise RuntimeError(f"unexpected runner line {words!r}")
    first, count = int(words[1]), int(words[2])
    mine = set(users)
    window = range(first, first + count)
    expected = per_user * sum(1 for n in window if USERS[n % len(USERS)] in mine)

    def measured() -> list[int]:
        pairs = zip(tally.samples[::2], tally.samples[1::2], strict=True)
        return [latency_ns for n, latency_ns in pairs if n in window]

    complete = await wait_until(lambda: len(measured()) >= expected, 10.0)
    client_cpu = time.process_time() - cpu0
    await close_all(clients, tasks)
    return {
        "connections": len(clients),
        "latencies_ns": measured(),
        "expected": expected,
        "complete": complete,
        "market_deliveries": tally.market_events,
        "client_cpu_s": client_cpu,
    }


async def saturate(args: argparse.Namespace, control: Control) -> dict[str, Any]:
    tally = Tally()
    clients = await open_all(args, args.conns)
    await control.wait_connections(args.conns)
    tasks = [asyncio.create_task(receive(args.variant, ws, tally, decode=False)) for ws in clients]
    per_event = args.conns // len(USERS)
    burst, window = args.burst, args.burst * per_event * 3
    sent = 0

    async def run_for(seconds: float) -> None:
        nonlocal sent
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if sent * per_event - tally.user_events < window:
                await control.ask(f"burst {burst}")
                sent += burst
            else:
                await asyncio.sleep(0.0005)
        if not await wait_until(lambda: tally.user_events >= sent * per_event, 20.0):
            raise TimeoutError("deliveries did not all arrive")

    await run_for(args.warmup)
    delivered0 = tally.user_events
    cpu0, client0, wall0 = float(await control.ask("cpu")), time.process_time(), time.monotonic()
    await run_for(args.seconds)
    wall = time.monotonic() - wall0
    server_cpu = float(await control.ask("cpu")) - cpu0
    client_cpu = time.process_time() - client0
    deliveries = tally.user_events - delivered0
    await close_all(clients, tasks)
    return {
        "deliveries": deliveries,
        "wall_s": wall,
        "deliveries_per_s": deliveries / wall,
        "server_cpu_s": server_cpu,
        "server_cpu_us_per_delivery": server_cpu / deliveries * 1e6,
        "server_cpu_share": server_cpu / wall,
        "client_cpu_share": client_cpu / wall,
    }


async def idle(args: argparse.Namespace, control: Control) -> dict[str, Any]:
    warm = await open_all(args, len(USERS))  # imports and first-use allocations happen here
    await control.wait_connections(len(USERS))
    before = int(await control.ask("rss"))
    clients = await open_all(args, args.conns)
    await control.wait_connections(len(USERS) + args.conns)
    after = int(await control.ask("rss"))
    await close_all(warm + clients, [])
    return {
        "connections": args.conns,
        "rss_before": before,
        "rss_after": after,
        "bytes_per_connection": (after - before) / args.conns,
    }


async def close_all(clients: list[ClientConnection], tasks: list[asyncio.Task[None]]) -> None:
    global _closing
    _closing = True
    await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    control = await Control.open(args.control_port)
    modes = {"latency": latency, "saturate": saturate, "idle": idle}
    return await modes[args.mode](args, control)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.clients")
    parser.add_argument("mode", choices=["latency", "saturate", "idle"])
    parser.add_argument(
        "variant", choices=["plain", "fastapi", "socketio", "ginie", "ginie-uvloop"]
    )
    parser.add_argument("port", type=int)
    parser.add_argument("control_port", type=int)
    parser.add_argument("--conns", type=int, default=100)
    parser.add_argument("--tokens", help="JSON file of user -> bearer token (ginie)")
    parser.add_argument("--user-rate", type=float, default=1000.0)
    parser.add_argument("--market-rate", type=float, default=40.0)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--shard", type=int, default=0, help="latency: this process's share")
    parser.add_argument("--shards", type=int, default=1, help="latency: client processes")
    args = parser.parse_args(argv)
    args.token_map = json.loads(Path(args.tokens).read_text()) if args.tokens else {}
    return args


if __name__ == "__main__":
    raise_fd_limit()
    result = uvloop.run(main(parse(sys.argv[1:])))
    print(json.dumps(result), flush=True)
