"""Lifecycle events: each step of each chain, newest first, appended as they happen."""

from __future__ import annotations

from typing import Any

from ginie_protocol.events import LifecycleEvent, Topic
from ginie_tui.widgets.base import ItemsPanel, Ranked, fmt_time

SHOWN = 300
"""Rows on screen; the store keeps up to 10,000 events."""


class LifecyclePanel(ItemsPanel):
    TITLE = "Lifecycle events"
    TOPIC = Topic.LIFECYCLE_EVENT
    MAX_ROWS = SHOWN
    COLUMNS = (
        ("time", "Time", 8),
        ("step", "Step", 12),
        ("message", "Message", 30),
        ("symbol", "Symbol", 8),
        ("chain", "Chain", 10),
    )

    def shown_items(self) -> list[LifecycleEvent]:
        return self.store.items(self.TOPIC)[-SHOWN:]

    def cells(self, event: LifecycleEvent) -> list[Any]:
        return [
            Ranked(fmt_time(event.time), (event.time, event.id)),
            event.step,
            event.message,
            event.symbol,
            event.chain_id,
        ]
