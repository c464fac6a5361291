"""From a user's changes to published events: the outbox, the published view, the flush.

A change to a user's book queues the events it caused in that user's `Outbox`. `Publication`
flushes every outbox in order: it stages each item's state row and the user's internal books
with the publisher (`Persistence`), publishes the item, and records it in the user's
`PublishedView`. The journal then commits rows and events in one transaction.

The published view is what snapshots serve: exactly what the user's events said, so a
snapshot always matches the `seq` the hub reports with it, whatever is still queued. Its
collections are bounded like the book: chains and signals to what memory retains (the rest is
in the database), orders and trades to their newest (the rest deleted), open orders always kept.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ginie_protocol.events import Chain, ModeSafety, Order, Signal, Topic, WireModel, spec_of
from ginie_server.domain import lifecycle
from ginie_server.domain.autopilot import LIVE_SIGNAL
from ginie_server.engine.book import KEPT_ORDERS, KEPT_TRADES, OPEN_ORDER, AccountBook
from ginie_server.engine.persistence import Persistence
from ginie_server.engine.view import PublishedView, natural, retained_of
from ginie_server.sources import MarketData, Publisher

BOUND_OF: dict[str, int] = {Topic.ORDER_UPDATE: KEPT_ORDERS, Topic.TRADE_UPDATE: KEPT_TRADES}
"""Published collections bounded to their newest items (chains and signals follow the book)."""


@dataclass(frozen=True, slots=True)
class StepRow:
    """A lifecycle step waiting to be written and published."""

    chain_id: str
    symbol: str
    step: lifecycle.Step
    time: int


Queued = WireModel | StepRow


@dataclass(slots=True)
class Outbox:
    """What one user's changes queued for the next flush."""

    pending: list[Queued] = field(default_factory=list)
    touched: dict[str, Chain] = field(default_factory=dict)
    """Chains changed since the last flush, by id (published at the flush if not queued)."""
    pnl_dirty: bool = False
    """Whether P&L is to be recomputed and published at the flush."""

    def queue(self, item: Queued) -> None:
        self.pending.append(item)


@dataclass(slots=True)
class Account:
    """One user's book, with its outbox and what its events last said."""

    book: AccountBook
    view: PublishedView = field(default_factory=PublishedView)
    outbox: Outbox = field(default_factory=Outbox)
    notify: Callable[[], None] = lambda: None
    """Called whenever something is queued (the engine schedules a flush)."""

    @property
    def name(self) -> str:
        return self.book.name

    def queue(self, item: Queued) -> None:
        """Queue an event for the next flush."""
        self.outbox.pending.append(item)
        self.notify()

    def put_chain(self, chain: Chain) -> None:
        """Keep a chain's new state in the book; a changed chain is published at the flush."""
        if self.book.put_chain(chain):
            self.outbox.touched[chain.chain_id] = chain

    def set_safety(self, safety: ModeSafety) -> None:
        """Keep a mode's safety; a change is published."""
        if self.book.safety.get(safety.mode) != safety:
            self.book.safety[safety.mode] = safety
            self.queue(safety)

    def pnl_changed(self) -> None:
        """P&L is recomputed and published at the next flush."""
        self.outbox.pnl_dirty = True
        self.notify()


class Publication:
    """Flushes outboxes: stage rows, publish, update the view. Schedules itself on the loop."""

    def __init__(
        self,
        accounts: Mapping[str, Account],
        persistence: Persistence,
    ) -> None:
        self._accounts = accounts
        self._persistence = persistence
        self._publisher: Publisher | None = None
        self._scheduled = False

    def start(self, publisher: Publisher) -> None:
        self._publisher = publisher

    @property
    def started(self) -> bool:
        return self._publisher is not None

    def publish_market(self, data: MarketData) -> None:
        """Market data goes straight to the publisher: nothing of it is kept or written."""
        if self._publisher is not None:
            self._publisher.publish_market(data)

    def schedule(self) -> None:
        """Flush on the loop's next turn (once, however often asked)."""
        if self._scheduled or self._publisher is None:
            return
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().call_soon(self.flush)
            self._scheduled = True

    def flush(self) -> None:
        """Write and publish everything queued, user by user, in order."""
        self._scheduled = False
        if self._publisher is None:
            return
        for account in self._accounts.values():
            self._flush_account(account, self._publisher)

    def _flush_account(self, account: Account, publisher: Publisher) -> None:
        book, outbox, view = account.book, account.outbox, account.view
        touched, outbox.touched = outbox.touched, {}
        for chain_id in sorted(touched, key=natural):
            chain = touched[chain_id]
            if view.get(Topic.CHAIN_UPDATE, chain_id) != chain and chain not in outbox.pending:
                outbox.pending.append(chain)
        if outbox.pnl_dirty:
            behind = book.balance_behind()
            if behind is not None:
                outbox.pending.append(behind)
            outbox.pending.append(book.pnl_now())
            outbox.pnl_dirty = False
        if not outbox.pending:
            return
        items, outbox.pending = outbox.pending, []
        persistence = self._persistence
        persistence.stage_internal(book)
        for item in items:
            if isinstance(item, StepRow):
                s = item.step
                row = persistence.stage_lifecycle(
                    book.name, item.chain_id, item.symbol, s.step, s.message, s.details, item.time
                )
                publisher.publish(book.name, row)
                continue
            spec = spec_of(item)
            topic = spec.topic
            key = str(getattr(item, spec.key)) if spec.key else ""
            of_topic = view.items(topic)
            of_topic[key] = item
            persistence.stage_item(
                book.name, topic, key, item, _finish_rank(book, topic, key, item)
            )
            self._prune(book, topic, of_topic)
            publisher.publish(book.name, item)

    def _prune(self, book: AccountBook, topic: str, items: OrderedDict[str, WireModel]) -> None:
        retained = retained_of(book, topic)
        if retained is not None:
            if len(items) > len(retained):
                for key in [k for k in items if k not in retained]:
                    del items[key]
            return
        bound = BOUND_OF.get(topic)
        if bound is None or len(items) <= bound:
            return
        for key, item in list(items.items()):
            if len(items) <= bound:
                break
            if isinstance(item, Order) and item.status in OPEN_ORDER:
                continue
            del items[key]
            self._persistence.stage_delete(book.name, topic, key)


def _finish_rank(book: AccountBook, topic: str, key: str, item: WireModel) -> int | None:
    """The rank a finished chain or signal is stored with; None for anything else.

    One that already left memory again ranks 0, below every one still kept."""
    if isinstance(item, Chain) and item.status in lifecycle.ACTIVE:
        return None
    if isinstance(item, Signal) and item.status in LIVE_SIGNAL:
        return None
    retained = retained_of(book, topic)
    if retained is None:
        return None
    return retained.rank(key) or 0
