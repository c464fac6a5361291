"""`ginie-tui --demo`: a paper server as a child process, on a free port, with a fresh database.

The child is `python -m ginie_server --port 0 --db <temp dir>/ginie.db --speed 60`: its market
runs 60 times faster than real time (a 1-minute candle a second), so the autopilot scans and
trades from the first seconds. Its first two stdout
lines give the URL and the demo token. Stopping the demo stops the child (SIGTERM, then SIGKILL)
and removes the temporary directory; on Linux the child also gets SIGTERM if the console dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

LISTENING = "listening on "
DEMO_TOKEN = "demo token: "
START_TIMEOUT_S = 20.0
DEMO_SPEED = 60.0
"""How many times faster than real time the demo's market runs (default)."""


class DemoError(Exception):
    """The demo server did not start; the message is one line for the user."""


def _die_with_parent() -> None:
    """Ask Linux to send the child SIGTERM when the console process dies."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


class DemoServer:
    """The demo paper server; use as a context manager, then read `url` and `token`."""

    def __init__(
        self,
        timeout_s: float = START_TIMEOUT_S,
        python: str = sys.executable,
        speed: float = DEMO_SPEED,
    ) -> None:
        self.timeout_s = timeout_s
        self.speed = speed
        self.python = python
        self.url = ""
        self.token = ""
        self.process: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()

    def start(self) -> DemoServer:
        self._dir = tempfile.TemporaryDirectory(prefix="ginie-demo-")
        folder = Path(self._dir.name)
        self._log_path = folder / "server.log"
        with self._log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    self.python,
                    "-m",
                    "ginie_server",
                    "--port",
                    "0",
                    "--db",
                    str(folder / "ginie.db"),
                    "--speed",
                    f"{self.speed:g}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        threading.Thread(target=self._read_stdout, name="ginie-demo-stdout", daemon=True).start()
        try:
            self.url = self._expect(LISTENING)
            self.token = self._expect(DEMO_TOKEN)
        except DemoError:
            self.stop()
            raise
        return self

    def _read_stdout(self) -> None:
        """Hand stdout lines to `_expect`, then keep draining so the child never blocks."""
        assert self.process is not None and self.process.stdout is not None
        for raw in self.process.stdout:
            self._lines.put(raw.decode("utf-8", "replace").rstrip("\r\n"))
        self._lines.put(None)

    def _expect(self, prefix: str) -> str:
        deadline = time.monotonic() + self.timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DemoError(f"the demo server printed no {prefix.strip()!r} line in time")
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise DemoError(f"the demo server exited: {self._last_error()}")
            if line.startswith(prefix):
                return line[len(prefix) :].strip()

    def _last_error(self) -> str:
        assert self.process is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=2)
        try:
            lines = self._log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            lines = []
        last = next((line for line in reversed(lines) if line.strip()), "")
        return last or f"exit status {self.process.returncode}"

    def stop(self) -> None:
        """Stop the child (SIGTERM, SIGKILL after 5 s) and remove its directory."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> DemoServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
