"""Shared test helpers: waiting on conditions, running a real server in-process or as a
subprocess, and a small WebSocket client that speaks the protocol."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:  # noqa: ASYNC109
    """Poll `predicate` on the event loop until it is true; TimeoutError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            name = getattr(predicate, "__name__", "condition")
            raise TimeoutError(f"{name} still false after {timeout} s")
        await asyncio.sleep(0.005)
