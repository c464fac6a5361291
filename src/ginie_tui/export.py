"""`ginie-tui export trades|orders|lifecycle`: the user's history from the REST API, as CSV or JSON.

    ginie-tui export trades|orders|lifecycle [--since YYYY-MM-DD] [--format csv|json] [-o FILE]

Trades come from `/api/futures/trades` and orders from `/api/futures/orders/all` (each one
answer, the whole history the server keeps); lifecycle events page back through
`/api/futures/trade-events?limit=1000&before_seq=N` until the first page is reached or the
events are older than `--since`, with a progress line on stderr while it pages. Rows are
written oldest first, one per item, with the model's fields as columns (lifecycle rows add
their `seq`); nested values (a lifecycle event's `details`) are JSON in one CSV cell.
`--since` (a UTC date) keeps the items from that day on, by trade time, order creation or
event time. The console's export key writes a panel's rows with the same writer.
"""

from __future__ import annotations

import csv
import json
import ssl
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal, TextIO

import httpx

from ginie_protocol.events import LifecycleEvent, Order, Trade, WireModel
from ginie_tui.feed import FeedError, ssl_context

Format = Literal["csv", "json"]
PAGE = 1000
"""Lifecycle events asked for per page (the server's largest page)."""
MAX_PAGES = 100_000
"""A bound on the paging loop (a hundred million events)."""


@dataclass(frozen=True)
class ExportKind:
    """One thing to export: where it comes from, its model and its time field."""

    path: str
    model: type[WireModel]
    time_field: str
    paged: bool = False


KINDS: dict[str, ExportKind] = {
    "trades": ExportKind("/api/futures/trades", Trade, "time"),
    "orders": ExportKind("/api/futures/orders/all", Order, "created_at"),
    "lifecycle": ExportKind("/api/futures/trade-events", LifecycleEvent, "time", paged=True),
}


class ExportError(Exception):
    """The export could not be made; the message is one line for the user."""


def parse_day(text: str) -> int:
    """A `YYYY-MM-DD` date to epoch milliseconds at 00:00 UTC; ValueError when it is not one."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a date of the form YYYY-MM-DD: {text!r}") from None
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def columns(model: type[WireModel], with_seq: bool = False) -> list[str]:
    """The columns of a model's rows: its fields in order (and `seq` first for lifecycle)."""
    return (["seq"] if with_seq else []) + list(model.model_fields)


class Progress:
    """A progress line on stderr: rewritten in place on a terminal, a line a page otherwise."""

    def __init__(self, err: TextIO) -> None:
        self.err = err
        self.shown = False

    def show(self, text: str) -> None:
        if self.err.isatty():
            self.err.write(f"\r{text}")
        else:
            self.err.write(f"{text}\n")
        self.err.flush()
        self.shown = True

    def end(self) -> None:
        if self.shown and self.err.isatty():
            self.err.write("\n")
            self.err.flush()


class Exporter:
    """Fetches one kind of history from a server (see the module docstring)."""

    def __init__(
        self, url: str, token: str, ca: str | None = None, timeout_s: float = 30.0
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ExportError(f"--url must start with http:// or https://, not {url!r}")
        self.url = url.rstrip("/")
        try:
            verify: ssl.SSLContext | bool = ssl_context(ca) if url.startswith("https") else True
        except FeedError as exc:
            raise ExportError(str(exc)) from None
        self._client = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
            verify=verify,
        )

    def close(self) -> None:
        self._client.close()

    def fetch(
        self, kind: ExportKind, since_ms: int | None, progress: Progress | None = None
    ) -> list[dict[str, Any]]:
        """The items of `kind`, oldest first, from `since_ms` on (every one when None)."""
        if kind.paged:
            items = self._pages(kind, since_ms, progress)
        else:
            items = self._data(kind.path, {})
        kept = [i for i in items if since_ms is None or int(i[kind.time_field]) >= since_ms]
        return sorted(kept, key=lambda i: (i[kind.time_field], i.get("seq") or 0))

    def _pages(
        self, kind: ExportKind, since_ms: int | None, progress: Progress | None
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        before: int | None = None
        for page_number in range(1, MAX_PAGES + 1):
            params = {"limit": str(PAGE)}
            if before is not None:
                params["before_seq"] = str(before)
            page = self._data(kind.path, params)
            items.extend(page)
            if page_number > 1 and progress is not None:
                progress.show(f"ginie-tui export: {len(items):,} lifecycle events fetched")
            older = [int(i["seq"]) for i in page if isinstance(i.get("seq"), int)]
            if len(page) < PAGE or not older or min(older) <= 1:
                break
            if since_ms is not None and min(int(i[kind.time_field]) for i in page) < since_ms:
                break
            before = min(older)
        if progress is not None:
            progress.end()
        return items

    def _data(self, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        try:
            response = self._client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise ExportError(f"cannot reach {self.url}: {exc or type(exc).__name__}") from None
        if response.status_code in (401, 403):
            raise ExportError("the server refused the token (HTTP 401)")
        if response.status_code != 200:
            raise ExportError(f"{path} answered HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise ExportError(f"{path} answered something that is not JSON") from None
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or not all(isinstance(i, dict) for i in data):
            raise ExportError(f"{path} answered something that is not a list of items")
        return data


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def write_rows(
    rows: Iterable[dict[str, Any]], fields: Sequence[str], fmt: Format, out: TextIO
) -> int:
    """Write `rows` as CSV (a header of `fields`, then one line a row) or as one JSON array;
    return how many rows were written."""
    items = list(rows)
    if fmt == "json":
        json.dump([{f: row.get(f) for f in fields} for row in items], out, indent=1)
        out.write("\n")
    else:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(fields)
        for row in items:
            writer.writerow([_cell(row.get(f)) for f in fields])
    return len(items)


def file_name(title: str, now_ms: int, fmt: Format = "csv") -> str:
    """`ginie-order-chains-20251125-195320.csv` for a panel titled `Order chains` (UTC time)."""
    slug = "-".join("".join(c if c.isalnum() else " " for c in title.lower()).split())
    stamp = datetime.fromtimestamp(now_ms / 1000, UTC).strftime("%Y%m%d-%H%M%S")
    return f"ginie-{slug or 'panel'}-{stamp}.{fmt}"


def write_models(items: Sequence[WireModel], fmt: Format, path: Path) -> int:
    """Write protocol models (a panel's rows) to `path`; their fields are the columns."""
    if not items:
        return 0
    fields = columns(type(items[0]))
    with path.open("w", encoding="utf-8", newline="") as out:
        return write_rows((i.model_dump(mode="json") for i in items), fields, fmt, out)


def run_export(
    what: str,
    *,
    url: str,
    token: str,
    ca: str | None,
    since_ms: int | None,
    fmt: Format,
    output: Path | None,
) -> int:
    """Export `what` to `output` (stdout when None), progress on stderr; the rows written."""
    kind = KINDS[what]
    exporter = Exporter(url, token, ca)
    try:
        items = exporter.fetch(kind, since_ms, Progress(sys.stderr))
    finally:
        exporter.close()
    fields = columns(kind.model, with_seq=kind.paged)
    if output is None:
        return write_rows(items, fields, fmt, sys.stdout)
    try:
        with output.open("w", encoding="utf-8", newline="") as out:
            return write_rows(items, fields, fmt, out)
    except OSError as exc:
        raise ExportError(f"cannot write {output}: {exc.strerror or exc}") from None
