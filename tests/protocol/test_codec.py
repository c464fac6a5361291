"""The wire contract: every event round-trips, bad frames are typed errors, commands validate."""

from __future__ import annotations

import pytest

from ginie_protocol import (
    DATA_MODEL_OF,
    EVENT_TYPES,
    KEY_FIELD,
    MARKET_TYPES,
    SNAPSHOT_PATH,
    USER_TYPES,
    CommandArgsError,
    ProtocolError,
    decode_client,
    decode_server,
    encode,
    make_event,
    parse_command_args,
)
from ginie_protocol.envelope import Command, Subscribe
from ginie_protocol.events import LifecycleEvent, MarkPrice


def test_twenty_event_types_each_with_key_and_snapshot_path() -> None:
    assert len(EVENT_TYPES) == 20
    assert set(KEY_FIELD) == set(EVENT_TYPES)
    assert set(SNAPSHOT_PATH) == set(USER_TYPES)
    assert len(MARKET_TYPES) == 3
    for name, field in KEY_FIELD.items():
        if field is not None:
            assert field in DATA_MODEL_OF[name].model_fields, name


def test_user_event_round_trips_with_seq_and_epoch() -> None:
    data = LifecycleEvent(
        id=7,
        chain_id="c1",
        symbol="BTCUSDT",
        step="entry_filled",
        message="filled",
        details={"price": 101.5, "note": None},
        time=1,
    )
    event = make_event(data, ts=1_764_100_000_123, seq=42, epoch="e1")
    text = encode(event)
    assert text.startswith('{"type":"LIFECYCLE_EVENT","seq":42,"epoch":"e1"')
    assert decode_server(text) == event


def test_market_event_has_no_seq_on_the_wire() -> None:
    data = MarkPrice(
        symbol="BTCUSDT",
        mark_price=1.5,
        index_price=1.4,
        funding_rate=1e-4,
        next_funding_time=2,
        time=1,
    )
    text = encode(make_event(data, ts=3))
    assert '"seq"' not in text and '"epoch"' not in text
    assert decode_server(text).data == data


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("{", "invalid JSON"),
        ("[1]", "JSON object"),
        ('{"topics": ["*"]}', "missing 'op'"),
        ('{"op": "dance"}', "unknown op 'dance'"),
        ('{"op": "subscribe"}', "topics"),
        ('{"op": "subscribe", "topics": ["*"], "resume": {"epoch": "e", "seq": -1}}', "seq"),
        ('{"op": "command", "name": "ginie.start"}', "id"),
        (b"\xff\xfe", "invalid JSON"),
    ],
)
def test_bad_client_frames_are_protocol_errors(frame: str, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        decode_client(frame)


def test_client_messages_decode() -> None:
    sub = decode_client('{"op":"subscribe","topics":["*"],"resume":{"epoch":"e","seq":5}}')
    assert isinstance(sub, Subscribe) and sub.resume is not None and sub.resume.seq == 5
    cmd = decode_client('{"op":"command","id":"c-1","name":"mode.pause","args":{"mode":"scalp"}}')
    assert isinstance(cmd, Command) and cmd.args == {"mode": "scalp"}


def test_unknown_server_type_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="unknown type 'NOPE'"):
        decode_server('{"type": "NOPE"}')


@pytest.mark.parametrize(
    ("name", "args", "reason"),
    [
        ("order.launch", {}, "unknown command"),
        ("order.cancel", {}, "exactly one"),
        ("order.cancel", {"order_id": "1", "client_order_id": "2"}, "exactly one"),
        ("mode.pause", {"mode": "yolo"}, "mode"),
        ("autopilot.set_rules", {}, "at least one"),
        ("autopilot.set_rules", {"min_confidence": 2}, "min_confidence"),
        ("ginie.start", {"now": True}, "now"),
    ],
)
def test_bad_command_args_are_refused_readably(name: str, args: dict, reason: str) -> None:
    with pytest.raises(CommandArgsError, match=reason):
        parse_command_args(name, args)


def test_set_rules_keeps_only_given_fields() -> None:
    rules = parse_command_args("autopilot.set_rules", {"auto_execute": False, "leverage": 5})
    assert rules.model_dump(exclude_unset=True) == {"auto_execute": False, "leverage": 5}
