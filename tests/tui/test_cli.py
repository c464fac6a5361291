"""The console's command line: one-line errors with exit 2, `tail --json` against a server
subprocess, and `--demo`, whose child server stops when the console quits."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from ginie_protocol import Topic, decode_server
from ginie_tui.app import GinieApp
from ginie_tui.cli import main
from ginie_tui.connection import ConnState
from ginie_tui.widgets.indicator import ConnectionIndicator
from tests.harness import ServerProcess, wait_for


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--poll-interval", "0"], "--poll-interval: must be more than 0"),
        (["--nope"], "unrecognized arguments: --nope"),
        (["--url", "ftp://x", "--token", "t"], "--url must start with http"),
        (["--token", "t", "--ca", "/no/such.pem"], "--ca /no/such.pem: no such file"),
        (["--token", "t", "--strategies", "/no/such.json"], "--strategies /no/such.json"),
        (["tail", "--types", "NOPE", "--token", "t"], "unknown event type 'NOPE'"),
        (["tail", "--json", "--extra"], "unrecognized arguments: --extra"),
        (["--token", "t", "--speed", "10"], "--speed needs --demo"),
        (["--bell", "fills"], "unknown alert kind 'fills'"),
        (["--liquidation-alert", "-1"], "--liquidation-alert: must be more than 0"),
        (["export"], "the following arguments are required: what"),
        (["export", "positions"], "invalid choice: 'positions'"),
        (["export", "trades", "--since", "yesterday"], "not a date of the form YYYY-MM-DD"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exit_code(argv) == 2
    assert says in one_error_line(capsys)


def exit_code(argv: list[str]) -> int:
    """main's return value, or the code argparse exits with."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def test_no_token_is_one_line(capsys: pytest.CaptureFixture[str], monkeypatch: Any) -> None:
    monkeypatch.delenv("GINIE_TOKEN", raising=False)
    assert main(["--url", "http://127.0.0.1:8765"]) == 2
    assert "no token" in one_error_line(capsys)


def test_an_unreachable_server_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--url", "http://127.0.0.1:1", "--token", "t"]) == 2
    assert "cannot reach http://127.0.0.1:1" in one_error_line(capsys)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with ServerProcess(tmp_path_factory.mktemp("srv") / "ginie.db") as proc:
        yield proc


def test_a_refused_token_is_one_line(server: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--url", server.url, "--token", "not-the-token"]) == 2
    assert "refused the token" in one_error_line(capsys)


async def test_tail_json_prints_one_event_a_line(server: Any) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ginie_tui",
        "tail",
        "--json",
        "--types",
        "FUTURES_MARK_PRICE_UPDATE,SIGNAL_UPDATE",
        "--url",
        server.url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "GINIE_TOKEN": server.token},
    )
    try:
        assert process.stdout is not None
        events = []
        for _ in range(3):
            line = await asyncio.wait_for(process.stdout.readline(), 15)
            events.append(decode_server(line))
        assert {e.type for e in events} == {Topic.FUTURES_MARK_PRICE_UPDATE}
        assert all(e.data.mark_price > 0 for e in events)
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)


def test_tail_human_lines_and_closed_output(server: Any, tmp_path: Path) -> None:
    import subprocess

    result = subprocess.run(
        f"{sys.executable} -m ginie_tui tail --types FUTURES_MARK_PRICE_UPDATE "
        f"--url {server.url} --token {server.token} | head -2",
        shell=True,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all("FUTURES_MARK_PRICE_UPDATE" in x for x in lines), result
    assert "mark_price=" in lines[0]
    assert "Traceback" not in result.stderr


def children() -> set[int]:
    pid = os.getpid()
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text()
        found |= {int(p) for p in text.split()}
    return found


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_demo_starts_a_child_server_and_stops_it_on_quit() -> None:
    """The demo's server runs its market at x60, and the console says so."""
    before = children()
    seen: dict[str, Any] = {}

    async def drive(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, GinieApp)
        await wait_for(lambda: app.status.state is ConnState.LIVE, timeout=15)
        seen["children"] = children() - before
        seen["server"] = app.settings.server
        seen["banner"] = str(app.query_one(ConnectionIndicator).render())
        await pilot.press("q")

    def run_app(app: GinieApp) -> None:
        app.run(headless=True, size=(100, 32), auto_pilot=drive)

    assert main(["--demo"], run_app=run_app) == 0
    assert seen["server"].startswith("http://127.0.0.1:")
    assert "paper demo, market x60" in seen["banner"]
    assert len(seen["children"]) == 1
    (child,) = seen["children"]
    assert not Path(f"/proc/{child}").exists(), "the demo server outlived the console"
