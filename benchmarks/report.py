"""The shared table printer and JSON writer of the benchmarks.

A measurement returns a `Group`: a title, column names and rows of values. The runner prints
each group as a fixed-width table as soon as it is measured and writes every group, with a
description of the machine, to one JSON file at the end.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

Value = str | int | float | bool | None

LIBRARIES = (
    "websockets",
    "pydantic",
    "textual",
    "fastapi",
    "starlette",
    "uvicorn",
    "python-socketio",
    "python-engineio",
    "aiohttp",
    "psutil",
    "uvloop",
)


@dataclass
class Group:
    """One table: a title, its columns, its rows, and notes printed under it."""

    name: str
    title: str
    columns: list[str]
    rows: list[dict[str, Value]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, **values: Value) -> None:
        """Append a row; keys are column names (missing ones print as blank)."""
        self.rows.append(values)


def format_value(value: Value) -> str:
    """Numbers with sensible precision, booleans as yes/no, None as a dash."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value == 0:
            return "0"
        magnitude = abs(value)
        if magnitude >= 1000:
            return f"{value:,.0f}"
        if magnitude >= 1:
            return f"{value:.2f}"
        return f"{value:.3f}"
    return str(value)


def render(group: Group) -> str:
    """The group as a fixed-width text table, title first and notes last."""
    cells = [[format_value(row.get(col)) for col in group.columns] for row in group.rows]
    widths = [
        max([len(col)] + [len(line[i]) for line in cells]) for i, col in enumerate(group.columns)
    ]

    def line(values: list[str]) -> str:
        first = values[0].ljust(widths[0])
        rest = [v.rjust(w) for v, w in zip(values[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    out = [group.title, line(group.columns), "  ".join("-" * w for w in widths)]
    out += [line(values) for values in cells]
    out += [f"  {note}" for note in group.notes]
    return "\n".join(out)


def machine() -> dict[str, Any]:
    """The machine and software the run measured: CPU, cores, Python and library versions."""
    model = platform.processor() or "unknown"
    try:
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                model = text.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "libraries": versions,
    }


def describe_machine(info: dict[str, Any]) -> str:
    """One paragraph naming the machine and the versions, printed above the tables."""
    libs = ", ".join(f"{k} {v}" for k, v in info["libraries"].items())
    return (
        f"{info['cpu']}, {info['cores']} cores, load average {info['load_average_1m']} at start, "
        f"Python {info['python']}; {libs}"
    )


def write_json(path: Path, info: dict[str, Any], groups: list[Group], quick: bool) -> None:
    """Write every group and the machine description to `path` as one JSON document."""
    document = {
        "machine": info,
        "quick": quick,
        "groups": {
            g.name: {"title": g.title, "columns": g.columns, "rows": g.rows, "notes": g.notes}
            for g in groups
        },
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
