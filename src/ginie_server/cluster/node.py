"""One node of a cluster: its role, the engine lease, and the relays between nodes.

- `--role all` (the default) serves connections and runs the engine while it holds the lease;
  `--role engine` only runs the engine (a standby until it holds the lease); `--role edge`
  only serves connections.
- The engine: a node that may run it tries to take the lease every `renew_seconds`. Once it
  holds it, the node stops reading the broker's events and market data (it adds them now),
  sets the journal's fence to the lease's token, renumbers from the log (`Hub.reload`, which
  also delivers what its clients had not received), starts the event sources
  (`take_engine`) and runs the commands other nodes send. It renews the lease every
  `renew_seconds`; if a renewal fails for longer than the lease lasts, or a commit is refused
  by the fence, it stops the sources (`give_up_engine`), reads the broker again and
  renumbers from the log.
- The relays: every node hands its committed events and market frames to the broker
  (`Hub.outbound`) and delivers what the other nodes committed (`Hub.relayed`). A node that
  does not write also reads the log once a `catch_up_seconds` for the users it holds
  connections of, so that events the broker missed (a Redis restart, a writer killed between
  its commit and the broker) reach its clients anyway, in order and once.

Limits: one lease covers the whole engine (every user and the market they trade on), so one
node runs it at a time; the other engine nodes are standbys. Users are not spread over
several engine nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from redis.exceptions import RedisError

from ginie_protocol.commands import COMMAND_ARGS, CommandArgs, CommandArgsError, parse_command_args
from ginie_protocol.envelope import decode_server
from ginie_server.cluster.broker import RedisBroker, cancelled
from ginie_server.cluster.lease import EngineLease, LeaseFence
from ginie_server.config import ClusterConfig, ConfigError
from ginie_server.hub import Hub
from ginie_server.sources import CommandError, CommandHandler
from ginie_server.storage.postgres import redacted

log = logging.getLogger(__name__)

NEVER_HELD = LeaseFence(-1)
"""The fence of a node that never held the lease: every commit is refused."""


def node_name() -> str:
    """A name for this process, unique in the cluster: host, pid and a random tag."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class ClusterNode:
    """The cluster side of one server process. `start()` once, `stop()` once."""

    def __init__(
        self,
        config: ClusterConfig,
        db_url: str,
        hub: Hub,
        *,
        take_engine: Callable[[], Awaitable[dict[str, CommandHandler]]],
        give_up_engine: Callable[[], Awaitable[None]],
    ) -> None:
        self.config = config
        self.name = node_name()
        self._db_url = db_url
        self._hub = hub
        self._take_engine = take_engine
        self._give_up_engine = give_up_engine
        self.broker = RedisBroker(config.broker_url, hub.epoch, self.name)
        self._lease: EngineLease | None = None
        self.token: int | None = None
        """The lease's token while this node runs the engine, else None."""
        self._local: dict[str, CommandHandler] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._switch = asyncio.Lock()
        """Held while the engine starts or stops, so the two never interleave."""
        self._starting: asyncio.Task[None] | None = None
        self._renewed_at = 0.0
        """When the last renewal the database accepted was sent (monotonic seconds)."""
        self._retry_at = 0.0
        """Not before then does this node try to take the lease (after freeing it)."""
        self._fenced = 0
        """Commits the fence refused so far."""
        self._stopping = False
        hub.journal.fence = NEVER_HELD
        hub.journal.on_fenced = self._on_fenced
        hub.follows = True

    @property
    def owns_engine(self) -> bool:
        return self.token is not None

    async def start(self) -> None:
        """Connect to the broker and start the relays and, unless an edge, the lease loop.
        Raises ConfigError (one line, no password) when Redis cannot be reached."""
        hub = self._hub
        try:
            await self.broker.start(hub.relayed, self._on_market)
        except (RedisError, OSError) as exc:
            where = redacted(self.config.broker_url)
            raise ConfigError(f"cannot reach the broker {where}: {exc}") from None
        hub.outbound = self.broker
        self._tasks.append(asyncio.create_task(self._catch_up_loop(), name="cluster-catch-up"))
        if self.config.runs_engine:
            self._lease = EngineLease(self._db_url, self.name, self.config.lease_seconds)
            self._tasks.append(asyncio.create_task(self._lease_loop(), name="cluster-lease"))

    async def stop(self) -> None:
        """Stop the engine if it runs here (and free the lease for a standby), then the rest.
        Never raises: what fails is logged, and the rest is still stopped."""
        self._stopping = True
        starting = [self._starting] if self._starting is not None else []
        await cancelled([*self._tasks, *starting])
        self._tasks = []
        try:
            await self._step_down("the node is stopping", release=True)
        except Exception:
            log.exception("stepping down failed while stopping")
        if self._lease is not None:
            self._lease.close()
        self._hub.outbound = None
        await self.broker.stop()

    def commands(self) -> dict[str, CommandHandler]:
        """A handler for every command of the contract: run here while this node runs the
        engine, else sent to the engine node through the broker."""
        return {name: self._routed(name) for name in COMMAND_ARGS}

    # ------------------------------------------------------------------ the engine

    async def _lease_loop(self) -> None:
        while True:
            try:
                await self._lease_round()
            except Exception:
                log.exception("engine lease: a round failed; trying again")
            await asyncio.sleep(self.config.renew_seconds)

    async def _lease_round(self) -> None:
        """Take the lease if it is free (then start the engine, in a task of its own so that
        renewals go on meanwhile), or renew it; step down when it is lost, or when it could
        not be renewed for `_hold_seconds` (before PostgreSQL would let a standby take it)."""
        assert self._lease is not None
        lease = self._lease
        sent_at = time.monotonic()
        try:
            if self.token is None:
                if sent_at < self._retry_at:
                    return
                token = lease.try_acquire()
                if token is not None:
                    self.token, self._renewed_at = token, sent_at
                    self._starting = asyncio.create_task(self._promote(token), name="engine")
                return
            if lease.renew(self.token):
                self._renewed_at = sent_at
                return
            reason = "the engine lease was taken over"
        except psycopg.Error as exc:
            log.warning("engine lease: database unreachable (%s)", type(exc).__name__)
            if self.token is None or sent_at - self._renewed_at < self._hold_seconds:
                return
            reason = "the engine lease could not be renewed in time"
        await self._step_down(reason)

    @property
    def _hold_seconds(self) -> float:
        """How long after its last accepted renewal a node keeps the engine without another:
        two renewal rounds short of the lease, so it has stopped before the lease expires."""
        config = self.config
        return max(config.renew_seconds, config.lease_seconds - 2 * config.renew_seconds)

    async def _promote(self, token: int) -> None:
        """Start the engine under `token`: stop following the broker, fence the journal,
        renumber from the log, start the sources, take commands."""
        async with self._switch:
            if self.token != token:
                return
            hub = self._hub
            await self.broker.unfollow()
            since = await self.broker.redis_time_ms()
            try:
                hub.journal.fence = LeaseFence(token)
                hub.follows = False
                hub.reload()
                self._local = await self._take_engine()
            except Exception:
                log.exception("the engine failed to start here; freeing the lease for another node")
                failed = True
            else:
                failed = False
                log.info("this node runs the engine now (lease token %d)", token)
                self.broker.serve_commands(self._run_local, since)
        if failed:
            await self._step_down("the engine failed to start", release=True)

    async def _step_down(self, reason: str, *, release: bool = False) -> None:
        """Stop the engine if it runs here: stop taking commands, stop the sources, commit
        what they staged while stopping (if the lease is still ours), fence the journal off
        for good, follow the broker again and renumber from the log. With `release`, free
        the lease for a standby and wait a lease's length before trying to take it again."""
        async with self._switch:
            token = self.token
            if token is None:
                return
            log.warning("this node stops running the engine: %s", reason)
            hub = self._hub
            await self.broker.stop_serving_commands()
            self._local = {}
            try:
                await self._give_up_engine()
            finally:
                hub.flush()
                self.token = None
                hub.journal.fence = NEVER_HELD
                hub.follows = True
                self.broker.follow()
                if release:
                    self._release(token)
            hub.reload()

    def _release(self, token: int) -> None:
        self._retry_at = time.monotonic() + self.config.lease_seconds
        if self._lease is None:
            return
        try:
            self._lease.release(token)
        except psycopg.Error:
            log.warning("could not free the engine lease; it expires by itself")

    def _on_fenced(self) -> None:
        self._fenced += 1
        if self._stopping:
            return
        task = asyncio.get_running_loop().create_task(
            self._step_down("a commit was refused by the engine lease's fence")
        )
        self._tasks.append(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("stepping down failed", exc_info=task.exception())

    # ------------------------------------------------------------------ commands

    def _routed(self, name: str) -> CommandHandler:
        async def run(user: str, args: CommandArgs) -> dict[str, Any]:
            local = self._local.get(name)
            if local is not None:
                return await self._run_here(local, user, args)
            return await self.broker.call(user, name, args.model_dump(mode="json"))

        return run

    async def _run_local(self, user: str, name: str, raw: dict[str, Any]) -> dict[str, Any]:
        """A command another node sent, run on this node's engine."""
        handler = self._local.get(name)
        if handler is None:
            raise CommandError("unavailable", f"command {name!r} is not available on the engine")
        try:
            args = parse_command_args(name, raw)
        except CommandArgsError as exc:
            raise CommandError("bad_request", str(exc)) from None
        return await self._run_here(handler, user, args)

    async def _run_here(
        self, handler: CommandHandler, user: str, args: CommandArgs
    ) -> dict[str, Any]:
        """Run a command on this node's engine and commit what it did before answering: if
        the engine moved to another node meanwhile, what it did was not kept, and the answer
        says so rather than `ok`."""
        fenced = self._fenced
        result = await handler(user, args)
        self._hub.flush()
        if self._fenced != fenced or self.token is None:
            raise CommandError(
                "unavailable",
                "the engine moved to another node while this command ran; what it did was not "
                "kept: check before sending it again",
            )
        return result

    # ------------------------------------------------------------------ relays

    def _on_market(self, frame: bytes) -> None:
        self._hub.offer_market_frame(decode_server(frame).data, frame)

    async def _catch_up_loop(self) -> None:
        hub = self._hub
        while True:
            await asyncio.sleep(self.config.catch_up_seconds)
            if self.owns_engine:
                continue
            users = hub.fanout.users()
            if not users:
                continue
            try:
                hub.catch_up(users)
            except psycopg.Error as exc:
                log.warning("catching up from the log failed (%s); retrying", type(exc).__name__)
