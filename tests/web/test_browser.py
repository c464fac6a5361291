"""`ginie-tui web` in a real browser: Debian's Chromium driven by Playwright against the web
command and a real paper server on 127.0.0.1. The page loads and asks for the token, a wrong
one is refused, the right one shows the console LIVE with the server's data, a key switches
tabs, and a second browser session gets a console of its own that asks again. The token
appears in no page, URL, frame, command line, environment or log. A screenshot is kept in the
test's tmp dir and in `artifacts/`.

Skipped where Chromium or Playwright is missing, unless GINIE_REQUIRE_BROWSER=1 (as in CI),
where it fails instead."""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import ServerProcess

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]")


def sync_playwright() -> Any:
    """Playwright's sync API, or a skip (a failure under GINIE_REQUIRE_BROWSER=1)."""
    missing = None
    if not CHROMIUM.exists():
        missing = f"no browser at {CHROMIUM} (apt-get install chromium)"
    try:
        from playwright.sync_api import sync_playwright as start
    except ImportError:
        missing = missing or "Playwright is not installed (pip install -e '.[test]')"
    if missing is not None:
        if os.environ.get("GINIE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"GINIE_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(missing)
    return start()


class WebProcess:
    """`ginie-tui web --port 0 --url URL` as a child process; `url` once it listens."""

    def __init__(self, server_url: str, log: Path) -> None:
        command = [sys.executable, "-m", "ginie_tui.cli", "web", "--port", "0"]
        self.log = log
        self._stderr = log.open("w")
        self.process = subprocess.Popen(
            [*command, "--url", server_url],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        first = self._queue.get(timeout=20)
        if first is None or not first.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"ginie-tui web printed {first!r}; stderr: {log.read_text()}")
        self.url = first.removeprefix("listening on ")

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def stop(self) -> str:
        """Stop it; everything it printed, stdout and stderr."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self._stderr.close()
        return "".join(self.lines) + self.log.read_text()


@pytest.fixture
def paper(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path / "ginie.db") as server:
        yield server


def process_texts() -> Iterator[bytes]:
    """The command line and environment of every process this user can read."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            for name in ("cmdline", "environ"):
                try:
                    yield (entry / name).read_bytes()
                except OSError:
                    continue


def test_the_console_in_a_browser_asks_for_a_token_and_goes_live(
    tmp_path: Path, paper: ServerProcess
) -> None:
    token = paper.token
    assert token is not None
    web = WebProcess(paper.url, tmp_path / "web.stderr")
    frames: list[str] = []
    """Every frame the pages received."""
    shown_from = 0
    """Where `screen` starts reading `frames` (what came after the last key)."""
    requested: list[str] = []

    def screen() -> str:
        return ANSI.sub("", "".join(frames[shown_from:]))

    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})

            def until(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
                deadline = time.monotonic() + timeout
                while not condition():
                    if time.monotonic() > deadline:
                        page.screenshot(path=str(tmp_path / "failed.png"))
                        raise TimeoutError(f"{what} not shown after {timeout} s: {screen()[-800:]}")
                    page.wait_for_timeout(25)  # lets Playwright deliver the page's events

            def on_websocket(socket: Any) -> None:
                def received(payload: str | bytes) -> None:
                    text = (
                        payload.decode("utf-8", "replace")
                        if isinstance(payload, bytes)
                        else payload
                    )
                    frames.append(text)

                socket.on("framereceived", received)

            page.on("websocket", on_websocket)
            page.on("request", lambda request: requested.append(request.url))
            page.goto(web.url)
            until(lambda: "sign in with your token" in screen(), "the token prompt")
            assert token not in page.content()

            page.click("#terminal")
            page.keyboard.type("ginie_not-a-token-of-anyone")
            page.keyboard.press("Enter")
            until(lambda: "refused the token" in screen(), "the refusal")
            assert "LIVE" not in screen()

            page.keyboard.type(token)
            page.keyboard.press("Enter")
            until(lambda: "LIVE" in screen() and "Trading" in screen(), "the console, LIVE")
            shown_from = len(frames)
            page.keyboard.press("5")
            until(lambda: "watched; keys" in screen() and "USDT" in screen(), "the Market tab")
            until(lambda: "Price" in screen() and "spread" in screen(), "the order book")

            other = browser.new_context().new_page()
            other.on("websocket", on_websocket)
            shown_from = len(frames)
            other.goto(web.url)
            until(lambda: "sign in with your token" in screen(), "a second session's prompt")

            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(tmp_path / "console.png"))
            shutil.copy(tmp_path / "console.png", ARTIFACTS / "web-console.png")
            encoded = token.encode()
            assert not any(encoded in text for text in process_texts()), (
                "the token is in a command line or an environment"
            )
            browser.close()
    finally:
        logs = web.stop()
    assert token not in "".join(frames), "the token was drawn on the page"
    assert not any(token in url for url in requested), "the token is in a URL"
    assert token not in logs, "the token is in the web command's output"
