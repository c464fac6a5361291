"""What every panel shares: the bordered Panel with its freshness mark, the panels of rows and
of one model, and the formatting of numbers and times (UTC, so recorded screens do not depend
on a zone). The one table widget is `RowLog` (rowlog.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar, cast

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Static

from ginie_protocol import SPECS, Topic, spec_of
from ginie_protocol.events import WireModel
from ginie_tui.clock import Clock
from ginie_tui.connection import ConnectionStatus, ConnState
from ginie_tui.store import Change, Freshness, Store
from ginie_tui.widgets.rowlog import RowLog


def fmt_time(ms: int | None) -> str:
    """HH:MM:SS in UTC, or a dash."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M:%S")


def fmt_ago(ms: int | None, now: int) -> str:
    """A short age such as `12 s`, `4 min`, `3 h`."""
    if ms is None:
        return "never"
    seconds = max(0, (now - ms) // 1000)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def fmt_since(ms: int | None, now: int) -> str:
    """`12 s ago`, or `never`."""
    return "never" if ms is None else f"{fmt_ago(ms, now)} ago"


def fmt_in(ms: int | None, now: int) -> str:
    """A short delay until `ms`, such as `in 40 s`."""
    if ms is None:
        return "-"
    return "now" if ms <= now else f"in {fmt_ago(now, ms)}"


def fmt_num(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def fmt_price(value: float | None) -> str:
    """Prices keep more digits when small (altcoins) and fewer when large."""
    if value is None:
        return "-"
    digits = 2 if abs(value) >= 100 else 4 if abs(value) >= 1 else 6
    return f"{value:,.{digits}f}"


def fmt_signed(value: float | None, digits: int = 2) -> str:
    """A number with its sign, coloured green or red (NO_COLOR drops the colour)."""
    if value is None:
        return "-"
    colour = "green" if value > 0 else "red" if value < 0 else "default"
    return f"[{colour}]{value:+,.{digits}f}[/]"


def freshness_label(fresh: Freshness | None, status: ConnectionStatus, now: int) -> str:
    """A panel's freshness mark: `live`, `polled 12 s ago`, `stale`, or `no data`."""
    if fresh is None:
        return "no data"
    if status.state is ConnState.LIVE:
        return "live"
    if fresh.source == "polled" and status.state is not ConnState.STALE:
        return f"polled {fmt_since(fresh.at_ms, now)}"
    return "stale"


class CommandRequested(Message):
    """A panel asks the app to run a command of SPEC section 3 (the app confirms and sends)."""

    def __init__(
        self, command: str, args: dict[str, Any] | None = None, confirmed: bool = False
    ) -> None:
        super().__init__()
        self.command = command
        self.args = args or {}
        self.confirmed = confirmed
        """True when the sender has asked the user already (the app then does not ask again)."""


class Ranked(str):
    """A table cell text that also carries the value rows are ordered by."""

    rank: Any

    def __new__(cls, text: str, rank: Any) -> Ranked:
        cell = super().__new__(cls, text)
        cell.rank = rank
        return cell


class Panel(Vertical):
    """A bordered panel fed from the store; its border subtitle is its freshness mark.

    Subclasses set TITLE and TOPICS, and implement `refresh_all` (render everything from the
    store) and, when they can do better than that, `apply_change` for one change. The app
    renders in batches: a change then stands for every change of its topic since the last
    batch, and its keys may be many (or no longer in the store, when it evicted them)."""

    DEFAULT_CSS = """
    Panel {
        border: round $primary-darken-1;
        border-title-color: $text;
        border-title-style: bold;
        border-subtitle-color: $text-muted;
        height: 1fr;
        min-height: 6;
        padding: 0 1;
    }
    Panel:focus-within { border: round $accent; }
    """

    TITLE: ClassVar[str] = ""
    TOPICS: ClassVar[frozenset[Topic]] = frozenset()
    """Store topics this panel renders; its freshness mark follows the newest of them."""

    def __init__(self, store: Store, clock: Clock, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store = store
        self.clock = clock
        self.topics: frozenset[Topic] = self.TOPICS
        """This panel's topics: TOPICS, unless the panel's settings decide otherwise."""
        self._mounted = False

    @property
    def ready(self) -> bool:
        """True while mounted with its children in a running app. Changes before the mount are
        covered by the full render on mount, and a closing app has no children to render."""
        return self._mounted and self.is_attached and self.app.is_running

    def on_mount(self) -> None:
        self.border_title = self.TITLE
        self._mounted = True
        self.refresh_all()

    def refresh_all(self) -> None:
        """Render everything this panel shows from the store."""

    def apply_change(self, change: Change) -> None:
        """Render one (merged) change; by default everything is rendered again."""
        self.refresh_all()

    def export_items(self) -> Sequence[WireModel]:
        """The items this panel shows, for the export key: by default the state of its one
        singleton topic, if that is all it shows; panels of rows give their rows' items."""
        if len(self.topics) == 1:
            (topic,) = self.topics
            held = self.store.singleton(topic) if SPECS[topic].key is None else None
            if held is not None:
                return [held]
        return []

    def newest_freshness(self) -> Freshness | None:
        marks = [f for f in (self.store.freshness(t) for t in self.topics) if f is not None]
        return max(marks, key=lambda f: f.at_ms, default=None)

    def show_freshness(self, status: ConnectionStatus, now: int) -> None:
        """Set the freshness mark; an unchanged mark is not set again (setting it repaints the
        whole panel, border included, on every batch)."""
        if self.topics:
            label = freshness_label(self.newest_freshness(), status, now)
            if label != self.border_subtitle:
                self.border_subtitle = label


M = TypeVar("M", bound=WireModel)


class ModelPanel(Panel, Generic[M]):
    """A panel that shows the state of one singleton topic as lines of text.

    Subclasses set TITLE, MODEL (the topic's data model; TOPICS follows from it), EMPTY (what
    shows before the first state arrives), BODY_ID, and `describe`; they may add widgets below
    the text by extending `compose`."""

    DEFAULT_CSS = """
    ModelPanel > .model-body { height: auto; }
    ModelPanel > Horizontal { height: auto; }
    """

    MODEL: ClassVar[type[WireModel]]
    EMPTY: ClassVar[str] = "nothing yet"
    BODY_ID: ClassVar[str] = "model-body"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.TOPICS = frozenset({spec_of(cls.MODEL).topic})

    def compose(self) -> ComposeResult:
        yield Static(id=self.BODY_ID, classes="model-body")

    def refresh_all(self) -> None:
        held = self.store.one(self.MODEL)
        body = self.query_one(f"#{self.BODY_ID}", Static)
        body.update(f"[dim]{self.EMPTY}[/]" if held is None else self.describe(cast(M, held)))

    def describe(self, model: M) -> str:
        """The panel's text (console markup) for the topic's current state."""
        raise NotImplementedError


Columns = tuple[tuple[str, str, int], ...]


class ItemsPanel(Panel):
    """A panel that shows one collection topic as rows, one per item, keyed like the topic.

    Subclasses set TITLE, TOPIC, COLUMNS and `cells`, and may override `make_table` (a RowLog
    of MAX_ROWS rows, newest first, by default). Rows are keyed by the
    topic's key field. A change updates only the rows of the items it names; a reset renders
    everything again."""

    TOPIC: ClassVar[Topic]
    KEY: ClassVar[str]
    """The field that keys TOPIC's items (set from the topic's declaration)."""
    COLUMNS: ClassVar[Columns] = ()
    MAX_ROWS: ClassVar[int] = 300

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        key = SPECS[cls.TOPIC].key
        if key is None:
            raise TypeError(f"{cls.__name__}: {cls.TOPIC} is not a collection topic")
        cls.TOPICS = frozenset({cls.TOPIC})
        cls.KEY = key

    def make_table(self) -> RowLog:
        """The widget that holds the rows."""
        return RowLog(self.COLUMNS, max_rows=self.MAX_ROWS)

    def compose(self) -> ComposeResult:
        self._table = self.make_table()
        yield self._table

    @property
    def table(self) -> RowLog:
        """The row widget, once composed."""
        return self._table

    def shown_items(self) -> list[Any]:
        """The items a full render shows, oldest first."""
        return self.store.items(self.TOPIC)

    def export_items(self) -> Sequence[WireModel]:
        return self.shown_items()

    def row_key(self, item: Any) -> str:
        return str(getattr(item, self.KEY))

    def cells(self, item: Any) -> list[Any]:
        """The cells of one item's row, in COLUMNS order."""
        raise NotImplementedError

    def refresh_all(self) -> None:
        self.table.replace_all((self.row_key(i), self.cells(i)) for i in self.shown_items())

    def apply_change(self, change: Change) -> None:
        if change.reset:
            self.refresh_all()
            return
        held = (self.store.get(self.TOPIC, key) for key in change.keys)
        self.table.upsert_many((self.row_key(i), self.cells(i)) for i in held if i is not None)
