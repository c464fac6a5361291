"""The REST jobs the user data stream depends on: the reconcile and the position refresh, each
run beside the stream and retried with backoff until it succeeds.

After every (re)connect of the user stream a reconcile (open orders, conditional orders, the
fills made since the last one seen, position risk, balances) brings the account cache, and
through it the listener, up to date with whatever changed while the stream was down. The
stream is read meanwhile: a job that fails (an endpoint answering 5xx, a rate limit) is tried
again after a jittered backoff while live events flow, and the health is `degraded`, naming
the failing call, until one succeeds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ginie_protocol.events import Order
from ginie_server.clock import Clock
from ginie_server.exchange import binance_mapping as mapping
from ginie_server.exchange.base import ExchangeError
from ginie_server.exchange.binance_account import AccountCache
from ginie_server.exchange.binance_health import LinkHealth
from ginie_server.exchange.binance_limits import backoff
from ginie_server.exchange.binance_rest import BinanceRest, parse_order_id

log = logging.getLogger("ginie_server.exchange.binance")

RECONCILE = "reconcile"
POSITIONS = "position refresh"


class Reconciler:
    """The account brought up to date by REST when the user stream asks (`want`)."""

    def __init__(
        self,
        rest: BinanceRest,
        account: AccountCache,
        health: LinkHealth,
        symbols: tuple[str, ...],
        clock: Clock,
        *,
        chain_of: mapping.ChainOf,
        retry_s: tuple[float, float],
    ) -> None:
        self._rest = rest
        self._account = account
        self._health = health
        self._symbols = symbols
        self._clock = clock
        self._chain_of = chain_of
        self._retry_s = retry_s
        self._wanted: set[str] = set()
        self._wake = asyncio.Event()
        self.synced = asyncio.Event()
        """Set once the first job was tried, whether it succeeded or not."""
        self.reconciles = 0
        """How many REST reconciles completed."""
        self.reconciled = False
        """Whether a reconcile succeeded since the user data stream last connected."""

    # ------------------------------------------------------------------ the jobs, with backoff

    def want(self, job: str) -> None:
        """Ask `run` for a job (`RECONCILE` or `POSITIONS`)."""
        self._wanted.add(job)
        self._wake.set()

    async def run(self) -> None:
        """Run the jobs wanted, one at a time, each until it succeeds; runs while the user
        stream is connected. A reconcile covers a position refresh, so one wanted together
        with it is dropped."""
        jobs = {RECONCILE: self.reconcile, POSITIONS: self.refresh_positions}
        while True:
            await self._wake.wait()
            self._wake.clear()
            wanted, self._wanted = self._wanted, set()
            for name in [RECONCILE] if RECONCILE in wanted else sorted(wanted):
                await self._until_done(name, jobs[name])

    async def _until_done(self, name: str, job: Callable[[], Awaitable[None]]) -> None:
        """Run `job` until it succeeds; while it fails the health is `degraded` and names the
        failing call, and it is tried again after a jittered backoff (`retry_s`)."""
        attempt = 0
        while True:
            await self._rest.wait_allowed()
            try:
                await job()
            except ExchangeError as error:
                failure = f"{error.call or name}: {error.message}"
                # Said once per kind of failure; the retries that fail alike only at debug level.
                level = logging.DEBUG if failure == self._health.rest_error else logging.WARNING
                log.log(level, "Binance %s failed, the stream goes on: %s", name, failure)
                self._health.rest_error = failure
            else:
                if self._health.rest_error is not None:
                    log.info("Binance %s succeeded again", name)
                self._health.rest_error = None
                self.synced.set()
                self._health.report()
                return
            self.synced.set()  # start() waits for the first attempt, not for a success
            self._health.report()
            await asyncio.sleep(backoff(attempt, self._retry_s))
            attempt += 1

    # ------------------------------------------------------------------ reconcile

    async def reconcile(self) -> None:
        """Bring the cache, and through it the listener, up to date by REST.

        Order: orders first (open ones, then what became of the cached open ones that are no
        longer open), then the fills since the last one seen, then positions and balances.
        The first reconcile only learns which fills already happened; it reports none of them.
        """
        client = self._rest.client
        first = self.reconciles == 0
        open_items = await self._rest.call(client.futures_get_open_orders)
        algo_items = await self._rest.call(client.futures_get_open_orders, conditional=True)
        still_open: set[str] = set()
        for item in open_items:
            order = self._rest.map(
                "open order",
                mapping.rest_order,
                item,
                chain_of=self._chain_of,
                previous=self._account.orders.get(str(item.get("orderId"))),
            )
            still_open.add(order.order_id)
            self._account.apply_order(order)
        for item in algo_items:
            order_id = f"{mapping.ALGO_ORDER_PREFIX}{item.get('algoId')}"
            order = self._rest.map(
                "open algo order",
                mapping.rest_algo_order,
                item,
                chain_of=self._chain_of,
                previous=self._account.orders.get(order_id),
            )
            still_open.add(order.order_id)
            self._account.apply_order(order)
        for cached in [o for o in self._account.open_orders() if o.order_id not in still_open]:
            await self._refresh_order(cached)

        for symbol in dict.fromkeys([*self._symbols, *self._account.order_symbols()]):
            await self._catch_up_fills(symbol, report=not first)

        await self.refresh_positions()
        seq = self._account.stream_seq
        balances = await self._rest.call(client.futures_account_balance)
        now = self._clock.now_ms()
        for balance in self._rest.map("balances", mapping.rest_balances, balances, now_ms=now):
            if not self._account.set_by_stream_since(f"balance:{balance.asset}", seq):
                self._account.apply_balance(balance)
        self.reconciled = True
        self.reconciles += 1
        log.info("Binance account reconciled (%d open orders)", len(self._account.open_orders()))

    async def refresh_positions(self) -> None:
        """Read the positions by REST; a symbol absent from the answer is flat. A position the
        stream changed while the request was out keeps the stream's value."""
        seq = self._account.stream_seq
        items = await self._rest.call(self._rest.client.futures_position_information)
        now = self._clock.now_ms()
        positions = self._account.positions
        fresh = self._rest.map(
            "position risk", mapping.rest_positions, items, previous=positions, now_ms=now
        )
        flat = {
            symbol: cached.model_copy(
                update={
                    "size": 0.0,
                    "unrealized_pnl": 0.0,
                    "margin": 0.0,
                    "liquidation_price": None,
                    "updated_at": now,
                }
            )
            for symbol, cached in positions.items()
            if cached.size != 0
        }
        flat.update({position.symbol: position for position in fresh})
        for symbol, position in flat.items():
            if not self._account.set_by_stream_since(f"position:{symbol}", seq):
                self._account.apply_position(position)

    async def _refresh_order(self, cached: Order) -> None:
        """Ask Binance what became of an order that is no longer open."""
        client = self._rest.client
        if cached.order_id.startswith(mapping.ALGO_ORDER_PREFIX):
            algo_id = parse_order_id(cached.order_id[len(mapping.ALGO_ORDER_PREFIX) :])
            item = await self._rest.read_back(
                cached.order_id, client.futures_get_order, algoId=algo_id
            )
            build = mapping.rest_algo_order
        else:
            item = await self._rest.call(
                client.futures_get_order, symbol=cached.symbol, orderId=int(cached.order_id)
            )
            build = mapping.rest_order
        self._account.apply_order(
            self._rest.map("order", build, item, chain_of=self._chain_of, previous=cached)
        )

    async def _catch_up_fills(self, symbol: str, *, report: bool) -> None:
        """Report the fills of `symbol` made since the last one seen (by trade id)."""
        client = self._rest.client
        last = self._account.last_trade_id(symbol)
        if last is None:
            items = await self._rest.call(client.futures_account_trades, symbol=symbol, limit=100)
        else:
            items = await self._rest.call(
                client.futures_account_trades, symbol=symbol, fromId=last + 1, limit=1000
            )
        numbered = [
            (self._rest.map("fill", mapping.rest_trade_number, item), item) for item in items
        ]
        for trade_id, item in sorted(numbered, key=lambda pair: pair[0]):
            if self._account.knows_trade(symbol, trade_id):
                continue
            if not report:
                self._account.remember_trade(symbol, trade_id)
                continue
            order = await self._order_of_fill(symbol, str(item.get("orderId")))
            client_order_id = order.client_order_id if order is not None else ""
            self._account.apply_trade(
                self._rest.map(
                    "fill",
                    mapping.rest_trade,
                    item,
                    client_order_id=client_order_id,
                    chain_of=self._chain_of,
                )
            )

    async def _order_of_fill(self, symbol: str, order_id: str) -> Order | None:
        """The order a recovered fill belongs to, refreshed unless already final."""
        order = self._account.orders.get(order_id)
        if order is not None and order.status in mapping.TERMINAL_STATUSES:
            return order
        item = await self._rest.call(
            self._rest.client.futures_get_order, symbol=symbol, orderId=parse_order_id(order_id)
        )
        self._account.apply_order(
            self._rest.map(
                "order", mapping.rest_order, item, chain_of=self._chain_of, previous=order
            )
        )
        return self._account.orders.get(order_id)
