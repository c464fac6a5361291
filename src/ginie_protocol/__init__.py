"""Ginie's wire contract: the twenty events, the envelope, the commands and the one codec.

Depends on pydantic alone; both the server and the console import it.
"""

from ginie_protocol.commands import (
    COMMAND_ARGS,
    TRADING_COMMANDS,
    CommandArgsError,
    parse_command_args,
)
from ginie_protocol.envelope import (
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    Ack,
    AckError,
    Command,
    Error,
    Hello,
    ProtocolError,
    ResumePoint,
    Resync,
    Subscribe,
    Subscribed,
    decode_client,
    decode_server,
    encode,
    make_event,
)
from ginie_protocol.events import (
    DATA_MODEL_OF,
    ENVELOPE_OF,
    EVENT_TYPE_OF,
    EVENT_TYPES,
    KEY_FIELD,
    MARKET_TYPES,
    SNAPSHOT_PATH,
    USER_TYPES,
    Event,
    EventData,
)

__all__ = [
    "COMMAND_ARGS",
    "DATA_MODEL_OF",
    "ENVELOPE_OF",
    "EVENT_TYPES",
    "EVENT_TYPE_OF",
    "KEY_FIELD",
    "MARKET_TYPES",
    "MAX_FRAME_BYTES",
    "PROTOCOL_VERSION",
    "SNAPSHOT_PATH",
    "TRADING_COMMANDS",
    "USER_TYPES",
    "Ack",
    "AckError",
    "Command",
    "CommandArgsError",
    "Error",
    "Event",
    "EventData",
    "Hello",
    "ProtocolError",
    "ResumePoint",
    "Resync",
    "Subscribe",
    "Subscribed",
    "decode_client",
    "decode_server",
    "encode",
    "make_event",
    "parse_command_args",
]
