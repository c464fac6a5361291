"""Control messages of the WebSocket protocol and the only JSON codec of the project.

Server to client: HELLO, SUBSCRIBED, RESYNC, ACK, ERROR and the twenty events.
Client to server: `subscribe` and `command`.

`decode_server` and `decode_client` never raise anything but `ProtocolError`, whose message
is safe to send back to a peer.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from ginie_protocol.commands import describe_validation_error
from ginie_protocol.events import Event, WireModel, spec_of

PROTOCOL_VERSION = 1
MAX_FRAME_BYTES = 64 * 1024
"""Frames larger than this are refused (close 1009)."""


class ResumePoint(WireModel):
    """Where a client left off: the epoch and the last user-event `seq` it applied."""

    epoch: str = Field(max_length=64)
    seq: int = Field(ge=0)


class Hello(WireModel):
    type: Literal["HELLO"] = "HELLO"
    protocol: int = PROTOCOL_VERSION
    user: str
    epoch: str
    seq: int
    server_time: int


class Subscribed(WireModel):
    type: Literal["SUBSCRIBED"] = "SUBSCRIBED"
    topics: list[str]
    symbols: list[str] | None = None
    resumed: bool
    replayed: int = 0


class Resync(WireModel):
    type: Literal["RESYNC"] = "RESYNC"
    epoch: str
    seq: int
    reason: str


class AckError(WireModel):
    code: str
    message: str
    retry_after_ms: int | None = None
    """With code `rate_limited`: how long to wait before the command would be taken."""


class Ack(WireModel):
    type: Literal["ACK"] = "ACK"
    id: str
    ok: bool
    result: dict[str, Any] | None = None
    error: AckError | None = None


class Error(WireModel):
    type: Literal["ERROR"] = "ERROR"
    code: str
    message: str


ServerMessage = Annotated[
    Hello | Subscribed | Resync | Ack | Error | Event,
    Field(discriminator="type"),
]


class Subscribe(BaseModel):
    """Subscribe to `topics` (event type names, or `["*"]`), optionally only some symbols."""

    model_config = {"extra": "forbid", "frozen": True}
    op: Literal["subscribe"]
    topics: list[str] = Field(min_length=1, max_length=64)
    symbols: list[str] | None = Field(default=None, max_length=200)
    resume: ResumePoint | None = None


class Command(BaseModel):
    """Run command `name`; the server answers with one ACK carrying the same `id`."""

    model_config = {"extra": "forbid", "frozen": True}
    op: Literal["command"]
    id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=64)
    args: dict[str, Any] = {}


ClientMessage = Annotated[Subscribe | Command, Field(discriminator="op")]

_server_adapter: TypeAdapter[Any] = TypeAdapter(ServerMessage)
_client_adapter: TypeAdapter[Any] = TypeAdapter(ClientMessage)


class ProtocolError(ValueError):
    """A message that is not valid JSON or does not fit the protocol; the text says why."""


def encode(message: BaseModel) -> str:
    """Serialize any protocol message to its JSON text frame; absent (None) fields are left out."""
    return message.model_dump_json(exclude_none=True)


def decode_server(text: str | bytes) -> Any:
    """Parse a server-to-client frame into its model (a control message or an event)."""
    return _decode(_server_adapter, text, "type")


def decode_client(text: str | bytes) -> Subscribe | Command:
    """Parse a client-to-server frame into Subscribe or Command."""
    return _decode(_client_adapter, text, "op")


def _decode(adapter: TypeAdapter[Any], text: str | bytes, tag: str) -> Any:
    try:
        raw = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise ProtocolError("invalid JSON: nested too deeply") from None
    if not isinstance(raw, dict):
        raise ProtocolError("a message must be a JSON object")
    if tag not in raw:
        raise ProtocolError(f"missing {tag!r}")
    try:
        return adapter.validate_python(raw)
    except ValidationError as exc:
        return _raise_readable(exc, raw, tag)


def _refuse_constant(name: str) -> Any:
    """NaN and Infinity are not JSON; Python's parser accepts them unless told otherwise."""
    raise ValueError(f"{name} is not a JSON value")


def _raise_readable(exc: ValidationError, raw: dict[str, Any], tag: str) -> Any:
    err = exc.errors(include_url=False)[0]
    if err["type"] == "union_tag_invalid":
        raise ProtocolError(f"unknown {tag} {raw.get(tag)!r}") from None
    raise ProtocolError(describe_validation_error(exc)) from None


def make_event(data: WireModel, ts: int, seq: int | None = None, epoch: str | None = None) -> Any:
    """Wrap a data model in the envelope of its event type."""
    return spec_of(data).envelope(seq=seq, epoch=epoch, ts=ts, data=data)
