"""Batched rendering: the keyed table puts a batch, trims and orders it once, and the app merges
the changes of a burst into one change per topic."""

from __future__ import annotations

from typing import Any

from textual.app import App, ComposeResult

from ginie_tui.app import merge_changes
from ginie_tui.store import Change
from ginie_tui.widgets.base import KeyedTable, Ranked

COLUMNS = (("rank", "Rank", 6), ("text", "Text", 8))


class TableApp(App[None]):
    def __init__(self, max_rows: int, newest_first: bool) -> None:
        super().__init__()
        self.table = KeyedTable(COLUMNS, max_rows=max_rows, newest_first=newest_first)

    def compose(self) -> ComposeResult:
        yield self.table


def row(n: int, text: str = "") -> tuple[str, list[Any]]:
    return f"k{n}", [Ranked(str(n), n), text or f"t{n}"]


def shown(table: KeyedTable) -> list[str]:
    """Keys top to bottom, read back from the DataTable itself."""
    return [str(table.coordinate_to_cell_key((i, 0)).row_key.value) for i in range(table.row_count)]


async def test_a_batch_past_the_bound_keeps_the_newest_in_order() -> None:
    app = TableApp(max_rows=5, newest_first=True)
    async with app.run_test():
        table = app.table
        table.upsert_many([row(n) for n in (3, 1, 2)])
        assert shown(table) == ["k3", "k2", "k1"]
        table.upsert_many([row(n) for n in range(4, 40)])
        assert shown(table) == ["k39", "k38", "k37", "k36", "k35"]
        assert sorted(table.keys) == sorted(shown(table))
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
        table.remove("k6")
        assert shown(table) == ["k7", "k5"]
        table.upsert("k4", row(4)[1])
        assert shown(table) == ["k7", "k5", "k4"]
        assert table.row_count == len(table.keys) == 3


def test_a_burst_merges_into_one_change_per_topic() -> None:
    burst = [
        Change("LIFECYCLE_EVENT", ("1",)),
        Change("SIGNAL_UPDATE", ("s-1",)),
        Change("LIFECYCLE_EVENT", ("2",)),
        Change("SIGNAL_UPDATE", ("s-1",), source="polled"),
        Change("PNL_UPDATE"),
    ]
    assert merge_changes(burst) == [
        Change("LIFECYCLE_EVENT", ("1", "2")),
        Change("SIGNAL_UPDATE", ("s-1",), source="polled"),
        Change("PNL_UPDATE"),
    ]
    with_reset = [Change("ORDER_UPDATE", ("a",)), Change("ORDER_UPDATE", (), reset=True)]
    assert merge_changes(with_reset) == [Change("ORDER_UPDATE", (), "live", reset=True)]
