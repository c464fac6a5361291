"""REST calls in one trading hour: the old dashboard's polling against Ginie's push feed.

A pure simulation on a virtual clock that drives the console's own poll schedule
(`ginie_tui.connection.ConnectionMachine`, the console's duty of SPEC section 6):
one `/api/snapshot` at start-up; none while LIVE; after a drop, if not LIVE again within
`fallback_delay_s`, one `/api/snapshot` at once and then one every `poll_interval_s`; on
reconnect the client resumes from its last `seq`, so the missed events are replayed and no
REST call is needed.

Data age is the time since a panel's data was last known to be current, averaged over the
hour and over the panels: a poller's data ages from 0 to its interval between polls; a LIVE
feed's data is as old as the push latency.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from benchmarks.report import Group
from ginie_tui.connection import ConnectionMachine

HOUR_S = 3600.0


@dataclass(frozen=True)
class Poller:
    """One panel of the old dashboard and its polling timer."""

    component: str
    interval_s: int
    calls: int = 1
    """REST calls made on each tick (FuturesPositionsTable makes three)."""


OLD_SCHEDULE: tuple[Poller, ...] = (
    Poller("AITradeStatusPanel", 5),
    Poller("PendingSignalsModal", 5),
    Poller("ModeSafetyPanel", 5),
    Poller("ModeAllocationPanel", 5),
    Poller("GinieDiagnosticsPanel", 10),
    Poller("InvestigatePanel", 10),
    Poller("CircuitBreakerPanel", 15),
    Poller("AutopilotRulesPanel", 15),
    Poller("EnhancedSignalsPanel", 15),
    Poller("TradeLifecycleTab", 30),
    Poller("TradeLifecycleEvents", 30),
    Poller("FuturesPositionsTable", 30, calls=3),
    Poller("FuturesOrdersHistory", 30),
    Poller("TradeHistory", 30),
    Poller("PnLDashboard", 30),
    Poller("AdvancedTradingPanel", 30),
    Poller("APIHealthIndicator", 30),
    Poller("StrategyPerformanceDashboard", 30),
    Poller("GiniePanel", 60),
    Poller("PnLSummaryCards", 60),
    Poller("TradeSourceStatsPanel", 60),
    Poller("SymbolPerformancePanel", 60),
)


@dataclass(frozen=True)
class Outage:
    """The socket is down from `start_s` for `duration_s` seconds."""

    start_s: float
    duration_s: float

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


@dataclass(frozen=True)
class ScenarioResult:
    """REST calls made in the hour, their times, and the panels' mean data age."""

    name: str
    rest_calls: int
    call_times_s: tuple[float, ...]
    mean_age_s: float
    shortest_gap_s: float | None
    """Shortest time between two calls of one timer (None when a timer fires at most once)."""


def _mean_age(
    hour_s: float, live: list[tuple[float, float]], refreshes: list[float], live_age_s: float
) -> float:
    """Mean data age over [0, hour_s): `live_age_s` inside live spans, else time since refresh.

    The end of a live span counts as a refresh: data was current until the socket dropped.
    """
    marks = sorted({*refreshes, *(end for _, end in live), 0.0})
    cuts = sorted({0.0, hour_s, *(t for span in live for t in span), *refreshes})
    cuts = [c for c in cuts if 0.0 <= c <= hour_s]
    total = 0.0
    for a, b in itertools.pairwise(cuts):
        if b <= a:
            continue
        if any(start <= a and b <= end for start, end in live):
            total += live_age_s * (b - a)
            continue
        last = max(m for m in marks if m <= a)
        total += ((b - last) ** 2 - (a - last) ** 2) / 2
    return total / hour_s


def old_schedule(hour_s: float = HOUR_S) -> ScenarioResult:
    """Every panel polls on its own timer from t=0, as the old dashboard did."""
    times: list[float] = []
    ages: list[float] = []
    for poller in OLD_SCHEDULE:
        ticks = [k * poller.interval_s for k in range(math.ceil(hour_s / poller.interval_s))]
        times += [float(t) for t in ticks for _ in range(poller.calls)]
        ages.append(_mean_age(hour_s, [], [float(t) for t in ticks], 0.0))
    return ScenarioResult(
        name="old polling schedule",
        rest_calls=len(times),
        call_times_s=tuple(sorted(times)),
        mean_age_s=sum(ages) / len(ages),
        shortest_gap_s=float(min(p.interval_s for p in OLD_SCHEDULE)),
    )


def ginie(
    outage: Outage | None = None,
    *,
    hour_s: float = HOUR_S,
    fallback_delay_s: float = 5.0,
    poll_interval_s: float = 60.0,
    live_age_s: float = 0.0,
) -> ScenarioResult:
    """Ginie's console: a start-up snapshot, push while LIVE, fallback polling while down.

    The fallback polls come from the console's own schedule (`ConnectionMachine`), driven on
    a virtual clock in milliseconds.
    """
    machine = ConnectionMachine(
        poll_interval_ms=round(poll_interval_s * 1000), grace_ms=round(fallback_delay_s * 1000)
    )
    machine.connected(0)
    machine.synced(0)
    calls = [0.0]
    fallback: list[float] = []
    live = [(0.0, hour_s)]
    if outage is not None:
        live = [(0.0, outage.start_s), (outage.end_s, hour_s)]
        machine.dropped(round(outage.start_s * 1000))
        end_ms = round(min(outage.end_s, hour_s) * 1000)
        due = machine.next_poll_at()
        while due is not None and due < end_ms:
            fallback.append(due / 1000)
            machine.polled(due)
            due = machine.next_poll_at()
        machine.connected(end_ms)
        if machine.next_poll_at() is not None:
            raise AssertionError("the console must not poll while LIVE")
    calls += fallback
    gaps = [b - a for a, b in itertools.pairwise(fallback)]
    name = (
        "Ginie, connected"
        if outage is None
        else f"Ginie, socket down {outage.duration_s / 60:.0f} min"
    )
    return ScenarioResult(
        name=name,
        rest_calls=len(calls),
        call_times_s=tuple(calls),
        mean_age_s=_mean_age(hour_s, live, calls, live_age_s),
        shortest_gap_s=min(gaps) if gaps else None,
    )


def scenarios(live_age_s: float = 0.0) -> list[ScenarioResult]:
    """The three scenarios of the table: old schedule, connected, ten-minute outage."""
    return [
        old_schedule(),
        ginie(live_age_s=live_age_s),
        ginie(Outage(start_s=1200.0, duration_s=600.0), live_age_s=live_age_s),
    ]


def reduction_pct(calls: int, baseline: int) -> float:
    """How many percent fewer calls than the baseline."""
    return 100.0 * (1 - calls / baseline)


def run(quick: bool, live_age_s: float = 0.0) -> Group:
    """The API-call table; `live_age_s` is the measured push latency (data age while LIVE)."""
    group = Group(
        name="api_calls",
        title="3. REST calls in one trading hour, all panels",
        columns=["scenario", "REST calls", "reduction %", "mean data age s", "shortest gap s"],
    )
    results = scenarios(live_age_s)
    baseline = results[0].rest_calls
    for result in results:
        group.add(
            **{
                "scenario": result.name,
                "REST calls": result.rest_calls,
                "reduction %": reduction_pct(result.rest_calls, baseline),
                "mean data age s": result.mean_age_s,
                "shortest gap s": result.shortest_gap_s,
            }
        )
    connected, outage = results[1], results[2]
    met = reduction_pct(connected.rest_calls, baseline) >= 99.0 and (
        outage.shortest_gap_s is None or outage.shortest_gap_s >= 60.0
    )
    group.notes.append(
        f"target: connected >= 99% fewer calls, no timer faster than 60 s: "
        f"{'met' if met else 'NOT met'}"
    )
    group.notes.append(
        f"data age while LIVE = measured push latency ({live_age_s * 1000:.2f} ms); "
        "outage at 20:00-30:00, resume replays the missed events (no RESYNC)"
    )
    return group
