"""The server's settings: what the command line sets, plus limits that tests may tighten."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

ExchangeName = Literal["paper", "binance"]

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})


class ConfigError(ValueError):
    """Settings the server cannot start with; the text is one line for the user."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds of the hub and the WebSocket door. The defaults are the contract's."""

    max_buffer_bytes: int = 4 * 1024 * 1024
    """Unsent bytes (queued frames plus the socket's write buffer) past which a connection
    is closed as a slow consumer (1013)."""

    replay_window: int = 10_000
    """User events per user held in memory for resume."""

    replay_limit: int = 50_000
    """Most events one resume may replay (from memory or the event log); beyond it, RESYNC."""

    log_keep: int = 200_000
    """User events per user kept in the durable event log."""

    market_rate_hz: float = 10.0
    """Most market frames per second per connection per (type, symbol)."""

    error_budget: int = 20
    """Bad frames allowed per connection per `error_window` seconds; one more closes 1008."""

    error_window: float = 60.0

    command_rate: float = 20.0
    """Commands per second a connection may sustain: the refill rate of its token bucket."""

    command_burst: int = 50
    """Commands a connection may send at once: the size of its token bucket."""

    command_flood_limit: int = 100
    """Commands refused as `rate_limited` allowed per connection per `error_window` seconds;
    one more closes 1008."""

    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    close_timeout: float = 5.0


Role = Literal["all", "edge", "engine"]
ROLES: tuple[Role, ...] = ("all", "edge", "engine")


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """How a node joins its cluster (`docs/cluster.md`)."""

    broker_url: str
    role: Role = "all"
    """`all` serves connections and runs the engine while it holds the lease; `engine` only
    runs the engine; `edge` only serves connections."""
    lease_seconds: float = 5.0
    """How long the engine lease lasts unrenewed: a dead engine node is replaced within about
    this plus `renew_seconds` and the new engine's start."""
    renew_seconds: float = 1.0
    catch_up_seconds: float = 1.0
    """How often a node that does not write reads the log for events the broker missed."""

    @property
    def runs_engine(self) -> bool:
        return self.role != "edge"

    @property
    def serves_clients(self) -> bool:
        return self.role != "engine"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything `ginie-server` is started with."""

    host: str = "127.0.0.1"
    port: int = 8765
    db_path: Path = Path("ginie.db")
    db_url: str | None = None
    """A `postgresql://` URL: the database is PostgreSQL's, and `db_path` is not used."""
    exchange: ExchangeName = "paper"
    seed: int = 0
    speed: float = 1.0
    testnet: bool = False
    owner: str = "demo"
    log_level: str = "info"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    limits: Limits = Limits()
    cluster: ClusterConfig | None = None
    """Set (`--broker`): the node joins a cluster on `db_url` and the broker."""

    @property
    def database(self) -> str | Path:
        """What `storage.backend.open_any` opens: the PostgreSQL URL, else the SQLite file."""
        return self.db_url if self.db_url is not None else self.db_path

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def loopback(self) -> bool:
        """Whether the server listens on a loopback address only."""
        if self.host in LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False
