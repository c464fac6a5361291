"""The one place that builds and wires the server: database, users, hub, sources, both doors.

`GinieServer(config).start()` opens the database (creating the `demo` user on an empty one),
starts the event sources with the hub as their publisher, and listens on one port where
`process_request` answers REST and `/ws` upgrades to a WebSocket.

In cluster mode (`config.cluster`, `docs/cluster.md`) the node joins its cluster instead of
starting the sources: `ClusterNode` starts them when this node takes the engine lease and
stops them when it loses it; REST snapshots are read from PostgreSQL; commands go to the
engine node wherever it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import http
import json
import logging
import sqlite3
import ssl
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from ginie_protocol.envelope import MAX_FRAME_BYTES
from ginie_server import prometheus
from ginie_server.auth import Authenticator, Refusal
from ginie_server.clock import Clock, SystemClock
from ginie_server.config import ClusterConfig, ConfigError, ServerConfig
from ginie_server.engine import TradingEngine, build_paper_engine
from ginie_server.exchange.base import ExchangeError
from ginie_server.hub import Hub
from ginie_server.rest import LiveSnapshots, RestAnswer, RestApi
from ginie_server.sources import CommandHandler, SnapshotProvider, Source
from ginie_server.storage.backend import Database, dialect_of, is_postgres_url, open_any
from ginie_server.storage.db import WalCheckpointer, transaction
from ginie_server.storage.trading import TradingStore
from ginie_server.storage.users import UserStore
from ginie_server.throttle import AuthThrottle, retry_after_seconds
from ginie_server.ws import WRITE_HIGH_WATER, serve_connection

if TYPE_CHECKING:
    from ginie_server.cluster.node import ClusterNode
    from ginie_server.cluster.snapshots import StoredSnapshots

log = logging.getLogger(__name__)

WS_PATH = "/ws"
HEALTH_PATH = "/api/health"
METRICS_PATH = "/api/metrics"
PROMETHEUS_QUERY = "format=prometheus"
"""`/api/metrics?format=prometheus`: the node's totals in Prometheus' text format."""
DEMO_USER = "demo"
USER_WATCH_SECONDS = 1.0
"""How often the server looks for users created by another process."""

GC_THRESHOLDS = (700, 10, 100)
"""Garbage collection while the server runs. A full collection scans every object the process
holds (about 15 ms for a started server) on the event loop thread, stalling every client; so
the objects of the start-up are frozen out of them (`gc.freeze` once listening) and full
collections come 10x less often than Python's default (700, 10, 10). The young generation
keeps the default, so its collections stay short."""


def exchange_symbols(config: ServerConfig) -> tuple[str, ...]:
    """The symbols `--exchange` trades, known without starting it."""
    if config.exchange == "binance":
        from ginie_server.exchange.binance import DEFAULT_SYMBOLS

        return DEFAULT_SYMBOLS
    from ginie_server.domain.market import SYMBOL_SPECS

    return tuple(SYMBOL_SPECS)


def build_sources(config: ServerConfig, db: Database, clock: Clock) -> list[Source]:
    """The event sources of `--exchange`: what the server publishes."""
    if config.exchange == "paper":
        return [build_paper_engine(db, clock, seed=config.seed, speed=config.speed)]
    if config.exchange == "binance":
        # Imported here: python-binance and aiohttp cost a paper server 0.2 s of start-up.
        from ginie_server.exchange.binance import binance_exchange_from_env

        try:
            exchange = binance_exchange_from_env(config.owner, config.testnet, clock)
        except ExchangeError as exc:
            raise ConfigError(exc.message) from None
        return [TradingEngine(exchange, TradingStore(db), clock)]
    raise ConfigError(f"exchange {config.exchange!r} is not available in this build")


class GinieServer:
    """A running (once started) Ginie server. Start it once, stop it once."""

    def __init__(
        self,
        config: ServerConfig,
        *,
        clock: Clock | None = None,
        sources: list[Source] | None = None,
    ) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self._given_sources = sources
        self.sources: list[Source] = []
        self.demo_token: str | None = None
        """The token of `demo` when this start created it (an empty database), else None."""
        self._db: Database | None = None
        self._checkpointer: WalCheckpointer | None = None
        self._hub: Hub | None = None
        self._ws_server: Server | None = None
        self._auth: Authenticator | None = None
        self._rest: RestApi | None = None
        self._commands: dict[str, CommandHandler] = {}
        self._attached: set[str] = set()
        self._users: UserStore | None = None
        self._users_known = -1
        """How many users there were when the accounts were last opened (users are never
        deleted, so a new count means a new user)."""
        self._user_watch: asyncio.Task[None] | None = None
        self._started_sources: list[Source] = []
        self._gc_thresholds: tuple[int, int, int] | None = None
        self._node: ClusterNode | None = None
        self._stored: StoredSnapshots | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open everything and listen. Raises DatabaseError, ConfigError or OSError."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        config = self.config
        cluster = config.cluster
        if cluster is None:
            db = self._db = open_any(config.database)
        elif config.db_url is None or not is_postgres_url(config.db_url):
            raise ConfigError("a cluster node (--broker) needs a PostgreSQL --db")
        else:
            from ginie_server.cluster.lease import STALLED
            from ginie_server.storage.postgres import open_postgres

            db = self._db = open_postgres(config.db_url, STALLED)
        if isinstance(db, sqlite3.Connection):
            self._checkpointer = WalCheckpointer(db)
            self._checkpointer.start()
        users = self._users = UserStore(db)
        if not users.has_users():
            with transaction(db):
                self.demo_token = users.create_token(DEMO_USER, self.clock.now_ms())
        hub = self._hub = Hub(db, clock=self.clock, limits=config.limits)
        self._auth = Authenticator(users, AuthThrottle(self.clock))
        if cluster is None:
            self._commands = await self._start_sources()
            snapshots: dict[str, SnapshotProvider] = {}
            for source in self.sources:
                snapshots.update(source.snapshots)
            market = [s.market_snapshot for s in self.sources if s.market_snapshot is not None]
            self._rest = RestApi(hub, LiveSnapshots(hub, snapshots), market)
        else:
            await self._join(cluster, hub)
        limits = config.limits
        self._ws_server = await serve(
            self._serve_ws,
            config.host,
            config.port,
            process_request=self._process_request,
            server_header="ginie",
            compression=None,
            max_size=MAX_FRAME_BYTES,
            ping_interval=limits.ping_interval,
            ping_timeout=limits.ping_timeout,
            close_timeout=limits.close_timeout,
            write_limit=WRITE_HIGH_WATER,
            ssl=self._ssl_context(),
            logger=logging.getLogger("ginie_server.websockets"),
        )
        self._gc_thresholds = gc.get_threshold()
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)

    async def stop(self) -> None:
        """Close connections (1001), stop the sources (in a cluster: leave it, handing the
        engine over), deliver what is pending, stop the WAL checkpointer, close the db (which
        checkpoints the rest) and restore the collector."""
        server, self._ws_server = self._ws_server, None
        if server is not None:
            server.close()
            try:
                async with asyncio.timeout(self.config.limits.close_timeout):
                    await server.wait_closed()
            except TimeoutError:
                for connection in list(server.all_connections):
                    connection.transport.abort()
                await server.wait_closed()
        node, self._node = self._node, None
        if node is not None:
            await node.stop()
        await self._stop_sources()
        stored, self._stored = self._stored, None
        if stored is not None:
            stored.close()
        if self._hub is not None:
            self._hub.close()
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            await asyncio.to_thread(checkpointer.stop)
        db, self._db = self._db, None
        if db is not None:
            db.close()
        thresholds, self._gc_thresholds = self._gc_thresholds, None
        if thresholds is not None:
            gc.set_threshold(*thresholds)
            gc.unfreeze()

    # ------------------------------------------------------------------ the sources

    async def _start_sources(self) -> dict[str, CommandHandler]:
        """Build and start the event sources, open every user's account, watch for new
        users; the sources' command handlers."""
        assert self._hub is not None and self._db is not None
        self.sources = (
            list(self._given_sources)
            if self._given_sources is not None
            else build_sources(self.config, self._db, self.clock)
        )
        commands: dict[str, CommandHandler] = {}
        for source in self.sources:
            commands.update(source.commands)
            await source.start(self._hub)
            self._started_sources.append(source)
        self._attached = set()
        self._users_known = -1
        self._open_accounts()
        self._user_watch = asyncio.create_task(self._watch_users(), name="user-watch")
        return commands

    async def _stop_sources(self) -> None:
        watch, self._user_watch = self._user_watch, None
        if watch is not None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        sources, self._started_sources = self._started_sources, []
        for source in reversed(sources):
            try:
                await source.stop()
            except Exception:
                log.exception("a source failed to stop")
        self.sources = []
        self._attached = set()

    async def _join(self, cluster: ClusterConfig, hub: Hub) -> None:
        """Join the cluster: snapshots from PostgreSQL, the market as relayed, commands
        routed, the engine started when this node takes the lease."""
        from ginie_server.cluster.node import ClusterNode
        from ginie_server.cluster.snapshots import StoredSnapshots

        assert self.config.db_url is not None
        self._stored = StoredSnapshots(
            self.config.db_url, exchange_symbols(self.config), self.config.exchange, self.clock
        )
        self._rest = RestApi(hub, self._stored, [hub.recent_market])
        node = self._node = ClusterNode(
            cluster,
            self.config.db_url,
            hub,
            take_engine=self._start_sources,
            give_up_engine=self._stop_sources,
        )
        self._commands = node.commands()
        await node.start()

    @property
    def node(self) -> ClusterNode | None:
        """This server's side of its cluster, if it is a cluster node."""
        return self._node

    # ------------------------------------------------------------------ addresses

    @property
    def hub(self) -> Hub:
        if self._hub is None:
            raise RuntimeError("the server is not started")
        return self._hub

    def create_token(self, user: str) -> str:
        """Create `user` if needed and a new token for it (the `token create` of a live server)."""
        if self._db is None:
            raise RuntimeError("the server is not started")
        with transaction(self._db):
            token = UserStore(self._db).create_token(user, self.clock.now_ms())
        self._attach(user)
        return token

    @property
    def host(self) -> str:
        return self.config.host

    @property
    def port(self) -> int:
        """The port listened on (the real one when started with port 0)."""
        if self._ws_server is None:
            raise RuntimeError("the server is not started")
        return int(self._ws_server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        scheme = "https" if self.config.tls else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1) + WS_PATH

    # ------------------------------------------------------------------ the doors

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        """Answer REST requests here; let authenticated `/ws` upgrades through."""
        if connection.protocol.eof_sent:
            # Bytes followed the request head (a body, a pipelined request) and websockets has
            # already given up on the connection: no answer can be sent, so just drop it.
            connection.transport.abort()
            await asyncio.shield(connection.connection_lost_waiter)
            return _json(400, {"error": "bad_request", "message": "unexpected request body"})
        return self._answer_request(connection, request)

    def _answer_request(self, connection: ServerConnection, request: Request) -> Response | None:
        assert self._auth is not None and self._rest is not None
        path, _, query = request.path.partition("?")
        if request.method != "GET":
            return _json(405, {"error": "method_not_allowed", "message": "only GET is served"})
        if path == HEALTH_PATH:
            return _answer(self._rest.health())
        address = str(connection.remote_address[0]) if connection.remote_address else "?"
        who = self._auth.authenticate(request.headers, address)
        if isinstance(who, Refusal):
            return _refusal(who)
        self._attach(who)
        if path == WS_PATH:
            cluster = self.config.cluster
            if cluster is not None and not cluster.serves_clients:
                message = "this node only runs the engine (--role engine); connect to another"
                return _json(503, {"error": "unavailable", "message": message})
            if request.headers.get("Upgrade", "").lower() != "websocket":
                return _json(
                    426, {"error": "upgrade_required", "message": "open /ws as a WebSocket"}
                )
            connection.username = who
            return None
        route = self._rest.route_name(path)
        if route is not None:
            self.hub.metrics(who).rest_calls[route] += 1
        if path == METRICS_PATH and query == PROMETHEUS_QUERY:
            assert self._db is not None
            body = prometheus.render(self.hub, dialect_of(self._db).name, self._node)
            return _text(200, body, prometheus.CONTENT_TYPE)
        return _answer(self._rest.handle(who, path, query))

    async def _serve_ws(self, connection: ServerConnection) -> None:
        await serve_connection(
            connection, connection.username, self.hub, self._commands, self.config.limits
        )

    def _open_accounts(self) -> None:
        """Give every user the sources have not seen yet its account (a user made by
        `token create` trades from its creation, whether or not it ever connects)."""
        if self._users is None:
            return
        count = self._users.count()
        if count == self._users_known:
            return
        for user in self._users.users():
            self._attach(user)
        self._users_known = count

    async def _watch_users(self) -> None:
        """Notice users created by another process (`ginie-server token create`)."""
        assert self._db is not None
        errors = dialect_of(self._db).errors
        while True:
            await asyncio.sleep(USER_WATCH_SECONDS)
            try:
                self._open_accounts()
            except errors:
                log.exception("cannot read the users; trying again")

    def _attach(self, user: str) -> None:
        if user in self._attached:
            return
        self._attached.add(user)
        for source in self.sources:
            try:
                source.attach_user(user)
            except Exception:
                log.exception("a source failed to set up user %s", user)

    def _ssl_context(self) -> ssl.SSLContext | None:
        config = self.config
        if config.tls_cert is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(config.tls_cert, config.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load TLS certificate {config.tls_cert}: {exc}") from None
        return context


def _json(
    status: int, body: dict[str, Any], extra: list[tuple[str, str]] | None = None
) -> Response:
    return _text(
        status, json.dumps(body, separators=(",", ":")).encode(), "application/json", extra
    )


def _text(
    status: int, payload: bytes, content_type: str, extra: list[tuple[str, str]] | None = None
) -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(payload))),
            ("Cache-Control", "no-store"),
            ("Connection", "close"),
            *(extra or []),
        ]
    )
    return Response(status, http.HTTPStatus(status).phrase, headers, payload)


def _answer(answer: RestAnswer) -> Response:
    return _json(answer.status, answer.body)


def _refusal(refusal: Refusal) -> Response:
    if refusal.status == 429:
        retry = [("Retry-After", str(retry_after_seconds(refusal.retry_after_ms)))]
        return _json(429, {"error": refusal.error}, retry)
    return _json(refusal.status, {"error": refusal.error}, [("WWW-Authenticate", "Bearer")])
