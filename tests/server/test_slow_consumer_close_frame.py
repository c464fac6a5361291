"""A slow consumer whose close frame gets through: with a bound below the socket's high-water
mark, the server's unsent data is all in the socket buffer when the bound is passed, so the
server sends close 1013 behind it. The client, reading again, gets every frame up to there in
order, then the 1013, and resumes from its last `seq` without loss or repeat."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ginie_protocol import ResumePoint
from ginie_server.config import Limits
from ginie_server.hub import CLOSE_SLOW_CONSUMER
from ginie_server.ws import WRITE_HIGH_WATER
from tests.faults.proxy import Direction, FaultProxy
from tests.harness import (
    ScriptedSource,
    connect_client,
    note_event,
    running_server,
    subscribed_reader,
    wait_for,
)

BOUND = 32 * 1024
assert BOUND < WRITE_HIGH_WATER


async def test_a_reader_that_pauses_past_a_small_bound_reads_on_to_close_1013(
    tmp_path: Path,
) -> None:
    source = ScriptedSource()
    async with (
        running_server(tmp_path, sources=[source], limits=Limits(max_buffer_bytes=BOUND)) as rs,
        FaultProxy("127.0.0.1", rs.server.port, target_rcvbuf=4096) as proxy,
    ):
        healthy = await subscribed_reader(rs.ws_url, rs.token)
        paused = await subscribed_reader(f"ws://127.0.0.1:{proxy.port}/ws", rs.token)
        readers = [asyncio.create_task(r.run()) for r in (healthy, paused)]
        proxy.connections[-1].stall(Direction.DOWN)

        metrics = rs.hub.metrics("demo")
        published = 0
        while metrics.slow_consumer_closes == 0:
            assert published < 20_000, "the paused reader was never closed"
            for _ in range(20):
                published += 1
                source.emit("demo", note_event(published))
            await wait_for(lambda n=published: len(healthy.seqs) == n)
        assert rs.hub.connection_count("demo") == 1

        proxy.connections[-1].resume(Direction.DOWN)
        await asyncio.wait_for(readers[1], 10)
        assert paused.close_code == CLOSE_SLOW_CONSUMER
        assert paused.seqs == list(range(1, len(paused.seqs) + 1))
        assert 0 < len(paused.seqs) < published

        async with connect_client(rs.ws_url, rs.token) as again:
            last = paused.seqs[-1]
            answer = await again.subscribe(resume=ResumePoint(epoch=rs.hub.epoch, seq=last))
            assert answer.resumed and answer.replayed == published - last
            replayed = await again.user_events(published - last)
        assert paused.seqs + [e.seq for e in replayed] == list(range(1, published + 1))
        assert healthy.seqs == list(range(1, published + 1))

        await healthy.ws.close()
        await readers[0]
