"""Coalescing of public market data per connection: latest wins, at most `rate_hz` per key.

A key is `(event type, symbol)`. A frame offered when its key was last sent at least one
interval ago goes out at once; otherwise it waits, replacing any frame already waiting for that
key, until a timer sends it when its interval has passed. So a connection gets every key's
latest data within one interval, and never more than `rate_hz` frames a second per key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

MarketKey = tuple[str, str]
"""`(event type, symbol)`."""

Send = Callable[[bytes], bool]
"""Send one frame on the connection; False when the connection is gone (stop sending)."""


class MarketThrottle:
    """The market coalescing state of one connection."""

    __slots__ = ("_interval", "_last", "_pending", "_send", "_timer")

    def __init__(self, rate_hz: float, send: Send) -> None:
        self._interval = 1.0 / rate_hz
        self._send = send
        self._pending: dict[MarketKey, bytes] = {}
        self._last: dict[MarketKey, float] = {}
        self._timer: asyncio.TimerHandle | None = None

    def offer(self, key: MarketKey, frame: bytes) -> None:
        """Send `frame` now if its key is due, else keep it as the key's latest."""
        now = asyncio.get_running_loop().time()
        last = self._last.get(key)
        if key not in self._pending and (last is None or now - last >= self._interval):
            self._last[key] = now
            self._send(frame)
            return
        self._pending[key] = frame
        if self._timer is None:
            due = (last if last is not None else now) + self._interval - now
            self._timer = asyncio.get_running_loop().call_later(max(due, 0.0), self._flush)

    def keep_only(self, wanted: Callable[[str, str], bool]) -> None:
        """Forget waiting frames of keys the connection no longer wants."""
        for key in [k for k in self._pending if not wanted(*k)]:
            del self._pending[key]

    def stop(self) -> None:
        """Cancel the timer (the connection is gone or the server stops)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _flush(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        next_due: float | None = None
        for key, frame in list(self._pending.items()):
            due = self._last.get(key, now) + self._interval
            if due - now <= 0.001:
                del self._pending[key]
                self._last[key] = now
                if not self._send(frame):
                    return
            else:
                next_due = due if next_due is None else min(next_due, due)
        if next_due is not None:
            self._timer = loop.call_later(next_due - now, self._flush)
