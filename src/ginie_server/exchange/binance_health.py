"""The Binance link's health: what its parts say about it, reported to the listener as one
`ApiHealth` whenever one of them changes.

The REST client posts each response's latency and the latest failed call, the user stream
whether it is connected, the REST jobs which of them is failing, and every part each payload
it skipped as malformed. `link_status` is the rule that turns that and the rate limits
into `ok`, `degraded` or `down`.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ginie_protocol.events import ApiHealth, Health
from ginie_server.clock import Clock
from ginie_server.exchange.base import ExchangeListener
from ginie_server.exchange.binance_limits import RateLimits
from ginie_server.exchange.binance_mapping import BinancePayloadError

log = logging.getLogger("ginie_server.exchange.binance")


def link_status(
    rate_limits: RateLimits,
    now: float,
    *,
    rest_error: str | None,
    user_stream_up: bool,
    last_error: str | None,
) -> tuple[Health, str | None]:
    """The link's status and its first cause: `down` during an IP ban; `degraded` during a 429
    back-off, while a REST job the stream depends on fails, while the user stream is down, or
    after a failed call until the next success; else `ok`."""
    problem = (
        rate_limits.describe(now)
        or rest_error
        or (None if user_stream_up else "user data stream not connected")
        or last_error
    )
    if rate_limits.banned(now):
        return "down", problem
    return ("ok" if problem is None else "degraded"), problem


class LinkHealth:
    """The health of one Binance link; nothing is reported once `stopping` is set."""

    def __init__(
        self, exchange: str, rate_limits: RateLimits, clock: Clock, stopping: asyncio.Event
    ) -> None:
        self.listener: ExchangeListener | None = None
        self.latency_ms: float | None = None
        """How long the latest REST response took."""
        self.last_error: str | None = None
        """The latest failed call or malformed payload, until the next successful response."""
        self.rest_error: str | None = None
        """A REST job the stream depends on (reconcile, position refresh) that is failing."""
        self.user_stream_up = False
        self.malformed_payloads = 0
        """Payloads skipped because they did not match Binance's documented shape."""
        self._exchange = exchange
        self._rate_limits = rate_limits
        self._clock = clock
        self._stopping = stopping
        self._unblock_report: asyncio.TimerHandle | None = None

    def report(self) -> None:
        """Tell the listener the health as it is now (see `link_status`)."""
        if self.listener is None or self._stopping.is_set():
            return
        status, problem = link_status(
            self._rate_limits,
            time.monotonic(),
            rest_error=self.rest_error,
            user_stream_up=self.user_stream_up,
            last_error=self.last_error,
        )
        self.listener.on_health(
            ApiHealth(
                exchange=self._exchange,
                status=status,
                latency_ms=self.latency_ms,
                weight_used=self._rate_limits.weight_used,
                weight_limit=self._rate_limits.weight_limit,
                last_error=problem,
                updated_at=self._clock.now_ms(),
            )
        )

    def report_after(self, wait_s: float) -> None:
        """Report again when a back-off of `wait_s` ends, so the listener hears `ok` then even
        if nothing is sent; replaces the report an earlier back-off scheduled."""
        self.cancel_scheduled()
        self._unblock_report = asyncio.get_running_loop().call_later(wait_s, self.report)

    def cancel_scheduled(self) -> None:
        """Drop the report `report_after` scheduled, if any."""
        if self._unblock_report is not None:
            self._unblock_report.cancel()

    def count_malformed(self, error: BinancePayloadError) -> None:
        """A payload skipped: counted, logged with the reason, and shown as `last_error`."""
        self.malformed_payloads += 1
        self.last_error = str(error)
        log.warning("skipped a Binance payload: %s", error)
        self.report()
