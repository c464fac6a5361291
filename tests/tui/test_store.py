"""The client-side store: seq order, idempotence, gaps, snapshots, bounds, market latest-wins."""

from __future__ import annotations

from typing import Any

from ginie_protocol import SPECS, Topic, encode, make_event
from ginie_protocol.events import (
    CircuitBreaker,
    Kline,
    LifecycleEvent,
    MarkPrice,
    OrderBook,
    Pnl,
    Signal,
)
from ginie_tui.store import KLINES_PER_SYMBOL, Outcome, Store
from tests.tui.dataset import (
    EPOCH,
    T0,
    kline_history,
    market_answer,
    market_events,
    user_events,
    user_models,
)


def signal(n: int, status: str = "pending") -> Signal:
    return Signal(
        signal_id=f"s-{n}",
        symbol="BTCUSDT",
        direction="LONG",
        mode="scalp",
        strategy="ema",
        confidence=0.7,
        entry_price=1.0,
        take_profit=2.0,
        stop_loss=0.5,
        status=status,  # type: ignore[arg-type]
        created_at=T0,
        expires_at=T0 + 1,
    )


def ev(data: Any, seq: int | None, epoch: str | None = EPOCH) -> Any:
    return make_event(data, ts=T0, seq=seq, epoch=epoch)


def snapshot_of(events: list[Any]) -> dict[str, Any]:
    """The payload a server would answer for these events, as JSON-ready data."""
    store = Store()
    for e in events:
        store.apply_event(e, T0)
    data: dict[str, Any] = {}
    for e in events:
        topic = e.type
        if SPECS[topic].key is None:
            data[topic] = store.singleton(topic).model_dump()
        else:
            data[topic] = [item.model_dump() for item in store.items(topic)]
    return data


def test_events_apply_in_seq_order_and_count() -> None:
    store = Store()
    for e in user_events():
        assert store.apply_event(e, T0).outcome is Outcome.APPLIED
    assert store.epoch == EPOCH
    assert store.seq == len(user_models())
    assert store.get(Topic.SIGNAL_UPDATE, "sig-2").status == "pending"
    pnl = store.one(Pnl)
    assert pnl is not None and pnl.equity == 10_513.85, "read typed, as its model"
    assert Store().one(CircuitBreaker) is None
    assert [m.mode for m in store.items(Topic.MODE_SAFETY_UPDATE)] == ["scalp", "swing"]


def test_duplicates_are_dropped_idempotently() -> None:
    store = Store()
    store.apply_event(ev(signal(1), 1), T0)
    store.apply_event(ev(signal(1, "approved"), 2), T0)
    again = store.apply_event(ev(signal(1, "pending"), 2), T0)
    older = store.apply_event(ev(signal(1, "pending"), 1), T0)
    assert again.outcome is Outcome.DUPLICATE and again.change is None
    assert older.outcome is Outcome.DUPLICATE
    assert store.get(Topic.SIGNAL_UPDATE, "s-1").status == "approved"
    assert store.seq == 2


def test_a_gap_is_reported_and_not_applied() -> None:
    store = Store()
    store.apply_event(ev(signal(1), 1), T0)
    result = store.apply_event(ev(signal(3), 3), T0)
    assert result.outcome is Outcome.GAP
    assert store.get(Topic.SIGNAL_UPDATE, "s-3") is None
    assert store.seq == 1
    assert store.apply_event(ev(signal(2), 2), T0).outcome is Outcome.APPLIED
    assert store.apply_event(ev(signal(3), 3), T0).outcome is Outcome.APPLIED


def test_another_epoch_is_reported_not_applied() -> None:
    store = Store()
    store.apply_event(ev(signal(1), 1), T0)
    result = store.apply_event(ev(signal(2), 2, epoch="other"), T0)
    assert result.outcome is Outcome.EPOCH_CHANGED
    assert store.get(Topic.SIGNAL_UPDATE, "s-2") is None


def test_a_user_event_without_seq_is_invalid() -> None:
    store = Store()
    assert store.apply_event(ev(signal(1), None, None), T0).outcome is Outcome.INVALID
    assert store.rejected == 1 and not store.synced


def test_change_names_topic_key_source_and_event() -> None:
    store = Store()
    event = ev(signal(1), 1)
    change = store.apply_event(event, T0 + 5, source="live").change
    assert change is not None
    assert (change.topic, change.keys, change.source, change.event) == (
        Topic.SIGNAL_UPDATE,
        ("s-1",),
        "live",
        event,
    )
    fresh = store.freshness(Topic.SIGNAL_UPDATE)
    assert fresh is not None and (fresh.at_ms, fresh.source) == (T0 + 5, "live")


def test_snapshot_replaces_topics_and_sets_the_resume_point() -> None:
    events = user_events()
    store = Store()
    store.apply_event(ev(signal(99), 1, epoch="old"), T0)
    changes = store.apply_snapshot(EPOCH, len(events), snapshot_of(events), T0 + 1)
    assert (store.epoch, store.seq) == (EPOCH, len(events))
    assert store.get(Topic.SIGNAL_UPDATE, "s-99") is None, "a new epoch clears the old data"
    assert store.get(Topic.SIGNAL_UPDATE, "sig-2") is not None
    assert {c.topic for c in changes} == {e.type for e in events}
    assert all(c.reset and c.source == "polled" for c in changes)
    # events up to the snapshot's seq are duplicates; the next one applies
    assert store.apply_event(events[3], T0).outcome is Outcome.DUPLICATE
    nxt = ev(signal(7), len(events) + 1)
    assert store.apply_event(nxt, T0).outcome is Outcome.APPLIED


def test_an_older_snapshot_is_ignored() -> None:
    store = Store()
    for seq in (1, 2, 3):
        store.apply_event(ev(signal(seq), seq), T0)
    assert store.apply_snapshot(EPOCH, 2, {"SIGNAL_UPDATE": []}, T0) == []
    assert len(store.items(Topic.SIGNAL_UPDATE)) == 3 and store.seq == 3


def test_same_epoch_snapshot_keeps_topics_it_does_not_carry() -> None:
    store = Store()
    store.apply_event(ev(signal(1), 1), T0)
    store.apply_snapshot(EPOCH, 5, {"PNL_UPDATE": None}, T0)
    assert store.get(Topic.SIGNAL_UPDATE, "s-1") is not None
    assert store.seq == 5


def test_lifecycle_snapshot_comes_newest_first_with_seq_and_is_held_oldest_first() -> None:
    rows = [
        {
            **LifecycleEvent(
                id=i, chain_id="c", symbol="X", step="s", message=str(i), time=i
            ).model_dump(),
            "seq": 100 + i,
        }
        for i in (3, 2, 1)
    ]
    store = Store()
    store.apply_snapshot(EPOCH, 103, {"LIFECYCLE_EVENT": rows}, T0)
    assert [e.id for e in store.items(Topic.LIFECYCLE_EVENT)] == [1, 2, 3]


def test_malformed_snapshot_items_are_left_out_and_counted() -> None:
    store = Store()
    good = signal(1).model_dump()
    changes = store.apply_snapshot(
        EPOCH,
        1,
        {
            "SIGNAL_UPDATE": [good, {"signal_id": "broken"}],
            "PNL_UPDATE": {"equity": "lots"},
            "POSITION_UPDATE": {"not": "a list"},
            "NOT_A_TOPIC": [],
        },
        T0,
    )
    assert [e.signal_id for e in store.items(Topic.SIGNAL_UPDATE)] == ["s-1"]
    assert store.singleton(Topic.PNL_UPDATE) is None
    assert store.rejected == 4
    assert [c.topic for c in changes] == [Topic.SIGNAL_UPDATE]


def test_collections_are_bounded_evicting_least_recently_updated() -> None:
    store = Store(limits={Topic.SIGNAL_UPDATE: 3})
    for seq in range(1, 5):
        store.apply_event(ev(signal(seq), seq), T0)
    assert [s.signal_id for s in store.items(Topic.SIGNAL_UPDATE)] == ["s-2", "s-3", "s-4"]
    store.apply_event(ev(signal(2, "approved"), 5), T0)
    store.apply_event(ev(signal(5), 6), T0)
    assert [s.signal_id for s in store.items(Topic.SIGNAL_UPDATE)] == ["s-4", "s-2", "s-5"]


def test_lifecycle_events_hold_ten_thousand_by_default() -> None:
    store = Store()
    for seq in range(1, 10_003):
        data = LifecycleEvent(id=seq, chain_id="c", symbol="X", step="s", message="m", time=seq)
        store.apply_event(ev(data, seq), T0)
    held = store.items(Topic.LIFECYCLE_EVENT)
    assert len(held) == 10_000 and held[0].id == 3 and held[-1].id == 10_002


def test_market_events_are_latest_wins_per_symbol() -> None:
    store = Store()
    for e in market_events():
        assert store.apply_event(e, T0).outcome is Outcome.APPLIED
    assert store.market_symbols() == ["BTCUSDT", "ETHUSDT"]
    assert len(store.klines("BTCUSDT")) == 1, "live events bring the forming candle"
    newer = MarkPrice(
        symbol="BTCUSDT",
        mark_price=1.0,
        index_price=1.0,
        funding_rate=0.0,
        next_funding_time=0,
        time=T0 + 10,
    )
    older = newer.model_copy(update={"mark_price": 2.0, "time": T0 + 5})
    assert store.apply_event(make_event(newer, ts=T0), T0).outcome is Outcome.APPLIED
    assert store.apply_event(make_event(older, ts=T0), T0).outcome is Outcome.OLDER
    assert store.mark_price("BTCUSDT") == newer
    book = OrderBook(symbol="ETHUSDT", bids=[], asks=[], time=T0 - 5_000)
    assert store.apply_event(make_event(book, ts=T0), T0).outcome is Outcome.OLDER
    assert store.seq == 0, "market events carry no seq and do not move it"


def test_klines_replace_by_open_time_only_with_a_candle_further_along() -> None:
    store = Store()
    forming = kline_history("BTCUSDT")[-1]

    def apply(kline: Kline) -> Outcome:
        return store.apply_event(make_event(kline, ts=T0), T0).outcome

    assert apply(forming) is Outcome.APPLIED
    assert apply(forming.model_copy(update={"close": 1.0, "volume": 99.0})) is Outcome.APPLIED
    assert apply(forming.model_copy(update={"close": 2.0, "volume": 98.0})) is Outcome.OLDER
    closed = forming.model_copy(update={"close": 3.0, "volume": 99.5, "closed": True})
    assert apply(closed) is Outcome.APPLIED
    assert apply(forming.model_copy(update={"volume": 500.0})) is Outcome.OLDER
    assert store.klines("BTCUSDT") == [closed]


def test_klines_are_bounded_per_symbol_keeping_the_newest() -> None:
    store = Store()
    last = kline_history("BTCUSDT")[-1]
    for i in range(200):
        kline = last.model_copy(update={"open_time": last.open_time - i * 60_000})
        store.apply_event(make_event(kline, ts=T0), T0)
    candles = store.klines("BTCUSDT")
    assert len(candles) == KLINES_PER_SYMBOL
    assert candles[-1].open_time == last.open_time
    assert candles[0].open_time == last.open_time - (KLINES_PER_SYMBOL - 1) * 60_000
    too_old = last.model_copy(update={"open_time": 0})
    assert store.apply_event(make_event(too_old, ts=T0), T0).outcome is Outcome.OLDER
    assert store.klines("BTCUSDT")[0].open_time != 0


def test_a_market_answer_fills_the_history_without_undoing_newer_live_data() -> None:
    store = Store()
    for e in market_events():
        store.apply_event(e, T0)
    live_forming = store.klines("BTCUSDT")[-1]
    live_mark = store.mark_price("BTCUSDT")
    changes = store.apply_market(market_answer("BTCUSDT"), T0 + 5)
    candles = store.klines("BTCUSDT")
    assert [k.open_time for k in candles] == [k.open_time for k in kline_history("BTCUSDT")]
    assert candles[-1] == live_forming, "the live forming candle is further along"
    assert store.mark_price("BTCUSDT") == live_mark, "the REST mark price is older"
    assert [c.topic for c in changes] == [Topic.FUTURES_KLINE_UPDATE]
    assert changes[0].keys == ("BTCUSDT",) and changes[0].source == "polled"
    assert store.apply_market(market_answer("BTCUSDT"), T0 + 6) == [], "nothing new"
    assert store.rejected == 0


def test_a_market_answer_leaves_out_what_does_not_fit() -> None:
    store = Store()
    answer = market_answer("ETHUSDT")
    answer["FUTURES_KLINE_UPDATE"] = [{"symbol": "ETHUSDT"}, *answer["FUTURES_KLINE_UPDATE"][:3]]
    answer["FUTURES_ORDERBOOK_UPDATE"] = None
    answer["SIGNAL_UPDATE"] = []
    changes = store.apply_market(answer, T0)
    assert store.rejected == 2, "the broken candle and the topic that is not market data"
    assert len(store.klines("ETHUSDT")) == 3 and store.order_book("ETHUSDT") is None
    assert {c.topic for c in changes} == {
        Topic.FUTURES_KLINE_UPDATE,
        Topic.FUTURES_MARK_PRICE_UPDATE,
    }


def test_market_snapshot_payloads_enter_latest_wins() -> None:
    store = Store()
    mark = next(e.data for e in market_events() if e.type == Topic.FUTURES_MARK_PRICE_UPDATE)
    changes = store.apply_snapshot(EPOCH, 0, {"FUTURES_MARK_PRICE_UPDATE": [mark.model_dump()]}, T0)
    assert store.mark_price(mark.symbol) == mark
    assert changes[0].keys == (mark.symbol,)


def test_events_round_trip_through_the_codec_into_the_store() -> None:
    from ginie_protocol import decode_server

    store = Store()
    for e in user_events():
        store.apply_event(decode_server(encode(e)), T0)
    assert store.seq == len(user_models())
