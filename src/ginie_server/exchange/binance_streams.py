"""Binance's WebSocket streams through `binance.BinanceSocketManager` on `stream_url`, each
under its own supervisor.

The library's own reconnects are turned off: any end of a stream (a drop, the 24-hour
disconnect, `listenKeyExpired`, a rotated key) makes the supervisor open a fresh one, with a
fresh listenKey for the user data stream, after a jittered backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from binance import BinanceSocketManager
from ginie_server.exchange.binance_limits import backoff
from ginie_server.exchange.binance_rest import BinanceRest

log = logging.getLogger("ginie_server.exchange.binance")

Session = Callable[[], Awaitable[None]]
"""One life of a stream: connect, read until it ends."""


class StreamSockets:
    """Opens the sockets of one Binance link and keeps each stream going until `stopping`."""

    def __init__(
        self,
        rest: BinanceRest,
        stream_url: str,
        *,
        keepalive_interval_s: float,
        reconnect_delay_s: tuple[float, float],
        stopping: asyncio.Event,
    ) -> None:
        self._rest = rest
        self._stream_url = stream_url
        self._keepalive_interval_s = keepalive_interval_s
        self._reconnect_delay_s = reconnect_delay_s
        self._stopping = stopping

    async def user(self) -> Any:
        """A new user data stream socket (its listenKey, asked for by REST on entering it, is
        kept alive by the library every `keepalive_interval_s`), once REST may be used."""
        await self._rest.wait_allowed()
        socket = self._manager().futures_user_socket()
        socket.MAX_RECONNECTS = 0
        return socket

    def multiplex(self, streams: list[str], category: str) -> Any:
        """A new combined market stream socket."""
        socket = self._manager().futures_multiplex_socket(streams, category=category)
        socket.MAX_RECONNECTS = 0
        return socket

    async def supervise(self, name: str, session: Session) -> None:
        """Run a stream session again and again, with jittered exponential backoff."""
        attempt = 0
        while not self._stopping.is_set():
            started = asyncio.get_running_loop().time()
            try:
                await session()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("Binance %s stream failed: %s", name, error)
            if self._stopping.is_set():
                return
            if asyncio.get_running_loop().time() - started > 60:
                attempt = 0
            delay = backoff(attempt, self._reconnect_delay_s)
            attempt += 1
            log.info("Binance %s stream ended; reconnecting in %.1f s", name, delay)
            await asyncio.sleep(delay)

    @staticmethod
    async def close(socket: Any) -> None:
        """Close a python-binance socket promptly (closing the connection first lets its read
        loop end at once instead of waiting out its receive timeout)."""
        if socket.ws is not None:
            with contextlib.suppress(Exception):
                await socket.ws.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(socket.__aexit__(None, None, None), timeout=5)

    def _manager(self) -> BinanceSocketManager:
        manager = BinanceSocketManager(
            self._rest.client,
            user_timeout=self._keepalive_interval_s,
            max_queue_size=10_000,
        )
        manager.FSTREAM_URL = self._stream_url
        return manager
