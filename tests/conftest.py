"""Fixtures shared by the test suite; the helpers themselves live in `tests/harness.py`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.harness import RunningServer, ScriptedSource, running_server


@pytest.fixture
def scripted() -> ScriptedSource:
    """A source the test drives with `scripted.emit(user, data)`."""
    return ScriptedSource()


@pytest.fixture
async def server(tmp_path: Path, scripted: ScriptedSource) -> AsyncIterator[RunningServer]:
    """A running server whose only source is `scripted` (no trading engine)."""
    async with running_server(tmp_path, sources=[scripted]) as running:
        yield running
