"""The console's one client-side store: events and snapshots both enter here, panels read from it.

Pure state, no Textual and no network. User events are applied in `seq` order and idempotently:
an event at or below the last applied `seq` is a duplicate and is dropped; an event past the next
`seq` is a gap and is not applied (the feed then resumes or resyncs). Market events carry no `seq`
and are kept latest-wins per symbol, with a bounded history of candles per symbol (closed ones
by open time, the forming one replaced in place) fed by live events and by one REST fetch of
`/api/market/{symbol}` per symbol and connection (see `apply_market`). Collections are
bounded: when one is full the item updated least recently is evicted.

Limits: the store trusts the server's `seq` numbering within an epoch; it does not re-order
events, it only refuses the ones that do not follow.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, TypeVar

from pydantic import ValidationError

from ginie_protocol import MARKET_TOPICS, SPECS, EventSpec, Scope, spec_of
from ginie_protocol.events import Kline, MarkPrice, OrderBook, Topic, WireModel

log = logging.getLogger(__name__)

M = TypeVar("M", bound=WireModel)

Source = Literal["live", "replayed", "polled"]
"""How data reached the store: pushed over the WebSocket as it happened (`live`), sent over it
after a resume because the console missed it while away (`replayed`: the events a SUBSCRIBED
announced), or fetched by a REST snapshot (`polled`). Only `live` data raises alerts."""

DEFAULT_LIMITS: dict[Topic, int] = {
    Topic.LIFECYCLE_EVENT: 10_000,
    Topic.TRADE_UPDATE: 5_000,
    Topic.ORDER_UPDATE: 5_000,
    Topic.CHAIN_UPDATE: 2_000,
    Topic.SIGNAL_UPDATE: 2_000,
}
"""Most items a collection topic holds; topics not listed hold `OTHER_LIMIT`."""

OTHER_LIMIT = 1_000
KLINES_PER_SYMBOL = 120
"""Candles kept per symbol, enough for a sparkline of the last two hours of 1m candles; past it
the oldest go."""


class Outcome(StrEnum):
    """What the store did with one event."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    GAP = "gap"
    EPOCH_CHANGED = "epoch_changed"
    OLDER = "older"
    """A market event older than the one already held for its symbol."""
    INVALID = "invalid"


@dataclass(frozen=True)
class Change:
    """One change a panel may need to render: which topic, which item keys, from where."""

    topic: Topic
    keys: tuple[str, ...] = ()
    source: Source = "live"
    reset: bool = False
    """True when the whole topic was replaced (a snapshot); keys are then empty."""
    event: Any = None
    """The event envelope that caused the change, if an event did."""


@dataclass(frozen=True)
class Freshness:
    """When a topic last changed and how it got there."""

    at_ms: int
    source: Source


@dataclass(frozen=True)
class Applied:
    """The result of applying one event: the outcome, and the change when it was applied."""

    outcome: Outcome
    change: Change | None = None


class Store:
    """Client-side state for one user: collections, singletons, market data, freshness."""

    def __init__(self, limits: Mapping[str, int] | None = None) -> None:
        self.epoch: str | None = None
        self.seq: int = 0
        self._limits = dict(DEFAULT_LIMITS if limits is None else limits)
        self._collections: dict[Topic, dict[str, WireModel]] = {
            t: {} for t, spec in SPECS.items() if spec.scope is Scope.USER and spec.key is not None
        }
        self._singletons: dict[Topic, WireModel] = {}
        self._mark: dict[str, MarkPrice] = {}
        self._book: dict[str, OrderBook] = {}
        self._klines: dict[str, dict[int, Kline]] = {}
        self._fresh: dict[Topic, Freshness] = {}
        self.rejected = 0
        """Items that did not fit their model and were left out (each one logged)."""

    # ------------------------------------------------------------------ reading

    @property
    def synced(self) -> bool:
        """True once a snapshot or an event has set the epoch."""
        return self.epoch is not None

    def items(self, topic: Topic) -> list[Any]:
        """A collection's items, least recently updated first."""
        return list(self._collections[topic].values())

    def get(self, topic: Topic, key: str) -> Any:
        """One item of a collection, or None."""
        return self._collections[topic].get(key)

    def singleton(self, topic: Topic) -> Any:
        """The current object of a singleton topic, or None before the first one arrives."""
        return self._singletons.get(topic)

    def one(self, model: type[M]) -> M | None:
        """The current state of the singleton topic whose data is `model`, typed as it (for
        example `store.one(CircuitBreaker)`), or None before the first one arrives."""
        held = self._singletons.get(spec_of(model).topic)
        return held if isinstance(held, model) else None

    def mark_price(self, symbol: str) -> MarkPrice | None:
        return self._mark.get(symbol)

    def order_book(self, symbol: str) -> OrderBook | None:
        return self._book.get(symbol)

    def klines(self, symbol: str) -> list[Kline]:
        """Candles of `symbol`, oldest first."""
        candles = self._klines.get(symbol, {})
        return [candles[t] for t in sorted(candles)]

    def market_symbols(self) -> list[str]:
        """Every symbol with market data, sorted."""
        return sorted(set(self._mark) | set(self._book) | set(self._klines))

    def freshness(self, topic: Topic) -> Freshness | None:
        return self._fresh.get(topic)

    # ------------------------------------------------------------------ events

    def apply_event(self, event: Any, now_ms: int, source: Source = "live") -> Applied:
        """Apply one event envelope (a ginie_protocol event model)."""
        spec = SPECS[event.type]
        topic = spec.topic
        if spec.scope is Scope.MARKET:
            return self._apply_market(topic, event, now_ms, source)
        if event.seq is None or event.epoch is None:
            self._reject(topic, "a user event without seq or epoch")
            return Applied(Outcome.INVALID)
        if self.epoch is None:
            self.epoch = event.epoch
            self.seq = event.seq - 1
        if event.epoch != self.epoch:
            return Applied(Outcome.EPOCH_CHANGED)
        if event.seq <= self.seq:
            return Applied(Outcome.DUPLICATE)
        if event.seq > self.seq + 1:
            return Applied(Outcome.GAP)
        self.seq = event.seq
        keys = self._put(spec, event.data)
        self._fresh[topic] = Freshness(now_ms, source)
        return Applied(Outcome.APPLIED, Change(topic, keys, source, event=event))

    def _apply_market(self, topic: Topic, event: Any, now_ms: int, source: Source) -> Applied:
        data = event.data
        if isinstance(data, MarkPrice):
            held = self._mark.get(data.symbol)
            if held is not None and held.time > data.time:
                return Applied(Outcome.OLDER)
            self._mark[data.symbol] = data
        elif isinstance(data, OrderBook):
            held_book = self._book.get(data.symbol)
            if held_book is not None and held_book.time > data.time:
                return Applied(Outcome.OLDER)
            self._book[data.symbol] = data
        elif not self._put_kline(data):
            return Applied(Outcome.OLDER)
        self._fresh[topic] = Freshness(now_ms, source)
        return Applied(Outcome.APPLIED, Change(topic, (data.symbol,), source, event=event))

    def _put_kline(self, kline: Kline) -> bool:
        """Hold `kline` by its open time; False when that changed nothing. A candle is replaced
        only by one at least as far along (closed, then traded volume, which only grows while
        it forms), so a REST answer never undoes a newer live update; a candle older than a
        full history is not kept."""
        candles = self._klines.setdefault(kline.symbol, {})
        held = candles.get(kline.open_time)
        if held is not None and (
            held == kline or (held.closed, held.volume) > (kline.closed, kline.volume)
        ):
            return False
        if held is None and len(candles) >= KLINES_PER_SYMBOL:
            oldest = min(candles)
            if kline.open_time < oldest:
                return False
            del candles[oldest]
        candles[kline.open_time] = kline
        return True

    def _put(self, spec: EventSpec, data: WireModel) -> tuple[str, ...]:
        topic, field = spec.topic, spec.key
        if field is None:
            self._singletons[topic] = data
            return ()
        key = str(getattr(data, field))
        collection = self._collections[topic]
        collection.pop(key, None)
        collection[key] = data
        limit = self._limits.get(topic, OTHER_LIMIT)
        while len(collection) > limit:
            del collection[next(iter(collection))]
        return (key,)

    # ------------------------------------------------------------------ snapshots

    def apply_snapshot(
        self,
        epoch: str,
        seq: int,
        data: Mapping[str, Any],
        now_ms: int,
        source: Source = "polled",
    ) -> list[Change]:
        """Replace the topics in `data` with a REST snapshot taken at (`epoch`, `seq`).

        A snapshot older than what the store holds (same epoch, lower `seq`) is ignored. A new
        epoch means the server lost its history: every user topic is cleared first.
        """
        if epoch == self.epoch and seq < self.seq:
            return []
        if epoch != self.epoch:
            for collection in self._collections.values():
                collection.clear()
            self._singletons.clear()
        self.epoch = epoch
        self.seq = seq
        changes: list[Change] = []
        for name, payload in data.items():
            if name not in SPECS:
                self._reject(name, "an unknown topic in a snapshot")
                continue
            spec = SPECS[Topic(name)]
            if spec.scope is Scope.MARKET:
                changes.extend(self._snapshot_market(spec, payload, now_ms, source))
            elif self._snapshot_topic(spec, payload):
                self._fresh[spec.topic] = Freshness(now_ms, source)
                changes.append(Change(spec.topic, (), source, reset=True))
        return changes

    def apply_market(
        self, data: Mapping[str, Any], now_ms: int, source: Source = "polled"
    ) -> list[Change]:
        """Merge one symbol's market data from `/api/market/{symbol}` into what is held: its
        recent candles join the history, and a mark price or order book replaces the held one
        only when it is not older (live events may have overtaken the REST answer)."""
        changes: list[Change] = []
        for name, payload in data.items():
            if name not in MARKET_TOPICS:
                self._reject(name, "a topic that is not market data in a market answer")
                continue
            if payload is None:
                continue
            topic = Topic(name)
            model = SPECS[topic].model
            symbols: dict[str, None] = {}
            for raw in payload if isinstance(payload, list) else [payload]:
                item = self._validate(topic, model, raw)
                if item is not None and self._merge_market(item):
                    symbols[item.symbol] = None  # type: ignore[attr-defined]
            if symbols:
                self._fresh[topic] = Freshness(now_ms, source)
                changes.append(Change(topic, tuple(symbols), source))
        return changes

    def _merge_market(self, item: WireModel) -> bool:
        """Hold a market item unless what is held is newer; True when it was held."""
        if isinstance(item, MarkPrice):
            held = self._mark.get(item.symbol)
            if held is not None and held.time > item.time:
                return False
            self._mark[item.symbol] = item
            return True
        if isinstance(item, OrderBook):
            held_book = self._book.get(item.symbol)
            if held_book is not None and held_book.time > item.time:
                return False
            self._book[item.symbol] = item
            return True
        return isinstance(item, Kline) and self._put_kline(item)

    def _snapshot_topic(self, spec: EventSpec, payload: Any) -> bool:
        topic, model = spec.topic, spec.model
        if spec.key is None:
            if payload is None:
                self._singletons.pop(topic, None)
                return True
            item = self._validate(topic, model, payload)
            if item is None:
                return False
            self._singletons[topic] = item
            return True
        if not isinstance(payload, list):
            self._reject(topic, "a collection snapshot that is not a list")
            return False
        items = [self._validate(topic, model, raw) for raw in payload]
        if topic == Topic.LIFECYCLE_EVENT:
            items.reverse()  # served newest first; held oldest first like every collection
        self._collections[topic].clear()
        for item in items:
            if item is not None:
                self._put(spec, item)
        return True

    def _snapshot_market(
        self, spec: EventSpec, payload: Any, now_ms: int, source: Source
    ) -> Iterable[Change]:
        topic, model = spec.topic, spec.model
        raw_items = payload if isinstance(payload, list) else [payload]
        symbols: list[str] = []
        for raw in raw_items:
            item = self._validate(topic, model, raw)
            if item is None:
                continue
            if isinstance(item, MarkPrice):
                self._mark[item.symbol] = item
            elif isinstance(item, OrderBook):
                self._book[item.symbol] = item
            elif isinstance(item, Kline):
                self._put_kline(item)
            symbols.append(item.symbol)  # type: ignore[attr-defined]
        if not symbols:
            return []
        self._fresh[topic] = Freshness(now_ms, source)
        return [Change(topic, tuple(dict.fromkeys(symbols)), source)]

    def _validate(self, topic: str, model: type[WireModel], raw: Any) -> WireModel | None:
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            self._reject(topic, f"an item that does not fit {model.__name__}: {exc.errors()[0]}")
            return None

    def _reject(self, topic: str, what: str) -> None:
        self.rejected += 1
        log.warning("store left out %s (%s)", what, topic)
