"""One user's command flood slows no one else (issue 16, acceptance 1).

A real paper server on 127.0.0.1 with the contract's limits. Bob's events come at a steady
rate, each published through the hub on a fixed schedule; his latency runs from the scheduled
time to the moment his socket has decoded the event, so a stalled event loop shows as latency
(the emitter waits too), and his rate is his events over the span from the first scheduled to
the last received. A control run measures both without a flood; then the same run again while
mallory, on one connection, writes 5,000 valid `autopilot.set_rules` commands in one go (faster
than any client could send them one by one). Bob's rate and p99 must stay within 1.5x of the
control; each of mallory's commands is answered once, those past the budget `rate_limited` and
not run (her AUTOPILOT_RULES_UPDATEs are exactly those of her accepted commands), and then her
connection is closed with 1008.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from websockets.exceptions import ConnectionClosed

from ginie_protocol import ResumePoint
from ginie_protocol.envelope import Ack, decode_server
from ginie_protocol.events import AutopilotRules, LifecycleEvent
from ginie_server.config import Limits
from tests.harness import ProtocolClient, RunningServer, connect_client, running_server, wait_for

LIMITS = Limits()
"""The contract's budget: 20 commands a second, a burst of 50, 100 refusals then 1008."""

PROBE_HZ = 250
PROBES_PER_RUN = 2_500
"""Ten seconds of bob's events per run (the issue measured eight). The commands the budget lets
through (its burst of 50, some 25 ms of the server's time in all) delay the few of bob's events
that arrive meanwhile, about ten; with 2,500 events a run they stay well inside the 1 % that a
p99 leaves out, so the p99 measures the flood's lasting effect, not the burst the budget
allows. (With 1,250 the ten sat at the p99's edge and a clean CI run measured 1.7x.)"""

FLOOD = 5_000
"""Commands mallory writes at once."""

MARGIN = 1.5
"""How much worse than the control bob's rate and p99 may be while mallory floods."""


def probe(n: int) -> LifecycleEvent:
    return LifecycleEvent(
        id=n, chain_id="probe", symbol="BTCUSDT", step="note", message="probe", time=n
    )


def rules_value(n: int) -> float:
    """The `min_confidence` of mallory's n-th command: each command's change is its own."""
    return 0.5 + n / 1_000_000


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
class Flooder:
    """Mallory's connection: her ACKs in arrival order and how it was closed."""

    client: ProtocolClient
    acks: list[Ack] = field(default_factory=list)
    close_code: int | None = None

    def prepare(self, count: int) -> bytes:
        """The masked frames of `count` valid commands, ready to be written at once."""
        protocol = self.client.ws.protocol
        for n in range(count):
            command = {
                "op": "command",
                "id": str(n),
                "name": "autopilot.set_rules",
                "args": {"min_confidence": rules_value(n)},
            }
            protocol.send_text(json.dumps(command).encode())
        return b"".join(protocol.data_to_send())

    async def read(self) -> None:
        try:
            async for text in self.client.ws:
                message = decode_server(text)
                if isinstance(message, Ack):
                    self.acks.append(message)
        except ConnectionClosed as closed:
            self.close_code = None if closed.rcvd is None else closed.rcvd.code


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
        async with connect_client(rs.ws_url, rs.create_token("bob")) as bob:
            await bob.subscribe(["*"])
            reader = asyncio.create_task(log.read(bob))

            control = range(1, PROBES_PER_RUN + 1)
            await log.emit(rs, control)
            await wait_for(lambda: len(log.received) == len(control), timeout=20)

            async with connect_client(rs.ws_url, mallory_token, ping_interval=None) as mallory:
                seq_before = mallory.hello.seq
                flooder = Flooder(mallory)
                frames = flooder.prepare(FLOOD)
                acks = asyncio.create_task(flooder.read())
                flooded = range(control.stop, control.stop + PROBES_PER_RUN)
                emitter = asyncio.create_task(log.emit(rs, flooded))
                await wait_for(lambda: len(log.received) > len(control) + PROBE_HZ // 2)
                mallory.ws.transport.write(frames)
                await asyncio.wait_for(acks, 10)
                await emitter
                await wait_for(lambda: len(log.received) == 2 * PROBES_PER_RUN, timeout=20)

        await reader
        control_rate, control_p99 = log.figures(control)
        flood_rate, flood_p99 = log.figures(flooded)
        figures = (
            f"bob: control {control_rate:.1f}/s p99 {control_p99:.2f} ms; "
            f"flood {flood_rate:.1f}/s p99 {flood_p99:.2f} ms"
        )
        print(figures)
        assert flood_rate >= control_rate / MARGIN, figures
        assert flood_p99 <= control_p99 * MARGIN, figures

        assert flooder.close_code == 1008
        ids = [ack.id for ack in flooder.acks]
        assert ids == [str(n) for n in range(len(ids))], "each command answered once, in order"
        accepted = [int(a.id) for a in flooder.acks if a.ok]
        refused = [a for a in flooder.acks if not a.ok]
        assert all(a.error is not None and a.error.code == "rate_limited" for a in refused)
        assert len(refused) == LIMITS.command_flood_limit + 1
        assert LIMITS.command_burst <= len(accepted) < len(ids)
        for ack in refused:
            assert ack.error is not None and ack.error.retry_after_ms is not None
            assert 0 < ack.error.retry_after_ms <= 1000 / LIMITS.command_rate
        executed = await executed_rules(rs, mallory_token, seq_before)
        assert executed == [rules_value(n) for n in accepted]
        metrics = rs.hub.metrics("mallory")
        assert (metrics.commands, metrics.commands_refused) == (len(accepted), len(refused))
