"""`/api/metrics?format=prometheus`: the node's counters in Prometheus' text format.

Node totals only, never a user's name: connections open and made, user events published and
delivered, market frames delivered, events replayed, resyncs, slow-consumer closes, commands
run and refused, REST calls by route, and the journal's commits with a histogram of their
times. A cluster node adds whether it runs the engine, whether Redis answers, the entries it
sent, received and dropped, and the broker lag (from an event's commit on the engine node to
its arrival here) as a histogram. Read at each scrape (prometheus-client renders them);
nothing is counted twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from ginie_server.hub import Hub
from ginie_server.metrics import Histogram

if TYPE_CHECKING:
    from ginie_server.cluster.node import ClusterNode

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""The classic text format, which every Prometheus reads (the names need no UTF-8 escaping)."""

COUNTERS = (
    ("ws_connections", "WebSocket connections accepted"),
    ("events_published", "user events published"),
    ("events_sent", "user events delivered to connections"),
    ("market_sent", "market frames delivered to connections"),
    ("replayed", "user events replayed on resume"),
    ("resyncs", "resumes answered with RESYNC"),
    ("slow_consumer_closes", "connections closed as slow consumers (1013)"),
    ("commands", "commands run"),
    ("commands_refused", "commands refused over a connection's budget"),
    ("errors", "bad frames and failed commands"),
)
"""The `UserMetrics` counters exported, each as `ginie_<name>_total`."""


class NodeCollector(Collector):
    """Collects the hub's counters each time the registry is rendered."""

    def __init__(self, hub: Hub, backend: str, node: ClusterNode | None = None) -> None:
        self._hub = hub
        self._backend = backend
        self._node = node

    def collect(self) -> Iterator[Metric]:
        hub = self._hub
        node = hub.node_metrics()
        info = GaugeMetricFamily(
            "ginie_database", "the database this node uses", labels=["backend"]
        )
        info.add_metric([self._backend], 1)
        yield info
        yield GaugeMetricFamily(
            "ginie_connections", "WebSocket connections open", value=hub.connection_count()
        )
        for name, text in COUNTERS:
            yield CounterMetricFamily(f"ginie_{name}", text, value=getattr(node, name))
        rest = CounterMetricFamily("ginie_rest_calls", "REST calls by route", labels=["route"])
        for route, count in sorted(node.rest_calls.items()):
            rest.add_metric([route], count)
        yield rest
        journal = hub.journal
        yield CounterMetricFamily(
            "ginie_journal_commits", "journal commits (units of work)", value=journal.commits
        )
        yield _histogram(
            "ginie_journal_commit_seconds",
            "time of one journal commit: its statements and the commit",
            journal.commit_seconds,
        )
        if self._node is not None:
            yield from _cluster(self._node)


def _cluster(node: ClusterNode) -> Iterator[Metric]:
    stats = node.broker.stats
    yield GaugeMetricFamily(
        "ginie_engine_owner", "1 while this node runs the engine", value=int(node.owns_engine)
    )
    yield GaugeMetricFamily(
        "ginie_broker_connected", "1 while Redis answers", value=int(stats.connected)
    )
    yield CounterMetricFamily("ginie_broker_sent", "entries added to Redis", value=stats.sent)
    yield CounterMetricFamily(
        "ginie_broker_received", "events of other nodes received", value=stats.received
    )
    yield CounterMetricFamily(
        "ginie_broker_dropped",
        "entries not added while Redis was unreachable (caught up from the log)",
        value=stats.dropped,
    )
    yield _histogram(
        "ginie_broker_lag_seconds",
        "from an event's commit on the engine node to its arrival on this node",
        stats.lag_seconds,
    )


def _histogram(name: str, text: str, times: Histogram) -> HistogramMetricFamily:
    buckets: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip((*times.bounds, float("inf")), times.counts, strict=True):
        running += count
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
    return HistogramMetricFamily(name, text, buckets=buckets, sum_value=times.total)


def render(hub: Hub, backend: str, node: ClusterNode | None = None) -> bytes:
    """The node's metrics in Prometheus' text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(hub, backend, node))
    return generate_latest(registry)
