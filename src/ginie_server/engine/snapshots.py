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
from ginie_server.engine.outbox import Account
from ginie_server.sources import SnapshotProvider

ENGINE_TOPICS: tuple[Topic, ...] = tuple(
    topic
    for topic, spec in SPECS.items()
    if spec.scope == "user" and topic != Topic.LIFECYCLE_EVENT
)
"""Every user topic the engine serves a snapshot of (the hub serves LIFECYCLE_EVENT)."""

FirstState = Callable[[AccountBook, Topic], WireModel]
"""A singleton topic's first state for a user who has none published."""


def by_name(key: str) -> tuple[int, str]:
    """Topics keyed by name: modes in their own order, anything else alphabetically."""
    order: tuple[str, ...] = modes.MODES
    return (order.index(key), key) if key in order else (len(order), key)


def snapshot_providers(
    accounts: Mapping[str, Account],
    new_book: Callable[[str], AccountBook],
    first_state: FirstState,
) -> dict[str, SnapshotProvider]:
    """One provider per engine topic."""
    return {topic: _provider(topic, accounts, new_book, first_state) for topic in ENGINE_TOPICS}


def _provider(
    topic: Topic,
    accounts: Mapping[str, Account],
    new_book: Callable[[str], AccountBook],
    first_state: FirstState,
) -> SnapshotProvider:
    spec = SPECS[topic]
    singleton = spec.key is None

    def provide(user: str) -> WireModel | list[Any]:
        account = accounts.get(user)
        if account is None:
            return first_state(new_book(user), topic) if singleton else []
        items = account.view.items(topic)
        if singleton:
            return items.get("") or first_state(account.book, topic)
        if spec.sort is not None:
            return list(items.values())
        return [items[key] for key in sorted(items, key=by_name)]

    return provide
