"""Soak: a paper server trading for ten users, 1,000 WebSocket connections (a hundred per user)
receiving its steady user events for five minutes. No connection closes, every connection gets
every event of its user in order, nothing goes wrong in the server's log, and the server's
memory stays flat once warmed up.

Outside the default run (marked `soak`). Run it with

    .venv/bin/python -m pytest -m soak tests/faults/test_soak.py -s

`GINIE_SOAK_SECONDS` (default 300) and `GINIE_SOAK_CONNECTIONS` (default 1000) shorten or
lengthen it. It prints the server's memory at each sample.

"Flat": after a warm-up of a fifth of the run, the server's resident memory grows by no more
than what its replay ring legitimately takes on (the frames of the events published meanwhile,
plus `RING_ENTRY_OVERHEAD` bytes each; the ring is bounded per user, so this stops once it is
full) plus `SLACK_MIB`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from ginie_protocol import USER_TYPES, decode_server
from tests.harness import ServerProcess, wait_for

SECONDS = float(os.environ.get("GINIE_SOAK_SECONDS", "300"))
CONNECTIONS = int(os.environ.get("GINIE_SOAK_CONNECTIONS", "1000"))
USERS = [f"soak{n}" for n in range(10)]
SPEED = "20"
"""Twenty market minutes a minute: a few user events a second per user, all day long."""
SAMPLE_EVERY_S = 5.0
RING_ENTRY_OVERHEAD = 200
SLACK_MIB = 8.0
CONNECT_BATCH = 50


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def create_token(db: Path, user: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ginie_server", "token", "create", user, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.strip()


@dataclass
class Watcher:
    """One connection: counts its user's events and notes anything wrong."""

    user: str
    ws: ClientConnection
    last_seq: int | None = None
    events: int = 0
    event_bytes: int = 0
    problems: list[str] = field(default_factory=list)

    async def run(self) -> None:
        try:
            async for text in self.ws:
                message = decode_server(text)
                if message.type == "ERROR":
                    self.problems.append(f"ERROR {message.code}: {message.message}")
                seq = getattr(message, "seq", None)
                if seq is None:
                    continue
                if self.last_seq is not None and seq != self.last_seq + 1:
                    self.problems.append(f"seq {seq} after {self.last_seq}")
                self.last_seq = seq
                self.events += 1
                self.event_bytes += len(text)
        except ConnectionClosed as closed:
            self.problems.append(f"closed: {closed}")
        else:
            self.problems.append("closed by the server")


async def open_watcher(ws_url: str, user: str, token: str) -> Watcher:
    ws = await connect(
        ws_url, additional_headers={"Authorization": f"Bearer {token}"}, ping_interval=None
    )
    assert decode_server(await asyncio.wait_for(ws.recv(), 30)).type == "HELLO"
    await ws.send(json.dumps({"op": "subscribe", "topics": sorted(USER_TYPES)}))
    assert decode_server(await asyncio.wait_for(ws.recv(), 30)).type == "SUBSCRIBED"
    return Watcher(user, ws)


@pytest.mark.soak
@pytest.mark.timeout(SECONDS + 300)
async def test_a_thousand_connections_for_five_minutes(tmp_path: Path) -> None:
    db = tmp_path / "ginie.db"
    server = ServerProcess(db, "--exchange", "paper", "--speed", SPEED, "--seed", "11")
    server.start()
    assert server.process is not None
    pid = server.process.pid
    watchers: list[Watcher] = []
    tasks: list[asyncio.Task[None]] = []
    samples: list[tuple[float, int, int, int]] = []
    """(seconds, server RSS, events published so far, their frame bytes), all users."""
    try:
        tokens = {user: create_token(db, user) for user in USERS}
        for start in range(0, CONNECTIONS, CONNECT_BATCH):
            batch = [
                USERS[n % len(USERS)] for n in range(start, min(start + CONNECT_BATCH, CONNECTIONS))
            ]
            opened = await asyncio.gather(
                *(open_watcher(server.ws_url, user, tokens[user]) for user in batch)
            )
            watchers.extend(opened)
        tasks = [asyncio.create_task(w.run()) for w in watchers]
        await wait_for(lambda: all(w.events > 0 for w in watchers), timeout=60)

        first_of_user = list({w.user: w for w in reversed(watchers)}.values())
        began = time.monotonic()
        while (elapsed := time.monotonic() - began) < SECONDS:
            published = sum(w.events for w in first_of_user)
            published_bytes = sum(w.event_bytes for w in first_of_user)
            samples.append((elapsed, rss_bytes(pid), published, published_bytes))
            print(
                f"soak {elapsed:6.1f} s  server RSS {samples[-1][1] / 2**20:7.1f} MiB", flush=True
            )
            assert all(not w.problems for w in watchers), [
                w.problems for w in watchers if w.problems
            ][:3]
            await asyncio.sleep(SAMPLE_EVERY_S)
        counts_before_end = [w.events for w in watchers]
    finally:
        for w in watchers:
            with contextlib.suppress(Exception):
                await w.ws.close()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        server.stop()

    assert all(count > 10 for count in counts_before_end)
    stderr = server.stderr()
    assert " ERROR " not in stderr and "Traceback" not in stderr

    warm = [sample for sample in samples if sample[0] >= SECONDS / 5]
    (_, rss_start, events_start, bytes_start), last = warm[0], warm[-1]
    growth = max(rss for _, rss, _, _ in warm) - rss_start
    ring = (last[3] - bytes_start) + RING_ENTRY_OVERHEAD * (last[2] - events_start)
    print(
        f"soak: {len(watchers)} connections, {last[2]} events; after warm-up RSS grew "
        f"{growth / 2**20:.1f} MiB, the replay ring took on up to {ring / 2**20:.1f} MiB"
    )
    assert growth <= ring + SLACK_MIB * 2**20
