"""The console's feed against a hostile server: malformed frames and malformed snapshot items.

A small server on 127.0.0.1 speaks just enough of the protocol (HELLO, SUBSCRIBED, one REST
snapshot) to bring the real `Feed` LIVE, then pushes fuzzed frames, each followed by a valid
event. The feed must survive every one, say so in its log and to its listener, keep its link,
and apply the valid event after it: a bad frame costs the console nothing but that frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from ginie_protocol import (
    SPECS,
    Hello,
    ProtocolError,
    Subscribed,
    Topic,
    decode_server,
    encode,
    make_event,
)
from ginie_protocol.events import Balance
from ginie_tui.connection import ConnState
from ginie_tui.feed import FeedSettings
from tests.faults.consoles import HeadlessConsole
from tests.fuzz.strategies import FUZZ, mangled, server_messages
from tests.harness import wait_for

EPOCH = "hostile-epoch"


def malformed(frame: str | bytes) -> bool:
    try:
        decode_server(frame)
    except ProtocolError:
        return True
    return False


@dataclass
class HostileServer:
    """Serves one snapshot, then pushes whatever frames the test queues."""

    snapshot: dict[str, Any]
    frames: asyncio.Queue[str | bytes | None] = field(default_factory=asyncio.Queue)
    """Frames to push; None ends the session."""
    server: Server | None = None
    seq: int = 0

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def answer(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path.startswith("/api/snapshot"):
            body = json.dumps(self.snapshot).encode()
            headers = Headers([("Content-Type", "application/json"), ("Connection", "close")])
            return Response(200, http.HTTPStatus.OK.phrase, headers, body)
        return None

    async def session(self, ws: ServerConnection) -> None:
        await ws.send(encode(Hello(user="demo", epoch=EPOCH, seq=self.seq, server_time=1)))
        await ws.recv()
        await ws.send(encode(Subscribed(topics=["*"], resumed=True)))
        while (frame := await self.frames.get()) is not None:
            await ws.send(frame)

    def next_event(self) -> str:
        self.seq += 1
        value = float(self.seq)
        data = Balance(asset="USDT", wallet_balance=value, available_balance=value, updated_at=1)
        return encode(make_event(data, ts=1, seq=self.seq, epoch=EPOCH))


@pytest.fixture
async def hostile(tmp_path: Path) -> AsyncIterator[tuple[HostileServer, HeadlessConsole]]:
    server = HostileServer(snapshot={"epoch": EPOCH, "seq": 0, "data": {}})
    server.server = await serve(server.session, "127.0.0.1", 0, process_request=server.answer)
    console = HeadlessConsole(
        FeedSettings(url=server.url, token="t", grace_s=60.0, backoff_base_s=0.05, seed=1)
    )
    console.start()
    await wait_for(lambda: console.live, timeout=10)
    try:
        yield server, console
    finally:
        await console.stop()
        await server.frames.put(None)
        server.server.close()
        with contextlib.suppress(Exception):
            await server.server.wait_closed()


hostile_frames = (
    mangled(server_messages())
    | server_messages().map(json.dumps)
    | st.text(max_size=200)
    | st.binary(max_size=200)
)


@FUZZ
@given(frame=hostile_frames)
async def test_a_malformed_server_frame_costs_the_console_that_frame_only(
    hostile: tuple[HostileServer, HeadlessConsole],
    frame: str | bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assume(malformed(frame))
    server, console = hostile
    caplog.clear()
    problems = len(console.recorder.problems)
    await server.frames.put(frame)
    await server.frames.put(server.next_event())
    await wait_for(lambda: console.store.seq == server.seq, timeout=10)
    assert console.recorder.problems[problems:] != []
    assert console.recorder.problems[-1].startswith("malformed server message")
    assert any("malformed server message" in r.getMessage() for r in caplog.records)
    assert not any(r.exc_info for r in caplog.records if r.name.startswith("ginie_tui"))
    assert console.recorder.states[-1] is ConnState.LIVE
    assert console.audit() == []
    balance = console.store.get(Topic.BALANCE_UPDATE, "USDT")
    assert balance is not None and balance.wallet_balance == float(server.seq)


@FUZZ
@given(
    data=st.dictionaries(
        st.sampled_from(tuple(SPECS)) | st.text(max_size=20),
        st.lists(st.dictionaries(st.text(max_size=10), st.integers() | st.text(max_size=10)))
        | st.none()
        | st.integers(),
        max_size=5,
    )
)
def test_a_malformed_snapshot_leaves_good_topics_and_logs_the_rest(
    data: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()
    caplog.set_level(logging.WARNING)
    console = HeadlessConsole(FeedSettings(url="http://127.0.0.1:9", token="t"))
    store = console.store
    good = {"asset": "USDT", "wallet_balance": 1.0, "available_balance": 1.0, "updated_at": 1}
    store.apply_snapshot(EPOCH, 1, {"BALANCE_UPDATE": [good]}, 1)
    payload = {k: v for k, v in data.items() if k != "BALANCE_UPDATE"}
    store.apply_snapshot(EPOCH, 2, payload, 2)
    held = store.get(Topic.BALANCE_UPDATE, "USDT")
    assert held is not None and held.wallet_balance == 1.0
    assert store.seq == 2
    left_out = [r for r in caplog.records if r.getMessage().startswith("store left out")]
    assert len(left_out) == store.rejected
