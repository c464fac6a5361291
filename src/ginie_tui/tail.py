"""`ginie-tui tail`: the same feed, headless; one event a line on stdout.

Default lines are for people (`12:00:01.234  #42  SIGNAL_UPDATE  sig-7  symbol=... status=...`);
`--json` prints each event as its protocol JSON, for scripts. Only events are printed (the
start-up snapshot is not); connection changes and problems go to stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any, TextIO

from ginie_protocol import SPECS, encode
from ginie_tui.connection import ConnectionStatus, ConnState
from ginie_tui.feed import Feed
from ginie_tui.store import Change, Store

SCALARS = (str, int, float, bool)


def human_line(event: Any) -> str:
    """One readable line for an event: time, seq, type, key, then its scalar fields."""
    when = datetime.fromtimestamp(event.ts / 1000, UTC).strftime("%H:%M:%S.%f")[:-3]
    seq = f"#{event.seq}" if event.seq is not None else "-"
    field = SPECS[event.type].key
    data = event.data.model_dump()
    key = str(data.pop(field)) if field else ""
    fields = " ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in data.items()
        if isinstance(v, SCALARS)
    )
    return f"{when} {seq:>7} {event.type:<26} {key} {fields}".rstrip()


class OutputClosed(Exception):
    """stdout was closed by the reader (for example `| head`): tail ends quietly."""


class TailPrinter:
    """The FeedListener of `tail`: prints applied events, reports state changes on stderr."""

    def __init__(
        self,
        types: Collection[str] | None,
        as_json: bool,
        out: TextIO = sys.stdout,
        err: TextIO = sys.stderr,
    ) -> None:
        self.types = set(types) if types else None
        self.as_json = as_json
        self.out = out
        self.err = err
        self._state: ConnState | None = None

    def feed_changes(self, changes: list[Change]) -> None:
        for change in changes:
            event = change.event
            if event is None or (self.types is not None and event.type not in self.types):
                continue
            line = encode(event) if self.as_json else human_line(event)
            try:
                self.out.write(line + "\n")
                self.out.flush()
            except BrokenPipeError:
                raise OutputClosed from None

    def feed_status(self, status: ConnectionStatus) -> None:
        if status.state is not self._state:
            self._state = status.state
            self.err.write(f"ginie-tui tail: {status.state}\n")
            self.err.flush()

    def feed_problem(self, text: str) -> None:
        self.err.write(f"ginie-tui tail: {text}\n")
        self.err.flush()


async def run_tail(feed: Feed, printer: TailPrinter) -> int:
    """Print events until interrupted; 2 if the server refused us for good."""
    store = Store()
    await feed.preflight(store)
    try:
        await feed.run(store, printer)
    except OutputClosed:
        return 0
    return 2
