"""Hostile REST requests against a real server on 127.0.0.1, sent as raw bytes so nothing
between the fuzzer and the server tidies them up.

A well-formed GET gets 200, 400 or 404 with a JSON body in the contract's shape; any other
method gets 405 or a closed connection; a malformed request gets an answer or a closed
connection. Never a hang, never traceback text, never an error in the server's log, and the
server keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from ginie_protocol import SPECS
from ginie_protocol.events import Balance
from tests.fuzz.strategies import FUZZ
from tests.harness import RunningServer, ScriptedSource, running_server

ROUTES = sorted(
    {
        *(spec.snapshot_path for spec in SPECS.values() if spec.snapshot_path),
        "/api/snapshot",
        "/api/metrics",
        "/api/health",
        "/api/market/BTCUSDT",
        "/api/market/btcusdt",
        "/api/market/",
        "/api/",
        "/",
    }
)
PARAMS = ["topics", "symbols", "limit", "before_seq"]

url_safe = st.text(alphabet=st.characters(codec="ascii", exclude_characters=" \r\n\t"), max_size=30)
any_text = st.text(max_size=30)

param_values = (
    st.lists(st.sampled_from([*SPECS, "*", "BTCUSDT", ""]), max_size=4).map(",".join)
    | st.integers(min_value=-(2**70), max_value=2**70).map(str)
    | any_text
)


@st.composite
def queries(draw: st.DrawFn) -> str:
    """A query string: known and unknown keys, any values, percent-encoded or raw."""
    pairs = draw(st.lists(st.tuples(st.sampled_from(PARAMS) | any_text, param_values), max_size=4))
    encoded = "&".join(f"{quote(k, safe='')}={quote(v, safe=',')}" for k, v in pairs)
    return draw(st.just(encoded) | url_safe)


@st.composite
def targets(draw: st.DrawFn) -> str:
    """A request target: a route or a mangled path, then maybe a query."""
    path = draw(
        st.sampled_from(ROUTES)
        | st.builds(lambda r, x: r + quote(x, safe="/%"), st.sampled_from(ROUTES), any_text)
    )
    if draw(st.booleans()):
        path += "?" + draw(queries())
    return path


@dataclass
class Reply:
    status: int | None
    headers: dict[str, str]
    body: bytes


async def raw_request(port: int, request: bytes) -> Reply:
    """Send `request` as it is; read until the server closes (every answer closes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        async with asyncio.timeout(5):
            data = await reader.read()
    except ConnectionError:
        data = b""
    finally:
        writer.close()
    if not data:
        return Reply(None, {}, b"")
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Reply(status, headers, body)


def get(target: str, token: str) -> bytes:
    return (
        f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()


@pytest.fixture
async def server_with_data(tmp_path: Path) -> AsyncIterator[RunningServer]:
    scripted = ScriptedSource()
    async with running_server(tmp_path, sources=[scripted]) as rs:
        scripted.emit(
            "demo", Balance(asset="USDT", wallet_balance=1, available_balance=1, updated_at=1)
        )
        yield rs


def logged_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("ginie_server") and (r.levelno >= logging.ERROR or r.exc_info)
    ]


async def still_serving(rs: RunningServer) -> None:
    reply = await raw_request(rs.server.port, get("/api/futures/balances", rs.token))
    assert reply.status == 200
    assert json.loads(reply.body)["data"][0]["asset"] == "USDT"


@FUZZ
@given(target=targets())
async def test_any_get_gets_a_json_answer_in_the_contract_shape(
    server_with_data: RunningServer, target: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()
    rs = server_with_data
    reply = await raw_request(rs.server.port, get(target, rs.token))
    event(str(reply.status))
    assert reply.status in (200, 400, 404), (target, reply)
    assert reply.headers["content-type"] == "application/json"
    assert b"Traceback" not in reply.body
    body = json.loads(reply.body)
    if reply.status == 400:
        assert body["error"] == "bad_request" and body["message"]
    elif reply.status == 404:
        assert body["error"] == "not_found"
    elif not target.startswith("/api/health"):
        assert body.keys() >= {"epoch", "seq"} or body.get("user") == "demo"
    assert logged_errors(caplog) == []


methods = st.sampled_from(["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE"])


@FUZZ
@given(method=methods, target=targets(), body=st.none() | st.binary(max_size=100))
async def test_other_methods_get_405_or_a_closed_connection(
    server_with_data: RunningServer,
    method: str,
    target: str,
    body: bytes | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rs = server_with_data
    request = (
        f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {rs.token}\r\n"
    )
    if body is not None:
        request += f"Content-Length: {len(body)}\r\n"
    raw = request.encode() + b"\r\n" + (body or b"")
    reply = await raw_request(rs.server.port, raw)
    event(f"{method} {reply.status}")
    if reply.status is not None:
        assert reply.status == 405
        assert json.loads(reply.body)["error"] == "method_not_allowed"
    assert logged_errors(caplog) == []


garbage_requests = (
    st.binary(max_size=300)
    | st.text(max_size=300).map(lambda t: t.encode())
    | st.tuples(st.sampled_from(["GET", "GET ", "get", "G\x00T"]), any_text, any_text).map(
        lambda parts: f"{parts[0]} {parts[1]} {parts[2]}\r\n\r\n".encode()
    )
    | st.builds(
        lambda name, value: f"GET /api/pnl HTTP/1.1\r\nHost: x\r\n{name}: {value}\r\n\r\n".encode(),
        any_text,
        any_text,
    )
)


@FUZZ
@given(request=garbage_requests)
async def test_malformed_requests_are_answered_or_closed_never_hung(
    server_with_data: RunningServer, request: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()
    rs = server_with_data
    reply = await raw_request(rs.server.port, request + b"\r\n\r\n")
    event(str(reply.status))
    assert b"Traceback" not in reply.body
    if reply.status is not None:
        assert 400 <= reply.status < 500
    assert logged_errors(caplog) == []


async def test_the_server_still_serves_after_abuse(server_with_data: RunningServer) -> None:
    rs = server_with_data
    for request in (
        b"\x16\x03\x01\x02\x00",
        b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 500,
        b"\r\n" * 10,
    ):
        await raw_request(rs.server.port, request + b"\r\n\r\n")
    await still_serving(rs)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /api/pnl HTTP/1.1\r\nHost: x\r\n\r\nxxxx",
        b"GET /api/pnl HTTP/1.1\r\nHost: x\r\n\r\nGET /api/pnl HTTP/1.1\r\n\r\n",
    ],
    ids=["body-without-length", "pipelined"],
)
async def test_bytes_after_the_request_head_close_quietly(
    server_with_data: RunningServer, request_bytes: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    rs = server_with_data
    reply = await raw_request(rs.server.port, request_bytes)
    assert reply.status in (None, 405)
    await still_serving(rs)
    assert logged_errors(caplog) == []
