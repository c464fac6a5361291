"""Export: the file name and the writer, and the console's export key (the focused panel's rows
to a CSV file in the current folder). The CLI against a real server is in test_live_trader.py."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from ginie_protocol.events import LifecycleEvent
from ginie_tui.app import ConsoleSettings, GinieApp, make_app
from ginie_tui.clock import ManualClock
from ginie_tui.export import columns, file_name, parse_day, write_rows
from ginie_tui.widgets.rowlog import RowLog
from ginie_tui.widgets.trades import TradesPanel
from tests.harness import wait_for
from tests.tui.dataset import T0
from tests.tui.fakes import LIVE, RecordedFeed, live_store

SIZE = (100, 32)


def test_file_names_and_days() -> None:
    assert file_name("Order chains", T0) == "ginie-order-chains-20251125-194640.csv"
    assert file_name("P&L", T0, "json").startswith("ginie-p-l-")
    assert parse_day("2025-11-25") == 1_764_028_800_000
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        parse_day("25/11/2025")


def test_rows_are_written_as_csv_or_json() -> None:
    event = LifecycleEvent(
        id=3,
        chain_id="C1",
        symbol="BTCUSDT",
        step="sl_placed",
        message="a, b",
        time=T0,
        details={"price": 1.5, "reduce_only": True},
    )
    row = {**event.model_dump(mode="json"), "seq": 9}
    fields = columns(LifecycleEvent, with_seq=True)
    out = io.StringIO()
    assert write_rows([row], fields, "csv", out) == 1
    (written,) = csv.DictReader(io.StringIO(out.getvalue()))
    assert list(written) == [
        "seq",
        "id",
        "chain_id",
        "symbol",
        "step",
        "message",
        "details",
        "time",
    ]
    assert written["message"] == "a, b" and written["seq"] == "9"
    assert json.loads(written["details"]) == {"price": 1.5, "reduce_only": True}
    out = io.StringIO()
    write_rows([row], fields, "json", out)
    assert json.loads(out.getvalue()) == [{f: row[f] for f in fields}]


def app_with(feed: RecordedFeed) -> GinieApp:
    return make_app(feed, store=live_store(), clock=ManualClock(T0), settings=ConsoleSettings())


async def test_the_export_key_writes_the_focused_panel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    feed = RecordedFeed(LIVE)
    app = app_with(feed)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: feed.listener is not None)
        app.set_focus(app.query_one(TradesPanel).query_one(RowLog))
        await pilot.press("e")
        name = "ginie-trades-20251125-194640.csv"
        await wait_for(
            lambda: any(n.message == f"1 row of Trades to {name}" for n in app._notifications)
        )
        (row,) = csv.DictReader(io.StringIO((tmp_path / name).read_text()))
        assert row["trade_id"] == "t-1" and row["price"] == "65010.0"

        app.set_focus(None)
        await pilot.press("e")
        chains = "ginie-order-chains-20251125-194640.csv"
        await wait_for(lambda: (tmp_path / chains).exists())
        (row,) = csv.DictReader(io.StringIO((tmp_path / chains).read_text()))
        assert row["chain_id"] == "ch-1" and row["take_profit_prices"] == "[65650.0]"
