"""The connection's state machine, reconnect backoff and fallback-poll schedule. Pure: no I/O.

The feed reports what happened (connected, a message arrived, dropped, a retry was scheduled,
a poll finished); `ConnectionMachine.status(now)` derives what the console shows:

- LIVE: the WebSocket is subscribed and something arrived within the ping timeout.
- STALE: the WebSocket is open but nothing (not even a pong) arrived past the ping timeout.
- RECONNECTING: the socket dropped; retries run with backoff; fallback polling has not begun.
- POLLING: not LIVE again within the grace period, so the REST fallback is on: it shows the last
  successful sync and the next poll, and the retries go on underneath.
- OFFLINE: nothing to show from the server: never synced, or the feed stopped (for example the
  server refused the token).

Poll schedule: the first poll comes `grace` after a drop, then one every `interval`; none while
LIVE; and never sooner than `interval` after the previous poll, even across several drops.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum


class ConnState(StrEnum):
    LIVE = "LIVE"
    RECONNECTING = "RECONNECTING"
    POLLING = "POLLING"
    OFFLINE = "OFFLINE"
    STALE = "STALE"


@dataclass(frozen=True)
class ConnectionStatus:
    """What the connection indicator shows; times are epoch milliseconds."""

    state: ConnState
    latency_ms: float | None = None
    attempt: int = 0
    next_retry_at: int | None = None
    last_sync_at: int | None = None
    next_poll_at: int | None = None
    detail: str = ""

    @property
    def live(self) -> bool:
        """Commands may be sent only in this state."""
        return self.state is ConnState.LIVE


class Backoff:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base * 2**n)).

    The random source is injectable (and seedable) so a schedule can be replayed in a test.
    """

    def __init__(
        self, base_s: float = 0.5, cap_s: float = 30.0, rng: random.Random | None = None
    ) -> None:
        if base_s <= 0 or cap_s < base_s:
            raise ValueError("need 0 < base <= cap")
        self.base_s = base_s
        self.cap_s = cap_s
        self._rng = rng if rng is not None else random.Random()

    def ceiling(self, attempt: int) -> float:
        """The longest wait attempt `attempt` (0-based) may draw."""
        return min(self.cap_s, self.base_s * 2 ** min(attempt, 32))

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry `attempt` (0-based)."""
        return self._rng.uniform(0.0, self.ceiling(attempt))


class ConnectionMachine:
    """Tracks the connection and derives its status; the feed drives it, the console reads it."""

    def __init__(
        self,
        poll_interval_ms: int = 60_000,
        grace_ms: int = 5_000,
        stale_after_ms: int = 30_000,
    ) -> None:
        if poll_interval_ms <= 0 or grace_ms < 0 or stale_after_ms <= 0:
            raise ValueError("intervals must be positive")
        self.poll_interval_ms = poll_interval_ms
        self.grace_ms = grace_ms
        self.stale_after_ms = stale_after_ms
        self._live = False
        self._stopped: str | None = None
        self._latency_ms: float | None = None
        self._last_message_at: int | None = None
        self._dropped_at: int | None = None
        self._attempt = 0
        self._next_retry_at: int | None = None
        self._last_poll_at: int | None = None
        self._last_sync_at: int | None = None
        self._poll_error = ""

    # ------------------------------------------------------------------ inputs

    def connected(self, now: int, latency_ms: float | None = None) -> None:
        """The socket is open and subscribed."""
        self._live = True
        self._stopped = None
        self._attempt = 0
        self._next_retry_at = None
        self._dropped_at = None
        self._poll_error = ""
        self._last_message_at = now
        self._last_sync_at = now
        if latency_ms is not None:
            self._latency_ms = latency_ms

    def message(self, now: int, latency_ms: float | None = None) -> None:
        """Something arrived on the socket (a frame or a pong)."""
        self._last_message_at = now
        if self._live:
            self._last_sync_at = now
        if latency_ms is not None:
            self._latency_ms = latency_ms

    def dropped(self, now: int) -> None:
        """The socket closed or could not be opened."""
        if self._live or self._dropped_at is None:
            self._dropped_at = now
        self._live = False

    def retry_scheduled(self, attempt: int, at: int) -> None:
        """Retry number `attempt` (1-based) will start at `at`."""
        self._attempt = attempt
        self._next_retry_at = at

    def synced(self, now: int) -> None:
        """A snapshot was applied (the start-up snapshot or a RESYNC one)."""
        self._last_sync_at = now

    def polled(self, now: int, error: str = "") -> None:
        """A fallback poll finished, successfully when `error` is empty."""
        self._last_poll_at = now
        self._poll_error = error
        if not error:
            self._last_sync_at = now

    def stopped(self, reason: str) -> None:
        """The feed gave up for good (for example a refused token)."""
        self._live = False
        self._stopped = reason

    # ------------------------------------------------------------------ schedule

    @property
    def last_poll_at(self) -> int | None:
        """When the last fallback poll finished (successfully or not), or None before any."""
        return self._last_poll_at

    def next_poll_at(self) -> int | None:
        """When the next fallback poll is due, or None while LIVE (or before any drop)."""
        if self._live or self._dropped_at is None or self._stopped is not None:
            return None
        first = self._dropped_at + self.grace_ms
        if self._last_poll_at is None:
            return first
        return max(first, self._last_poll_at + self.poll_interval_ms)

    def poll_due(self, now: int) -> bool:
        due = self.next_poll_at()
        return due is not None and now >= due

    # ------------------------------------------------------------------ output

    def status(self, now: int) -> ConnectionStatus:
        if self._stopped is not None:
            return ConnectionStatus(
                ConnState.OFFLINE, last_sync_at=self._last_sync_at, detail=self._stopped
            )
        if self._live:
            silent = self._last_message_at is None or (
                now - self._last_message_at > self.stale_after_ms
            )
            state = ConnState.STALE if silent else ConnState.LIVE
            return ConnectionStatus(
                state, latency_ms=self._latency_ms, last_sync_at=self._last_sync_at
            )
        if self._dropped_at is None:
            return ConnectionStatus(ConnState.OFFLINE, detail="connecting")
        next_poll = self.next_poll_at()
        in_grace = now < self._dropped_at + self.grace_ms
        state = ConnState.RECONNECTING if in_grace else ConnState.POLLING
        return ConnectionStatus(
            state,
            attempt=self._attempt,
            next_retry_at=self._next_retry_at,
            last_sync_at=self._last_sync_at,
            next_poll_at=next_poll,
            detail=self._poll_error,
        )
