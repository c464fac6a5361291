"""The connection state machine, the reconnect backoff and the fallback-poll schedule."""

from __future__ import annotations

import random

import pytest

from ginie_tui.connection import Backoff, ConnectionMachine, ConnState


def test_backoff_is_full_jitter_under_an_exponential_ceiling() -> None:
    backoff = Backoff(0.5, 30.0, random.Random(7))
    assert [backoff.ceiling(n) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    for attempt in range(40):
        assert 0.0 <= backoff.delay(attempt) <= backoff.ceiling(attempt)


def test_backoff_is_reproducible_with_a_seed() -> None:
    a = Backoff(rng=random.Random(3))
    b = Backoff(rng=random.Random(3))
    assert [a.delay(n) for n in range(10)] == [b.delay(n) for n in range(10)]


def test_backoff_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        Backoff(0, 1)
    with pytest.raises(ValueError):
        Backoff(2, 1)


def test_starts_offline_then_live_with_latency() -> None:
    m = ConnectionMachine()
    assert m.status(0).state is ConnState.OFFLINE
    m.connected(1_000, latency_ms=12.5)
    status = m.status(1_000)
    assert status.state is ConnState.LIVE and status.latency_ms == 12.5 and status.live


def test_live_turns_stale_when_nothing_arrives_past_the_ping_timeout() -> None:
    m = ConnectionMachine(stale_after_ms=30_000)
    m.connected(0)
    assert m.status(30_000).state is ConnState.LIVE
    assert m.status(30_001).state is ConnState.STALE
    m.message(30_002, latency_ms=4.0)
    assert m.status(30_002).state is ConnState.LIVE
    assert not m.status(60_003).live


def test_drop_reconnecting_then_polling_after_grace() -> None:
    m = ConnectionMachine(poll_interval_ms=60_000, grace_ms=5_000)
    m.connected(0)
    m.dropped(10_000)
    m.retry_scheduled(1, 10_400)
    s = m.status(10_000)
    assert (s.state, s.attempt, s.next_retry_at) == (ConnState.RECONNECTING, 1, 10_400)
    assert s.next_poll_at == 15_000
    assert not m.poll_due(14_999) and m.poll_due(15_000)
    assert m.status(15_000).state is ConnState.POLLING


def test_polls_once_at_grace_then_every_interval_and_never_while_live() -> None:
    m = ConnectionMachine(poll_interval_ms=60_000, grace_ms=5_000)
    m.connected(0)
    m.dropped(1_000)
    m.polled(6_000)
    assert m.next_poll_at() == 66_000
    assert m.status(7_000).last_sync_at == 6_000
    m.polled(66_000, error="connection refused")
    s = m.status(66_000)
    assert s.state is ConnState.POLLING and s.detail == "connection refused"
    assert s.last_sync_at == 6_000 and s.next_poll_at == 126_000
    m.connected(70_000)
    assert m.next_poll_at() is None and not m.poll_due(10**12)


def test_no_poll_comes_sooner_than_the_interval_across_drops() -> None:
    m = ConnectionMachine(poll_interval_ms=60_000, grace_ms=5_000)
    m.connected(0)
    m.dropped(0)
    m.polled(5_000)
    m.connected(6_000)
    m.dropped(7_000)
    assert m.next_poll_at() == 65_000, "not 12_000: the interval holds across drops"


def test_repeated_failed_connects_keep_the_first_drop_time() -> None:
    m = ConnectionMachine(grace_ms=5_000)
    m.connected(0)
    m.dropped(1_000)
    m.dropped(2_000)
    m.dropped(4_000)
    assert m.next_poll_at() == 6_000


def test_a_feed_that_never_connected_goes_reconnecting_then_polling() -> None:
    m = ConnectionMachine(grace_ms=5_000)
    m.dropped(0)
    assert m.status(1).state is ConnState.RECONNECTING
    assert m.status(5_000).state is ConnState.POLLING


def test_stopped_is_offline_with_the_reason_and_no_polls() -> None:
    m = ConnectionMachine()
    m.connected(0)
    m.dropped(1)
    m.stopped("the server refused the token")
    s = m.status(100_000)
    assert (s.state, s.detail) == (ConnState.OFFLINE, "the server refused the token")
    assert m.next_poll_at() is None


def test_rejects_bad_intervals() -> None:
    with pytest.raises(ValueError):
        ConnectionMachine(poll_interval_ms=0)
