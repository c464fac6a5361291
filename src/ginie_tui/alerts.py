"""Alerts: what the trader is told at once, whichever tab is on screen. Pure: no Textual, no I/O.

An `Alerter` watches every change that enters the store, the market's marks and the connection
status, and remembers the alert-relevant state of each item by (topic, key): a trade filled, a
chain's status, the breaker's state, a mode's status, whether a position is near its
liquidation price, whether the link is up. An alert is raised when that state changes into one
worth telling, and only for data that arrived `live`: a `replayed` event (missed while away,
sent after a resume) or a `polled` snapshot (start-up, RESYNC, fallback poll) updates the state
silently. So no event alerts twice, and nothing seen only in a replay or a snapshot alerts.

Kinds: `fill` (TRADE_UPDATE), `chain` (CHAIN_UPDATE to closed, with its P&L), `breaker` (tripped),
`mode` (paused or blocked), `liquidation` (a position's mark within `liquidation_pct` percent of
its liquidation price; again only after it has moved away past that distance), `connection`
(LIVE lost, LIVE regained; the first LIVE of a session is not news).

Limits: remembered states are bounded per topic (`REMEMBERED`), the oldest forgotten first; a
trade older than that many fills could alert again if the server sent it again live, which it
does not (each event is sent once, in `seq` order).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from ginie_protocol import SPECS
from ginie_protocol.events import Chain, CircuitBreaker, ModeSafety, Position, Topic, Trade
from ginie_tui.connection import ConnectionStatus
from ginie_tui.store import Change, Store
from ginie_tui.widgets.base import fmt_price

Severity = Literal["information", "warning", "error"]
REMEMBERED = 5_000
"""States remembered per topic (as many as the store keeps trades)."""
LOG_SIZE = 200
"""Alerts the log keeps, newest last."""
DEFAULT_LIQUIDATION_PCT = 5.0
ALERT_TOPICS = frozenset(
    {
        Topic.TRADE_UPDATE,
        Topic.CHAIN_UPDATE,
        Topic.CIRCUIT_BREAKER_UPDATE,
        Topic.MODE_SAFETY_UPDATE,
        Topic.POSITION_UPDATE,
    }
)
"""The user topics whose changes can raise an alert."""


class AlertKind(StrEnum):
    FILL = "fill"
    CHAIN = "chain"
    BREAKER = "breaker"
    MODE = "mode"
    LIQUIDATION = "liquidation"
    CONNECTION = "connection"


def parse_kinds(text: str) -> frozenset[AlertKind]:
    """`fill,breaker` (or `all`, or empty for none) to alert kinds; ValueError names a bad one."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if names == ["all"]:
        return frozenset(AlertKind)
    kinds: set[AlertKind] = set()
    for name in names:
        try:
            kinds.add(AlertKind(name))
        except ValueError:
            known = ", ".join(k.value for k in AlertKind)
            raise ValueError(f"unknown alert kind {name!r}; known: {known}, or all") from None
    return frozenset(kinds)


@dataclass(frozen=True)
class Alert:
    """One alert: a notification's title, message and severity, and when it was raised."""

    id: int
    kind: AlertKind
    title: str
    message: str
    severity: Severity
    at_ms: int


class Alerter:
    """Turns live changes into alerts, each once; keeps the recent ones (see the module doc)."""

    def __init__(self, liquidation_pct: float = DEFAULT_LIQUIDATION_PCT) -> None:
        self.liquidation_pct = liquidation_pct
        self.recent: deque[Alert] = deque(maxlen=LOG_SIZE)
        """The last alerts raised, oldest first."""
        self._states: dict[str, OrderedDict[str, str]] = {}
        self._ids = 0

    # ------------------------------------------------------------------ inputs

    def observe(self, changes: Iterable[Change], store: Store, now_ms: int) -> list[Alert]:
        """Learn what `changes` (as the store applied them, in order) say; alert on live ones."""
        raised: list[Alert] = []
        for change in changes:
            live = change.source == "live" and change.event is not None
            for item in self._items(change, store):
                alert = self._check(item, store, live, now_ms)
                if alert is not None:
                    raised.append(alert)
        return raised

    def market(self, store: Store, now_ms: int) -> list[Alert]:
        """Marks moved (market data is always live): check each open position's distance."""
        raised: list[Alert] = []
        for position in store.items(Topic.POSITION_UPDATE):
            alert = self._near_liquidation(position, store, True, now_ms)
            if alert is not None:
                raised.append(alert)
        return raised

    def connection(self, status: ConnectionStatus, now_ms: int) -> list[Alert]:
        """The connection status as the console shows it; alerts when LIVE is lost or back."""
        before = self._state("connection", "")
        if status.live:
            now = "live"
        else:
            now = "lost" if before in ("live", "lost") else "connecting"
        if not self._moved("connection", "", now):
            return []
        if now == "lost":
            return [
                self._raise(
                    AlertKind.CONNECTION,
                    "Connection lost",
                    f"{status.state}: read-only until LIVE again",
                    "error",
                    now_ms,
                )
            ]
        if now == "live" and before == "lost":
            return [
                self._raise(
                    AlertKind.CONNECTION, "Connection regained", "LIVE again", "information", now_ms
                )
            ]
        return []

    # ------------------------------------------------------------------ checks

    def _items(self, change: Change, store: Store) -> list[object]:
        """The items `change` brought: its event's data, or for a snapshot the topic's items."""
        topic = change.topic
        if topic not in ALERT_TOPICS:
            return []
        if change.event is not None:
            return [change.event.data]
        if SPECS[topic].key is None:
            held = store.singleton(topic)
            return [] if held is None else [held]
        return list(store.items(topic))

    def _check(self, item: object, store: Store, live: bool, now_ms: int) -> Alert | None:
        if isinstance(item, Trade):
            return self._fill(item, live, now_ms)
        if isinstance(item, Chain):
            return self._chain(item, live, now_ms)
        if isinstance(item, CircuitBreaker):
            return self._breaker(item, live, now_ms)
        if isinstance(item, ModeSafety):
            return self._mode(item, live, now_ms)
        if isinstance(item, Position):
            return self._near_liquidation(item, store, live, now_ms)
        return None

    def _fill(self, t: Trade, live: bool, now_ms: int) -> Alert | None:
        if not self._moved(Topic.TRADE_UPDATE, t.trade_id, "filled") or not live:
            return None
        message = f"{t.side} {t.quantity:g} {t.symbol} at {fmt_price(t.price)}"
        if t.realized_pnl:
            message += f", realized {t.realized_pnl:+,.2f} USDT"
        return self._raise(AlertKind.FILL, "Fill", message, "information", now_ms)

    def _chain(self, c: Chain, live: bool, now_ms: int) -> Alert | None:
        if not self._moved(Topic.CHAIN_UPDATE, c.chain_id, c.status) or not live:
            return None
        if c.status != "closed":
            return None
        reason = f" ({c.close_reason})" if c.close_reason else ""
        message = f"{c.chain_id} {c.direction} {c.symbol}{reason}: P&L {c.realized_pnl:+,.2f} USDT"
        severity: Severity = "information" if c.realized_pnl >= 0 else "warning"
        return self._raise(AlertKind.CHAIN, "Chain closed", message, severity, now_ms)

    def _breaker(self, b: CircuitBreaker, live: bool, now_ms: int) -> Alert | None:
        if not self._moved(Topic.CIRCUIT_BREAKER_UPDATE, "", b.state) or not live:
            return None
        if b.state != "tripped":
            return None
        return self._raise(
            AlertKind.BREAKER,
            "Circuit breaker tripped",
            b.reason or "new entries are blocked",
            "error",
            now_ms,
        )

    def _mode(self, m: ModeSafety, live: bool, now_ms: int) -> Alert | None:
        if not self._moved(Topic.MODE_SAFETY_UPDATE, m.mode, m.status) or not live:
            return None
        if m.status == "active":
            return None
        severity: Severity = "error" if m.status == "blocked" else "warning"
        message = m.reason or f"{m.mode} takes no new entries"
        return self._raise(AlertKind.MODE, f"Mode {m.mode} {m.status}", message, severity, now_ms)

    def _near_liquidation(self, p: Position, store: Store, live: bool, now_ms: int) -> Alert | None:
        distance = liquidation_distance_pct(p, store)
        near = distance is not None and distance <= self.liquidation_pct
        if not self._moved(Topic.POSITION_UPDATE, p.symbol, "near" if near else "far"):
            return None
        if not (near and live) or distance is None:
            return None
        side = "LONG" if p.size > 0 else "SHORT"
        message = (
            f"{side} {abs(p.size):g} {p.symbol}: mark {distance:.1f}% from liquidation at "
            f"{fmt_price(p.liquidation_price)}"
        )
        return self._raise(AlertKind.LIQUIDATION, "Near liquidation", message, "error", now_ms)

    # ------------------------------------------------------------------ memory

    def _state(self, topic: str, key: str) -> str | None:
        return self._states.get(topic, OrderedDict()).get(key)

    def _moved(self, topic: str, key: str, state: str) -> bool:
        """Remember `state` of (topic, key); True when it differs from the one remembered."""
        held = self._states.setdefault(topic, OrderedDict())
        before = held.pop(key, None)
        held[key] = state
        while len(held) > REMEMBERED:
            held.popitem(last=False)
        return before != state

    def _raise(
        self, kind: AlertKind, title: str, message: str, severity: Severity, now_ms: int
    ) -> Alert:
        self._ids += 1
        alert = Alert(self._ids, kind, title, message, severity, now_ms)
        self.recent.append(alert)
        return alert


def liquidation_distance_pct(p: Position, store: Store) -> float | None:
    """How far the mark is from `p`'s liquidation price, in percent of the mark; None when flat
    or without a liquidation price. The mark is the newer of the position's and the market's."""
    if not p.size or p.liquidation_price is None:
        return None
    mark = p.mark_price
    market = store.mark_price(p.symbol)
    if market is not None and market.time > p.updated_at:
        mark = market.mark_price
    if mark <= 0:
        return None
    return abs(mark - p.liquidation_price) / mark * 100
