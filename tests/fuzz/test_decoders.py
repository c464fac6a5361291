"""The protocol decoders under hostile input: they raise their typed error or return a model,
never anything else, whatever arrives on the wire."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ginie_protocol import (
    MAX_FRAME_BYTES,
    CommandArgsError,
    ProtocolError,
    decode_client,
    decode_server,
    parse_command_args,
)
from ginie_protocol.commands import CommandArgs
from ginie_protocol.envelope import Command, Subscribe
from tests.fuzz.strategies import (
    FUZZ,
    client_messages,
    command_args,
    command_names,
    json_values,
    mangled,
    nested,
    server_messages,
)


def decodes_or_refuses_client(frame: str | bytes) -> None:
    try:
        message = decode_client(frame)
    except ProtocolError as exc:
        assert str(exc)
        assert "Traceback" not in str(exc)
    else:
        assert isinstance(message, Subscribe | Command)


def decodes_or_refuses_server(frame: str | bytes) -> None:
    try:
        message = decode_server(frame)
    except ProtocolError as exc:
        assert str(exc)
        assert "Traceback" not in str(exc)
    else:
        assert isinstance(message.type, str)


@FUZZ
@given(st.text(max_size=300) | st.binary(max_size=300))
def test_client_decoder_takes_any_text_or_bytes(frame: str | bytes) -> None:
    decodes_or_refuses_client(frame)


@FUZZ
@given(st.text(max_size=300) | st.binary(max_size=300))
def test_server_decoder_takes_any_text_or_bytes(frame: str | bytes) -> None:
    decodes_or_refuses_server(frame)


@FUZZ
@given(json_values)
def test_decoders_take_any_json_value(value: Any) -> None:
    frame = json.dumps(value)
    decodes_or_refuses_client(frame)
    decodes_or_refuses_server(frame)


@FUZZ
@given(client_messages)
def test_client_decoder_takes_client_shaped_objects(message: dict[str, Any]) -> None:
    decodes_or_refuses_client(json.dumps(message))


@FUZZ
@given(server_messages())
def test_server_decoder_takes_server_shaped_objects(message: dict[str, Any]) -> None:
    decodes_or_refuses_server(json.dumps(message))


@FUZZ
@given(mangled(client_messages) | mangled(server_messages()))
def test_decoders_take_mangled_frames(frame: str) -> None:
    decodes_or_refuses_client(frame)
    decodes_or_refuses_server(frame)


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(nested(MAX_FRAME_BYTES // 2), id="deep-array"),
        pytest.param(nested(MAX_FRAME_BYTES // 8, '{"a":', "1", "}"), id="deep-object"),
        pytest.param(
            '{"op":"command","id":"x","name":"ginie.stop","args":' + nested(20_000) + "}",
            id="deep-args",
        ),
        pytest.param(
            '{"type":"HELLO","user":"u","epoch":"e","seq":' + "9" * 5_000 + ',"server_time":1}',
            id="huge-int",
        ),
        pytest.param(
            '{"op":"subscribe","topics":["*"],"resume":{"epoch":"e","seq":1e999}}', id="inf"
        ),
        pytest.param(
            '{"op":"subscribe","topics":["*"],"resume":{"epoch":"e","seq":NaN}}', id="nan"
        ),
        pytest.param(b"\xef\xbb\xbf{}", id="bom"),
        pytest.param(b"\xff\xfe\x00", id="bad-utf8"),
        pytest.param("", id="empty"),
    ],
)
def test_decoders_refuse_pathological_frames_with_their_error(frame: str | bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_client(frame)
    with pytest.raises(ProtocolError):
        decode_server(frame)


@FUZZ
@given(command_names, command_args)
def test_command_args_parse_or_raise_their_error(name: str, args: dict[str, Any]) -> None:
    try:
        parsed = parse_command_args(name, args)
    except CommandArgsError as exc:
        assert str(exc)
        assert "https://" not in str(exc)
    else:
        assert isinstance(parsed, CommandArgs)
