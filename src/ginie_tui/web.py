"""`ginie-tui web`: the console in a browser page, one console per browser session.

    ginie-tui web [--host 127.0.0.1] [--port 8080] [--url http://127.0.0.1:8765] [--ca PEM]
                  [--tls-cert PEM --tls-key PEM] [--public-url URL]

textual-serve serves the page and, for each browser session (each page's WebSocket), starts
`python -m ginie_tui.web session --url URL [--ca PEM]` as a child process that runs the
console; the page shows what the child draws and sends it the keys typed.

No one gets a console without a valid token of their own, and the token is in no page, URL,
command line or log:

- the page and the child's command line carry the server URL only; the web command takes no
  token and drops `GINIE_TOKEN` from the environment its children inherit;
- the child opens on a token prompt (`TokenScreen`) inside the console: the token travels as
  keystrokes over the page's WebSocket (which textual-serve does not log), is shown masked,
  and is checked with one `/api/snapshot` call before the feed starts. It then lives only in
  that child's memory, as a `Secret`, whose repr hides it from tracebacks (Textual prints the
  locals of a crash, and textual-serve copies a child's stderr to its own stdout);
- five refused tokens end the session (the server's bad-token throttle counts them too).

Off loopback the page is served only over TLS (`--tls-cert` and `--tls-key`), as the server;
`--public-url` names the address browsers reach it at (by default the scheme, host and port it
listens on). The first stdout line is `listening on http(s)://HOST:PORT`, as the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import os
import shlex
import signal
import ssl
import sys
from pathlib import Path
from typing import Any, ClassVar

from aiohttp import web
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Input, Static
from textual_serve.server import Server

from ginie_protocol import Ack
from ginie_tui.app import ConsoleSettings, GinieApp
from ginie_tui.clock import Clock, SystemClock
from ginie_tui.connection import ConnectionStatus, ConnState
from ginie_tui.feed import CommandRefused, Feed, FeedError, FeedListener, FeedSettings
from ginie_tui.store import Store

DEFAULT_URL = "http://127.0.0.1:8765"
MAX_ATTEMPTS = 5
"""Refused tokens after which a browser session ends."""
PROG = "ginie-tui web"


class Secret(str):
    """A token: the string itself everywhere it is used, `'<token>'` in any repr."""

    def __repr__(self) -> str:
        return "'<token>'"


class WebUsageError(Exception):
    """Arguments that cannot be served; the message is one line."""


# ---------------------------------------------------------------------------- the child console


class LoginFeed:
    """A FeedPort with no token until the user gives one. `login` checks it with one
    `/api/snapshot` call into the console's store; from then on the real `Feed` runs."""

    def __init__(self, url: str, ca: str | None = None, clock: Clock | None = None) -> None:
        self.url = url
        self.ca = ca
        self.clock = clock or SystemClock()
        self._feed: Feed | None = None
        self._store: Store | None = None
        self._listener: FeedListener | None = None
        self._signed_in = asyncio.Event()

    def status(self) -> ConnectionStatus:
        if self._feed is None:
            return ConnectionStatus(ConnState.OFFLINE, detail="waiting for a token")
        return self._feed.status()

    async def run(self, store: Store, listener: FeedListener) -> None:
        self._store, self._listener = store, listener
        await self._signed_in.wait()
        assert self._feed is not None
        await self._feed.run(store, listener)

    async def login(self, token: Secret) -> str | None:
        """Check `token` against the server; None when it was taken, else why not."""
        if self._store is None or self._listener is None:
            return "the console is still starting: try again"
        feed = Feed(FeedSettings(url=self.url, token=token, ca=self.ca), self.clock)
        try:
            changes = await feed.sync(self._store)
        except FeedError as exc:
            await feed.close()
            return str(exc)
        feed.machine.synced(self.clock.now_ms())
        self._feed = feed
        self._listener.feed_changes(changes)
        self._signed_in.set()
        return None

    async def command(self, name: str, args: Any) -> Ack:
        if self._feed is None:
            raise CommandRefused("not signed in")
        return await self._feed.command(name, args)

    def show_market(self, symbol: str) -> None:
        if self._feed is not None:
            self._feed.show_market(symbol)


class TokenScreen(Screen[None]):
    """The console's first screen in a browser session: asks for the token, masked."""

    DEFAULT_CSS = """
    TokenScreen { align: center middle; }
    TokenScreen > Vertical {
        width: 64;
        height: auto;
        border: round $accent;
        padding: 1 2;
    }
    TokenScreen #token-title { text-style: bold; margin-bottom: 1; }
    TokenScreen #token-status { height: auto; margin-top: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+q", "app.quit", "Quit")]

    def __init__(self, feed: LoginFeed) -> None:
        super().__init__()
        self.feed = feed
        self.refused = 0

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Ginie: sign in with your token", id="token-title")
            yield Static(f"Server {self.feed.url}")
            yield Input(password=True, placeholder="token", id="token")
            yield Static("[dim]Enter signs in; ctrl+q quits.[/]", id="token-status")

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        field = self.query_one(Input)
        token = Secret(field.value.strip())
        field.value = ""
        if not token:
            return
        status = self.query_one("#token-status", Static)
        status.update("checking the token...")
        field.disabled = True
        reason = await self.feed.login(token)
        field.disabled = False
        if reason is None:
            self.app.pop_screen()
            return
        self.refused += 1
        if self.refused >= MAX_ATTEMPTS:
            self.app.exit(message=f"{MAX_ATTEMPTS} tokens refused: session ended")
            return
        status.update(f"[red]Not signed in: {reason}[/]\n[dim]Enter signs in; ctrl+q quits.[/]")
        field.focus()


class WebConsole(GinieApp):
    """The console of one browser session: the token prompt first, then the console."""

    def __init__(self, feed: LoginFeed) -> None:
        super().__init__(feed, Store(), feed.clock, ConsoleSettings(server=feed.url))
        self.login_feed = feed

    def on_mount(self) -> None:
        # GinieApp.on_mount runs after this one and finds its widgets on the default screen.
        self.call_later(self.push_screen, TokenScreen(self.login_feed))


def session_main(argv: list[str]) -> int:
    """The child of one browser session: `python -m ginie_tui.web session --url URL`."""
    parser = argparse.ArgumentParser(prog="ginie_tui.web session")
    parser.add_argument("--url", required=True)
    parser.add_argument("--ca", default=None)
    args = parser.parse_args(argv)
    WebConsole(LoginFeed(args.url, args.ca)).run()
    return 0


# ---------------------------------------------------------------------------- the web server


def is_loopback(host: str) -> bool:
    """True for localhost and the loopback addresses."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def session_command(url: str, ca: str | None) -> str:
    """The shell command textual-serve runs for each browser session: no token in it."""
    words = [sys.executable, "-m", "ginie_tui.web", "session", "--url", url]
    if ca is not None:
        words += ["--ca", ca]
    return shlex.join(words)


class WebServer(Server):
    """textual-serve's server on a port of our choosing (0 picks one), over TLS when given."""

    def __init__(
        self, command: str, host: str, port: int, tls: ssl.SSLContext | None, public_url: str
    ) -> None:
        super().__init__(command, host=host, port=port, title="Ginie")
        self.tls = tls
        self.wanted_public_url = public_url

    async def on_startup(self, app: web.Application) -> None:
        """textual-serve prints a banner with the command here; we print one line instead."""

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set; print the address once listening."""
        runner = web.AppRunner(await self._make_app())
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port, ssl_context=self.tls)
            await site.start()
            server = site._server
            assert isinstance(server, asyncio.Server)
            port = server.sockets[0].getsockname()[1]
            scheme = "https" if self.tls is not None else "http"
            host = f"[{self.host}]" if ":" in self.host else self.host
            self.public_url = self.wanted_public_url or f"{scheme}://{host}:{port}"
            print(f"listening on {scheme}://{host}:{port}", flush=True)
            await stop.wait()
        finally:
            await runner.cleanup()


def web_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="The console in a browser page.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--url", default=os.environ.get("GINIE_URL", DEFAULT_URL))
    parser.add_argument("--ca", default=None, help="PEM file of a private CA (for https)")
    parser.add_argument("--tls-cert", default=None, help="PEM certificate for https")
    parser.add_argument("--tls-key", default=None, help="PEM key for https")
    parser.add_argument("--public-url", default="", help="the page's address for browsers")
    return parser


def _tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    if (args.tls_cert is None) != (args.tls_key is None):
        raise WebUsageError("--tls-cert and --tls-key go together")
    if args.tls_cert is None:
        if not is_loopback(args.host):
            raise WebUsageError(
                f"--host {args.host} is not loopback: serve it with --tls-cert and --tls-key"
            )
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(args.tls_cert, args.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise WebUsageError(f"cannot read the TLS certificate or key: {exc}") from None
    return context


def main(argv: list[str]) -> int:
    """`ginie-tui web ...`: serve until SIGINT or SIGTERM; bad arguments exit 2."""
    try:
        args = web_parser().parse_args(argv)
        if not args.url.startswith(("http://", "https://")):
            raise WebUsageError(f"--url must start with http:// or https://, not {args.url!r}")
        if args.ca is not None and not Path(args.ca).is_file():
            raise WebUsageError(f"--ca {args.ca}: no such file")
        tls = _tls(args)
    except WebUsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    os.environ.pop("GINIE_TOKEN", None)  # the children inherit this environment
    server = WebServer(
        session_command(args.url, args.ca), args.host, args.port, tls, args.public_url
    )
    server.initialize_logging()
    try:
        asyncio.run(_serve(server))
    except OSError as exc:
        print(f"{PROG}: error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    return 0


async def _serve(server: WebServer) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    await server.run(stop)


if __name__ == "__main__":
    if sys.argv[1:2] == ["session"]:
        raise SystemExit(session_main(sys.argv[2:]))
    raise SystemExit(main(sys.argv[1:]))
