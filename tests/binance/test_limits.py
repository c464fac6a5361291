"""Binance's rate-limit headers and back-offs, as the pure state machine reads them."""

from __future__ import annotations

import pytest

from ginie_server.exchange.binance_limits import RateLimits


def test_weight_and_order_counts_are_read_case_insensitively() -> None:
    limits = RateLimits()
    limits.on_response(
        200,
        {"x-mbx-used-weight-1m": "37", "X-MBX-ORDER-COUNT-10S": "3", "X-MBX-ORDER-COUNT-1M": "9"},
        now=0.0,
    )
    assert (limits.weight_used, limits.order_counts) == (37, {"10S": 3, "1M": 9})
    limits.on_response(200, {"X-MBX-USED-WEIGHT-1M": "not a number"}, now=1.0)
    assert limits.weight_used == 37
    assert limits.wait_s(1.0) == 0 and limits.describe(1.0) is None


def test_429_holds_back_for_retry_after() -> None:
    limits = RateLimits()
    limits.on_response(429, {"Retry-After": "7", "X-MBX-USED-WEIGHT-1M": "2401"}, now=100.0)
    assert limits.weight_used == 2401
    assert limits.wait_s(101.0) == 6.0
    assert not limits.banned(101.0)
    assert limits.describe(101.0) == "rate limited (HTTP 429): no requests for 6 s"
    assert limits.wait_s(107.0) == 0 and limits.describe(107.0) is None


def test_418_is_a_ban_that_a_later_429_neither_shortens_nor_renames() -> None:
    limits = RateLimits()
    limits.on_response(418, {"Retry-After": "120"}, now=0.0)
    limits.on_response(429, {"Retry-After": "1"}, now=1.0)
    assert limits.banned(60.0) and limits.wait_s(60.0) == 60.0
    assert limits.describe(60.0) == "IP banned (HTTP 418): no requests for 60 s"
    assert not limits.banned(120.0)


@pytest.mark.parametrize(
    ("status", "header", "wait"),
    [
        (429, None, 60.0),
        (429, "soon", 60.0),
        (429, "-3", 60.0),
        (418, None, 120.0),
        (429, "0.25", 0.25),
    ],
)
def test_retry_after_missing_or_unreadable_falls_back_to_a_safe_wait(
    status: int, header: str | None, wait: float
) -> None:
    limits = RateLimits()
    limits.on_response(status, {} if header is None else {"Retry-After": header}, now=0.0)
    assert limits.wait_s(0.0) == wait
