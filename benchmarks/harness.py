"""Child processes for the measurements: a bench server and the client process that drives it.

Both run with the repository root on `sys.path` and the same interpreter as the runner. Every
wait is bounded; a server is asked to quit, then terminated, then killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class BenchServer:
    """A running bench server: its process, WebSocket port, control port and token file."""

    variant: str
    process: subprocess.Popen[str]
    port: int
    control_port: int
    tokens: Path | None


@contextlib.contextmanager
def bench_server(variant: str, ready_s: float = 30.0) -> Iterator[BenchServer]:
    """Start `python -m benchmarks.servers VARIANT DB` and wait for its ready line."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{variant}-") as tmp:
        db = Path(tmp) / "bench.db"
        process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.servers", variant, str(db)],
            cwd=ROOT,
            env=child_env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            line = _read_line(process, ready_s)
            words = line.split()
            if len(words) != 3 or words[0] != "ready":
                raise RuntimeError(f"{variant} server did not start: {line!r}")
            tokens = db.with_suffix(".tokens.json")
            yield BenchServer(
                variant,
                process,
                int(words[1]),
                int(words[2]),
                tokens if tokens.exists() else None,
            )
        finally:
            _stop(process)


def _read_line(process: subprocess.Popen[str], limit_s: float) -> str:
    """The process's first stdout line, or an error after `limit_s` seconds."""
    assert process.stdout is not None
    import selectors

    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(limit_s):
            raise TimeoutError("no ready line from the bench server")
    return process.stdout.readline()


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    if process.stdout is not None:
        process.stdout.close()


def run_clients(mode: str, server: BenchServer, *options: str, limit_s: float = 120.0) -> Any:
    """Run `python -m benchmarks.clients` against `server`; its JSON result."""
    command = [
        sys.executable,
        "-m",
        "benchmarks.clients",
        mode,
        server.variant,
        str(server.port),
        str(server.control_port),
        *options,
    ]
    if server.tokens is not None:
        command += ["--tokens", str(server.tokens)]
    done = subprocess.run(
        command,
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=limit_s,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"{mode} clients against {server.variant} failed ({done.returncode}): "
            f"{done.stderr.strip()[-2000:]}"
        )
    if done.stderr.strip():
        print(done.stderr.strip()[-1000:], file=sys.stderr)
    return json.loads(lines[-1])
