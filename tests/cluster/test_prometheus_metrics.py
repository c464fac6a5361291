"""`/api/metrics?format=prometheus`: the node's totals in Prometheus' text format, behind a
token, naming no user; on both backends."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ginie_protocol.events import Stats
from tests.cluster.pg import Backend
from tests.harness import RunningServer, ScriptedSource, connect_client, wait_for


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_the_node_counters_in_prometheus_text_format(
    server: RunningServer, scripted: ScriptedSource, backend: Backend
) -> None:
    alice = server.create_token("alice")
    async with connect_client(server.ws_url, alice) as client:
        await client.subscribe(["*"])
        for n in range(1, 6):
            scripted.emit("alice", Stats(total_trades=n))
        await client.user_events(5)
        async with httpx.AsyncClient(base_url=server.url) as http:
            await http.get("/api/pnl", headers=server.auth(alice))
            refused = await http.get("/api/metrics?format=prometheus")
            answer = await http.get("/api/metrics?format=prometheus", headers=server.auth())
        assert refused.status_code == 401
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = answer.text
        found = samples(text)
        assert found[("ginie_database", (("backend", backend.name),))] == 1
        assert found[("ginie_connections", ())] == 1
        assert found[("ginie_events_published_total", ())] == 5
        await wait_for(lambda: server.hub.metrics("alice").events_sent == 5)
        assert found[("ginie_events_sent_total", ())] == 5
        assert found[("ginie_rest_calls_total", (("route", "/api/pnl"),))] == 1
        commits = found[("ginie_journal_commits_total", ())]
        assert commits >= 1
        assert found[("ginie_journal_commit_seconds_count", ())] == commits
        assert found[("ginie_journal_commit_seconds_bucket", (("le", "+Inf"),))] == commits
        assert "alice" not in text and "demo" not in text
