"""Hostile WebSocket frames against a real server on 127.0.0.1.

One user (mallory) sends fuzzed frames; after each one, a probe command shows the server has
dealt with it. Every answer must be a protocol message without traceback text, each bad frame
gets exactly one ERROR `bad_request` (SPEC section 3) and each command exactly one ACK. Meanwhile
another user (alice) and a second connection of mallory keep receiving every event, in order,
and the hub's unsent buffers stay bounded.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from ginie_protocol import (
    MAX_FRAME_BYTES,
    Command,
    ProtocolError,
    Subscribe,
    decode_client,
    decode_server,
)
from ginie_protocol.events import Balance
from ginie_server.config import Limits
from tests.fuzz.strategies import FUZZ, client_messages, mangled, well_formed_client_messages
from tests.harness import RunningServer, ScriptedSource, running_server, wait_for

PROBE = "\u2603probe-"
"""Prefix of the probe commands' ids; fuzzed ids are never compared with it."""

ws_frames: st.SearchStrategy[str | bytes] = (
    well_formed_client_messages.map(json.dumps)
    | well_formed_client_messages.map(lambda m: json.dumps(m).encode())
    | client_messages.map(json.dumps)
    | mangled(client_messages)
    | st.text(max_size=200)
    | st.binary(max_size=200)
)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Listener:
    """A connection subscribed to everything that records the user events it receives."""

    ws: ClientConnection
    seqs: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        async for text in self.ws:
            message = decode_server(text)
            if getattr(message, "seq", None) is not None:
                self.seqs.append(message.seq)
                if isinstance(message.data, Balance):
                    self.values.append(message.data.wallet_balance)

    def in_order_without_gaps(self) -> bool:
        return self.seqs == list(range(1, len(self.seqs) + 1))


@dataclass
class Arena:
    """The server, the fuzzing connection and the bystanders."""

    rs: RunningServer
    scripted: ScriptedSource
    mallory_token: str
    alice: Listener
    mallory_peer: Listener
    fuzz_ws: ClientConnection | None = None
    probes: int = 0
    reconnects: int = 0
    emitted: int = 0

    async def fuzz_connection(self) -> ClientConnection:
        if self.fuzz_ws is None:
            ws = await connect(self.rs.ws_url, additional_headers=auth(self.mallory_token))
            assert decode_server(await asyncio.wait_for(ws.recv(), 5)).type == "HELLO"
            self.fuzz_ws = ws
        return self.fuzz_ws

    async def exchange(self, frame: str | bytes) -> list[Any] | int:
        """Send `frame` then a probe; the messages answered before the probe's ACK, or the
        close code if the server closed the connection instead."""
        ws = await self.fuzz_connection()
        self.probes += 1
        probe_id = f"{PROBE}{self.probes}"
        probe = {"op": "command", "id": probe_id, "name": "ginie.stop", "args": {}}
        answers: list[Any] = []
        try:
            await ws.send(frame)
            await ws.send(json.dumps(probe))
            async with asyncio.timeout(5):
                while True:
                    text = await ws.recv()
                    assert isinstance(text, str)
                    assert "Traceback" not in text
                    message = decode_server(text)
                    if message.type == "ACK" and message.id == probe_id:
                        return answers
                    answers.append(message)
        except ConnectionClosed as closed:
            self.fuzz_ws = None
            self.reconnects += 1
            assert closed.rcvd is not None, "the server dropped the connection without a close"
            return closed.rcvd.code

    def emit_to_alice(self) -> None:
        self.emitted += 1
        value = float(self.emitted)
        self.scripted.emit(
            "alice",
            Balance(asset="USDT", wallet_balance=value, available_balance=value, updated_at=1),
        )


async def listen(rs: RunningServer, token: str) -> Listener:
    ws = await connect(rs.ws_url, additional_headers=auth(token))
    assert decode_server(await asyncio.wait_for(ws.recv(), 5)).type == "HELLO"
    await ws.send(json.dumps({"op": "subscribe", "topics": ["*"]}))
    assert decode_server(await asyncio.wait_for(ws.recv(), 5)).type == "SUBSCRIBED"
    listener = Listener(ws)
    listener.task = asyncio.create_task(listener.run())
    return listener


FUZZ_LIMITS = Limits(error_budget=1_000_000, command_burst=1_000_000)
"""The error budget and the command budget are tested on their own (below and in
tests/server/test_command_budget.py); here they must not end the fuzzing early."""


@pytest.fixture
async def arena(tmp_path: Path) -> AsyncIterator[Arena]:
    scripted = ScriptedSource()
    async with running_server(tmp_path, sources=[scripted], limits=FUZZ_LIMITS) as rs:
        mallory_token = rs.create_token("mallory")
        alice = await listen(rs, rs.create_token("alice"))
        mallory_peer = await listen(rs, mallory_token)
        arena = Arena(rs, scripted, mallory_token, alice, mallory_peer)
        try:
            yield arena
        finally:
            for ws in (arena.fuzz_ws, alice.ws, mallory_peer.ws):
                if ws is not None:
                    await ws.close()
            for listener in (alice, mallory_peer):
                assert listener.task is not None
                await listener.task


def expected_answer(frame: str | bytes) -> tuple[str, str | None]:
    """What the server must answer to `frame`, judged by the protocol's own decoder."""
    try:
        request = decode_client(frame)
    except ProtocolError:
        return "error", None
    if isinstance(request, Subscribe):
        return "subscribe", None
    assert isinstance(request, Command)
    return "ack", request.id


def server_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("ginie_server") and (r.levelno >= logging.ERROR or r.exc_info)
    ]


@FUZZ
@given(frame=ws_frames)
async def test_any_frame_gets_its_answer_and_harms_no_one(
    arena: Arena, frame: str | bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()
    kind, command_id = expected_answer(frame)
    event(kind)
    answers = await arena.exchange(frame)
    assert not isinstance(answers, int), f"closed with {answers} after {frame!r}"

    errors = [m for m in answers if m.type == "ERROR"]
    acks = [m for m in answers if m.type == "ACK"]
    subscribed = [m for m in answers if m.type == "SUBSCRIBED"]
    assert all(e.code == "bad_request" and e.message for e in errors)
    if kind == "error":
        assert (len(errors), len(acks), len(subscribed)) == (1, 0, 0)
    elif kind == "subscribe":
        assert len(errors) + len(subscribed) == 1 and not acks
    else:
        assert not errors and not subscribed
        assert [a.id for a in acks] == [command_id]
        assert acks[0].ok or acks[0].error.code in ("bad_request", "unavailable")

    arena.emit_to_alice()
    rs = arena.rs
    alice, peer = arena.alice, arena.mallory_peer
    await wait_for(lambda: len(alice.seqs) == arena.emitted)
    assert alice.in_order_without_gaps()
    assert alice.values == [float(n) for n in range(1, arena.emitted + 1)]
    await wait_for(lambda: len(peer.seqs) == rs.hub.current_seq("mallory"))
    assert peer.in_order_without_gaps()
    assert rs.hub.buffered_bytes() <= FUZZ_LIMITS.max_buffer_bytes
    assert server_errors(caplog) == []


async def test_a_frame_over_64_kib_closes_1009_and_harms_no_one(arena: Arena) -> None:
    too_big = json.dumps({"op": "subscribe", "topics": ["*"], "pad": "x" * MAX_FRAME_BYTES})
    assert await arena.exchange(too_big) == 1009
    just_fits = json.dumps({"op": "subscribe", "topics": ["*"]}).ljust(MAX_FRAME_BYTES)
    answers = await arena.exchange(just_fits)
    assert isinstance(answers, list) and [m.type for m in answers] == ["SUBSCRIBED"]
    arena.emit_to_alice()
    await wait_for(lambda: arena.alice.seqs == [1])


async def test_more_than_twenty_bad_frames_a_minute_close_1008(tmp_path: Path) -> None:
    scripted = ScriptedSource()
    async with running_server(tmp_path, sources=[scripted]) as rs:
        alice = await listen(rs, rs.create_token("alice"))
        async with connect(rs.ws_url, additional_headers=auth(rs.token)) as ws:
            assert decode_server(await ws.recv()).type == "HELLO"
            errors = 0
            with pytest.raises(ConnectionClosed) as closed:
                async with asyncio.timeout(10):
                    while True:
                        await ws.send("{not json")
                        message = decode_server(await ws.recv())
                        assert message.type == "ERROR" and message.code == "bad_request"
                        errors += 1
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
            assert errors in (20, 21)
        scripted.emit(
            "alice", Balance(asset="USDT", wallet_balance=1, available_balance=1, updated_at=1)
        )
        await wait_for(lambda: alice.seqs == [1])
        await alice.ws.close()
        assert alice.task is not None
        await alice.task
