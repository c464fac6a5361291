"""RowLog: the console's one table widget: keyed rows, ordered by rank, newest first by default.

A DataTable re-renders every visible cell whenever anything in it changes (its render caches are
keyed by one update counter): about 11 ms a frame for 17 rows at 200 columns. A RowLog renders
each row once into a Strip and keeps it, so a new row costs the rendering of that row alone and
a frame costs copying cached strips. It is a Line API widget (ScrollView + `render_line`) that
looks like a DataTable of rows: a bold header line, zebra stripes, a row cursor, fixed
column widths, one line a row. Rows are keyed, ordered by their first cell's rank (a `Ranked`),
highest first (or lowest first, `newest_first=False`), updated in place by key and bounded:
past `max_rows` the rows shown last go. Enter or a click on a row posts `RowLog.Selected`.

Limits: rows are one line; cells are markup strings, cut at their column's width; there is no
horizontal scrolling and no sorting other than by rank.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

CELL_PADDING = 1
"""Spaces on each side of a cell, as in DataTable."""
CURSOR = 2
"""Looks of a row: 0 and 1 are the two zebra stripes, CURSOR + stripe the row under the cursor."""


def _rank(cells: Sequence[Any]) -> Any:
    return getattr(cells[0], "rank", cells[0])


class RowLog(ScrollView, can_focus=True):
    """Keyed, bounded rows, highest rank first, each rendered once (see the module docstring)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "rowlog--header",
        "rowlog--even-row",
        "rowlog--odd-row",
        "rowlog--cursor",
    }
    DEFAULT_CSS = """
    RowLog {
        background: $surface;
        color: $foreground;
        height: 1fr;
        scrollbar-size-horizontal: 0;
        &:focus {
            background-tint: $foreground 5%;
            & > .rowlog--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
            & > .rowlog--header { background-tint: $foreground 5%; }
        }
        &:dark > .rowlog--even-row { background: $surface-darken-1 40%; }
        & > .rowlog--header { text-style: bold; background: $panel; color: $foreground; }
        &:ansi > .rowlog--header { background: ansi_bright_blue; color: ansi_default; }
        & > .rowlog--even-row { background: $surface-lighten-1 50%; }
        & > .rowlog--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "edge(-1)", "Top", show=False),
        Binding("end", "edge(1)", "Bottom", show=False),
        Binding("enter", "select", "Select", show=False),
    ]

    cursor_row: reactive[int] = reactive(0, init=False)
    """The highlighted row, counted from the top."""

    class Selected(Message):
        """The row of `key` was chosen (enter, or a click)."""

        def __init__(self, row_log: RowLog, key: str) -> None:
            super().__init__()
            self.row_log = row_log
            self.key = key

        @property
        def control(self) -> RowLog:
            return self.row_log

    def __init__(
        self,
        columns: Sequence[tuple[str, str, int]],
        max_rows: int = 200,
        newest_first: bool = True,
        *,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self._newest_first = newest_first
        self._columns = list(columns)
        self._column_index = {key: i for i, (key, _, _) in enumerate(self._columns)}
        self._max_rows = max_rows
        self._cells: dict[str, list[Any]] = {}
        """Every row held, by key."""
        self._order: list[tuple[Any, str]] = []
        """(rank, key) of every row, lowest rank first; shown reversed when newest first."""
        self._strips: dict[tuple[str, int], Strip] = {}
        """Rendered rows by (key, look); emptied when the width, focus or theme changes."""
        self._header: Strip | None = None
        self._blank: Strip | None = None
        """The line below the last row."""
        self._drawn_for: tuple[Any, ...] = ()
        self._frame = (0, 0)
        """(width, scroll offset) of the frame being rendered."""
        self._styles: dict[str, Style] = {}
        self._width = sum(width + 2 * CELL_PADDING for _, _, width in self._columns)

    # ------------------------------------------------------------------ reading

    @property
    def keys(self) -> list[str]:
        """Keys top to bottom."""
        shown = reversed(self._order) if self._newest_first else iter(self._order)
        return [key for _, key in shown]

    def _key_at(self, index: int) -> str:
        """The key of the row `index` lines from the top."""
        return self._order[-1 - index if self._newest_first else index][1]

    @property
    def selected_key(self) -> str | None:
        """The key of the row under the cursor, or None when there are no rows."""
        return self._key_at(self.cursor_row) if self._order else None

    @property
    def row_count(self) -> int:
        return len(self._order)

    def get_row_at(self, index: int) -> list[Any]:
        """The cells of the row `index` lines from the top."""
        return self._cells[self._key_at(index)]

    def get_cell(self, key: str, column: str) -> Any:
        return self._cells[key][self._column_index[column]]

    # ------------------------------------------------------------------ writing

    def upsert(self, key: str, cells: Sequence[Any]) -> None:
        self._apply([(key, cells)], keep_only=False)

    def upsert_many(self, rows: Iterable[tuple[str, Sequence[Any]]]) -> None:
        """Add or update rows (a later row of the same key wins), then trim to the bound."""
        self._apply(rows, keep_only=False)

    def replace_all(self, rows: Iterable[tuple[str, Sequence[Any]]]) -> None:
        """Hold exactly `rows` (rows that did not change keep their rendering)."""
        self._apply(rows, keep_only=True)

    def _apply(self, rows: Iterable[tuple[str, Sequence[Any]]], keep_only: bool) -> None:
        seen: set[str] = set()
        changed = False
        for key, row in rows:
            cells = list(row)
            seen.add(key)
            held = self._cells.get(key)
            if held is not None:
                if held == cells and _rank(held) == _rank(cells):
                    continue
                self._forget(key)
            self._cells[key] = cells
            bisect.insort(self._order, (_rank(cells), key))
            changed = True
        if keep_only:
            for key in [key for key in self._cells if key not in seen]:
                self._forget(key)
                changed = True
        while len(self._order) > self._max_rows:
            self._forget(self._order[0 if self._newest_first else -1][1])
        if changed:
            self.cursor_row = min(self.cursor_row, max(0, len(self._order) - 1))
            self._fit_rows()
            self.refresh()

    def _fit_rows(self) -> None:
        """Make the scrollable height the rows held plus the header.

        Setting `virtual_size` lays out the whole screen, a frame's worth of work that a new row
        does not need: the log's own size is fixed by its container. So the height is set
        without layout, and the scrollbar told, unless the scrollbar has to appear or go (as
        `overflow-y: auto` decides; before the first layout the container has no height, so
        that path is taken)."""
        size = Size(self._width, len(self._order) + 1)
        if size == self.virtual_size:
            return
        wants_bar = size.height > self.container_size.height
        if wants_bar != self.show_vertical_scrollbar:
            self.virtual_size = size
            return
        self.set_reactive(RowLog.virtual_size, size)
        if wants_bar:
            self.vertical_scrollbar.window_virtual_size = size.height
        self.scroll_y = self.validate_scroll_y(self.scroll_y)

    def remove_key(self, key: str) -> None:
        """Take the row of `key` out, if it is held."""
        if key in self._cells:
            self._forget(key)
            self.cursor_row = min(self.cursor_row, max(0, len(self._order) - 1))
            self._fit_rows()
            self.refresh()

    def _forget(self, key: str) -> None:
        cells = self._cells.pop(key)
        at = bisect.bisect_left(self._order, (_rank(cells), key))
        del self._order[at]
        for look in (0, 1, CURSOR, CURSOR + 1):
            self._strips.pop((key, look), None)

    # ------------------------------------------------------------------ rendering

    def render_lines(self, crop: Region) -> list[Strip]:
        """Read the width, scroll offset and drawing state once a frame, not once a line."""
        self._check_drawing_state()
        self._frame = (self.scrollable_content_region.width, self.scroll_offset.y)
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width, top = self._frame
        if y == 0:
            if self._header is None:
                labels = [label for _, label, _ in self._columns]
                self._header = self._line(labels, self._styles["header"], width)
            return self._header
        index = top + y - 1
        if index >= len(self._order):
            if self._blank is None:
                self._blank = Strip.blank(width, self._styles["blank"])
            return self._blank
        key = self._key_at(index)
        stripe = index % 2
        look = CURSOR + stripe if index == self.cursor_row else stripe
        strip = self._strips.get((key, look))
        if strip is None:
            style = self._styles["odd" if stripe else "even"]
            if look >= CURSOR:
                style += self._styles["cursor"]
            strip = self._line(self._cells[key], style, width)
            self._strips[(key, look)] = strip
        return strip

    def _check_drawing_state(self) -> None:
        """Forget the rendered rows when what they were drawn for changed."""
        state = (self.scrollable_content_region.width, self.has_focus, self.app.theme)
        if state != self._drawn_for:
            self._drawn_for = state
            self._strips.clear()
            self._header = self._blank = None
            self._styles = {
                name: self.get_component_rich_style(f"rowlog--{part}")
                for name, part in (
                    ("header", "header"),
                    ("even", "even-row"),
                    ("odd", "odd-row"),
                    ("cursor", "cursor"),
                )
            }
            self._styles["blank"] = self.rich_style

    def _line(self, cells: Sequence[Any], style: Style, width: int) -> Strip:
        pad = " " * CELL_PADDING
        line = Text(no_wrap=True, end="")
        for (_, _, column_width), cell in zip(self._columns, cells, strict=True):
            text = Text.from_markup(cell) if isinstance(cell, str) else Text(str(cell))
            text.truncate(column_width, overflow="ellipsis", pad=True)
            line.append(pad)
            line.append_text(text)
            line.append(pad)
        segments = list(line.render(self.app.console))
        strip = Strip(Segment.apply_style(segments, style), line.cell_len)
        return strip.adjust_cell_length(width, style)

    def on_mount(self) -> None:
        self.virtual_size = Size(self._width, len(self._order) + 1)

    def on_resize(self) -> None:
        self._drawn_for = ()

    # ------------------------------------------------------------------ keyboard

    def watch_cursor_row(self) -> None:
        top = self.scroll_offset.y
        visible = max(1, self.scrollable_content_region.height - 1)
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False)
        elif self.cursor_row >= top + visible:
            self.scroll_to(y=self.cursor_row - visible + 1, animate=False)
        self.refresh()

    def action_cursor(self, step: int) -> None:
        self.cursor_row = max(0, min(len(self._order) - 1, self.cursor_row + step))

    def action_page(self, step: int) -> None:
        self.action_cursor(step * max(1, self.scrollable_content_region.height - 1))

    def action_edge(self, step: int) -> None:
        self.cursor_row = 0 if step < 0 else max(0, len(self._order) - 1)

    def action_select(self) -> None:
        key = self.selected_key
        if key is not None:
            self.post_message(self.Selected(self, key))

    def on_click(self, event: events.Click) -> None:
        """A click on a row puts the cursor there and selects it (the header does nothing)."""
        index = self.scroll_offset.y + event.y - 1
        if event.y >= 1 and 0 <= index < len(self._order):
            self.cursor_row = index
            self.action_select()
