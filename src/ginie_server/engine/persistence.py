"""The engine's state in the database: staged writes for the journal, and loading a user back.

Every write is staged with the publisher (`Publisher.write`), so it commits in the journal's
transaction together with the events published beside it; nothing here runs a write or commits.
Lifecycle row ids are counted here, in memory, so a row and the `LIFECYCLE_EVENT` reporting it
get their id before anything is written.
"""

from __future__ import annotations

from collections import OrderedDict

from ginie_protocol.events import (
    SPECS,
    AutopilotRules,
    Balance,
    LifecycleEvent,
    ModeSafety,
    Order,
    Position,
    Topic,
    WireModel,
)
from ginie_server.domain import modes
from ginie_server.domain.autopilot import KEPT_SIGNALS
from ginie_server.engine.book import KEPT_CHAINS, AccountBook
from ginie_server.engine.view import PublishedView, natural, retained_of
from ginie_server.sources import Publisher
from ginie_server.storage.db import StateWrite
from ginie_server.storage.trading import TradingStore

Details = dict[str, str | float | int | bool | None]


class Persistence:
    """Stages the engine's writes and reads its users back from the `TradingStore`."""

    def __init__(self, store: TradingStore) -> None:
        self.store = store
        self._publisher: Publisher | None = None
        self._last_lifecycle_id = store.last_lifecycle_id()

    def start(self, publisher: Publisher) -> None:
        self._publisher = publisher

    def _stage(self, op: StateWrite) -> None:
        if self._publisher is None:
            raise RuntimeError("the engine is not started")
        self._publisher.write(op)

    # ------------------------------------------------------------------ staged writes

    def stage_item(
        self, user: str, topic: str, key: str, item: WireModel, finished: int | None
    ) -> None:
        self._stage(TradingStore.put(user, topic, key, item, finished))

    def stage_delete(self, user: str, topic: str, key: str) -> None:
        self._stage(TradingStore.delete(user, topic, key))

    def stage_internal(self, book: AccountBook) -> None:
        self._stage(TradingStore.put_internal(book.name, book.internal_books()))

    def stage_lifecycle(
        self,
        user: str,
        chain_id: str,
        symbol: str,
        step: str,
        message: str,
        details: Details,
        time: int,
    ) -> LifecycleEvent:
        """Stage one lifecycle row; returns it as the event that reports it."""
        self._last_lifecycle_id += 1
        row = LifecycleEvent(
            id=self._last_lifecycle_id,
            chain_id=chain_id,
            symbol=symbol,
            step=step,
            message=message,
            details=details,
            time=time,
        )
        self._stage(TradingStore.insert_lifecycle(row, user))
        return row

    def stage_prices(self, prices: dict[str, float], time: int) -> None:
        self._stage(TradingStore.save_prices(prices, time))

    # ------------------------------------------------------------------ loading

    def load(
        self, name: str, symbols: tuple[str, ...], now: int
    ) -> tuple[AccountBook, PublishedView]:
        """A user's book and published view from the database: live chains and signals, the
        newest finished ones, everything else published, and the internal books."""
        state = self.store.load(name, finished_limit=max(KEPT_CHAINS, KEPT_SIGNALS))
        book = AccountBook.new(name, symbols, now)
        view = PublishedView()
        for topic_name, stored in state.topics.items():
            spec = SPECS[Topic(topic_name)]
            loaded = [spec.model.model_validate_json(js) for js in stored.values()]
            key_field, sort_field = spec.key, spec.sort
            if sort_field and key_field:
                loaded.sort(key=lambda m: (getattr(m, sort_field), natural(getattr(m, key_field))))
            view.load(
                spec.topic,
                OrderedDict((str(getattr(m, key_field)) if key_field else "", m) for m in loaded),
            )
        rules = view.get(Topic.AUTOPILOT_RULES_UPDATE)
        if isinstance(rules, AutopilotRules):
            book.autopilot.rules = rules
        for topic in (Topic.SIGNAL_UPDATE, Topic.CHAIN_UPDATE):
            retained = retained_of(book, topic)
            assert retained is not None
            items = view.items(topic)
            ranks = state.ranks.get(topic, {})
            for key in state.topics.get(topic, {}):
                retained.load(key, items[key], ranks.get(key))  # type: ignore[arg-type]
            if len(items) > len(retained):
                for key in [k for k in items if k not in retained]:
                    del items[key]
        for safety in view.items(Topic.MODE_SAFETY_UPDATE).values():
            if isinstance(safety, ModeSafety) and safety.mode in modes.MODES:
                book.safety[safety.mode] = safety
        _load_account_items(book, view)
        if state.internal is not None:
            book.load_internal_books(state.internal)
        return book, view


def _load_account_items(book: AccountBook, view: PublishedView) -> None:
    """The exchange's account as last published: positions, orders and balances."""
    for item in view.items(Topic.POSITION_UPDATE).values():
        if isinstance(item, Position):
            book.positions[item.symbol] = item
    for item in view.items(Topic.ORDER_UPDATE).values():
        if isinstance(item, Order):
            book.orders[item.order_id] = item
    for item in view.items(Topic.BALANCE_UPDATE).values():
        if isinstance(item, Balance):
            book.balances[item.asset] = item
