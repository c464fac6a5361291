"""What a user's events last said, topic by topic: the view that snapshots serve."""

from __future__ import annotations

from collections import OrderedDict

from ginie_protocol.events import Chain, Signal, Topic, WireModel
from ginie_server.domain.retention import Retained
from ginie_server.engine.book import AccountBook


def natural(key: object) -> tuple[int, str]:
    """Ids like C9 and C10 in numeric order."""
    text = str(key)
    return len(text), text


class PublishedView:
    """One user's items as their events last said, topic by topic, in publish order."""

    def __init__(self) -> None:
        self._topics: dict[str, OrderedDict[str, WireModel]] = {}

    def get(self, topic: str, key: str = "") -> WireModel | None:
        found = self._topics.get(topic)
        return None if found is None else found.get(key)

    def items(self, topic: str) -> OrderedDict[str, WireModel]:
        """The topic's items by key, in publish order: the view's own dict, changed in place."""
        return self._topics.setdefault(topic, OrderedDict())

    def load(self, topic: str, items: OrderedDict[str, WireModel]) -> None:
        self._topics[topic] = items


def retained_of(book: AccountBook, topic: str) -> Retained[Chain] | Retained[Signal] | None:
    """The in-memory set bounding a published collection, if it is bounded so."""
    if topic == Topic.CHAIN_UPDATE:
        return book.chains
    if topic == Topic.SIGNAL_UPDATE:
        return book.autopilot.signals
    return None
