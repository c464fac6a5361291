"""REST to Binance through python-binance's `AsyncClient`, which signs every request.

The client's base URL is taken from `futures_url`. An aiohttp trace hook reads every response
(so concurrent requests cannot mix them up): its latency, and its rate-limit headers into
`binance_limits.RateLimits`. After a 429 or a 418 no request is sent until its `Retry-After`
has passed; a call made meanwhile fails at once. Binance errors become `ExchangeError`, naming
the request that failed, and a malformed answer `ExchangeError("bad_response")`.

Binance's algo service may not know a conditional order for a few seconds after accepting it:
reading it back or cancelling it meanwhile (-2013, -2011) is retried for `algo_visibility_s`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any, ParamSpec, TypeVar

import aiohttp
from binance.exceptions import BinanceAPIException, BinanceRequestException

from binance import AsyncClient
from ginie_server.exchange.base import ExchangeError
from ginie_server.exchange.binance_health import LinkHealth
from ginie_server.exchange.binance_limits import BANNED, RATE_LIMITED, RateLimits, backoff
from ginie_server.exchange.binance_mapping import BinancePayloadError

log = logging.getLogger("ginie_server.exchange.binance")

_T = TypeVar("_T")
_P = ParamSpec("_P")

_ERROR_CODES: dict[int, str] = {
    -1003: "rate_limited",
    -1021: "clock_skew",
    -1022: "bad_signature",
    -1102: "bad_request",
    -1111: "bad_precision",
    -1116: "bad_order_type",
    -1121: "invalid_symbol",
    -1125: "listen_key_expired",
    -2011: "unknown_order",
    -2013: "order_not_found",
    -2014: "bad_api_key",
    -2015: "bad_api_key",
    -2019: "insufficient_margin",
    -2022: "reduce_only_rejected",
    -4003: "bad_quantity",
    -4028: "bad_leverage",
    -4116: "duplicate_client_order_id",
    -4164: "notional_too_small",
}

_STATUS_CODES: dict[int, str] = {BANNED: "ip_banned", RATE_LIMITED: "rate_limited"}
_UNKNOWN_ORDER_CODES = frozenset({"unknown_order", "order_not_found"})


def exchange_error(error: BinanceAPIException) -> ExchangeError:
    """A Binance API error as a short stable code, a readable message and the failed request.

    An answer without Binance's JSON error body (a proxy's 503, say) is named by its HTTP status.
    """
    status = int(error.status_code or 0)
    response = error.response
    method, url = getattr(response, "method", None), getattr(response, "url", None)
    call = f"{method} {url.path}" if method and url is not None else None
    if error.code:
        code = _STATUS_CODES.get(status) or _ERROR_CODES.get(int(error.code), "binance_error")
        return ExchangeError(code, f"{error.message} (Binance {error.code})", call=call)
    if status in _STATUS_CODES:
        code = _STATUS_CODES[status]
    else:
        code = "exchange_unavailable" if status >= 500 else "binance_error"
    reason = getattr(response, "reason", None) or ""
    return ExchangeError(code, f"HTTP {status} {reason}".rstrip(), call=call)


def parse_order_id(text: str) -> int:
    """A Binance order (or algo) id from its text; ExchangeError when it is not one."""
    if not text.isdigit():
        raise ExchangeError("bad_request", f"not a Binance order id: {text!r}")
    return int(text)


class BinanceRest:
    """REST to one Binance account: `open` before the first call, `close` after the last."""

    def __init__(
        self,
        futures_url: str,
        api_key: str,
        api_secret: str,
        rate_limits: RateLimits,
        health: LinkHealth,
        *,
        algo_visibility_s: float,
    ) -> None:
        self.rate_limits = rate_limits
        """Request weight, order counts and any 429/418 back-off, as Binance last reported."""
        self._futures_url = futures_url
        self._credentials = (api_key, api_secret)
        self._health = health
        self._algo_visibility_s = algo_visibility_s
        self._algo_placed: dict[str, float] = {}
        self._client: AsyncClient | None = None

    @property
    def client(self) -> AsyncClient:
        """The python-binance client; ExchangeError while the exchange is not started."""
        if self._client is None:
            raise ExchangeError("exchange_unavailable", "the Binance exchange is not started")
        return self._client

    def open(self) -> AsyncClient:
        """Make the client, every response of which goes through the trace hooks."""
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(self._on_request_start)
        trace.on_request_end.append(self._on_request_end)
        api_key, api_secret = self._credentials
        client = AsyncClient(api_key, api_secret, session_params={"trace_configs": [trace]})
        client.FUTURES_URL = self._futures_url
        self._client = client
        return client

    def align_clock(self, server_ms: int) -> None:
        """Sign requests on Binance's clock, given its time as just read."""
        # python-binance signs with time.time() plus this offset, so it is measured
        # against the same wall clock rather than the injectable one.
        self.client.timestamp_offset = server_ms - int(time.time() * 1000)

    async def close(self) -> None:
        """Close the client's connections; idempotent."""
        client, self._client = self._client, None
        if client is not None:
            await client.close_connection()

    async def call(self, method: Callable[..., Awaitable[Any]], **params: Any) -> Any:
        """One REST call; Binance and transport errors become ExchangeError, shown in health."""
        try:
            return await self._send(method, **params)
        except ExchangeError as failure:
            self._failed(failure)
            raise

    async def read_back(
        self, order_id: str, method: Callable[..., Awaitable[Any]], **params: Any
    ) -> Any:
        """`call` about one order. Binance's algo service may not know a conditional order for
        a few seconds after accepting it, so while that order is younger than
        `algo_visibility_s` an unknown-order answer (-2013, -2011) is asked again, with backoff."""
        attempt = 0
        while True:
            try:
                return await self._send(method, **params)
            except ExchangeError as failure:
                placed = self._algo_placed.get(order_id, -math.inf)
                left = placed + self._algo_visibility_s - time.monotonic()
                if failure.code not in _UNKNOWN_ORDER_CODES or left <= 0:
                    self._failed(failure)
                    raise
                log.info("Binance does not know algo order %s yet; asking again", order_id)
            await asyncio.sleep(min(left, backoff(attempt, (0.1, 1.0))))
            attempt += 1

    def note_algo_placed(self, order_id: str) -> None:
        """A conditional order was just accepted: `read_back` gives it time to become known."""
        now = time.monotonic()
        for key in [k for k, t in self._algo_placed.items() if now - t > self._algo_visibility_s]:
            del self._algo_placed[key]
        self._algo_placed[order_id] = now

    async def wait_allowed(self) -> None:
        """Wait out the 429/418 back-off in force, if any."""
        wait = self.rate_limits.wait_s(time.monotonic())
        if wait > 0:
            await asyncio.sleep(wait)

    def map(self, what: str, build: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Map a REST response with `build(*args, **kwargs)`; a malformed one is ExchangeError."""
        try:
            return build(*args, **kwargs)
        except BinancePayloadError as error:
            self._health.count_malformed(error)
            raise ExchangeError("bad_response", f"Binance sent a malformed {what}") from error

    async def _send(self, method: Callable[..., Awaitable[Any]], **params: Any) -> Any:
        """One REST call, refused without sending while a 429/418 back-off is in force."""
        blocked = self.rate_limits.describe(time.monotonic())
        if blocked is not None:
            code = "ip_banned" if self.rate_limits.banned(time.monotonic()) else "rate_limited"
            raise ExchangeError(code, f"Binance {blocked}", call=method.__name__)
        try:
            return await method(**params)
        except BinanceAPIException as error:
            raise exchange_error(error) from None
        except (BinanceRequestException, aiohttp.ClientError, TimeoutError) as error:
            raise ExchangeError(
                "exchange_unavailable", f"Binance unreachable: {error}", call=method.__name__
            ) from None

    def _failed(self, failure: ExchangeError) -> None:
        self._health.last_error = failure.message
        self._health.report()

    async def _on_request_start(
        self, _session: aiohttp.ClientSession, context: SimpleNamespace, _params: Any
    ) -> None:
        context.started = asyncio.get_running_loop().time()

    async def _on_request_end(
        self,
        _session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        self._health.latency_ms = (asyncio.get_running_loop().time() - context.started) * 1000
        status = params.response.status
        now = time.monotonic()
        self.rate_limits.on_response(status, params.response.headers, now)
        wait = self.rate_limits.wait_s(now)
        if wait > 0:
            log.warning("Binance: %s", self.rate_limits.describe(now))
            self._health.report_after(wait)
        if status < 400:
            self._health.last_error = None
        self._health.report()
