"""The command palette's entries: every command of SPEC section 3, built from the store.

`palette_entries` is pure so it can be tested; `GinieCommands` is the Textual Provider that
shows the entries and hands the chosen one to the app (which confirms trading commands)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from textual.command import DiscoveryHit, Hit, Hits, Provider

from ginie_protocol import Topic
from ginie_tui.store import Store

MODES = ("scalp", "swing", "position")
PAUSE_MINUTES = 30
OPEN_ORDER = frozenset({"NEW", "PARTIALLY_FILLED"})


@dataclass(frozen=True)
class PaletteEntry:
    """One palette line: send `command` with `args`, or open a dialog (`dialog` set)."""

    title: str
    help: str
    command: str
    args: dict[str, Any] = field(default_factory=dict)
    dialog: str | None = None
    """`pending_signals`, `rules`, `ticket` or `flatten`: the dialog that collects the
    arguments (or the confirmation) first."""


def palette_entries(store: Store) -> list[PaletteEntry]:
    """Every command, with one entry per target the store knows (signal, order, position)."""
    entries = [
        PaletteEntry(
            "Review pending signals",
            "approve or reject",
            "signal.approve",
            dialog="pending_signals",
        ),
        PaletteEntry(
            "Place an order (order ticket)", "order.place", "order.place", dialog="ticket"
        ),
        PaletteEntry(
            "Flatten the account (kill switch)",
            "account.flatten: stop, cancel all, close all",
            "account.flatten",
            dialog="flatten",
        ),
        PaletteEntry("Start Ginie autopilot", "ginie.start", "ginie.start"),
        PaletteEntry("Stop Ginie autopilot", "ginie.stop", "ginie.stop"),
        PaletteEntry("Reset circuit breaker", "circuit_breaker.reset", "circuit_breaker.reset"),
        PaletteEntry(
            "Set autopilot rules",
            "autopilot.set_rules: field=value ...",
            "autopilot.set_rules",
            dialog="rules",
        ),
    ]
    for mode in MODES:
        entries += [
            PaletteEntry(
                f"Pause {mode} mode for {PAUSE_MINUTES} min",
                "mode.pause",
                "mode.pause",
                {"mode": mode, "minutes": PAUSE_MINUTES},
            ),
            PaletteEntry(
                f"Pause {mode} mode until resumed", "mode.pause", "mode.pause", {"mode": mode}
            ),
            PaletteEntry(f"Resume {mode} mode", "mode.resume", "mode.resume", {"mode": mode}),
        ]
    for s in store.items(Topic.SIGNAL_UPDATE):
        if s.status == "pending":
            what = f"{s.signal_id} {s.symbol} {s.direction} {s.confidence:.2f}"
            entries += [
                PaletteEntry(
                    f"Approve signal {what}",
                    "signal.approve",
                    "signal.approve",
                    {"signal_id": s.signal_id},
                ),
                PaletteEntry(
                    f"Reject signal {what}",
                    "signal.reject",
                    "signal.reject",
                    {"signal_id": s.signal_id},
                ),
            ]
    for o in store.items(Topic.ORDER_UPDATE):
        if o.status in OPEN_ORDER:
            entries.append(
                PaletteEntry(
                    f"Cancel order {o.order_id} {o.symbol} {o.side} {o.type}",
                    "order.cancel",
                    "order.cancel",
                    {"order_id": o.order_id},
                )
            )
    for p in store.items(Topic.POSITION_UPDATE):
        if p.size:
            entries.append(
                PaletteEntry(
                    f"Close position {p.symbol} ({p.size:+g})",
                    "position.close",
                    "position.close",
                    {"symbol": p.symbol},
                )
            )
    return entries


class PaletteHost(Protocol):
    """What the provider needs from the app."""

    store: Store

    def run_palette_entry(self, entry: PaletteEntry) -> None: ...


class GinieCommands(Provider):
    """The palette provider for Ginie's commands."""

    def _entries(self) -> tuple[list[PaletteEntry], Callable[[PaletteEntry], None]]:
        host: PaletteHost = self.app  # type: ignore[assignment]
        return palette_entries(host.store), host.run_palette_entry

    async def discover(self) -> Hits:
        entries, run = self._entries()
        for entry in entries:
            yield DiscoveryHit(entry.title, partial(run, entry), help=entry.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        entries, run = self._entries()
        for entry in entries:
            score = matcher.match(entry.title)
            if score > 0:
                yield Hit(
                    score, matcher.highlight(entry.title), partial(run, entry), help=entry.help
                )
