"""Per-address throttle of bad tokens: after too many failures in a window, refuse for a while.

Pure and synchronous: it reads the time from an injected `Clock` and keeps its state in memory.
The auth path asks `blocked_for_ms(address)` before it checks a token, refuses the request
with `REFUSAL_BODY` (HTTP 429, `Retry-After`) while that is positive, and calls
`record_failure(address)` after each bad or missing token.

While an address is blocked, every request from it that needs a token is refused, a good token
included: a guesser learns nothing during the cooldown. Users behind one address share its
fate; the limits below are loose enough for a person mistyping a token.

Memory is bounded: at most `max_addresses` addresses are tracked; past that, expired entries
go first, then the least recently failing unblocked ones, and blocked ones only when every
tracked address is blocked.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from ginie_server.clock import Clock

REFUSAL_STATUS = 429
REFUSAL_BODY = b'{"error": "too_many_attempts"}'


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """How many bad tokens an address may send in `window_ms` before a `cooldown_ms` refusal."""

    max_failures: int = 10
    window_ms: int = 60_000
    cooldown_ms: int = 60_000
    max_addresses: int = 10_000

    def __post_init__(self) -> None:
        if self.max_failures < 1 or self.window_ms < 1 or self.cooldown_ms < 1:
            raise ValueError("throttle limits must be positive")
        if self.max_addresses < 1:
            raise ValueError("the throttle must track at least one address")


@dataclass(slots=True)
class _Record:
    failures: deque[int] = field(default_factory=deque)
    blocked_until: int = 0


class AuthThrottle:
    """Counts bad tokens per client address and says when to refuse that address."""

    def __init__(self, clock: Clock, policy: ThrottlePolicy | None = None) -> None:
        self._clock = clock
        self.policy = policy or ThrottlePolicy()
        self._records: OrderedDict[str, _Record] = OrderedDict()

    @property
    def tracked(self) -> int:
        """How many addresses the throttle holds state for."""
        return len(self._records)

    def blocked_for_ms(self, address: str) -> int:
        """Milliseconds until `address` may try a token again; 0 when it may now."""
        record = self._records.get(address)
        if record is None:
            return 0
        now = self._clock.now_ms()
        if record.blocked_until > now:
            return record.blocked_until - now
        if self._expired(record, now):
            del self._records[address]
        return 0

    def record_failure(self, address: str) -> int:
        """Count one bad or missing token from `address`; returns `blocked_for_ms` after it."""
        now = self._clock.now_ms()
        record = self._records.get(address)
        if record is None:
            self._make_room(now)
            record = self._records[address] = _Record()
        self._records.move_to_end(address)
        if record.blocked_until > now:
            return record.blocked_until - now
        record.failures.append(now)
        horizon = now - self.policy.window_ms
        while record.failures and record.failures[0] <= horizon:
            record.failures.popleft()
        if len(record.failures) >= self.policy.max_failures:
            record.failures.clear()
            record.blocked_until = now + self.policy.cooldown_ms
            return self.policy.cooldown_ms
        return 0

    def _expired(self, record: _Record, now: int) -> bool:
        recent = bool(record.failures) and record.failures[-1] > now - self.policy.window_ms
        return record.blocked_until <= now and not recent

    def _make_room(self, now: int) -> None:
        if len(self._records) < self.policy.max_addresses:
            return
        for address in [a for a, r in self._records.items() if self._expired(r, now)]:
            del self._records[address]
        while len(self._records) >= self.policy.max_addresses:
            unblocked = (a for a, r in self._records.items() if r.blocked_until <= now)
            victim = next(unblocked, None)
            if victim is None:
                self._records.popitem(last=False)
            else:
                del self._records[victim]


def retry_after_seconds(blocked_ms: int) -> int:
    """The `Retry-After` header value for a refusal: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(blocked_ms / 1000))


def refusal_headers(blocked_ms: int) -> list[tuple[str, str]]:
    """Headers of a 429 refusal: JSON body and when to retry."""
    return [
        ("Content-Type", "application/json"),
        ("Retry-After", str(retry_after_seconds(blocked_ms))),
    ]
