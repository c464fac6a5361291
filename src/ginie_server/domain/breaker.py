"""The circuit breaker: stops new entries after too many losses, cools down, resets.

It trips when the consecutive losing chains, the net loss of the UTC day or the net loss of
the clock hour reach their limits (from the autopilot rules). A tripped breaker blocks new
entries; once the account is flat the cooldown starts (state `cooling_down`, with `resets_at`),
and when it has passed the breaker is `ok` again with the loss streak cleared. The user may
reset it at any time. With a cooldown of zero it resets as soon as the account is flat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ginie_protocol.events import CircuitBreaker

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@dataclass(slots=True)
class Breaker:
    """The breaker's public state plus the running net P&L of the current hour and day."""

    view: CircuitBreaker
    hour_key: int
    day_key: int
    hour_net: float = 0.0
    day_net: float = 0.0

    @classmethod
    def new(
        cls,
        now: int,
        max_consecutive_losses: int,
        max_daily_loss: float,
        max_hourly_loss: float,
        cooldown_minutes: float,
    ) -> Breaker:
        view = CircuitBreaker(
            state="ok",
            max_consecutive_losses=max_consecutive_losses,
            max_daily_loss=max_daily_loss,
            max_hourly_loss=max_hourly_loss,
            cooldown_minutes=cooldown_minutes,
        )
        return cls(view, now // HOUR_MS, now // DAY_MS)

    def to_dict(self) -> dict[str, Any]:
        return {
            "view": self.view.model_dump(),
            "hour_key": self.hour_key,
            "day_key": self.day_key,
            "hour_net": self.hour_net,
            "day_net": self.day_net,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Breaker:
        return cls(
            CircuitBreaker.model_validate(data["view"]),
            data["hour_key"],
            data["day_key"],
            data["hour_net"],
            data["day_net"],
        )

    @property
    def blocks_entries(self) -> bool:
        return self.view.state != "ok"

    def _update(self, **changes: object) -> bool:
        new = self.view.model_copy(update=changes)
        changed = new != self.view
        self.view = new
        return changed

    def _roll(self, now: int) -> None:
        if now // HOUR_MS != self.hour_key:
            self.hour_key, self.hour_net = now // HOUR_MS, 0.0
        if now // DAY_MS != self.day_key:
            self.day_key, self.day_net = now // DAY_MS, 0.0

    def _losses(self) -> dict[str, object]:
        return {
            "daily_loss": round(max(0.0, -self.day_net), 8),
            "hourly_loss": round(max(0.0, -self.hour_net), 8),
        }

    def set_limits(
        self,
        max_consecutive_losses: int,
        max_daily_loss: float,
        max_hourly_loss: float,
        cooldown_minutes: float,
    ) -> bool:
        """Take new limits from the rules; returns whether the public state changed."""
        return self._update(
            max_consecutive_losses=max_consecutive_losses,
            max_daily_loss=max_daily_loss,
            max_hourly_loss=max_hourly_loss,
            cooldown_minutes=cooldown_minutes,
        )

    def record(self, net_pnl: float, now: int) -> bool:
        """Count a closed chain's net result; trips when a limit is reached. The cooldown
        starts in a later `tick`, so a trip is always seen as its own state first."""
        self._roll(now)
        self.hour_net += net_pnl
        self.day_net += net_pnl
        streak = self.view.consecutive_losses + 1 if net_pnl < 0 else 0
        changed = self._update(consecutive_losses=streak, **self._losses())
        v = self.view
        reason = None
        if streak >= v.max_consecutive_losses:
            reason = f"{streak} consecutive losses"
        elif v.daily_loss >= v.max_daily_loss:
            reason = f"daily loss {v.daily_loss:.2f} reached {v.max_daily_loss:.2f}"
        elif v.hourly_loss >= v.max_hourly_loss:
            reason = f"hourly loss {v.hourly_loss:.2f} reached {v.max_hourly_loss:.2f}"
        if reason is not None and v.state == "ok":
            changed = self._update(state="tripped", reason=reason, tripped_at=now, resets_at=None)
        return changed

    def tick(self, now: int, flat: bool) -> bool:
        """Let time pass: new hour or day windows, the cooldown starting and ending."""
        self._roll(now)
        changed = self._update(**self._losses())
        v = self.view
        if v.state == "tripped" and flat:
            resets_at = now + int(v.cooldown_minutes * 60_000)
            changed = self._update(state="cooling_down", resets_at=resets_at) or changed
            v = self.view
        if v.state == "cooling_down" and v.resets_at is not None and now >= v.resets_at:
            changed = self._clear() or changed
        return changed

    def reset(self) -> None:
        """The user's reset: entries allowed again at once, loss streak cleared."""
        self._clear()

    def _clear(self) -> bool:
        return self._update(
            state="ok", reason=None, consecutive_losses=0, tripped_at=None, resets_at=None
        )
