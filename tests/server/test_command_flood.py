"""One user's command flood slows no one else (issue 16, acceptance 1).

A real paper server on 127.0.0.1 with the contract's limits. Bob's events come at a steady
rate, each published through the hub on a fixed schedule; his latency runs from the scheduled
time to the moment his socket has decoded the event, so a stalled event loop shows as latency
(the emitter waits too), and his rate is his events over the span from the first scheduled to
the last received. The run without the flood is measured twice, before and after the run with
it, so that a machine that is busier during the test than before it is not read as the flood's
doing: the flood run is held to the slower of the two. During the flood run mallory, from a
process of her own (`tests/server/flooder.py`), writes 5,000 valid `autopilot.set_rules`
commands on one connection in one go (faster than any client could send them one by one).
Bob's rate and p99 must stay within 1.5x of the control; each of mallory's commands is
answered once, those past the budget `rate_limited` and not run (her AUTOPILOT_RULES_UPDATEs
are exactly those of her accepted commands), and then her connection is closed with 1008.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ginie_protocol import ResumePoint
from ginie_protocol.envelope import Ack, decode_server
from ginie_protocol.events import AutopilotRules, LifecycleEvent
from ginie_server.config import Limits
from tests.harness import ProtocolClient, RunningServer, connect_client, running_server, wait_for
from tests.server.flooder import rules_value

LIMITS = Limits()
"""The contract's budget: 20 commands a second, a burst of 50, 100 refusals then 1008."""

PROBE_HZ = 250
PROBES_PER_RUN = 2_500
"""Ten seconds of bob's events in each run without the flood (the issue measured eight)."""

FLOODED_PROBES = 5_000
"""Twenty seconds of bob's events in the run with the flood. The commands the budget lets
through (its burst of 50, with the refusals some 40 ms of the server's time in all) delay the
events that arrive meanwhile: about ten on an idle machine, twenty and more on a busy one, where
those 40 ms stretch. With 5,000 events they stay well inside the 1 % that a p99 leaves out, so
the p99 measures the flood's lasting effect, not the burst the budget allows. (With 1,250 events
the ten sat at the p99's edge and an idle CI run measured 1.7x; with 2,500, a busy one 2.2x.)"""

FLOOD = 5_000
"""Commands mallory writes at once."""

MARGIN = 1.5
"""How much worse than the control bob's rate and p99 may be while mallory floods."""


def probe(n: int) -> LifecycleEvent:
    return LifecycleEvent(
        id=n, chain_id="probe", symbol="BTCUSDT", step="note", message="probe", time=n
    )


@dataclass
class ProbeLog:
    """When each of bob's probe events was due and when his socket had decoded it."""

    due: dict[int, float] = field(default_factory=dict)
    received: dict[int, float] = field(default_factory=dict)

    async def read(self, client: ProtocolClient) -> None:
        async for text in client.ws:
            data = getattr(decode_server(text), "data", None)
            if isinstance(data, LifecycleEvent) and data.chain_id == "probe":
                self.received[data.id] = time.perf_counter()

    async def emit(self, rs: RunningServer, ids: range) -> None:
        """Publish bob's probes `ids` on a fixed schedule of `PROBE_HZ` a second."""
        start = time.perf_counter()
        for k, n in enumerate(ids):
            due = start + k / PROBE_HZ
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            self.due[n] = due
            rs.hub.publish("bob", probe(n))

    def figures(self, ids: range) -> tuple[float, float]:
        """Bob's event rate (a second) and p99 latency (ms) over the probes `ids`."""
        latencies = [(self.received[n] - self.due[n]) * 1000 for n in ids]
        span = max(self.received[n] for n in ids) - min(self.due[n] for n in ids)
        p99 = statistics.quantiles(latencies, n=100)[98]
        return len(ids) / span, p99


@dataclass
class Flood:
    """What mallory's flooder process reported: her ACKs in order and how she was closed."""

    acks: list[Ack] = field(default_factory=list)
    close_code: int | None = None


class FlooderProcess:
    """`tests/server/flooder.py` as a child process, connected and ready to flood."""

    def __init__(self, process: asyncio.subprocess.Process, hello_seq: int) -> None:
        self._process = process
        self.hello_seq = hello_seq

    @classmethod
    async def connect(cls, ws_url: str, token: str, count: int) -> FlooderProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.server.flooder",
            ws_url,
            str(count),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "GINIE_TOKEN": token},
        )
        assert process.stdout is not None
        async with asyncio.timeout(15):
            hello = json.loads(await process.stdout.readline())
        return cls(process, hello["seq"])

    async def flood(self) -> Flood:
        """Tell it to write its commands; what it got once the server has closed it."""
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None and stdout is not None
        stdin.write(b"go\n")
        await stdin.drain()
        async with asyncio.timeout(30):
            report = json.loads(await stdout.readline())
            assert await self._process.wait() == 0
        acks = [decode_server(json.dumps(ack)) for ack in report["acks"]]
        return Flood([ack for ack in acks if isinstance(ack, Ack)], report["close_code"])

    def kill(self) -> None:
        if self._process.returncode is None:
            self._process.kill()


async def executed_rules(rs: RunningServer, token: str, after: int) -> list[float]:
    """The `min_confidence` of every AUTOPILOT_RULES_UPDATE mallory got after seq `after`."""
    async with connect_client(rs.ws_url, token) as client:
        resume = ResumePoint(epoch=client.hello.epoch, seq=after)
        subscribed = await client.subscribe(["*"], resume=resume)
        assert subscribed.resumed
        events = await client.user_events(subscribed.replayed)
    return [e.data.min_confidence for e in events if isinstance(e.data, AutopilotRules)]


async def test_a_command_flood_is_refused_closed_and_slows_no_one_else(tmp_path: Path) -> None:
    async with running_server(tmp_path, limits=LIMITS) as rs:
        mallory_token = rs.create_token("mallory")
        log = ProbeLog()
        before = range(1, PROBES_PER_RUN + 1)
        flooded = range(before.stop, before.stop + FLOODED_PROBES)
        after = range(flooded.stop, flooded.stop + PROBES_PER_RUN)
        async with connect_client(rs.ws_url, rs.create_token("bob")) as bob:
            await bob.subscribe(["*"])
            reader = asyncio.create_task(log.read(bob))

            await log.emit(rs, before)
            await wait_for(lambda: len(log.received) == before.stop - 1, timeout=20)

            mallory = await FlooderProcess.connect(rs.ws_url, mallory_token, FLOOD)
            try:
                emitter = asyncio.create_task(log.emit(rs, flooded))
                await wait_for(lambda: len(log.received) > before.stop + PROBE_HZ // 2)
                flood = await mallory.flood()
                await emitter
            finally:
                mallory.kill()
            await wait_for(lambda: len(log.received) == flooded.stop - 1, timeout=20)

            await log.emit(rs, after)
            await wait_for(lambda: len(log.received) == after.stop - 1, timeout=20)

        await reader
        runs = {"before": before, "flood": flooded, "after": after}
        figures = {name: log.figures(ids) for name, ids in runs.items()}
        report = "bob: " + "; ".join(
            f"{name} {rate:.1f}/s p99 {p99:.2f} ms" for name, (rate, p99) in figures.items()
        )
        print(report)
        flood_rate, flood_p99 = figures["flood"]
        control_rate = min(figures["before"][0], figures["after"][0])
        control_p99 = max(figures["before"][1], figures["after"][1])
        assert flood_rate >= control_rate / MARGIN, report
        assert flood_p99 <= control_p99 * MARGIN, report

        assert flood.close_code == 1008
        ids = [ack.id for ack in flood.acks]
        assert ids == [str(n) for n in range(len(ids))], "each command answered once, in order"
        accepted = [int(a.id) for a in flood.acks if a.ok]
        refused = [a for a in flood.acks if not a.ok]
        assert all(a.error is not None and a.error.code == "rate_limited" for a in refused)
        assert len(refused) == LIMITS.command_flood_limit + 1
        assert LIMITS.command_burst <= len(accepted) < len(ids)
        for ack in refused:
            assert ack.error is not None and ack.error.retry_after_ms is not None
            assert 0 < ack.error.retry_after_ms <= 1000 / LIMITS.command_rate
        executed = await executed_rules(rs, mallory_token, mallory.hello_seq)
        assert executed == [rules_value(n) for n in accepted]
        metrics = rs.hub.metrics("mallory")
        assert (metrics.commands, metrics.commands_refused) == (len(accepted), len(refused))
