"""A command flooder in a process of its own, as a hostile client is (`test_command_flood`).

`python -m tests.server.flooder WS_URL COUNT`, with the user's token in `GINIE_TOKEN`: connects,
prints HELLO's `seq` as a line, waits for a line on stdin, then writes COUNT valid
`autopilot.set_rules` commands in one go (the n-th sets `min_confidence` to `rules_value(n)`),
reads until the server closes the connection, and prints one JSON line: every ACK received, in
order, and the close code. Out of the test's process, the flood's client side (writing half a
megabyte, reading the answers) takes no time from the server's event loop.
"""

from __future__ import annotations

import json
import os
import sys

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect


def rules_value(n: int) -> float:
    """The `min_confidence` of the n-th command: each command's change is its own."""
    return 0.5 + n / 1_000_000


def write_flood(ws: ClientConnection, count: int) -> None:
    """Frame `count` commands and write them with one call, faster than one by one."""
    with ws.protocol_mutex:
        for n in range(count):
            command = {
                "op": "command",
                "id": str(n),
                "name": "autopilot.set_rules",
                "args": {"min_confidence": rules_value(n)},
            }
            ws.protocol.send_text(json.dumps(command).encode())
        ws.socket.sendall(b"".join(ws.protocol.data_to_send()))


def main(url: str, count: int) -> None:
    headers = {"Authorization": f"Bearer {os.environ['GINIE_TOKEN']}"}
    with connect(url, additional_headers=headers, max_queue=None, close_timeout=10) as ws:
        hello = json.loads(ws.recv(timeout=5))
        print(json.dumps({"seq": hello["seq"]}), flush=True)
        sys.stdin.readline()
        write_flood(ws, count)
        acks: list[dict[str, object]] = []
        close_code = None
        try:
            while True:
                message = json.loads(ws.recv(timeout=20))
                if message.get("type") == "ACK":
                    acks.append(message)
        except ConnectionClosed as closed:
            close_code = None if closed.rcvd is None else closed.rcvd.code
    print(json.dumps({"acks": acks, "close_code": close_code}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
