"""Headless consoles for fault tests: the console's real `Feed` and `Store` (no Textual app),
with a listener that records what the console applied, saw and did.

`HeadlessConsole.audit()` is the seq audit: the user events applied live, in order, must
follow one another without a gap or a repeat, except where a REST snapshot moved the store
forward, and then the next live event must follow that snapshot's `seq`.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from ginie_protocol import KEY_FIELD, USER_TYPES
from ginie_tui.connection import ConnectionStatus, ConnState
from ginie_tui.feed import Feed, FeedSettings
from ginie_tui.store import Change, Store


@dataclass
class Recorder:
    """A `FeedListener` that keeps a timeline of what the feed reported."""

    store: Store
    timeline: list[tuple[str, int]] = field(default_factory=list)
    """("event", seq) for each user event applied live, ("snapshot", seq) for each snapshot."""
    lifecycle: dict[int, Any] = field(default_factory=dict)
    """Every LIFECYCLE_EVENT applied live, by row id: what this console was shown."""
    states: list[ConnState] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def feed_changes(self, changes: list[Change]) -> None:
        snapshot_seen = False
        for change in changes:
            event = change.event
            if event is not None and getattr(event, "seq", None) is not None:
                self.timeline.append(("event", event.seq))
                if event.type == "LIFECYCLE_EVENT":
                    self.lifecycle[event.data.id] = event.data
            elif change.reset and not snapshot_seen:
                snapshot_seen = True
                self.timeline.append(("snapshot", self.store.seq))

    def feed_status(self, status: ConnectionStatus) -> None:
        if not self.states or self.states[-1] is not status.state:
            self.states.append(status.state)

    def feed_problem(self, text: str) -> None:
        self.problems.append(text)


class HeadlessConsole:
    """One console's feed and store, running as a task."""

    def __init__(self, settings: FeedSettings) -> None:
        self.feed = Feed(settings)
        self.store = Store()
        self.recorder = Recorder(self.store)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.feed.run(self.store, self.recorder))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def live(self) -> bool:
        return self.feed.status().live

    def applied_seqs(self) -> list[int]:
        return [seq for kind, seq in self.recorder.timeline if kind == "event"]

    def audit(self) -> list[str]:
        """Breaks in the seq chain: events lost, repeated or applied out of order."""
        problems: list[str] = []
        expected: int | None = None
        for kind, seq in self.recorder.timeline:
            if kind == "snapshot":
                if expected is not None and seq + 1 < expected:
                    problems.append(f"snapshot at {seq} went back from {expected - 1}")
                expected = seq + 1
            elif expected is None or seq != expected:
                problems.append(f"event {seq} applied where {expected} was due")
                expected = seq + 1
            else:
                expected = seq + 1
        return problems

    def state(self) -> dict[str, Any]:
        """The store's user topics as plain JSON, keyed like a snapshot's `data`."""
        view: dict[str, Any] = {}
        for topic in USER_TYPES:
            if topic == "LIFECYCLE_EVENT":
                continue
            if KEY_FIELD[topic] is None:
                item = self.store.singleton(topic)
                view[topic] = None if item is None else item.model_dump(mode="json")
            else:
                items = self.store.items(topic)
                view[topic] = sorted(
                    (i.model_dump(mode="json") for i in items),
                    key=lambda d, f=KEY_FIELD[topic]: str(d[f]),
                )
        return view


def snapshot_state(data: dict[str, Any]) -> dict[str, Any]:
    """A `/api/snapshot` payload in the shape of `HeadlessConsole.state()`."""
    view: dict[str, Any] = {}
    for topic in USER_TYPES:
        if topic == "LIFECYCLE_EVENT":
            continue
        payload = data[topic]
        field_name = KEY_FIELD[topic]
        if field_name is None:
            view[topic] = payload
        else:
            view[topic] = sorted(payload, key=lambda d, f=field_name: str(d[f]))
    return view
