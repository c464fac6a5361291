"""Hypothesis strategies for hostile input: JSON of every shape, protocol messages with the
right tags and wrong contents, and mangled copies of valid frames.

`FUZZ` is the settings every fuzz test uses: a modest number of examples, no deadline (the
server under test runs on the same loop), and a derandomized search without an example
database, so a run is repeatable anywhere.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from ginie_protocol import COMMAND_ARGS, SPECS

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

scalars: st.SearchStrategy[Any] = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(["", "*", "BTCUSDT", "scalp", "LONG", "0", "-1", "null", "\u0000", "\ud7ff"])
)

json_values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=25,
)

ARG_NAMES = sorted({name for model in COMMAND_ARGS.values() for name in model.model_fields})
"""Every argument name any command takes: wrong values for right names reach the validators."""

command_names = st.sampled_from(sorted(COMMAND_ARGS)) | st.text(max_size=30)

command_args: st.SearchStrategy[dict[str, Any]] = st.dictionaries(
    st.sampled_from(ARG_NAMES) | st.text(max_size=12), json_values, max_size=5
)

topic_lists = (
    st.lists(st.sampled_from([*SPECS, "*"]) | st.text(max_size=20), max_size=70) | json_values
)

client_messages: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {"op": st.sampled_from(["subscribe", "command"]) | json_values},
    optional={
        "topics": topic_lists,
        "symbols": st.lists(st.text(max_size=12), max_size=210) | json_values,
        "resume": st.fixed_dictionaries(
            {"epoch": st.text(max_size=70) | json_values, "seq": st.integers() | json_values}
        )
        | json_values,
        "id": st.text(max_size=70) | json_values,
        "name": command_names | json_values,
        "args": command_args | json_values,
        "extra": json_values,
    },
)
"""Objects shaped like client messages, with any of their fields wrong, missing or extra."""

symbols = st.sampled_from(["BTCUSDT", "ETHUSDT", "SOLUSDT"]) | st.text(min_size=1, max_size=12)

well_formed_client_messages: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {
        "op": st.just("subscribe"),
        "topics": st.lists(st.sampled_from([*SPECS, "*"]), min_size=1, max_size=5),
    },
    optional={
        "symbols": st.lists(symbols, max_size=4),
        "resume": st.fixed_dictionaries(
            {"epoch": st.text(max_size=64), "seq": st.integers(min_value=0, max_value=2**62)}
        ),
    },
) | st.fixed_dictionaries(
    {
        "op": st.just("command"),
        "id": st.text(min_size=1, max_size=64),
        "name": command_names.filter(lambda name: 0 < len(name) <= 64),
        "args": command_args,
    }
)
"""Client messages that pass the envelope's checks: subscribes, and commands whose arguments
are mostly wrong, so each reaches the hub or a command's validation."""


@st.composite
def server_messages(draw: st.DrawFn) -> dict[str, Any]:
    """Objects shaped like server messages: a real `type` (mostly) with fields of any value."""
    kind = draw(
        st.sampled_from([*SPECS, "HELLO", "SUBSCRIBED", "RESYNC", "ACK", "ERROR"]) | json_values
    )
    message: dict[str, Any] = {"type": kind}
    for key in draw(st.sets(st.sampled_from(["seq", "epoch", "ts", "protocol", "user"]))):
        message[key] = draw(st.integers() | json_values)
    spec = SPECS.get(kind) if isinstance(kind, str) else None
    model = spec.model if spec is not None else None
    if model is not None:
        fields = draw(st.sets(st.sampled_from(sorted(model.model_fields))))
        message["data"] = {name: draw(json_values) for name in fields}
    elif draw(st.booleans()):
        message["data"] = draw(json_values)
    return message


@st.composite
def mangled(draw: st.DrawFn, messages: st.SearchStrategy[dict[str, Any]]) -> str:
    """A JSON frame cut short, with a character changed, or with bytes spliced in."""
    text = json.dumps(draw(messages))
    if not text:
        return text
    at = draw(st.integers(min_value=0, max_value=len(text) - 1))
    how = draw(st.sampled_from(["truncate", "replace", "insert"]))
    if how == "truncate":
        return text[:at]
    junk = draw(st.text(min_size=1, max_size=4))
    if how == "replace":
        return text[:at] + junk + text[at + 1 :]
    return text[:at] + junk + text[at:]


def nested(depth: int, opener: str = "[", inner: str = "", closer: str = "]") -> str:
    """JSON nested `depth` levels deep: valid, yet deeper than a recursive parser can go."""
    return opener * depth + inner + closer * depth
