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


@dataclass(frozen=True)
class SyncRecord:
    """One `/api/snapshot` call of the feed: when, whether it was a fallback poll, and the
    connection state when it started."""

    at_ms: int
    poll: bool
    state: ConnState


@dataclass
class Recorder:
    """A `FeedListener` that keeps a timeline of what the feed reported."""

    store: Store
    timeline: list[tuple[str, int]] = field(default_factory=list)
    """("event", seq) for each user event applied live, ("snapshot", seq) for each snapshot
    (the store's `seq` just after it), in the order they happened."""
    lifecycle: dict[int, Any] = field(default_factory=dict)
    """Every LIFECYCLE_EVENT applied live, by row id: what this console was shown."""
    states: list[ConnState] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    capture_at: int | None = None
    """When set, the store's state is copied into `captured` as its `seq` reaches this."""
    captured: dict[str, Any] | None = None

    def feed_changes(self, changes: list[Change]) -> None:
        for change in changes:
            event = change.event
            if event is not None and getattr(event, "seq", None) is not None:
                self.timeline.append(("event", event.seq))
                if event.type == "LIFECYCLE_EVENT":
                    self.lifecycle[event.data.id] = event.data
        self.check_capture()

    def snapshot_applied(self) -> None:
        """A REST snapshot went into the store (whether or not it changed anything)."""
        self.timeline.append(("snapshot", self.store.seq))
        self.check_capture()

    def check_capture(self) -> None:
        if self.capture_at is not None and self.captured is None:
            if self.store.seq == self.capture_at:
                self.captured = store_state(self.store)
            elif self.store.seq > self.capture_at:
                self.captured = {"missed": self.store.seq}

    def feed_status(self, status: ConnectionStatus) -> None:
        if not self.states or self.states[-1] is not status.state:
            self.states.append(status.state)

    def feed_problem(self, text: str) -> None:
        self.problems.append(text)


class HeadlessConsole:
    """One console's feed and store, running as a task.

    Every snapshot call the feed makes is recorded in `syncs`; a call made when the feed's
    own schedule says a poll is due is a fallback poll.
    """

    def __init__(self, settings: FeedSettings) -> None:
        self.feed = Feed(settings)
        self.store = Store()
        self.recorder = Recorder(self.store)
        self.syncs: list[SyncRecord] = []
        self._task: asyncio.Task[None] | None = None
        self._sync = self.feed.sync
        self.feed.sync = self._recorded_sync  # type: ignore[method-assign]

    async def _recorded_sync(self, store: Store) -> list[Change]:
        now = self.feed.clock.now_ms()
        poll = self.feed.machine.poll_due(now)
        self.syncs.append(SyncRecord(now, poll, self.feed.status().state))
        changes = await self._sync(store)
        self.recorder.snapshot_applied()
        return changes

    @property
    def polls(self) -> list[SyncRecord]:
        return [s for s in self.syncs if s.poll]

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
        return store_state(self.store)


def store_state(store: Store) -> dict[str, Any]:
    """A store's user topics as plain JSON, in the shape `snapshot_state` gives a snapshot."""
    view: dict[str, Any] = {}
    for topic in USER_TYPES:
        if topic == "LIFECYCLE_EVENT":
            continue
        field_name = KEY_FIELD[topic]
        if field_name is None:
            item = store.singleton(topic)
            view[topic] = None if item is None else item.model_dump(mode="json")
        else:
            view[topic] = sorted(
                (i.model_dump(mode="json") for i in store.items(topic)),
                key=lambda d, f=field_name: str(d[f]),
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
