"""Strategies: static configuration, loaded once at start and again on demand (key r).

Where it comes from: the JSON file named by `--strategies FILE` (or `GINIE_STRATEGIES`), a list
of objects with `name` and optionally `mode`, `timeframe`, `description` and `params` (an object
of numbers or strings). Without a file, the panel lists the strategies the store has seen in
signals, chains and performance, which is what the server's engine actually runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding

from ginie_protocol import Topic
from ginie_protocol.events import Performance
from ginie_tui.store import Change
from ginie_tui.widgets.base import Panel, Ranked, fmt_time
from ginie_tui.widgets.rowlog import RowLog


@dataclass(frozen=True)
class Strategy:
    name: str
    mode: str = ""
    timeframe: str = ""
    description: str = ""
    params: dict[str, Any] = field(default_factory=dict)


class StrategyFileError(ValueError):
    """The strategies file cannot be read; the message says why."""


def load_strategies(path: Path) -> list[Strategy]:
    """Read the strategies file (see the module docstring for its shape)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise StrategyFileError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise StrategyFileError(f"{path} is not JSON: {exc}") from None
    if not isinstance(raw, list):
        raise StrategyFileError(f"{path} must hold a JSON list of strategies")
    out: list[Strategy] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise StrategyFileError(f"{path}: item {i} needs a string 'name'")
        params = item.get("params", {})
        out.append(
            Strategy(
                name=item["name"],
                mode=str(item.get("mode", "")),
                timeframe=str(item.get("timeframe", "")),
                description=str(item.get("description", "")),
                params=params if isinstance(params, dict) else {},
            )
        )
    return out


SEEN_IN = frozenset({Topic.SIGNAL_UPDATE, Topic.CHAIN_UPDATE, Topic.PERFORMANCE_UPDATE})


class StrategiesPanel(Panel):
    TITLE = "Strategies"
    BINDINGS = [Binding("r", "reload", "Reload strategies")]
    COLUMNS = (
        ("name", "Strategy", 14),
        ("mode", "Mode", 8),
        ("tf", "TF", 4),
        ("about", "About", 40),
    )

    def __init__(self, *args: Any, path: Path | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.path = path
        if path is None:
            # Without a file the list is derived from the data, so it follows the data.
            self.topics = SEEN_IN

    def apply_change(self, change: Change) -> None:
        self.action_reload()

    def compose(self) -> ComposeResult:
        yield RowLog(self.COLUMNS, max_rows=100, newest_first=False)

    def refresh_all(self) -> None:
        """Strategies are static: load them only on mount and on demand."""
        if not self.border_subtitle:
            self.action_reload()

    def action_reload(self) -> None:
        table = self.query_one(RowLog)
        try:
            strategies = self._load()
        except StrategyFileError as exc:
            self.border_subtitle = "not loaded"
            self.notify(str(exc), title="Strategies", severity="error")
            return
        table.replace_all(
            (
                s.name,
                [
                    Ranked(s.name, s.name),
                    s.mode or "-",
                    s.timeframe or "-",
                    s.description or ", ".join(f"{k}={v}" for k, v in s.params.items()) or "-",
                ],
            )
            for s in strategies
        )
        origin = self.path.name if self.path else "seen in data"
        self.border_subtitle = f"{origin}, loaded {fmt_time(self.clock.now_ms())}"

    def _load(self) -> list[Strategy]:
        if self.path is not None:
            return load_strategies(self.path)
        seen: dict[str, set[str]] = {}
        for item in self.store.items(Topic.SIGNAL_UPDATE) + self.store.items(Topic.CHAIN_UPDATE):
            seen.setdefault(item.strategy, set()).add(item.mode)
        perf = self.store.one(Performance)
        for row in perf.by_strategy if perf else []:
            seen.setdefault(row.key, set())
        return [
            Strategy(name, mode="/".join(sorted(modes)), description="seen in signals and chains")
            for name, modes in sorted(seen.items())
        ]
