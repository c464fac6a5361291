"""Binance's request budget as its REST responses report it, and the back-off it demands.

A pure state machine: `on_response` takes each response's status and headers (with the time
on a monotonic clock, in seconds), and `wait_s` says how long no request may go out. Binance
counts request weight per minute (`X-MBX-USED-WEIGHT-1M`) and orders per interval
(`X-MBX-ORDER-COUNT-10S`, `-1M`); past a limit it answers HTTP 429, and an IP that goes on
calling is banned with HTTP 418. Both answers carry `Retry-After` (seconds): until then the
caller sends nothing at all, so a 429 never grows into a ban.

`backoff` is the jittered exponential delay of the link's retries and reconnects.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

ORDER_COUNT_PREFIX = "X-MBX-ORDER-COUNT-"
WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
RATE_LIMITED = 429
BANNED = 418
DEFAULT_RETRY_AFTER_S = {RATE_LIMITED: 60.0, BANNED: 120.0}
"""How long to hold back when a 429 or 418 comes without a usable `Retry-After`."""


def backoff(attempt: int, bounds: tuple[float, float]) -> float:
    """A jittered exponential delay: between `low` and `low * 2**attempt`, at most `high`."""
    low, high = bounds
    return random.uniform(low, min(high, low * 2**attempt))


def _retry_after(value: str | None, default: float) -> float:
    """`Retry-After` in seconds (Binance sends whole seconds; fractions are accepted)."""
    try:
        seconds = float(value) if value is not None else default
    except ValueError:
        return default
    return seconds if math.isfinite(seconds) and seconds >= 0 else default


@dataclass(slots=True)
class RateLimits:
    """What Binance last said about the request budget, and any back-off in force."""

    weight_used: int = 0
    weight_limit: int = 2400
    order_counts: dict[str, int] = field(default_factory=dict)
    """Orders counted per interval (`10S`, `1M`), as the latest order response said."""
    blocked_until: float = 0.0
    """Monotonic time before which no request may be sent."""
    blocked_by: int | None = None
    """The status (429 or 418) that imposed the latest back-off."""

    def on_response(self, status: int, headers: Mapping[str, str], now: float) -> None:
        """Read one response: the weight and order counts it reports, and a 429 or 418."""
        for key, value in headers.items():
            name = key.upper()
            if name == WEIGHT_HEADER and value.isdigit():
                self.weight_used = int(value)
            elif name.startswith(ORDER_COUNT_PREFIX) and value.isdigit():
                self.order_counts[name.removeprefix(ORDER_COUNT_PREFIX)] = int(value)
        if status in DEFAULT_RETRY_AFTER_S:
            wait = _retry_after(headers.get("Retry-After"), DEFAULT_RETRY_AFTER_S[status])
            if not self.banned(now):
                self.blocked_by = status
            self.blocked_until = max(self.blocked_until, now + wait)

    def wait_s(self, now: float) -> float:
        """Seconds until a request may be sent again (0 when it may now)."""
        return max(0.0, self.blocked_until - now)

    def banned(self, now: float) -> bool:
        """Whether an IP ban (418) is in force."""
        return self.blocked_by == BANNED and self.wait_s(now) > 0

    def describe(self, now: float) -> str | None:
        """The back-off in force, readable, or None when requests may go out."""
        wait = self.wait_s(now)
        if wait <= 0:
            return None
        what = "IP banned" if self.blocked_by == BANNED else "rate limited"
        return f"{what} (HTTP {self.blocked_by}): no requests for {math.ceil(wait)} s"
