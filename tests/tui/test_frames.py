"""The frame timer: after a lone frame the next tick is at most one period away (Textual's
own timer waits one to two), and the console's screens are drawn by it. The timers run their
real loop on a virtual clock, so the ticks' times are exact."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from textual._context import active_app
from textual.timer import Timer

from ginie_tui.app import make_app
from ginie_tui.frames import FrameTimer, next_tick
from ginie_tui.screens.ticket import OrderTicket
from tests.harness import wait_for
from tests.tui.fakes import RecordedFeed, live_store

PERIOD = 1 / 60


class VirtualTime:
    """A clock that moves only when a timer sleeps (to the end of its sleep) or a test says."""

    def __init__(self) -> None:
        self.now = 0.0

    def get_time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


class Target:
    """What a timer is for (it keeps a weak reference; a callback timer sends it nothing)."""


class AppStandIn:
    """What a timer's tick reads of the running app; a callback's error is kept."""

    _exit = False
    features: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.errors: list[BaseException] = []

    def _handle_exception(self, error: BaseException) -> None:
        self.errors.append(error)


async def until(condition: Callable[[], bool]) -> None:
    """Let the loop run until `condition` holds (virtual time: no waiting on the wall clock)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the timer did not get there")


async def gap_after_a_lone_frame(kind: type[Timer], monkeypatch: pytest.MonkeyPatch) -> float:
    """Ticks at 1, 2 and 3 periods, then a quiet spell (paused) to 10.5 periods, a lone frame
    there, and a change right after it: the time from the lone frame to the next tick."""
    clock = VirtualTime()
    monkeypatch.setattr("textual._time.get_time", clock.get_time)
    monkeypatch.setattr("textual.timer.sleep", clock.sleep)
    monkeypatch.setattr("ginie_tui.frames.sleep", clock.sleep)
    stand_in = AppStandIn()
    app = active_app.set(stand_in)  # type: ignore[arg-type]
    ticks: list[float] = []

    def tick() -> None:
        ticks.append(clock.now)
        if len(ticks) >= 3:
            timer.pause()  # as a screen's frame does when nothing is dirty

    target = Target()
    timer = kind(target, PERIOD, callback=tick, name="screen_update")
    timer._start()
    try:
        await until(lambda: len(ticks) == 3)
        assert ticks == pytest.approx([PERIOD, 2 * PERIOD, 3 * PERIOD])
        clock.now = 10.5 * PERIOD
        timer.resume()  # something changed after a quiet spell: the lone frame, at once
        await until(lambda: len(ticks) == 4)
        timer.resume()  # and something else right after it
        await until(lambda: len(ticks) == 5)
    finally:
        timer.stop()
        active_app.reset(app)
    assert stand_in.errors == []
    assert ticks[3] == pytest.approx(10.5 * PERIOD)
    return (ticks[4] - ticks[3]) / PERIOD


async def test_after_a_lone_frame_the_next_tick_is_within_one_period(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert await gap_after_a_lone_frame(FrameTimer, monkeypatch) == pytest.approx(0.5)


async def test_textuals_own_timer_skips_one_tick_more(monkeypatch: pytest.MonkeyPatch) -> None:
    """Why FrameTimer exists: Textual 8.2's timer waits for the tick after the next one. When
    this fails, Textual's timer no longer does, and FrameTimer can go."""
    assert await gap_after_a_lone_frame(Timer, monkeypatch) == pytest.approx(1.5)


def test_next_tick_skips_to_the_last_passed_tick_and_always_moves_on() -> None:
    assert next_tick(3, 0.0, 10.5, 1.0) == 10, "tick 11 at 11.0 is the next"
    assert next_tick(3, 0.0, 10.0, 1.0) == 10, "tick 10 at 10.0 has just passed"
    assert next_tick(3, 0.0, 4.2, 1.0) == 4
    assert next_tick(7, 0.0, 7.999_999, 1.0) == 8, "never back to a tick already counted"
    assert next_tick(0, 2.0, 2.5, 0.1) == 5


async def test_the_console_and_its_dialogs_are_drawn_by_the_frame_timer() -> None:
    app = make_app(RecordedFeed(), store=live_store())
    async with app.run_test(size=(100, 32)) as pilot:
        assert isinstance(app.screen._update_timer, FrameTimer)
        await pilot.press("o")
        await wait_for(lambda: isinstance(app.screen, OrderTicket))
        assert isinstance(app.screen._update_timer, FrameTimer)
