"""The web console's sign-in, headless: the token prompt against a real server on 127.0.0.1
(a wrong token refused and the prompt kept, the right one takes the console LIVE, five refusals
end the session), the token hidden from reprs, and the web command's refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from ginie_tui.connection import ConnState
from ginie_tui.feed import FeedSettings
from ginie_tui.web import (
    MAX_ATTEMPTS,
    LoginFeed,
    Secret,
    TokenScreen,
    WebConsole,
    is_loopback,
    main,
    session_command,
)
from tests.harness import running_server, wait_for

SIZE = (100, 32)


async def submit(pilot: object, app: WebConsole, token: str) -> None:
    screen = app.screen
    assert isinstance(screen, TokenScreen)
    field = screen.query_one("#token")
    field.value = token  # type: ignore[attr-defined]
    await pilot.press("enter")  # type: ignore[attr-defined]


async def test_a_wrong_token_is_refused_and_the_right_one_goes_live(tmp_path: Path) -> None:
    async with running_server(tmp_path, sources=[]) as rs:
        app = WebConsole(LoginFeed(rs.url))
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: isinstance(app.screen, TokenScreen))
            assert app.feed.status().state is ConnState.OFFLINE
            await submit(pilot, app, "ginie_wrong")
            status = app.screen.query_one("#token-status")
            await wait_for(lambda: "refused the token" in str(status.render()), timeout=10)
            assert isinstance(app.screen, TokenScreen) and app.store.epoch is None
            await submit(pilot, app, rs.token)
            await wait_for(lambda: not isinstance(app.screen, TokenScreen), timeout=10)
            await wait_for(lambda: app.feed.status().state is ConnState.LIVE, timeout=10)
            assert app.store.synced and app.store.epoch is not None


async def test_five_refused_tokens_end_the_session(tmp_path: Path) -> None:
    async with running_server(tmp_path, sources=[]) as rs:
        app = WebConsole(LoginFeed(rs.url))
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: isinstance(app.screen, TokenScreen))
            screen = app.screen
            for n in range(1, MAX_ATTEMPTS):
                await submit(pilot, app, f"ginie_wrong_{n}")
                await wait_for(lambda n=n: screen.refused == n, timeout=10)  # type: ignore[attr-defined, misc]
            await submit(pilot, app, "ginie_wrong_last")
            await wait_for(lambda: not app.is_running, timeout=10)
        assert app.return_code == 0


def test_the_token_never_shows_in_a_repr() -> None:
    token = Secret("ginie_s3cret")
    settings = FeedSettings(url="http://127.0.0.1:1", token=token)
    assert "s3cret" not in repr(settings) and "s3cret" not in repr({"t": token})
    assert f"Bearer {token}" == "Bearer ginie_s3cret"


def test_the_session_command_carries_no_token() -> None:
    command = session_command("http://127.0.0.1:8765", None)
    assert command.endswith("-m ginie_tui.web session --url http://127.0.0.1:8765")
    assert "token" not in command.lower()


def test_off_loopback_needs_tls(capsys: pytest.CaptureFixture[str]) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
    assert main(["--host", "0.0.0.0"]) == 2
    assert "--tls-cert and --tls-key" in capsys.readouterr().err
    assert main(["--tls-cert", "cert.pem"]) == 2
    assert "go together" in capsys.readouterr().err
    assert main(["--url", "ftp://x"]) == 2
