"""One declaration per event type: SPECS, in SPEC order, and every table derived from it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import TypeAdapter

from ginie_protocol import (
    DATA_MODEL_OF,
    ENVELOPE_OF,
    EVENT_TYPE_OF,
    EVENT_TYPES,
    KEY_FIELD,
    MARKET_TOPICS,
    MARKET_TYPES,
    SNAPSHOT_PATH,
    SPECS,
    USER_TOPICS,
    USER_TYPES,
    Event,
    Scope,
    Topic,
    decode_server,
    encode,
    make_event,
    spec_of,
)
from ginie_protocol.events import (
    AutopilotRules,
    Decision,
    HealthUpdate,
    Kline,
    KlineUpdate,
    PositionUpdate,
    WireModel,
    declare,
)

KLINE = {
    "symbol": "ETHUSDT",
    "open_time": 0,
    "close_time": 1,
    "open": 1,
    "high": 2,
    "low": 0.5,
    "close": 1.5,
    "volume": 3,
    "closed": False,
}


def test_specs_cover_every_topic_in_spec_order() -> None:
    assert tuple(SPECS) == tuple(Topic) == EVENT_TYPES
    assert len(SPECS) == 20
    for topic, spec in SPECS.items():
        assert spec.topic is topic and topic == topic.name == topic.value
        assert spec.envelope.model_fields["type"].default == topic
        assert spec.envelope.model_fields["data"].annotation is spec.model
        assert (spec.scope is Scope.USER) == (spec.snapshot_path is not None)
        for field in (spec.key, spec.sort):
            assert field is None or field in spec.model.model_fields, topic


def test_topics_work_as_plain_strings() -> None:
    assert Topic.ORDER_UPDATE == "ORDER_UPDATE"
    assert f"{Topic.ORDER_UPDATE}" == "ORDER_UPDATE"
    assert KEY_FIELD["ORDER_UPDATE"] == "order_id"
    assert "FUTURES_KLINE_UPDATE" in MARKET_TYPES


def test_sort_orders_as_the_server_serves_them() -> None:
    sorted_topics = {t: s.sort for t, s in SPECS.items() if s.sort is not None}
    assert sorted_topics == {
        Topic.ORDER_UPDATE: "created_at",
        Topic.TRADE_UPDATE: "time",
        Topic.SIGNAL_UPDATE: "created_at",
        Topic.CHAIN_UPDATE: "opened_at",
    }


def test_scopes() -> None:
    assert MARKET_TOPICS == (
        Topic.FUTURES_MARK_PRICE_UPDATE,
        Topic.FUTURES_KLINE_UPDATE,
        Topic.FUTURES_ORDERBOOK_UPDATE,
    )
    assert USER_TOPICS == EVENT_TYPES[:17]
    assert frozenset(USER_TOPICS) == USER_TYPES and frozenset(MARKET_TOPICS) == MARKET_TYPES


def test_legacy_tables_are_derived_from_specs() -> None:
    assert ENVELOPE_OF == {t: s.envelope for t, s in SPECS.items()}
    assert DATA_MODEL_OF == {t: s.model for t, s in SPECS.items()}
    assert EVENT_TYPE_OF == {s.model: t for t, s in SPECS.items()}
    assert SNAPSHOT_PATH["POSITION_UPDATE"] == "/api/futures/positions"
    assert SNAPSHOT_PATH["LIFECYCLE_EVENT"] == "/api/futures/trade-events"
    assert ENVELOPE_OF["POSITION_UPDATE"] is PositionUpdate
    assert ENVELOPE_OF["FUTURES_KLINE_UPDATE"] is KlineUpdate
    assert HealthUpdate.__name__ == "HealthUpdate"


def test_spec_of_by_instance_or_class() -> None:
    kline = Kline.model_validate(KLINE)
    assert spec_of(kline) is spec_of(Kline) is SPECS[Topic.FUTURES_KLINE_UPDATE]
    assert spec_of(AutopilotRules).key is None
    with pytest.raises(KeyError):
        spec_of(Decision)
    with pytest.raises(TypeError):
        spec_of(int)  # type: ignore[arg-type]  # not a model on purpose


def test_event_union_is_discriminated_by_type() -> None:
    schema = TypeAdapter(Event).json_schema()
    assert schema["discriminator"]["propertyName"] == "type"
    assert len(schema["oneOf"]) == 20


def test_a_declared_envelope_round_trips() -> None:
    kline = Kline.model_validate(KLINE)
    text = encode(make_event(kline, ts=9))
    assert text.startswith('{"type":"FUTURES_KLINE_UPDATE","ts":9,"data":{"symbol":"ETHUSDT"')
    assert type(decode_server(text)) is KlineUpdate


def test_bad_declarations_are_refused() -> None:
    class Thing(WireModel):
        thing_id: str

    with pytest.raises(ValueError, match="no field"):
        declare(Topic.POSITION_UPDATE, Thing, Scope.USER, key="id", snapshot_path="/api/x")
    with pytest.raises(ValueError, match="snapshot path"):
        declare(Topic.POSITION_UPDATE, Thing, Scope.MARKET, key=None, snapshot_path="/api/x")
    with pytest.raises(ValueError, match="twice"):
        declare(Topic.POSITION_UPDATE, Thing, Scope.USER, key=None, snapshot_path="/api/x")
    with pytest.raises(ValueError, match="twice"):
        declare(Topic.PNL_UPDATE, Kline, Scope.MARKET, key="symbol")


def test_protocol_doc_gives_each_event_its_declared_scope_key_and_path() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    for topic, spec in SPECS.items():
        section = doc.split(f"### `{topic}`\n", 1)[1].split("\n### ", 1)[0]
        path = spec.snapshot_path or "/api/market/{symbol}"
        shape = f"collection keyed by `{spec.key}`" if spec.key else "singleton"
        assert f"Scope: {spec.scope}" in section, topic
        assert f"Snapshot: `{path}`; {shape}" in section, topic
