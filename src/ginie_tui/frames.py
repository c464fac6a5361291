"""The screen's frame timer, with Textual's skip of passed ticks made to land on the next tick.

Textual draws a screen from a 60 Hz timer (`Screen._update_timer`, one tick a period) that
pauses while nothing is dirty and resumes when something is. Resumed after a quiet spell, it
ticks at once; its tick times have passed by then, and Textual 8.2's `Timer._run` skips them
with `count = int(elapsed / interval + 1)` before it adds the one it is waiting for, so the tick
after a lone frame comes one to two periods (17 to 33 ms) after it instead of at most one. A
console that shows one lifecycle row every 50 ms or so draws each row in a lone frame, and a
row that arrives in the next 33 ms waited for that second tick: the console benchmark's
publish-to-screen tail (docs/performance.md, finding 14).

`FrameTimer` is Textual's timer with that one line changed: passed ticks are skipped up to the
first one still ahead (`next_tick`). `FramedScreen` is a screen whose frames come from it; the
console's own screens use it. This reads Textual's private timer loop, which is why Textual is
pinned exactly.
"""

from __future__ import annotations

from typing import Any, TypeVar

from textual import _time
from textual._time import sleep
from textual.screen import UPDATE_PERIOD, ModalScreen, Screen
from textual.timer import EventTargetGone, Timer

ResultType = TypeVar("ResultType")


def next_tick(count: int, start: float, now: float, interval: float) -> int:
    """The count of the last tick at or before `now`, for a timer of `interval` started at
    `start` whose tick `count + 1` has passed: its next tick, `count + 1` of the result, is
    the first one still ahead. Never less than `count + 1`, so the timer always moves on."""
    return max(count + 1, int((now - start) / interval))


class FrameTimer(Timer):
    """Textual's `Timer`, skipping passed ticks up to the next one still ahead (`next_tick`)."""

    async def _run(self) -> None:
        count = 0
        repeat = self._repeat
        interval = self._interval
        self._active  # noqa: B018 (made in this task's thread, as Textual's timer does)
        await self._active.wait()
        start = _time.get_time()
        while repeat is None or count <= repeat:
            next_timer = start + ((count + 1) * interval)
            now = _time.get_time()
            if self._skip and next_timer < now:
                count = next_tick(count, start, now, interval)
                continue
            await sleep(max(0.0, next_timer - _time.get_time()))
            count += 1
            await self._active.wait()
            if self._reset:
                start = _time.get_time()
                count = 0
                self._reset = False
                continue
            try:
                await self._tick(next_timer=next_timer, count=count)
            except EventTargetGone:
                break


class _Framed:
    """The frame timer of a screen (mixed into a Screen class)."""

    _frame_timer: FrameTimer | None = None

    @property
    def _update_timer(self) -> Timer:
        screen: Any = self
        if self._frame_timer is None:
            timer = FrameTimer(
                screen,
                UPDATE_PERIOD,
                name="screen_update",
                callback=screen._on_timer_update,
                pause=True,
            )
            timer._start()
            screen._timers.add(timer)
            self._frame_timer = timer
        return self._frame_timer


class FramedScreen(_Framed, Screen[ResultType]):
    """A screen drawn by a `FrameTimer` (the console's default screen)."""


class FramedModal(_Framed, ModalScreen[ResultType]):
    """A modal screen drawn by a `FrameTimer` (the console's dialogs)."""
