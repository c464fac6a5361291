"""Project-wide pytest setup: the console's SVG snapshots live in the top-level `snapshots/`.

pytest-textual-snapshot stores SVGs beside the tests by default. Its `snap_compare` fixture
looks its extension class up on the module at call time, so replacing that class here with a
subclass that has another `dirname` moves every snapshot to `snapshots/<test module>/`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest_textual_snapshot

SNAPSHOT_ROOT = Path(__file__).parent / "snapshots"


class TopLevelSVGExtension(pytest_textual_snapshot.SVGImageExtension):
    """The plugin's SVG extension, storing files under `snapshots/<test module>/`."""

    @classmethod
    def dirname(cls, *, test_location: Any) -> str:
        return str(SNAPSHOT_ROOT / test_location.basename)


pytest_textual_snapshot.SVGImageExtension = TopLevelSVGExtension  # type: ignore[misc]
