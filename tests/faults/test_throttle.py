"""The bad-token throttle, pure: counts per address in a sliding window, refuses for a
cooldown, forgets in time, and never tracks more addresses than its bound."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ginie_server.clock import ManualClock
from ginie_server.throttle import (
    REFUSAL_BODY,
    REFUSAL_STATUS,
    AuthThrottle,
    ThrottlePolicy,
    refusal_headers,
    retry_after_seconds,
)
from tests.fuzz.strategies import FUZZ

POLICY = ThrottlePolicy(max_failures=3, window_ms=10_000, cooldown_ms=30_000, max_addresses=4)


def make() -> tuple[AuthThrottle, ManualClock]:
    clock = ManualClock()
    return AuthThrottle(clock, POLICY), clock


def test_refuses_after_the_nth_failure_for_the_cooldown() -> None:
    throttle, clock = make()
    assert throttle.record_failure("10.0.0.1") == 0
    assert throttle.record_failure("10.0.0.1") == 0
    assert throttle.blocked_for_ms("10.0.0.1") == 0
    assert throttle.record_failure("10.0.0.1") == 30_000
    assert throttle.blocked_for_ms("10.0.0.1") == 30_000
    clock.advance(29_999)
    assert throttle.blocked_for_ms("10.0.0.1") == 1
    clock.advance(1)
    assert throttle.blocked_for_ms("10.0.0.1") == 0


def test_after_a_cooldown_the_count_starts_again() -> None:
    throttle, clock = make()
    for _ in range(3):
        throttle.record_failure("a")
    clock.advance(30_000)
    assert throttle.record_failure("a") == 0
    assert throttle.record_failure("a") == 0
    assert throttle.record_failure("a") == 30_000


def test_failures_older_than_the_window_do_not_count() -> None:
    throttle, clock = make()
    throttle.record_failure("a")
    throttle.record_failure("a")
    clock.advance(10_000)
    assert throttle.record_failure("a") == 0
    clock.advance(5_000)
    assert throttle.record_failure("a") == 0
    assert throttle.record_failure("a") == 30_000


def test_failures_while_blocked_do_not_extend_the_cooldown() -> None:
    throttle, clock = make()
    for _ in range(3):
        throttle.record_failure("a")
    clock.advance(10_000)
    assert throttle.record_failure("a") == 20_000
    assert throttle.blocked_for_ms("a") == 20_000


def test_addresses_are_counted_apart() -> None:
    throttle, _clock = make()
    for _ in range(3):
        throttle.record_failure("attacker")
    assert throttle.blocked_for_ms("attacker") > 0
    assert throttle.blocked_for_ms("neighbour") == 0
    assert throttle.record_failure("neighbour") == 0


def test_forgets_an_address_once_nothing_about_it_matters() -> None:
    throttle, clock = make()
    throttle.record_failure("a")
    assert throttle.tracked == 1
    clock.advance(10_000)
    assert throttle.blocked_for_ms("a") == 0
    assert throttle.tracked == 0
    assert throttle.blocked_for_ms("never-seen") == 0
    assert throttle.tracked == 0


def test_tracks_at_most_max_addresses_dropping_expired_ones_first() -> None:
    throttle, clock = make()
    for _ in range(3):
        throttle.record_failure("blocked")
    throttle.record_failure("old")
    clock.advance(10_001)
    for address in ("b", "c", "d", "e", "f"):
        throttle.record_failure(address)
        assert throttle.tracked <= POLICY.max_addresses
    assert throttle.blocked_for_ms("blocked") > 0


def test_when_every_address_is_blocked_the_oldest_block_gives_way() -> None:
    throttle, _clock = make()
    for address in ("a", "b", "c", "d", "e"):
        for _ in range(3):
            throttle.record_failure(address)
    assert throttle.tracked == POLICY.max_addresses
    assert throttle.blocked_for_ms("a") == 0
    assert all(throttle.blocked_for_ms(x) > 0 for x in ("b", "c", "d", "e"))


def test_refusal_is_429_json_with_retry_after_in_whole_seconds() -> None:
    assert REFUSAL_STATUS == 429
    assert json.loads(REFUSAL_BODY) == {"error": "too_many_attempts"}
    assert retry_after_seconds(1) == 1
    assert retry_after_seconds(1_000) == 1
    assert retry_after_seconds(1_001) == 2
    assert ("Retry-After", "30") in refusal_headers(30_000)
    assert ("Content-Type", "application/json") in refusal_headers(30_000)


@pytest.mark.parametrize(
    "policy",
    [
        {"max_failures": 0},
        {"window_ms": 0},
        {"cooldown_ms": -1},
        {"max_addresses": 0},
    ],
)
def test_policy_refuses_nonsense_limits(policy: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        ThrottlePolicy(**policy)


operations = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=40_000),
        st.sampled_from([f"10.0.0.{n}" for n in range(8)]),
        st.booleans(),
    ),
    max_size=60,
)


@FUZZ
@given(operations)
def test_any_sequence_stays_bounded_and_honest(ops: list[tuple[int, str, bool]]) -> None:
    throttle, clock = make()
    failures: dict[str, list[int]] = {}
    for advance, address, fail in ops:
        clock.advance(advance)
        blocked = throttle.record_failure(address) if fail else throttle.blocked_for_ms(address)
        assert 0 <= blocked <= POLICY.cooldown_ms
        assert throttle.tracked <= POLICY.max_addresses
        if fail and blocked == 0:
            failures.setdefault(address, []).append(clock.now_ms())
            recent = [t for t in failures[address] if t > clock.now_ms() - POLICY.window_ms]
            assert len(recent) < POLICY.max_failures
