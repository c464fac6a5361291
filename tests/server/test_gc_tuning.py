"""A running server keeps its start-up objects out of full garbage collections and collects
the old generation less often; stopping it gives the process its collector back."""

from __future__ import annotations

import gc
from pathlib import Path

from ginie_server.app import GC_THRESHOLDS
from tests.harness import running_server


async def test_the_server_freezes_start_up_objects_and_restores_the_collector(
    tmp_path: Path,
) -> None:
    thresholds = gc.get_threshold()
    frozen = gc.get_freeze_count()
    async with running_server(tmp_path, sources=[]):
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > frozen
    assert gc.get_threshold() == thresholds
    assert gc.get_freeze_count() == 0
