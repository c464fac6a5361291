"""The console over TLS: `ginie-server --tls-cert/--tls-key` with a certificate from a private CA
made here, and the console's feed trusting that CA (`--ca`) over https and wss."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ginie_protocol import Topic
from ginie_tui.app import ConsoleSettings, make_app
from ginie_tui.connection import ConnState
from ginie_tui.feed import Feed, FeedError, FeedSettings
from ginie_tui.store import Store
from tests.harness import ServerProcess, wait_for

SIZE = (100, 32)


def openssl(command: str, cwd: Path) -> None:
    made = subprocess.run(
        ["openssl", *command.split()],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
        env={**os.environ, "OPENSSL_CONF": ""},
    )
    if made.returncode != 0:
        pytest.skip(f"openssl cannot make test certificates here: {made.stderr.strip()}")


def private_ca(folder: Path) -> tuple[Path, Path, Path]:
    """A CA certificate, and a server certificate and key for 127.0.0.1 signed by it."""
    (folder / "ca.ext").write_text(
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
        "subjectKeyIdentifier=hash\n"
    )
    (folder / "server.ext").write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n"
        "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"
    )
    for command in (
        "ecparam -name prime256v1 -genkey -noout -out ca.key",
        "req -new -key ca.key -subj /CN=ginie-test-ca -out ca.csr",
        "x509 -req -in ca.csr -signkey ca.key -days 2 -extfile ca.ext -out ca.pem",
        "ecparam -name prime256v1 -genkey -noout -out server.key",
        "req -new -key server.key -subj /CN=127.0.0.1 -out server.csr",
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2"
        " -extfile server.ext -out server.pem",
    ):
        openssl(command, folder)
    return folder / "ca.pem", folder / "server.pem", folder / "server.key"


async def test_the_console_goes_live_over_https_and_wss_trusting_a_private_ca(
    tmp_path: Path,
) -> None:
    ca, cert, key = private_ca(tmp_path)
    with ServerProcess(tmp_path / "g.db", "--tls-cert", str(cert), "--tls-key", str(key)) as proc:
        assert proc.url.startswith("https://127.0.0.1:") and proc.token is not None

        untrusting = Feed(FeedSettings(url=proc.url, token=proc.token))
        with pytest.raises(FeedError, match="CERTIFICATE_VERIFY_FAILED"):
            await untrusting.preflight(Store())

        feed = Feed(
            FeedSettings(url=proc.url, token=proc.token, ca=str(ca), ping_interval_s=0.2, seed=3)
        )
        app = make_app(feed, settings=ConsoleSettings(server=proc.url))
        async with app.run_test(size=SIZE):
            await wait_for(lambda: app.status.state is ConnState.LIVE, timeout=10)
            assert app.store.epoch is not None, "the start-up snapshot came over https"
            await wait_for(lambda: app.status.latency_ms is not None, timeout=5)
            ack = await feed.command("ginie.stop", {})
            assert ack.ok, "a command and its ACK travel over wss"
            await wait_for(
                lambda: (
                    (s := app.store.singleton(Topic.GINIE_STATUS_UPDATE)) is not None
                    and s.state == "stopped"
                ),
                timeout=5,
            )
