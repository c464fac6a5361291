"""Acceptance 4 and 5: resume after a drop replays exactly what was missed; when it cannot,
RESYNC and one snapshot bring the client back without a gap or a repeat; a restart on the same
database keeps the epoch and the seq."""

from __future__ import annotations

from pathlib import Path

import httpx

from ginie_protocol.envelope import ResumePoint, Resync
from ginie_protocol.events import Balance
from ginie_server.config import Limits
from tests.harness import ScriptedSource, connect_client, running_server


def balance(n: int) -> Balance:
    return Balance(asset=f"A{n}", wallet_balance=n, available_balance=n, updated_at=n)


async def test_resume_after_seq_n_gets_exactly_the_rest_in_order(tmp_path: Path) -> None:
    source = ScriptedSource()
    async with running_server(tmp_path, sources=[source]) as server:
        for n in range(1, 51):
            source.emit("demo", balance(n))
        async with connect_client(server.ws_url, server.token) as client:
            await client.subscribe(["BALANCE_UPDATE"])
            source.emit("demo", balance(51))
            (first,) = await client.user_events(1)
            assert first.seq == 51
        for n in range(52, 80):
            source.emit("demo", balance(n))
        resume = ResumePoint(epoch=server.hub.epoch, seq=40)
        async with connect_client(server.ws_url, server.token) as client:
            assert client.hello.seq == 79
            answer = await client.subscribe(["*"], resume=resume)
            assert answer.resumed is True and answer.replayed == 39
            replayed = await client.user_events(39)
            assert [e.seq for e in replayed] == list(range(41, 80))
            assert [e.data.asset for e in replayed] == [f"A{n}" for n in range(41, 80)]
            source.emit("demo", balance(80))
            (live,) = await client.user_events(1)
            assert live.seq == 80


async def test_unknown_epoch_or_beyond_the_window_resyncs_and_the_snapshot_joins_live(
    tmp_path: Path,
) -> None:
    source = ScriptedSource()
    limits = Limits(replay_window=20, replay_limit=20)
    async with running_server(tmp_path, sources=[source], limits=limits) as server:
        for n in range(1, 101):
            source.emit("demo", balance(n))
        for resume in (
            ResumePoint(epoch="from-another-database", seq=10),
            ResumePoint(epoch=server.hub.epoch, seq=10),
        ):
            async with connect_client(server.ws_url, server.token) as client:
                answer = await client.subscribe(["*"], resume=resume)
                assert answer.resumed is False and answer.replayed == 0
                resync = await client.recv()
                assert isinstance(resync, Resync)
                assert resync.epoch == server.hub.epoch
                last_seq = resync.seq
                for _ in range(5):
                    source.emit("demo", balance(last_seq + 1))
                    last_seq += 1
                async with httpx.AsyncClient(base_url=server.url) as http:
                    answer_json = (await http.get("/api/snapshot", headers=server.auth())).json()
                snapshot_seq = answer_json["seq"]
                assert snapshot_seq == last_seq
                assets = {b["asset"] for b in answer_json["data"]["BALANCE_UPDATE"]}
                assert f"A{snapshot_seq}" in assets
                for _ in range(5):
                    source.emit("demo", balance(last_seq + 1))
                    last_seq += 1
                live = await client.user_events(10)
                applied = [e.seq for e in live if e.seq > snapshot_seq]
                assert applied == list(range(snapshot_seq + 1, last_seq + 1))
        assert server.hub.metrics("demo").resyncs == 2


async def test_restart_on_the_same_database_keeps_epoch_and_seq(tmp_path: Path) -> None:
    first_source = ScriptedSource()
    async with running_server(tmp_path, sources=[first_source]) as server:
        epoch = server.hub.epoch
        token = server.token
        async with connect_client(server.ws_url, token) as client:
            await client.subscribe(["*"])
            for n in range(1, 101):
                first_source.emit("demo", balance(n))
            seen = await client.user_events(60)
            last_applied = seen[-1].seq
        assert last_applied == 60
    second_source = ScriptedSource()
    async with running_server(tmp_path, sources=[second_source]) as server:
        assert server.hub.epoch == epoch
        assert server.server.demo_token is None
        for n in range(101, 111):
            second_source.emit("demo", balance(n))
        async with connect_client(server.ws_url, token) as client:
            assert client.hello.epoch == epoch and client.hello.seq == 110
            answer = await client.subscribe(["*"], resume=ResumePoint(epoch=epoch, seq=60))
            assert answer.resumed is True and answer.replayed == 50
            events = await client.user_events(50)
            assert [e.seq for e in events] == list(range(61, 111))
            assert [e.data.asset for e in events] == [f"A{n}" for n in range(61, 111)]
