"""The trading engine, in parts (see `docs/architecture.md`):

- `book`: one user's account in typed maps, and the figures derived from it;
- `view`: what the user's events last said, which snapshots serve;
- `outbox`: the events a change queued, and their publication with the state they describe;
- `persistence`: staged writes of that state, and loading a user back;
- `execution`: the orders chains want, carried out against the exchange in order;
- `chains`: chain orchestration, from a signal to a closed chain;
- `commands`: the command handlers, each typed by its arguments;
- `snapshots`: the REST snapshot providers;
- `health`: the engine's own health;
- `trading`: the schedule and the exchange listener that wire the rest.
"""

from __future__ import annotations

from ginie_protocol.events import Balance, Order, Position, Topic
from ginie_server.clock import Clock
from ginie_server.engine.book import KEPT_CHAINS, KEPT_ORDERS, KEPT_TRADES, AccountBook
from ginie_server.engine.snapshots import ENGINE_TOPICS
from ginie_server.engine.trading import TradingEngine
from ginie_server.exchange.paper import AccountLoader, PaperAccountState, PaperExchange
from ginie_server.storage.backend import Database
from ginie_server.storage.trading import TradingStore

__all__ = [
    "ENGINE_TOPICS",
    "KEPT_CHAINS",
    "KEPT_ORDERS",
    "KEPT_TRADES",
    "AccountBook",
    "TradingEngine",
    "build_paper_engine",
    "paper_account_loader",
]


def paper_account_loader(store: TradingStore) -> AccountLoader:
    """Reload a paper account from what the engine last published for its user."""

    def load(user: str) -> PaperAccountState | None:
        topics = store.load(user, finished_limit=0).topics
        balance_json = topics.get(Topic.BALANCE_UPDATE, {}).get("USDT")
        if balance_json is None:
            return None
        balance = Balance.model_validate_json(balance_json)
        positions = [
            p
            for p in (
                Position.model_validate_json(js)
                for js in topics.get(Topic.POSITION_UPDATE, {}).values()
            )
            if p.size != 0
        ]
        orders = [
            o
            for o in (
                Order.model_validate_json(js) for js in topics.get(Topic.ORDER_UPDATE, {}).values()
            )
            if o.status in ("NEW", "PARTIALLY_FILLED")
        ]
        return PaperAccountState(balance.wallet_balance, positions, orders)

    return load


def build_paper_engine(
    db: Database,
    clock: Clock,
    *,
    seed: int,
    speed: float,
    loop_seconds: float | None = 0.2,
) -> TradingEngine:
    """The engine on a paper exchange whose market and accounts go on from the database."""
    store = TradingStore(db)
    paper = PaperExchange(
        seed=seed,
        speed=speed,
        clock=clock,
        tick_seconds=loop_seconds,
        start_prices=store.load_prices() or None,
        load_account=paper_account_loader(store),
    )
    return TradingEngine(paper, store, clock, loop_seconds=loop_seconds)
