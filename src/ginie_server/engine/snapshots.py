"""Snapshot providers: each user topic's REST snapshot, served from the published view.

A collection is served in its declared order (`EventSpec.sort`, then by id) or, without one,
by key (modes in their own order); a singleton is its last published item, or for a user with
none yet the first state that user would get.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ginie_protocol.events import SPECS, Topic, WireModel
from ginie_server.domain import modes
from ginie_server.engine.book import AccountBook
from ginie_server.engine.health import EngineHealth
from ginie_server.engine.outbox import Account
from ginie_server.exchange.base import Exchange
from ginie_server.sources import MarketData, SnapshotProvider

ENGINE_TOPICS: tuple[Topic, ...] = tuple(
    topic
    for topic, spec in SPECS.items()
    if spec.scope == "user" and topic != Topic.LIFECYCLE_EVENT
)
"""Every user topic the engine serves a snapshot of (the hub serves LIFECYCLE_EVENT)."""

MARKET_SNAPSHOT_KLINES = 60
"""Candles in a symbol's market snapshot."""


def by_name(key: str) -> tuple[int, str]:
    """Topics keyed by name: modes in their own order, anything else alphabetically."""
    order: tuple[str, ...] = modes.MODES
    return (order.index(key), key) if key in order else (len(order), key)


def snapshot_providers(
    accounts: Mapping[str, Account],
    new_book: Callable[[str], AccountBook],
    health: EngineHealth,
) -> dict[str, SnapshotProvider]:
    """One provider per engine topic."""
    return {topic: _provider(topic, accounts, new_book, health) for topic in ENGINE_TOPICS}


def _provider(
    topic: Topic,
    accounts: Mapping[str, Account],
    new_book: Callable[[str], AccountBook],
    health: EngineHealth,
) -> SnapshotProvider:
    spec = SPECS[topic]
    singleton = spec.key is None

    def provide(user: str) -> WireModel | list[Any]:
        account = accounts.get(user)
        if account is None:
            return first_state(new_book(user), topic, health) if singleton else []
        items = account.view.items(topic)
        if singleton:
            return items.get("") or first_state(account.book, topic, health)
        if spec.sort is not None:
            return list(items.values())
        return [items[key] for key in sorted(items, key=by_name)]

    return provide


def first_state(book: AccountBook, topic: Topic, health: EngineHealth) -> WireModel:
    """The first state of a singleton topic for a user who has none published."""
    if topic == Topic.GINIE_STATUS_UPDATE:
        return book.status()
    if topic == Topic.CIRCUIT_BREAKER_UPDATE:
        return book.breaker.view
    if topic == Topic.AUTOPILOT_RULES_UPDATE:
        return book.autopilot.rules
    if topic == Topic.PNL_UPDATE:
        return book.pnl.pnl(0.0, 0.0)
    if topic == Topic.PERFORMANCE_UPDATE:
        return book.pnl.performance()
    if topic == Topic.STATS_UPDATE:
        return book.pnl.stats(0)
    if topic == Topic.SYSTEM_STATUS_UPDATE:
        return health.system
    if topic == Topic.HEALTH_UPDATE:
        return health.api
    raise KeyError(f"{topic} is not a singleton topic of the engine")


def market_snapshot(exchange: Exchange, symbol: str) -> list[MarketData]:
    """Market data of one symbol for `/api/market/{symbol}`."""
    symbol = symbol.upper()
    if symbol not in exchange.symbols:
        return []
    data: list[MarketData] = []
    mark = exchange.mark_price(symbol)
    if mark is not None:
        data.append(mark)
    data.extend(exchange.klines(symbol)[-MARKET_SNAPSHOT_KLINES:])
    book = exchange.order_book(symbol)
    if book is not None:
        data.append(book)
    return data
