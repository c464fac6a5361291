"""The engine's health: the exchange API's, and that of the exchange link, database and engine.

Pure state: `set_component` says whether anything changed, and the engine tells
every user of a change (`SYSTEM_STATUS_UPDATE`, `HEALTH_UPDATE`).
"""

from __future__ import annotations

from typing import Literal

from ginie_protocol.events import ApiHealth, ComponentHealth, Health, SystemStatus
from ginie_server import __version__

Component = Literal["exchange", "database", "engine"]


class EngineHealth:
    """The latest `ApiHealth` and `SystemStatus` every user is told of."""

    def __init__(self, exchange_name: str, now: int) -> None:
        self.started_at = now
        self.api = ApiHealth(exchange=exchange_name, status="ok", updated_at=now)
        self.system = SystemStatus(
            exchange=ComponentHealth(status="ok", detail=exchange_name, since=now),
            database=ComponentHealth(status="ok", since=now),
            engine=ComponentHealth(status="ok", since=now),
            started_at=now,
            version=__version__,
        )

    def set_component(self, name: Component, status: Health, detail: str, now: int) -> bool:
        """Set one component's health; True if its status or detail changed (`since` is when
        its status last changed)."""
        current: ComponentHealth = getattr(self.system, name)
        if (current.status, current.detail) == (status, detail):
            return False
        since = current.since if current.status == status else now
        update = ComponentHealth(status=status, detail=detail, since=since)
        self.system = self.system.model_copy(update={name: update})
        return True
