"""Trading modes: per-mode safety limits and capital allocation.

Each mode has its own limits (`MODE_LIMITS`): after `max_consecutive_losses` losing chains in a
row the mode pauses for `AUTO_PAUSE_MINUTES`; when its net loss of the UTC day reaches
`max_loss_today` it is blocked until the next day. The user may pause a mode (for some minutes
or until resumed) and resume it, which also clears its loss streak.

Capital: each mode gets `allocated_pct` of the account equity; the margin of its open chains
is what it uses.
"""

from __future__ import annotations

from ginie_protocol.events import Mode, ModeAllocation, ModeSafety

MODES: tuple[Mode, ...] = ("scalp", "swing", "position")
MODE_LIMITS: dict[Mode, tuple[int, float]] = {
    "scalp": (4, 300.0),
    "swing": (3, 400.0),
    "position": (2, 500.0),
}
"""Mode to (max consecutive losses, max loss today in USDT)."""

AUTO_PAUSE_MINUTES = 60


def new_safety(mode: Mode) -> ModeSafety:
    streak, loss = MODE_LIMITS[mode]
    return ModeSafety(
        mode=mode, status="active", max_consecutive_losses=streak, max_loss_today=loss
    )


def record_result(safety: ModeSafety, net_pnl: float, now: int) -> ModeSafety:
    """Count a closed chain of this mode; pause or block it when a limit is reached."""
    streak = safety.consecutive_losses + 1 if net_pnl < 0 else 0
    loss = round(max(0.0, safety.loss_today - net_pnl), 8)
    updated = safety.model_copy(update={"consecutive_losses": streak, "loss_today": loss})
    if safety.status == "blocked":
        return updated
    if loss >= safety.max_loss_today:
        return updated.model_copy(
            update={
                "status": "blocked",
                "reason": f"loss today {loss:.2f} reached {safety.max_loss_today:.2f}",
                "paused_until": None,
            }
        )
    if streak >= safety.max_consecutive_losses and safety.status == "active":
        return updated.model_copy(
            update={
                "status": "paused",
                "reason": f"{streak} consecutive losses",
                "paused_until": now + AUTO_PAUSE_MINUTES * 60_000,
            }
        )
    return updated


def pause(safety: ModeSafety, now: int, minutes: float | None) -> ModeSafety:
    """Pause the mode by the user's hand, for `minutes` or until resumed."""
    until = now + int(minutes * 60_000) if minutes is not None else None
    return safety.model_copy(
        update={"status": "paused", "reason": "paused by user", "paused_until": until}
    )


def resume(safety: ModeSafety) -> ModeSafety:
    """Make the mode active again and clear its loss streak (its loss today stays)."""
    return safety.model_copy(
        update={"status": "active", "reason": None, "paused_until": None, "consecutive_losses": 0}
    )


def tick(safety: ModeSafety, now: int) -> ModeSafety:
    """End a timed pause whose time has come."""
    if safety.status == "paused" and safety.paused_until is not None and now >= safety.paused_until:
        return resume(safety)
    return safety


def roll_day(safety: ModeSafety) -> ModeSafety:
    """A new UTC day: the loss of the day starts again and a day's block is lifted."""
    rolled = safety.model_copy(update={"loss_today": 0.0})
    return resume(rolled) if safety.status == "blocked" else rolled


def allocation(
    mode: Mode, pct: float, equity: float, used_usd: float, open_positions: int
) -> ModeAllocation:
    allocated = round(equity * pct / 100.0, 2)
    return ModeAllocation(
        mode=mode,
        allocated_pct=pct,
        allocated_usd=allocated,
        used_usd=round(used_usd, 2),
        available_usd=round(max(0.0, allocated - used_usd), 2),
        open_positions=open_positions,
    )
