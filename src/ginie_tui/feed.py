"""The feed: the only code in the console that touches the network.

One WebSocket to `/ws` (HELLO, subscribe to everything, resume from the store's `seq`, RESYNC by
one `/api/snapshot`), reconnected with exponential backoff and full jitter; one fallback poller
that calls `/api/snapshot` only while not LIVE (see connection.py for the schedule); commands
sent over the socket and answered by ACK; and one `/api/market/{symbol}` fetch of recent candles
for each symbol the console shows, once per connection and again after a RESYNC (market events
are not replayed, so that is how a sparkline gets its history). Everything it receives goes
into the one Store and is then reported to a FeedListener; malformed frames are logged and
reported, never fatal. What reaches the store says how it came (`Change.source`): `live` as it
happened, `replayed` for the events a resume's SUBSCRIBED announces (`replayed`: K), which the
console missed while away, and `polled` for snapshots.

Limits: one user, one socket; commands are refused unless LIVE; a command whose ACK does not
come within `command_timeout_s` is reported as unanswered (it may still have run).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import ssl
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException

from ginie_protocol import (
    SPECS,
    Ack,
    Command,
    CommandArgsError,
    Error,
    Hello,
    ProtocolError,
    ResumePoint,
    Resync,
    Subscribe,
    Subscribed,
    Topic,
    decode_server,
    encode,
    parse_command_args,
)
from ginie_tui.clock import Clock, SystemClock
from ginie_tui.connection import Backoff, ConnectionMachine, ConnectionStatus
from ginie_tui.news import NewsItem, parse_news
from ginie_tui.store import Change, Outcome, Source, Store

log = logging.getLogger(__name__)

SNAPSHOT_TOPICS: tuple[Topic, ...] = tuple(SPECS)
"""The topics one `/api/snapshot` call asks for: all twenty, market data included."""

MAX_SERVER_FRAME = 1 << 20


class FeedListener(Protocol):
    """Where the feed reports; called on the event loop, must not block."""

    def feed_changes(self, changes: list[Change]) -> None:
        """Data in the store changed."""

    def feed_status(self, status: ConnectionStatus) -> None:
        """The connection state changed."""

    def feed_problem(self, text: str) -> None:
        """Something was wrong but the feed carries on (a malformed frame, a failed poll)."""


class FeedPort(Protocol):
    """What the console needs from a feed; the real Feed and test doubles provide it."""

    async def run(self, store: Store, listener: FeedListener) -> None: ...

    async def command(self, name: str, args: Mapping[str, Any]) -> Ack: ...

    def status(self) -> ConnectionStatus: ...

    def show_market(self, symbol: str) -> None:
        """The console shows `symbol`: bring its recent market history into the store."""


class FeedError(Exception):
    """The server could not be used; the message is one line fit for a user."""

    def __init__(self, message: str, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal
        """True when retrying cannot help (a refused token)."""


class CommandRefused(Exception):
    """A command the console did not send or got no answer for; the message says why."""


@dataclass(frozen=True)
class FeedSettings:
    url: str
    token: str
    poll_interval_s: float = 60.0
    grace_s: float = 5.0
    ping_interval_s: float = 10.0
    ping_timeout_s: float = 20.0
    """Silent this long: STALE; silent twice this long: the socket is dropped and reopened."""
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    command_timeout_s: float = 10.0
    http_timeout_s: float = 10.0
    ca: str | None = None
    seed: int | None = None


def websocket_url(url: str) -> str:
    """The `/ws` URL of a server given by its http(s) base URL."""
    base = url.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base[len("https://") :] + "/ws"
    if base.startswith("http://"):
        return "ws://" + base[len("http://") :] + "/ws"
    raise FeedError(f"the server URL must start with http:// or https://, not {url!r}", True)


def ssl_context(ca: str | None) -> ssl.SSLContext:
    """Default TLS verification, trusting the private CA in PEM file `ca` when given."""
    try:
        return ssl.create_default_context(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise FeedError(f"cannot read the CA file {ca}: {exc}", True) from None


class Feed:
    """The live connection to one server for one token. Drive it with `run`."""

    def __init__(self, settings: FeedSettings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self._ws_url = websocket_url(settings.url)
        self._tls = ssl_context(settings.ca) if settings.url.startswith("https://") else None
        self.machine = ConnectionMachine(
            poll_interval_ms=int(settings.poll_interval_s * 1000),
            grace_ms=int(settings.grace_s * 1000),
            stale_after_ms=int(settings.ping_timeout_s * 1000),
        )
        self._backoff = Backoff(
            settings.backoff_base_s, settings.backoff_cap_s, random.Random(settings.seed)
        )
        self._http: httpx.AsyncClient | None = None
        self._ws: ClientConnection | None = None
        self._store = Store()
        self._listener: FeedListener | None = None
        self._pending: dict[str, asyncio.Future[Ack]] = {}
        self._ids = itertools.count(1)
        self._resuming = False
        self._replay_left = 0
        """User events still to come of the replay the last SUBSCRIBED announced (`replayed`):
        they are applied as `replayed`, not `live`, so they raise no alert."""
        self._wake: asyncio.Event | None = None
        self._poll_lock = asyncio.Lock()
        """Held by a fallback poll from its start to its end, and taken by the link going LIVE:
        a poll never starts while LIVE, and LIVE waits for a poll already on its way, so the
        server never sees a poll from a console that is LIVE."""
        self._subscribed = False
        self._markets_shown: dict[str, None] = {}
        """Symbols the console has shown, in order; their history is fetched per connection."""
        self._markets_fetched: set[str] = set()
        """Symbols fetched on this connection (cleared when it closes and on a RESYNC)."""
        self._fetches: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ public

    def status(self) -> ConnectionStatus:
        return self.machine.status(self.clock.now_ms())

    async def sync(self, store: Store) -> list[Change]:
        """Fetch one `/api/snapshot` of every user topic and apply it to `store`."""
        body = await self._get_json("/api/snapshot", {"topics": ",".join(SNAPSHOT_TOPICS)})
        if not (
            isinstance(body, dict)
            and isinstance(body.get("epoch"), str)
            and isinstance(body.get("seq"), int)
            and isinstance(body.get("data"), dict)
        ):
            raise FeedError("the server's snapshot is not {epoch, seq, data}")
        return store.apply_snapshot(body["epoch"], body["seq"], body["data"], self.clock.now_ms())

    async def run(self, store: Store, listener: FeedListener) -> None:
        """Keep `store` up to date until cancelled (or until the server refuses the token)."""
        self._store = store
        self._listener = listener
        self._wake = asyncio.Event()
        poller = asyncio.create_task(self._poll_loop(), name="ginie-poller")
        try:
            await self._connect_loop()
        finally:
            for task in [poller, *self._fetches]:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.close()

    async def preflight(self, store: Store) -> None:
        """Check the server and the token with the start-up snapshot, before the console opens.

        Raises FeedError with a one-line reason. Its HTTP client is closed again, since the
        console then runs on another event loop."""
        try:
            await self.sync(store)
            self.machine.synced(self.clock.now_ms())
        finally:
            await self.close()

    async def close(self) -> None:
        """Close the socket and the HTTP client; fail commands still waiting for an ACK."""
        self._fail_pending("the console is closing")
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def command(self, name: str, args: Mapping[str, Any]) -> Ack:
        """Send a command and wait for its ACK; raise CommandRefused when that cannot be done."""
        status = self.status()
        ws = self._ws
        if not status.live or ws is None:
            raise CommandRefused(f"read-only while {status.state}: commands need a LIVE link")
        try:
            parse_command_args(name, dict(args))
        except CommandArgsError as exc:
            raise CommandRefused(str(exc)) from None
        command_id = f"c-{next(self._ids)}"
        answer: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = answer
        try:
            await ws.send(encode(Command(op="command", id=command_id, name=name, args=dict(args))))
            return await asyncio.wait_for(answer, self.settings.command_timeout_s)
        except TimeoutError:
            raise CommandRefused(
                f"no answer to {name} within {self.settings.command_timeout_s:g} s"
            ) from None
        except WebSocketException:
            raise CommandRefused(f"the connection closed before {name} was sent") from None
        finally:
            self._pending.pop(command_id, None)

    def show_market(self, symbol: str) -> None:
        """Fetch `/api/market/{symbol}` into the store once on this connection, at once when the
        link is up, otherwise when it next comes up. Never on a timer."""
        self._markets_shown[symbol] = None
        if self._subscribed:
            self._fetch_markets()

    async def fetch_news(self, url: str) -> list[NewsItem]:
        """Fetch and parse the news document at `url` (no token is sent to it)."""
        async with httpx.AsyncClient(timeout=self.settings.http_timeout_s) as client:
            response = await client.get(url)
            response.raise_for_status()
            return parse_news(response.text)

    # ------------------------------------------------------------------ connection

    async def _connect_loop(self) -> None:
        if not self._store.synced:
            try:
                self._report(await self.sync(self._store))
                self.machine.synced(self.clock.now_ms())
            except FeedError as exc:
                if exc.fatal:
                    self._stop(str(exc))
                    return
                self._problem(f"start-up snapshot failed: {exc}")
        attempt = 0
        while True:
            try:
                reached_live = await self._session()
            except FeedError as exc:
                if exc.fatal:
                    self._stop(str(exc))
                    return
                self._problem(str(exc))
                reached_live = False
            except (OSError, WebSocketException, TimeoutError, ProtocolError) as exc:
                log.info("connection to %s lost: %s", self._ws_url, exc)
                reached_live = False
            finally:
                self._ws = None
                self._subscribed = False
                self._markets_fetched.clear()
                self._fail_pending("the connection closed before the answer came")
            if reached_live:
                attempt = 0
            self.machine.dropped(self.clock.now_ms())
            delay = self._backoff.delay(attempt)
            attempt += 1
            self.machine.retry_scheduled(attempt, self.clock.now_ms() + int(delay * 1000))
            self._wake_poller()
            self._publish_status()
            await asyncio.sleep(delay)

    async def _session(self) -> bool:
        """One connection, from the handshake until it closes; True if it reached LIVE."""
        reached_live = False
        try:
            ws = await connect(
                self._ws_url,
                additional_headers={"Authorization": f"Bearer {self.settings.token}"},
                ssl=self._tls,
                open_timeout=self.settings.http_timeout_s,
                ping_interval=None,
                close_timeout=2,
                max_size=MAX_SERVER_FRAME,
                proxy=None,
            )
        except InvalidStatus as exc:
            code = exc.response.status_code
            if code in (401, 403):
                raise FeedError("the server refused the token (HTTP 401)", True) from None
            raise FeedError(f"the server refused the WebSocket upgrade (HTTP {code})") from None
        self._ws = ws
        pinger: asyncio.Task[None] | None = None
        try:
            hello = decode_server(await asyncio.wait_for(ws.recv(), self.settings.http_timeout_s))
            if not isinstance(hello, Hello):
                raise ProtocolError(f"expected HELLO, got {getattr(hello, 'type', '?')}")
            await self._subscribe(ws)
            async for frame in ws:
                self.machine.message(self.clock.now_ms())
                if await self._on_frame(frame) and not reached_live:
                    reached_live = True
                    pinger = asyncio.create_task(self._ping_loop(ws), name="ginie-pinger")
        finally:
            if pinger is not None:
                pinger.cancel()
            await ws.close()
        return reached_live

    async def _subscribe(self, ws: ClientConnection) -> None:
        store = self._store
        resume = ResumePoint(epoch=store.epoch, seq=store.seq) if store.epoch else None
        self._resuming = True
        await ws.send(encode(Subscribe(op="subscribe", topics=["*"], resume=resume)))

    async def _on_frame(self, frame: str | bytes) -> bool:
        """Handle one server frame; True when it is the SUBSCRIBED that makes the link LIVE."""
        try:
            message = decode_server(frame)
        except ProtocolError as exc:
            self._problem(f"malformed server message: {exc}")
            return False
        if isinstance(message, Subscribed):
            self._resuming = False
            self._replay_left = message.replayed if message.resumed else 0
            if not self._store.synced:
                await self._resync()
            async with self._poll_lock:
                self.machine.connected(self.clock.now_ms())
            self._subscribed = True
            self._fetch_markets()
            self._wake_poller()
            self._publish_status()
            return True
        if isinstance(message, Resync):
            log.info("server asked for a resync: %s", message.reason)
            await self._resync()
        elif isinstance(message, Ack):
            waiter = self._pending.get(message.id)
            if waiter is not None and not waiter.done():
                waiter.set_result(message)
        elif isinstance(message, Error):
            self._problem(f"server error {message.code}: {message.message}")
        elif not isinstance(message, Hello):
            await self._on_event(message)
        return False

    async def _on_event(self, event: Any) -> None:
        source: Source = "live"
        if event.seq is not None and self._replay_left > 0:
            self._replay_left -= 1
            source = "replayed"
        applied = self._store.apply_event(event, self.clock.now_ms(), source)
        if applied.change is not None:
            self._report([applied.change])
        elif applied.outcome is Outcome.GAP and not self._resuming and self._ws is not None:
            log.info("gap after seq %d (got %s): resuming", self._store.seq, event.seq)
            await self._subscribe(self._ws)
        elif applied.outcome is Outcome.EPOCH_CHANGED:
            await self._resync()
        elif applied.outcome is Outcome.INVALID:
            self._problem(f"a {event.type} event without seq or epoch was left out")

    async def _resync(self) -> None:
        self._report(await self.sync(self._store))
        self.machine.synced(self.clock.now_ms())
        self._markets_fetched.clear()
        if self._subscribed:
            self._fetch_markets()

    # ------------------------------------------------------------------ market history

    def _fetch_markets(self) -> None:
        """Start a fetch for each shown symbol not yet fetched on this connection."""
        for symbol in self._markets_shown:
            if symbol not in self._markets_fetched:
                self._markets_fetched.add(symbol)
                task = asyncio.create_task(self._fetch_market(symbol), name=f"market-{symbol}")
                self._fetches.add(task)
                task.add_done_callback(self._fetches.discard)

    async def _fetch_market(self, symbol: str) -> None:
        path = "/api/market/" + urllib.parse.quote(symbol, safe="")
        try:
            body = await self._get_json(path, {})
        except FeedError as exc:
            self._problem(f"market data of {symbol} not fetched: {exc}")
            return
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            self._problem(f"{path} answered something that is not {{epoch, seq, data}}")
            return
        self._report(self._store.apply_market(data, self.clock.now_ms()))

    async def _ping_loop(self, ws: ClientConnection) -> None:
        """Measure latency by ping round trip; drop a socket silent for two ping timeouts."""
        while True:
            try:
                waiter = await ws.ping()
                latency_s = await asyncio.wait_for(waiter, 2 * self.settings.ping_timeout_s)
            except TimeoutError:
                log.info("no pong within %.0f s: reconnecting", 2 * self.settings.ping_timeout_s)
                await ws.close(1011, "ping timeout")
                return
            except WebSocketException:
                return
            self.machine.message(self.clock.now_ms(), latency_ms=latency_s * 1000)
            self._publish_status()
            await asyncio.sleep(self.settings.ping_interval_s)

    # ------------------------------------------------------------------ fallback polling

    async def _poll_loop(self) -> None:
        """Call `/api/snapshot` when the machine says a poll is due; sleep otherwise."""
        while True:
            due = self.machine.next_poll_at()
            now = self.clock.now_ms()
            if due is None or now < due:
                wake = self._wake
                assert wake is not None, "run() creates the wake-up event before the poller"
                wake.clear()
                timeout = None if due is None else (due - now) / 1000
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout)
                continue
            async with self._poll_lock:
                if not self.machine.poll_due(self.clock.now_ms()):
                    continue  # the link came up while this poll waited for the lock
                try:
                    changes = await self.sync(self._store)
                except FeedError as exc:
                    self.machine.polled(self.clock.now_ms(), error=str(exc))
                    if exc.fatal:
                        self._stop(str(exc))
                        return
                else:
                    self.machine.polled(self.clock.now_ms())
                    self._report(changes)
            self._publish_status()

    # ------------------------------------------------------------------ helpers

    async def _get_json(self, path: str, params: Mapping[str, str]) -> Any:
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self.settings.url.rstrip("/"),
                headers={"Authorization": f"Bearer {self.settings.token}"},
                timeout=self.settings.http_timeout_s,
                verify=self._tls if self._tls is not None else True,
            )
        try:
            response = await self._http.get(path, params=params)
        except httpx.HTTPError as exc:
            raise FeedError(
                f"cannot reach {self.settings.url}: {exc or type(exc).__name__}"
            ) from None
        if response.status_code in (401, 403):
            raise FeedError("the server refused the token (HTTP 401)", True)
        if response.status_code != 200:
            raise FeedError(f"{path} answered HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError:
            raise FeedError(f"{path} answered something that is not JSON") from None

    def _wake_poller(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _report(self, changes: list[Change]) -> None:
        if changes and self._listener is not None:
            self._listener.feed_changes(changes)

    def _publish_status(self) -> None:
        if self._listener is not None:
            self._listener.feed_status(self.status())

    def _problem(self, text: str) -> None:
        log.warning("%s", text)
        if self._listener is not None:
            self._listener.feed_problem(text)

    def _stop(self, reason: str) -> None:
        self.machine.stopped(reason)
        self._problem(reason)
        self._publish_status()

    def _fail_pending(self, reason: str) -> None:
        for waiter in self._pending.values():
            if not waiter.done():
                waiter.set_exception(CommandRefused(reason))
        self._pending.clear()
