"""Run the benchmarks: `python -m benchmarks [--quick] [--json PATH] [--only NAME,...]`."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from benchmarks.report import Group, describe_machine, machine, render, write_json

MEASUREMENTS = ("latency", "fanout", "api_calls", "console", "memory", "cluster", "commit")
"""Run order; `api_calls` uses the push latency that `latency` measured as LIVE data age.
`cluster` and `commit` start a throwaway PostgreSQL (and Redis) of their own."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs (under two minutes)")
    parser.add_argument("--json", type=Path, help="write every table to this JSON file")
    parser.add_argument(
        "--only",
        default=",".join(MEASUREMENTS),
        help=f"comma-separated subset of {','.join(MEASUREMENTS)}",
    )
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(MEASUREMENTS))
    if unknown:
        parser.error(f"unknown measurement(s): {', '.join(unknown)}")

    info = machine()
    print(describe_machine(info), flush=True)
    groups: list[Group] = []
    live_age_s = 0.0
    started = time.monotonic()
    for name in MEASUREMENTS:
        if name not in chosen:
            continue
        module = importlib.import_module(f"benchmarks.{name}")
        begun = time.monotonic()
        if name == "api_calls":
            group = module.run(args.quick, live_age_s=live_age_s)
        else:
            group = module.run(args.quick)
        if name == "latency":
            live_age_s = module.live_age_s(group)
        group.notes.append(f"({time.monotonic() - begun:.1f} s)")
        groups.append(group)
        print("\n" + render(group), flush=True)
    print(f"\ntotal {time.monotonic() - started:.1f} s", flush=True)
    if args.json is not None:
        write_json(args.json, info, groups, args.quick)
        print(f"wrote {args.json}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
