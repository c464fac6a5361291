"""Recorded screens of every group and of each connection state (SVGs in snapshots/)."""

from __future__ import annotations

from typing import Any

import pytest

from ginie_tui.app import ConsoleSettings, GinieApp, make_app
from ginie_tui.clock import ManualClock
from ginie_tui.connection import ConnectionStatus
from ginie_tui.store import Store
from tests.tui.dataset import T0
from tests.tui.fakes import (
    LIVE,
    OFFLINE,
    POLLING,
    RECONNECTING,
    STALE,
    RecordedFeed,
    live_store,
    polled_store,
)

SIZE = (100, 32)


def recorded_app(status: ConnectionStatus = LIVE, store: Store | None = None) -> GinieApp:
    return make_app(
        RecordedFeed(status),
        store=store if store is not None else live_store(),
        clock=ManualClock(T0),
        settings=ConsoleSettings(server="http://127.0.0.1:8765"),
    )


@pytest.mark.parametrize("key", ["1", "2", "3", "4", "5", "6"])
def test_group(snap_compare: Any, key: str) -> None:
    """Each group's tab, LIVE, from the recorded dataset (1 Trading ... 6 System)."""
    assert snap_compare(recorded_app(), press=[key], terminal_size=SIZE)


@pytest.mark.parametrize(
    ("status", "store"),
    [
        (RECONNECTING, live_store),
        (POLLING, polled_store),
        (OFFLINE, Store),
        (STALE, live_store),
    ],
    ids=["reconnecting", "polling", "offline", "stale"],
)
def test_connection_state(snap_compare: Any, status: ConnectionStatus, store: Any) -> None:
    """The indicator and freshness marks in each state other than LIVE (read-only shown)."""
    assert snap_compare(recorded_app(status, store()), terminal_size=SIZE)


def test_narrow_terminal(snap_compare: Any) -> None:
    """At 80x24 the groups stack into one scrolling column."""
    assert snap_compare(recorded_app(), press=["2"], terminal_size=(80, 24))


def test_pending_signals_modal(snap_compare: Any) -> None:
    """s opens the pending signals; a asks, inside the modal, before approving."""
    assert snap_compare(recorded_app(), press=["s", "a"], terminal_size=SIZE)
