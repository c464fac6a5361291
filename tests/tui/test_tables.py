"""The console's one table, the row log: a batch trimmed and ordered once, newest or oldest
first, updated in place and bounded; each row rendered once; scrolled and chosen by keyboard and
mouse; and the app merges the changes of a burst into one change per topic."""

from __future__ import annotations

from typing import Any

from textual.app import App, ComposeResult

from ginie_protocol import Topic
from ginie_tui.app import merge_changes
from ginie_tui.store import Change
from ginie_tui.widgets.base import Ranked
from ginie_tui.widgets.rowlog import RowLog

COLUMNS = (("rank", "Rank", 6), ("text", "Text", 8))


class TableApp(App[None]):
    def __init__(self, max_rows: int, newest_first: bool) -> None:
        super().__init__()
        self.table = RowLog(COLUMNS, max_rows=max_rows, newest_first=newest_first)
        self.chosen: list[str] = []

    def compose(self) -> ComposeResult:
        yield self.table

    def on_row_log_selected(self, message: RowLog.Selected) -> None:
        self.chosen.append(message.key)


def row(n: int, text: str = "") -> tuple[str, list[Any]]:
    return f"k{n}", [Ranked(str(n), n), text or f"t{n}"]


def shown(table: RowLog) -> list[str]:
    """Keys top to bottom."""
    return table.keys


async def test_a_batch_past_the_bound_keeps_the_newest_in_order() -> None:
    app = TableApp(max_rows=5, newest_first=True)
    async with app.run_test():
        table = app.table
        table.upsert_many([row(n) for n in (3, 1, 2)])
        assert shown(table) == ["k3", "k2", "k1"]
        table.upsert_many([row(n) for n in range(4, 40)])
        assert shown(table) == ["k39", "k38", "k37", "k36", "k35"]
        table.upsert_many([row(0)])
        assert shown(table) == ["k39", "k38", "k37", "k36", "k35"], "an older row stays out"
        assert table.get_row_at(0) == ["39", "t39"]


async def test_updates_in_place_move_a_row_only_when_its_rank_changes() -> None:
    app = TableApp(max_rows=10, newest_first=False)
    async with app.run_test():
        table = app.table
        table.upsert_many([row(n) for n in (1, 2, 3)])
        table.upsert("k2", [Ranked("2", 2), "changed"])
        assert shown(table) == ["k1", "k2", "k3"]
        assert table.get_cell("k2", "text") == "changed"
        table.upsert("k1", [Ranked("9", 9), "moved"])
        assert shown(table) == ["k2", "k3", "k1"]
        table.upsert_many([row(5), row(5, "twice")])
        assert shown(table) == ["k2", "k3", "k5", "k1"]
        assert table.get_cell("k5", "text") == "twice", "the later row of a key wins"


async def test_replace_all_and_remove_leave_exactly_the_rows_wanted() -> None:
    app = TableApp(max_rows=3, newest_first=True)
    async with app.run_test():
        table = app.table
        table.upsert_many([row(n) for n in range(1, 4)])
        table.replace_all([row(7), row(2), row(5), row(6)])
        assert shown(table) == ["k7", "k6", "k5"]
        table.remove_key("k6")
        assert shown(table) == ["k7", "k5"]
        table.upsert("k4", row(4)[1])
        assert shown(table) == ["k7", "k5", "k4"]
        assert table.row_count == len(table.keys) == 3


async def test_enter_or_a_click_chooses_a_row() -> None:
    app = TableApp(max_rows=10, newest_first=False)
    async with app.run_test(size=(40, 10)) as pilot:
        table = app.table
        table.upsert_many([row(n) for n in (1, 2, 3)])
        table.focus()
        await pilot.press("down", "enter")
        await pilot.pause()
        assert table.selected_key == "k2" and app.chosen == ["k2"]
        await pilot.click(RowLog, offset=(3, 3))
        await pilot.pause()
        assert app.chosen == ["k2", "k3"] and table.cursor_row == 2
        await pilot.click(RowLog, offset=(3, 0))
        await pilot.pause()
        assert app.chosen == ["k2", "k3"], "the header chooses nothing"


class LogApp(App[None]):
    def __init__(self, max_rows: int) -> None:
        super().__init__()
        self.log_table = RowLog(COLUMNS, max_rows=max_rows)

    def compose(self) -> ComposeResult:
        yield self.log_table


def screen_line(app: App[Any], y: int) -> str:
    """The text on screen at line `y` (the row log fills the screen)."""
    return app.log_table.render_line(y).text  # type: ignore[attr-defined, no-any-return]


async def test_the_row_log_keeps_the_newest_rows_first_and_bounded() -> None:
    app = LogApp(max_rows=5)
    async with app.run_test(size=(40, 10)) as pilot:
        log = app.log_table
        log.upsert_many([row(n) for n in (3, 1, 2)])
        assert log.keys == ["k3", "k2", "k1"]
        log.upsert_many([row(n) for n in range(4, 40)])
        assert log.keys == ["k39", "k38", "k37", "k36", "k35"] and log.row_count == 5
        log.upsert_many([row(0)])
        assert log.keys[-1] == "k35", "an older row stays out"
        log.upsert("k36", [Ranked("36", 36), "changed"])
        assert log.get_cell("k36", "text") == "changed" and log.keys[3] == "k36"
        log.replace_all([row(7), row(2)])
        assert log.keys == ["k7", "k2"] and log.get_row_at(1) == ["2", "t2"]
        await pilot.pause()
        assert screen_line(app, 0).split() == ["Rank", "Text"]
        assert screen_line(app, 1).split() == ["7", "t7"]
        assert screen_line(app, 2).split() == ["2", "t2"]
        assert screen_line(app, 3).strip() == ""


async def test_the_row_log_renders_a_row_once_and_only_a_changed_row_again() -> None:
    app = LogApp(max_rows=50)
    async with app.run_test(size=(40, 10)) as pilot:
        log = app.log_table
        log.upsert_many([row(n) for n in range(1, 5)])
        await pilot.pause()
        k2 = log.render_line(3)  # the header, then k4 (the cursor row), k3, k2, k1
        assert k2.text.split() == ["2", "t2"]
        assert log.render_line(2) is log.render_line(2), "kept, not rendered again"
        log.upsert("k1", [Ranked("1", 1), "new"])
        assert log.render_line(3) is k2, "an unchanged row is not rendered again"
        assert log.render_line(4).text.split() == ["1", "new"]
        log.upsert_many([row(5), row(6)])
        assert log.render_line(5) is k2, "two rows down, the same stripe: the same strip"


async def test_the_row_log_scrolls_with_its_cursor() -> None:
    app = LogApp(max_rows=100)
    async with app.run_test(size=(40, 10)) as pilot:
        log = app.log_table
        log.upsert_many([row(n) for n in range(100)])
        log.focus()
        await pilot.press("down", "down")
        assert log.cursor_row == 2 and log.scroll_offset.y == 0
        await pilot.press("pagedown")
        assert log.cursor_row == 11 and log.scroll_offset.y > 0
        assert screen_line(app, 0).split() == ["Rank", "Text"], "the header stays"
        await pilot.press("end")
        assert log.cursor_row == 99
        await pilot.pause()
        assert screen_line(app, 9).split() == ["0", "t0"]
        await pilot.press("home")
        assert log.cursor_row == 0 and log.scroll_offset.y == 0


async def test_the_row_log_grows_a_row_at_a_time_and_its_scrollbar_follows() -> None:
    """Rows that arrive one by one set the scrollable height (without a layout pass while the
    scrollbar stays as it is); the scrollbar still appears when they pass the height and knows
    how far there is to go."""
    app = LogApp(max_rows=100)
    async with app.run_test(size=(40, 10)) as pilot:
        log = app.log_table
        for n in range(5):
            log.upsert(*row(n))
            await pilot.pause()
        assert not log.show_vertical_scrollbar and log.virtual_size.height == 6
        for n in range(5, 30):
            log.upsert(*row(n))
            await pilot.pause()
        assert log.virtual_size.height == 31 and log.show_vertical_scrollbar
        assert log.vertical_scrollbar.window_virtual_size == 31
        log.focus()
        await pilot.press("end")
        await pilot.pause()
        assert log.cursor_row == 29
        assert screen_line(app, 9).split() == ["0", "t0"], "the oldest row is reachable"


def test_a_burst_merges_into_one_change_per_topic() -> None:
    burst = [
        Change(Topic.LIFECYCLE_EVENT, ("1",)),
        Change(Topic.SIGNAL_UPDATE, ("s-1",)),
        Change(Topic.LIFECYCLE_EVENT, ("2",)),
        Change(Topic.SIGNAL_UPDATE, ("s-1",), source="polled"),
        Change(Topic.PNL_UPDATE),
    ]
    assert merge_changes(burst) == [
        Change(Topic.LIFECYCLE_EVENT, ("1", "2")),
        Change(Topic.SIGNAL_UPDATE, ("s-1",), source="polled"),
        Change(Topic.PNL_UPDATE),
    ]
    with_reset = [Change(Topic.ORDER_UPDATE, ("a",)), Change(Topic.ORDER_UPDATE, (), reset=True)]
    assert merge_changes(with_reset) == [Change(Topic.ORDER_UPDATE, (), "live", reset=True)]
