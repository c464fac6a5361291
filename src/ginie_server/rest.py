"""The REST door: a flat table of GET routes answering JSON snapshots for the caller only.

Every snapshot answers `{"epoch", "seq", "data"}`, read through one `SnapshotRead` whose `seq`
is exactly the last user event the data includes. On one node that is `LiveSnapshots`: the hub
flushes and reports the user's last committed `seq` right before the sources' providers are
read, on the same loop turn. In cluster mode it is `cluster.snapshots.StoredSnapshots`: the
`seq` and the data come from one PostgreSQL snapshot, the same answer on every node.

Where the data comes from:

- `LIFECYCLE_EVENT`: the durable event log, newest first, each item with its `seq`, paged by
  `limit` (1..1000, default 100) and `before_seq`.
- other user topics: the snapshot reader; a topic it does not provide answers an empty list
  (collection topics) or null (singleton topics).
- market topics: `/api/market/{symbol}` asks the sources' market providers, falling back to the
  latest data the hub saw; `/api/snapshot` gives the hub's latest item per symbol.

Answers: 200 JSON; 400 `{"error": "bad_request", "message"}` for a bad query; 404
`{"error": "not_found"}`; 500 `{"error": "internal"}` if a provider fails (logged, never a
traceback to the client).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol
from urllib.parse import parse_qsl

from pydantic import BaseModel

from ginie_protocol.events import MARKET_TOPICS, SPECS, Topic, WireModel, spec_of
from ginie_server import __version__
from ginie_server.hub import Hub
from ginie_server.sources import MarketData, MarketSnapshotProvider, SnapshotProvider

log = logging.getLogger(__name__)

SYMBOL = re.compile(r"^[A-Z0-9]{2,30}$")
MARKET_PREFIX = "/api/market/"
DEFAULT_PAGE = 100
MAX_PAGE = 1000


class BadQuery(ValueError):
    """A query string the route cannot accept; the text says why."""


@dataclass(frozen=True, slots=True)
class RestAnswer:
    status: int
    body: dict[str, Any]


Params = dict[str, str]
Handler = Callable[[str, Params], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Route:
    handler: Handler
    params: frozenset[str] = frozenset()


class SnapshotRead(Protocol):
    """One user's data as of one `seq`."""

    seq: int

    def payload(self, topic: str) -> WireModel | list[Any] | None:
        """A user topic's snapshot (not `LIFECYCLE_EVENT`), or None if none is provided."""

    def lifecycle_page(self, limit: int, before_seq: int | None) -> list[dict[str, Any]]:
        """`LIFECYCLE_EVENT` data from the log, newest first, each with its `seq`."""


class SnapshotReader(Protocol):
    def read(self, user: str) -> AbstractContextManager[SnapshotRead]: ...


@dataclass(slots=True)
class ProvidedRead:
    """A `SnapshotRead` from snapshot providers and a reader of the lifecycle log."""

    user: str
    seq: int
    providers: dict[str, SnapshotProvider]
    lifecycle: Callable[[int, int | None], list[dict[str, Any]]]
    """`(limit, before_seq)` to the page."""

    def payload(self, topic: str) -> WireModel | list[Any] | None:
        provider = self.providers.get(topic)
        return None if provider is None else provider(self.user)

    def lifecycle_page(self, limit: int, before_seq: int | None) -> list[dict[str, Any]]:
        return self.lifecycle(limit, before_seq)


class LiveSnapshots:
    """Snapshots of one node: the sources' providers, after the hub committed."""

    def __init__(self, hub: Hub, providers: dict[str, SnapshotProvider]) -> None:
        self._hub = hub
        self._providers = providers

    @contextmanager
    def read(self, user: str) -> Iterator[SnapshotRead]:
        hub = self._hub
        seq = hub.snapshot_seq(user)
        yield ProvidedRead(user, seq, self._providers, partial(hub.lifecycle_page, user))


def _dump(item: Any) -> Any:
    return item.model_dump(mode="json") if isinstance(item, BaseModel) else item


class RestApi:
    """Answers authenticated GET requests; `health` answers without a user."""

    def __init__(
        self,
        hub: Hub,
        snapshots: SnapshotReader,
        market_providers: Iterable[MarketSnapshotProvider],
    ) -> None:
        self._hub = hub
        self._snapshots = snapshots
        self._market_providers = list(market_providers)
        self._routes: dict[str, Route] = {
            "/api/snapshot": Route(self._snapshot, frozenset({"topics", "symbols"})),
            "/api/metrics": Route(self._metrics),
        }
        for topic, spec in SPECS.items():
            if spec.snapshot_path is None:
                continue
            if topic == Topic.LIFECYCLE_EVENT:
                route = Route(self._trade_events, frozenset({"limit", "before_seq"}))
            else:
                route = Route(self._topic_route(topic))
            self._routes[spec.snapshot_path] = route

    def health(self) -> RestAnswer:
        return RestAnswer(200, {"status": "ok", "epoch": self._hub.epoch, "version": __version__})

    def route_name(self, path: str) -> str | None:
        """The route a path belongs to (market paths share one), or None if there is none."""
        if path in self._routes:
            return path
        if path.startswith(MARKET_PREFIX):
            return MARKET_PREFIX + "{symbol}"
        return None

    def handle(self, user: str, path: str, query: str) -> RestAnswer:
        """Answer GET `path?query` for `user`."""
        try:
            if path.startswith(MARKET_PREFIX):
                _parse_query(query, frozenset())
                return RestAnswer(200, self._market(user, path[len(MARKET_PREFIX) :]))
            route = self._routes.get(path)
            if route is None:
                return RestAnswer(404, {"error": "not_found", "message": f"no route {path}"})
            params = _parse_query(query, route.params)
            return RestAnswer(200, route.handler(user, params))
        except BadQuery as exc:
            return RestAnswer(400, {"error": "bad_request", "message": str(exc)})
        except Exception:
            log.exception("snapshot of %s failed", path)
            return RestAnswer(500, {"error": "internal", "message": "snapshot failed"})

    # ------------------------------------------------------------------ routes

    def _topic_route(self, topic: str) -> Handler:
        def handler(user: str, params: Params) -> dict[str, Any]:
            with self._snapshots.read(user) as read:
                return self._envelope(read.seq, self._topic_payload(read, topic, None))

        return handler

    def _trade_events(self, user: str, params: Params) -> dict[str, Any]:
        limit = _int_param(params, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
        before = params.get("before_seq")
        before_seq = None if before is None else _int_param(params, "before_seq", 0, 1, 2**62)
        with self._snapshots.read(user) as read:
            return self._envelope(read.seq, read.lifecycle_page(limit, before_seq))

    def _snapshot(self, user: str, params: Params) -> dict[str, Any]:
        raw_topics = params.get("topics", "*")
        topics = _split(raw_topics, "topics")
        if topics == ["*"]:
            topics = list(SPECS)
        unknown = [t for t in topics if t not in SPECS]
        if unknown:
            raise BadQuery(f"unknown topic {unknown[0]!r}")
        symbols = None
        if "symbols" in params:
            symbols = _split(params["symbols"], "symbols")
            bad = [s for s in symbols if not SYMBOL.match(s)]
            if bad:
                raise BadQuery(f"bad symbol {bad[0]!r}")
        with self._snapshots.read(user) as read:
            data = {topic: self._topic_payload(read, topic, symbols) for topic in topics}
            return self._envelope(read.seq, data)

    def _market(self, user: str, symbol: str) -> dict[str, Any]:
        if not SYMBOL.match(symbol):
            raise BadQuery(f"bad symbol {symbol!r}: use upper-case letters and digits")
        items: list[MarketData] = []
        for provider in self._market_providers:
            items.extend(provider(symbol))
        by_type: dict[str, list[MarketData]] = {t: [] for t in MARKET_TOPICS}
        for item in items:
            by_type[_market_type(item)].append(item)
        for event_type, found in by_type.items():
            if not found:
                found.extend(self._hub.market_latest(event_type, [symbol]))
        data: dict[str, Any] = {}
        for event_type in sorted(MARKET_TOPICS):
            found = by_type[event_type]
            if event_type == Topic.FUTURES_KLINE_UPDATE:
                data[event_type] = [_dump(k) for k in found]
            else:
                data[event_type] = _dump(found[-1]) if found else None
        with self._snapshots.read(user) as read:
            return self._envelope(read.seq, data)

    def _metrics(self, user: str, params: Params) -> dict[str, Any]:
        return {"user": user, **self._hub.metrics(user).as_dict()}

    # ------------------------------------------------------------------ helpers

    def _envelope(self, seq: int, data: Any) -> dict[str, Any]:
        return {"epoch": self._hub.epoch, "seq": seq, "data": data}

    def _topic_payload(self, read: SnapshotRead, topic: str, symbols: list[str] | None) -> Any:
        if SPECS[Topic(topic)].scope == "market":
            return [_dump(m) for m in self._hub.market_latest(topic, symbols)]
        if topic == Topic.LIFECYCLE_EVENT:
            return read.lifecycle_page(DEFAULT_PAGE, None)
        result = read.payload(topic)
        if result is None:
            return [] if SPECS[Topic(topic)].key is not None else None
        if isinstance(result, list):
            return [_dump(item) for item in result]
        return _dump(result)


def _market_type(item: MarketData) -> str:
    return spec_of(item).topic


def _parse_query(query: str, allowed: frozenset[str]) -> Params:
    if not query:
        return {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True, max_num_fields=20)
    except ValueError as exc:
        raise BadQuery(f"malformed query string: {exc}") from None
    params: Params = {}
    for key, value in pairs:
        if key not in allowed:
            raise BadQuery(f"unknown query parameter {key!r}")
        if key in params:
            raise BadQuery(f"query parameter {key!r} given twice")
        params[key] = value
    return params


def _int_param(params: Params, name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,19}", raw):
        raise BadQuery(f"{name} must be a whole number from {low} to {high}")
    value = int(raw)
    if not low <= value <= high:
        raise BadQuery(f"{name} must be a whole number from {low} to {high}")
    return value


def _split(raw: str, name: str) -> list[str]:
    items = [part.strip() for part in raw.split(",")]
    if not raw or any(not item for item in items):
        raise BadQuery(f"{name} must be a comma-separated list without empty items")
    return list(dict.fromkeys(items))
