"""A group of panels shown as one tab: two columns, or one scrolling column when narrow (the
narrow layout is in ginie.tcss, since it depends on the screen's breakpoint class)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Grid
from textual.widgets import TabPane

from ginie_tui.clock import Clock
from ginie_tui.store import Store
from ginie_tui.widgets.base import Panel


class GroupPane(TabPane):
    """A tab of panels. Subclasses build their panels in `panels`."""

    DEFAULT_CSS = """
    GroupPane { padding: 0; }
    GroupPane > Grid {
        grid-size: 2;
        grid-columns: 1fr 1fr;
        grid-rows: 1fr;
        height: 1fr;
    }
    GroupPane .wide { column-span: 2; }
    """

    def __init__(self, title: str, store: Store, clock: Clock, *, id: str) -> None:
        super().__init__(title, id=id)
        self.store = store
        self.clock = clock

    def panels(self) -> list[Panel]:
        raise NotImplementedError

    def compose(self) -> ComposeResult:
        with Grid():
            yield from self.panels()
