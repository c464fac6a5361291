"""The broker between nodes: Redis Streams, through redis-py's asyncio client.

Four kinds of stream, each under `ginie:<epoch>:` (so clusters on different databases can
share one Redis):

- `events`: every user event the engine node committed, in commit order (user, `seq`, type,
  symbol, the frame as sent, when it was committed). Every other node reads it and delivers
  to its own connections. It is a copy for speed only: the journal in PostgreSQL is the source
  of truth, and a node that finds a gap (an entry the writer could not add, a stream Redis
  lost in a restart) reads the missing events from the log (`Hub.relayed`, `Hub.catch_up`).
- `market`: market frames, produced once, by the engine node; read by every other node.
- `commands`: commands sent on any node for the engine node to run; `replies:<node>`: their
  answers, back to the node that holds the sender's connection.

Streams, not pub/sub: a reader that reconnects goes on from the last entry id it read, so a
short disconnection loses nothing. Every stream is capped (`MAXLEN ~`), so Redis memory is
bounded whatever the nodes do.

Limits, stated plainly: sending never blocks the event loop; what cannot be sent while Redis is
unreachable is dropped (user events are caught up from the log; market frames are superseded
by the next ones; a command fails at once with `unavailable`). A command whose answer does not
come within `COMMAND_TIMEOUT_SECONDS` fails with `unavailable` and may or may not have run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ginie_server.hub import RelayedEvent
from ginie_server.journal import Committed
from ginie_server.market_throttle import MarketKey
from ginie_server.metrics import Histogram
from ginie_server.sources import CommandError

log = logging.getLogger(__name__)

EVENTS_MAXLEN = 100_000
MARKET_MAXLEN = 2_000
COMMANDS_MAXLEN = 10_000
REPLIES_MAXLEN = 1_000
REPLIES_TTL_SECONDS = 300
BLOCK_MS = 1_000
READ_COUNT = 1_000
MAX_PENDING = 100_000
"""Most entries waiting to be added while Redis is slow or away; older ones are dropped."""
RETRY_SECONDS = (0.1, 0.2, 0.5, 1.0, 2.0)
COMMAND_TIMEOUT_SECONDS = 10.0
LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)

EventSink = Callable[[list[RelayedEvent]], None]
"""Events other nodes committed, in the order the stream holds them."""
MarketSink = Callable[[bytes], None]
Fields = dict[Any, Any]
"""An entry's fields (redis-py takes bytes, str, int or float values)."""
Entry = tuple[bytes, Fields]
"""A stream entry as read: its id and its fields."""
T = TypeVar("T")
CommandRunner = Callable[[str, str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""`(user, name, args)` to the `result` of the ACK; raises CommandError."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class BrokerStats:
    """What the broker did, for `/api/metrics?format=prometheus`."""

    connected: bool = False
    sent: int = 0
    received: int = 0
    dropped: int = 0
    """Entries not added because Redis was unreachable (caught up from the log instead)."""
    lag_seconds: Histogram = field(default_factory=lambda: Histogram(LAG_BUCKETS, [0] * 12))
    """From an event's commit on the engine node to its arrival here."""


class RedisBroker:
    """One node's side of the broker. `start()` once, `stop()` once."""

    def __init__(self, url: str, epoch: str, node: str) -> None:
        self.node = node
        self.stats = BrokerStats()
        prefix = f"ginie:{epoch}:"
        self._events_key = prefix + "events"
        self._market_key = prefix + "market"
        self._commands_key = prefix + "commands"
        self._replies_prefix = prefix + "replies:"
        self._redis = aioredis.Redis.from_url(
            url, socket_connect_timeout=2, socket_timeout=BLOCK_MS / 1000 + 4
        )
        self._outbox: deque[tuple[str, Fields, int]] = deque(maxlen=MAX_PENDING)
        self._wake = asyncio.Event()
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._command_task: asyncio.Task[None] | None = None
        self._user_locks: dict[str, tuple[asyncio.Lock, int]] = {}
        """Per user with commands under way: the lock that runs them in order, and how many
        hold or wait for it (the entry goes with the last)."""
        self._running: set[asyncio.Task[None]] = set()
        self._sinks: tuple[EventSink, MarketSink] | None = None
        self._following: list[asyncio.Task[None]] = []

    async def start(self, on_event: EventSink, on_market: MarketSink) -> None:
        """Check Redis answers, then start the writer, the replies' reader, and `follow`."""
        await self._redis.execute_command("PING")
        self.stats.connected = True
        self._sinks = (on_event, on_market)
        self._tasks = [
            asyncio.create_task(self._write(), name="broker-write"),
            asyncio.create_task(
                self._read(self._replies_prefix + self.node, self._take_replies),
                name="broker-replies",
            ),
        ]
        self.follow()

    def follow(self) -> None:
        """Read the events and market data the engine node adds (this node does not write
        them), from the newest entry on: what came before is in the log."""
        if self._following or self._sinks is None:
            return
        on_event, on_market = self._sinks
        self._following = [
            asyncio.create_task(
                self._read(self._events_key, lambda e: self._take_events(e, on_event)),
                name="broker-events",
            ),
            asyncio.create_task(
                self._read(self._market_key, lambda e: self._take_market(e, on_market)),
                name="broker-market",
            ),
        ]

    async def unfollow(self) -> None:
        """Stop reading events and market data: this node adds them itself now."""
        tasks, self._following = self._following, []
        await cancelled(tasks)

    async def stop(self) -> None:
        await self.stop_serving_commands()
        await self.unfollow()
        tasks, self._tasks = self._tasks, []
        await cancelled([*tasks, *self._running])
        await self._redis.aclose()

    # ------------------------------------------------------------------ hub.Outbound

    def events(self, committed: Committed) -> None:
        now = _now_ms()
        for user, entry in committed:
            fields: Fields = {
                "n": self.node,
                "u": user,
                "s": entry.seq,
                "t": entry.type,
                "y": entry.symbol or "",
                "f": entry.frame,
                "c": now,
            }
            self._queue(self._events_key, fields, EVENTS_MAXLEN)

    def market(self, key: MarketKey, frame: bytes) -> None:
        self._queue(self._market_key, {"n": self.node, "f": frame}, MARKET_MAXLEN)

    # ------------------------------------------------------------------ commands

    async def call(self, user: str, name: str, args: dict[str, Any]) -> dict[str, Any]:
        """Have the engine node run a command; its ACK `result`, or CommandError."""
        request = uuid.uuid4().hex
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request] = answer
        fields: Fields = {
            "i": request,
            "n": self.node,
            "u": user,
            "m": name,
            "a": json.dumps(args),
            "at": _now_ms(),
        }
        try:
            try:
                await self._redis.xadd(
                    self._commands_key, fields, maxlen=COMMANDS_MAXLEN, approximate=True
                )
            except (RedisError, OSError):
                raise CommandError(
                    "unavailable", "the cluster's broker is unreachable; the command was not sent"
                ) from None
            try:
                reply = await asyncio.wait_for(answer, COMMAND_TIMEOUT_SECONDS)
            except TimeoutError:
                raise CommandError(
                    "unavailable",
                    f"no engine answered within {COMMAND_TIMEOUT_SECONDS:g} s; the command may "
                    "or may not have run: check before sending it again",
                ) from None
        finally:
            self._waiting.pop(request, None)
        if reply.get("ok"):
            result = reply.get("result")
            return result if isinstance(result, dict) else {}
        raise CommandError(str(reply.get("code", "internal")), str(reply.get("message", "")))

    def serve_commands(self, run: CommandRunner, since_ms: int | None) -> None:
        """Run the commands sent since `since_ms` (Redis's clock when this node took the
        engine; None: from now on)."""
        if self._command_task is not None:
            return
        start = "$" if since_ms is None else f"{since_ms}-0"
        offset = 0 if since_ms is None else since_ms - _now_ms()
        self._command_task = asyncio.create_task(
            self._read(self._commands_key, lambda e: self._take_commands(e, run, offset), start),
            name="broker-commands",
        )

    async def redis_time_ms(self) -> int | None:
        """Redis's clock now, in milliseconds (None if Redis does not answer)."""
        try:
            seconds, micros = await self._redis.time()
        except (RedisError, OSError):
            return None
        return int(seconds) * 1000 + int(micros) // 1000

    async def stop_serving_commands(self) -> None:
        task, self._command_task = self._command_task, None
        if task is not None:
            await cancelled([task])

    # ------------------------------------------------------------------ internals

    def _queue(self, key: str, fields: Fields, maxlen: int) -> None:
        if len(self._outbox) == self._outbox.maxlen:
            self.stats.dropped += 1
        self._outbox.append((key, fields, maxlen))
        self._wake.set()

    async def _write(self) -> None:
        """Add what is queued, in order, one pipeline a round."""
        failures = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                batch = list(self._outbox)
                self._outbox.clear()
                pipe = self._redis.pipeline(transaction=False)
                for key, fields, maxlen in batch:
                    pipe.xadd(key, fields, maxlen=maxlen, approximate=True)
                try:
                    await pipe.execute()
                except (RedisError, OSError) as exc:
                    self.stats.dropped += len(batch)
                    failures = await self._wait_after(exc, failures)
                    continue
                failures = 0
                self._connected()
                self.stats.sent += len(batch)

    async def _read(self, key: str, take: Callable[[list[Entry]], None], start: str = "$") -> None:
        """Read `key` from `start` on (`$`: the entries added from now), for good, a batch at
        a time; reconnect on failure and go on from the last entry read."""
        last = start
        failures = 0
        while True:
            try:
                if last == "$":
                    newest = await self._redis.xrevrange(key, count=1)
                    last = newest[0][0].decode() if newest else "0-0"
                found = await self._redis.xread({key: last}, count=READ_COUNT, block=BLOCK_MS)
            except (RedisError, OSError) as exc:
                failures = await self._wait_after(exc, failures)
                continue
            failures = 0
            self._connected()
            for _, entries in found:
                if not entries:
                    continue
                last = entries[-1][0].decode()
                try:
                    take(entries)
                except Exception:
                    log.exception("broker entries up to %s of %s could not be taken", last, key)

    def _take_events(self, entries: list[Entry], sink: EventSink) -> None:
        node = self.node.encode()
        now = _now_ms()

        def parse(fields: Fields) -> RelayedEvent | None:
            if fields[b"n"] == node:
                return None
            self.stats.lag_seconds.observe(max((now - int(fields[b"c"])) / 1000, 0.0))
            symbol = fields[b"y"].decode() or None
            user, kind = fields[b"u"].decode(), fields[b"t"].decode()
            return (user, int(fields[b"s"]), kind, symbol, bytes(fields[b"f"]))

        events = _parsed(entries, self._events_key, parse)
        self.stats.received += len(events)
        if events:
            sink(events)

    def _take_market(self, entries: list[Entry], sink: MarketSink) -> None:
        node = self.node.encode()
        for frame in _parsed(
            entries,
            self._market_key,
            lambda fields: None if fields[b"n"] == node else bytes(fields[b"f"]),
        ):
            try:
                sink(frame)
            except ValueError:
                log.warning("broker: a market frame of %s is malformed; skipped", self._market_key)

    def _take_replies(self, entries: list[Entry]) -> None:
        key = self._replies_prefix + self.node
        for request, reply in _parsed(
            entries, key, lambda fields: (fields[b"i"].decode(), json.loads(fields[b"r"]))
        ):
            waiting = self._waiting.get(request)
            if waiting is not None and not waiting.done() and isinstance(reply, dict):
                waiting.set_result(reply)

    def _take_commands(self, entries: list[Entry], run: CommandRunner, offset_ms: int) -> None:
        """Start each command not older than `COMMAND_TIMEOUT_SECONDS` (its sender has given
        up on older ones), judged by Redis's clock: the entry id's time against Redis's time
        now, reckoned from `offset_ms` (Redis's clock minus this node's)."""
        now = _now_ms() + offset_ms
        limit = COMMAND_TIMEOUT_SECONDS * 1000

        def parse(entry_id: bytes, fields: Fields) -> tuple[str, str, str, str, Any] | None:
            if now - int(entry_id.split(b"-")[0]) > limit:
                return None
            return (
                fields[b"i"].decode(),
                fields[b"n"].decode(),
                fields[b"u"].decode(),
                fields[b"m"].decode(),
                json.loads(fields[b"a"]),
            )

        for request, node, user, name, args in _parsed_with_ids(entries, self._commands_key, parse):
            task = asyncio.create_task(self._run_command(request, node, user, name, args, run))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run_command(
        self, request: str, node: str, user: str, name: str, args: Any, run: CommandRunner
    ) -> None:
        """Run one command (a user's commands one at a time, in the order sent) and answer."""
        lock, waiting = self._user_locks.get(user, (asyncio.Lock(), 0))
        self._user_locks[user] = (lock, waiting + 1)
        try:
            async with lock:
                try:
                    reply: dict[str, Any] = {"ok": True, "result": await run(user, name, args)}
                except CommandError as exc:
                    reply = {"ok": False, "code": exc.code, "message": exc.message}
                except Exception:
                    log.exception("command %s failed", name)
                    reply = {"ok": False, "code": "internal", "message": f"{name} failed"}
        finally:
            lock, waiting = self._user_locks[user]
            if waiting == 1:
                del self._user_locks[user]
            else:
                self._user_locks[user] = (lock, waiting - 1)
        key = self._replies_prefix + node
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.xadd(key, {"i": request, "r": json.dumps(reply)}, maxlen=REPLIES_MAXLEN)
            pipe.expire(key, REPLIES_TTL_SECONDS)
            await pipe.execute()
        except (RedisError, OSError):
            log.warning("the answer to command %s could not be sent back to %s", name, node)

    def _connected(self) -> None:
        if not self.stats.connected:
            log.info("broker: connected to Redis again")
        self.stats.connected = True

    async def _wait_after(self, exc: BaseException, failures: int) -> int:
        """Note a failure to reach Redis and wait before the next try, longer each time up
        to `RETRY_SECONDS[-1]`; the count of failures in a row so far."""
        if self.stats.connected:
            log.warning("broker: Redis unreachable (%s); retrying", type(exc).__name__)
        self.stats.connected = False
        await asyncio.sleep(RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)])
        return failures + 1


async def cancelled(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel `tasks` and wait for them; what they raised besides is logged."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        try:
            await task
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("a cluster task failed")


MALFORMED = (KeyError, ValueError, TypeError, UnicodeDecodeError)
"""What parsing an entry that does not have the fields it should raises."""


def _parsed(entries: list[Entry], key: str, parse: Callable[[Fields], T | None]) -> list[T]:
    """`parse` of each entry's fields, leaving out Nones and (logged) malformed entries."""
    return _parsed_with_ids(entries, key, lambda _id, fields: parse(fields))


def _parsed_with_ids(
    entries: list[Entry], key: str, parse: Callable[[bytes, Fields], T | None]
) -> list[T]:
    found: list[T] = []
    for entry_id, fields in entries:
        try:
            item = parse(entry_id, fields)
        except MALFORMED:
            log.warning("broker: entry %r of %s is malformed; skipped", entry_id, key)
            continue
        if item is not None:
            found.append(item)
    return found
