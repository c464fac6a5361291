"""Start one bench server: `python -m benchmarks.servers VARIANT DB_PATH`.

`ginie-uvloop` is Ginie's server on uvloop's event loop instead of asyncio's default one.
`python -m benchmarks.servers ginie-db DATABASE TOKENS [BROKER ROLE]` is Ginie's server on a
database given by URL, alone or as a cluster node (`benchmarks/servers/ginie_db.py`).
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from pathlib import Path

from benchmarks.servers.control import raise_fd_limit

VARIANTS = {
    "plain": "benchmarks.servers.plain",
    "fastapi": "benchmarks.servers.fastapi_hub",
    "socketio": "benchmarks.servers.socketio_hub",
    "ginie": "benchmarks.servers.ginie",
    "ginie-uvloop": "benchmarks.servers.ginie",
}
ON_UVLOOP = frozenset({"ginie-uvloop"})
WITH_ARGUMENTS = {"ginie-db": "benchmarks.servers.ginie_db"}
"""Variants that take their own arguments after the variant's name."""


def main() -> int:
    if len(sys.argv) >= 2 and sys.argv[1] in WITH_ARGUMENTS:
        raise_fd_limit()
        module = importlib.import_module(WITH_ARGUMENTS[sys.argv[1]])
        asyncio.run(module.main(sys.argv[2:]))
        return 0
    if len(sys.argv) != 3 or sys.argv[1] not in VARIANTS:
        print(
            f"usage: python -m benchmarks.servers {{{','.join(VARIANTS)}}} DB_PATH", file=sys.stderr
        )
        return 2
    raise_fd_limit()
    variant = sys.argv[1]
    module = importlib.import_module(VARIANTS[variant])
    if variant in ON_UVLOOP:
        import uvloop

        uvloop.run(module.main(Path(sys.argv[2])))
    else:
        asyncio.run(module.main(Path(sys.argv[2])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
