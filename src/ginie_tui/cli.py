"""`ginie-tui`: open the console, `--demo` with its own paper server, `tail` events headless, or
`export` the history.

    ginie-tui [--url http://127.0.0.1:8765] [--token TOKEN] [--poll-interval 60] [--ca PEM]
              [--news-url URL] [--strategies FILE]        # env GINIE_URL, GINIE_TOKEN, ...
              [--bell KINDS] [--liquidation-alert PCT]
    ginie-tui --demo [--speed 60]
    ginie-tui tail [--types T1,T2] [--json] [--url ...] [--token ...] [--ca PEM]
    ginie-tui export trades|orders|lifecycle [--since YYYY-MM-DD] [--format csv|json] [-o FILE]
    ginie-tui web [--host 127.0.0.1] [--port 8080] [--url ...] [--tls-cert PEM --tls-key PEM]

Bad arguments, an unreachable server or a refused token: one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from ginie_protocol import SPECS
from ginie_tui import web
from ginie_tui.alerts import DEFAULT_LIQUIDATION_PCT, AlertKind, parse_kinds
from ginie_tui.app import ConsoleSettings, GinieApp, make_app
from ginie_tui.demo import DEMO_SPEED, DemoError, DemoServer
from ginie_tui.export import KINDS, ExportError, parse_day, run_export
from ginie_tui.feed import Feed, FeedError, FeedSettings
from ginie_tui.store import Store
from ginie_tui.tail import TailPrinter, run_tail

DEFAULT_URL = "http://127.0.0.1:8765"
PROG = "ginie-tui"

AppRunner = Callable[[GinieApp], object]


class UsageError(Exception):
    """Arguments that do not make sense together; the message is one line."""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit 2, without the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def _kinds(text: str) -> frozenset[AlertKind]:
    try:
        return parse_kinds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _day(text: str) -> int:
    try:
        return parse_day(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_connection(parser: argparse.ArgumentParser) -> None:
    env = os.environ
    parser.add_argument("--url", default=env.get("GINIE_URL", DEFAULT_URL), help="server URL")
    parser.add_argument("--token", default=env.get("GINIE_TOKEN"), help="bearer token")
    parser.add_argument("--ca", default=None, help="PEM file of a private CA (for https)")


def console_parser() -> OneLineParser:
    parser = OneLineParser(prog=PROG, description="Ginie's trading console.")
    _add_connection(parser)
    parser.add_argument("--demo", action="store_true", help="start a paper server and open it")
    parser.add_argument(
        "--speed",
        type=_positive,
        default=None,
        help=f"with --demo: market time this many times faster (default {DEMO_SPEED:g})",
    )
    parser.add_argument(
        "--bell",
        type=_kinds,
        default=frozenset(),
        help="alert kinds that ring the bell: " + ",".join(AlertKind) + " or all",
    )
    parser.add_argument(
        "--liquidation-alert",
        type=_positive,
        default=DEFAULT_LIQUIDATION_PCT,
        help="alert when a mark is within this %% of its liquidation price (default 5)",
    )
    parser.add_argument(
        "--poll-interval",
        type=_positive,
        default=60.0,
        help="seconds between fallback snapshots while not LIVE (default 60)",
    )
    parser.add_argument("--news-url", default=os.environ.get("GINIE_NEWS_URL"))
    parser.add_argument(
        "--strategies", type=Path, default=os.environ.get("GINIE_STRATEGIES"), help="JSON file"
    )
    return parser


def tail_parser() -> OneLineParser:
    parser = OneLineParser(prog=f"{PROG} tail", description="Print events, one a line.")
    _add_connection(parser)
    parser.add_argument("--types", default="", help="comma-separated event types")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of text")
    return parser


def export_parser() -> OneLineParser:
    parser = OneLineParser(prog=f"{PROG} export", description="Export the history.")
    parser.add_argument("what", choices=sorted(KINDS))
    _add_connection(parser)
    parser.add_argument("--since", type=_day, default=None, help="from this UTC day on")
    parser.add_argument("--format", choices=("csv", "json"), default="csv")
    parser.add_argument("-o", "--output", type=Path, default=None, help="file (default stdout)")
    return parser


def _check_connection(url: str, token: str | None, ca: str | None) -> str:
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--url must start with http:// or https://, not {url!r}")
    if not token:
        raise UsageError("no token: pass --token or set GINIE_TOKEN (or use --demo)")
    if ca is not None and not Path(ca).is_file():
        raise UsageError(f"--ca {ca}: no such file")
    return token


def _parse_types(text: str) -> list[str]:
    types = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in types if t not in SPECS]
    if unknown:
        raise UsageError(f"unknown event type {unknown[0]!r}; known: {', '.join(SPECS)}")
    return types


def open_console(
    url: str,
    token: str,
    *,
    ca: str | None,
    poll_interval_s: float,
    news_url: str | None,
    strategies: Path | None,
    run_app: AppRunner,
    bell: frozenset[AlertKind] = frozenset(),
    liquidation_alert_pct: float = DEFAULT_LIQUIDATION_PCT,
    banner: str = "",
) -> int:
    """Check the server with the start-up snapshot, then run the console until it quits."""
    feed = Feed(FeedSettings(url=url, token=token, ca=ca, poll_interval_s=poll_interval_s))
    store = Store()
    asyncio.run(feed.preflight(store))
    settings = ConsoleSettings(
        server=url,
        poll_interval_s=poll_interval_s,
        news_url=news_url,
        strategies_path=strategies,
        bell=bell,
        liquidation_alert_pct=liquidation_alert_pct,
        banner=banner,
    )
    run_app(make_app(feed, store=store, settings=settings))
    return 0


def _run_app(app: GinieApp) -> None:
    app.run()


def main(argv: list[str] | None = None, run_app: AppRunner = _run_app) -> int:
    """Entry point; `run_app` runs the built console (tests run it headless)."""
    args_list = sys.argv[1:] if argv is None else argv
    try:
        if args_list[:1] == ["web"]:
            return web.main(args_list[1:])
        if args_list[:1] == ["tail"]:
            return _tail(tail_parser().parse_args(args_list[1:]))
        if args_list[:1] == ["export"]:
            return _export(export_parser().parse_args(args_list[1:]))
        return _console(console_parser().parse_args(args_list), run_app)
    except (UsageError, FeedError, DemoError, ExportError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _console(args: argparse.Namespace, run_app: AppRunner) -> int:
    common = {
        "poll_interval_s": args.poll_interval,
        "news_url": args.news_url,
        "strategies": args.strategies,
        "run_app": run_app,
        "bell": args.bell,
        "liquidation_alert_pct": args.liquidation_alert,
    }
    if args.strategies is not None and not args.strategies.is_file():
        raise UsageError(f"--strategies {args.strategies}: no such file")
    if args.speed is not None and not args.demo:
        raise UsageError("--speed needs --demo (a server of your own sets its own speed)")
    if args.demo:
        speed = DEMO_SPEED if args.speed is None else args.speed
        with DemoServer(speed=speed) as demo:
            banner = f"paper demo, market x{speed:g}"
            return open_console(demo.url, demo.token, ca=None, banner=banner, **common)
    token = _check_connection(args.url, args.token, args.ca)
    return open_console(args.url, token, ca=args.ca, **common)


def _tail(args: argparse.Namespace) -> int:
    token = _check_connection(args.url, args.token, args.ca)
    printer = TailPrinter(_parse_types(args.types), args.json)
    feed = Feed(FeedSettings(url=args.url, token=token, ca=args.ca))
    return asyncio.run(run_tail(feed, printer))


def _export(args: argparse.Namespace) -> int:
    token = _check_connection(args.url, args.token, args.ca)
    run_export(
        args.what,
        url=args.url,
        token=token,
        ca=args.ca,
        since_ms=args.since,
        fmt=args.format,
        output=args.output,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
