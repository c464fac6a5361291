"""docs/protocol.md stays true: every JSON example decodes with the real codec, unchanged,
and every event type and snapshot path is documented."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ginie_protocol import EVENT_TYPES, SNAPSHOT_PATH, decode_client, decode_server, encode
from ginie_protocol.commands import COMMAND_ARGS

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def json_blocks() -> list[str]:
    return re.findall(r"```json\n(.*?)\n```", DOC.read_text(), flags=re.DOTALL)


def test_every_example_round_trips_through_the_codec() -> None:
    blocks = json_blocks()
    assert len(blocks) >= 30
    for block in blocks:
        raw = json.loads(block)
        if "type" in raw:
            assert json.loads(encode(decode_server(block))) == raw, block
        elif "op" in raw:
            assert decode_client(block).model_dump(mode="json", exclude_none=True) == raw
        else:
            assert "user" in raw or {"epoch", "seq", "data"} <= set(raw), block


def test_every_type_command_and_path_is_documented() -> None:
    text = DOC.read_text()
    examples = {json.loads(b).get("type") for b in json_blocks()}
    assert set(EVENT_TYPES) <= examples
    for name in COMMAND_ARGS:
        assert f"`{name}`" in text, name
    for path in SNAPSHOT_PATH.values():
        assert f"`{path}`" in text, path
