"""The bounded memory of chains and signals: every live item, the newest finished ones."""

import pytest

from ginie_protocol.events import Signal
from ginie_server.domain.autopilot import KEPT_SIGNALS, Autopilot, default_rules
from ginie_server.domain.retention import Retained


def test_live_items_are_all_kept_and_finished_ones_only_the_newest() -> None:
    kept: Retained[str] = Retained(2)
    for key in ("a", "b", "c", "d"):
        assert kept.put(key, f"{key} open", done=False) == []
    assert kept.put("b", "b closed", done=True) == []
    assert kept.put("a", "a closed", done=True) == []
    assert kept.put("d", "d closed", done=True) == ["b"]
    assert dict(kept) == {"c": "c open", "a": "a closed", "d": "d closed"}
    assert list(kept.finished) == ["a", "d"]
    assert (kept.rank("a"), kept.rank("d"), kept.rank("c"), kept.rank("b")) == (2, 3, None, None)
    assert "b" not in kept and kept.get("b") is None and len(kept) == 3


def test_a_finished_item_that_changes_keeps_its_place_and_one_that_comes_back_is_newest() -> None:
    kept: Retained[str] = Retained(2)
    kept.put("a", "a closed", done=True)
    kept.put("b", "b closed", done=True)
    assert kept.put("a", "a closed, fee booked", done=True) == []
    assert list(kept.finished) == ["a", "b"] and kept["a"] == "a closed, fee booked"
    assert kept.put("z", "z from the database", done=True) == ["a"]
    assert list(kept.finished) == ["b", "z"] and kept.rank("z") == 3
    with pytest.raises(ValueError):
        kept.put("b", "b open again", done=False)


def test_loading_keeps_ranks_and_goes_on_counting_after_the_highest() -> None:
    kept: Retained[str] = Retained(2)
    kept.load("live", "open", None)
    for key, rank in (("x", 10), ("y", 40), ("z", 41)):
        kept.load(key, key, rank)
    assert list(kept.finished) == ["y", "z"] and list(kept.live) == ["live"]
    kept.put("live", "closed", done=True)
    assert kept.rank("live") == 42 and list(kept.finished) == ["z", "live"]


def signal(n: int, status: str = "pending") -> Signal:
    return Signal(
        signal_id=f"S{n}",
        symbol="BTCUSDT",
        direction="LONG",
        mode="scalp",
        strategy="ema_cross",
        confidence=0.8,
        entry_price=100.0,
        take_profit=110.0,
        stop_loss=95.0,
        status=status,  # type: ignore[arg-type]
        reason="",
        created_at=n,
        expires_at=n + 1_000,
    )


def test_the_autopilot_keeps_every_pending_signal_and_the_newest_decided() -> None:
    pilot = Autopilot(default_rules(["BTCUSDT"]))
    pilot.put(signal(0))
    for n in range(1, 3 * KEPT_SIGNALS):
        pilot.put(signal(n))
        pilot.settle(signal(n), "rejected", "no", n)
    assert list(pilot.signals.live) == ["S0"]
    assert list(pilot.signals.finished) == [
        f"S{n}" for n in range(2 * KEPT_SIGNALS, 3 * KEPT_SIGNALS)
    ]
    expired = pilot.expire(10_000)
    assert [s.signal_id for s in expired] == ["S0"] and not pilot.signals.live
    assert len(pilot.signals) == KEPT_SIGNALS and "S0" in pilot.signals
