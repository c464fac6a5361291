"""A reader that stops reading, on a real socket behind the fault proxy: the server closes it
once its unsent data passes the bound, nobody else waits meanwhile, and the reader resumes
from its last `seq` without losing or repeating an event."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ginie_protocol import ResumePoint
from ginie_server.config import Limits
from tests.faults.proxy import Direction, FaultProxy
from tests.harness import (
    ScriptedSource,
    connect_client,
    note_event,
    running_server,
    subscribed_reader,
    wait_for,
)

LIMITS = Limits(max_buffer_bytes=256 * 1024)
SLACK = 64 * 1024
"""One socket write past the check: how far unsent data may pass the bound."""


async def test_a_stalled_reader_is_closed_resumes_and_no_one_waits(tmp_path: Path) -> None:
    scripted = ScriptedSource()
    async with (
        running_server(tmp_path, sources=[scripted], limits=LIMITS) as rs,
        FaultProxy("127.0.0.1", rs.server.port, target_rcvbuf=4096) as proxy,
    ):
        healthy = await subscribed_reader(rs.ws_url, rs.token)
        slow = await subscribed_reader(f"ws://127.0.0.1:{proxy.port}/ws", rs.token)
        tasks = [asyncio.create_task(r.run()) for r in (healthy, slow)]
        proxy.connections[-1].stall(Direction.DOWN)

        metrics = rs.hub.metrics("demo")
        published = 0
        while metrics.slow_consumer_closes == 0:
            assert published < 20_000, "the stalled reader was never closed"
            for _ in range(50):
                published += 1
                scripted.emit("demo", note_event(published, 1_000))
            await wait_for(lambda n=published: len(healthy.seqs) == n)
            assert rs.hub.buffered_bytes() <= LIMITS.max_buffer_bytes + SLACK
        assert healthy.seqs == list(range(1, published + 1))

        proxy.connections[-1].resume()
        await asyncio.wait_for(tasks[1], 10)
        assert slow.close_code in (None, 1013)
        assert slow.seqs == list(range(1, len(slow.seqs) + 1))
        assert len(slow.seqs) < published

        for n in range(published + 1, published + 11):
            scripted.emit("demo", note_event(n, 1_000))
        published += 10
        async with connect_client(rs.ws_url, rs.token) as again:
            last = slow.seqs[-1] if slow.seqs else 0
            answer = await again.subscribe(resume=ResumePoint(epoch=rs.hub.epoch, seq=last))
            assert answer.resumed and answer.replayed == published - last
            replayed = await again.user_events(published - last)
        assert slow.seqs + [e.seq for e in replayed] == list(range(1, published + 1))
        await wait_for(lambda: len(healthy.seqs) == published)
        assert metrics.slow_consumer_closes == 1

        await healthy.ws.close()
        await tasks[0]
