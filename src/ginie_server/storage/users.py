"""Users and their bearer tokens.

A token is `ginie_` followed by `secrets.token_urlsafe(32)` (256 random bits). The prefix keeps
a token from ever starting with `-`, which a command line would read as an option
(`ginie-tui --token -x…`), and lets a secret scanner recognise one. Only its SHA-256 hash is
stored; the token itself is shown once, when it is created. A lookup hashes the presented
token, finds the row by that hash, and confirms it with `hmac.compare_digest`. Finding the row
by a hash leaks nothing useful through timing: an attacker controls the token, not its hash.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from ginie_server.storage.backend import Database

USER_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
TOKEN_PREFIX = "ginie_"


class UserNameError(ValueError):
    """A user name outside `[A-Za-z0-9_.-]{1,64}`."""


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What `token list` shows about a token: never the token."""

    token_id: int
    user: str
    created_at: int
    revoked_at: int | None


def check_user_name(user: str) -> str:
    """Return `user` if it is a valid user name, else raise UserNameError."""
    if not USER_NAME.match(user):
        raise UserNameError(f"invalid user name {user!r}: use 1-64 of A-Z a-z 0-9 _ . -")
    return user


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class UserStore:
    """Users and tokens in the shared database. Writes commit with the caller's transaction
    (`storage.db.transaction`), never here."""

    def __init__(self, conn: Database) -> None:
        self._conn = conn

    def has_users(self) -> bool:
        return self._conn.execute("SELECT 1 FROM users LIMIT 1").fetchone() is not None

    def users(self) -> list[str]:
        return [row[0] for row in self._conn.execute("SELECT name FROM users ORDER BY name")]

    def count(self) -> int:
        row = self._conn.execute("SELECT COUNT(*) FROM users").fetchone()
        return int(row[0])

    def create_token(self, user: str, now_ms: int) -> str:
        """Create `user` if needed and a new token for it; return the token (shown only now)."""
        check_user_name(user)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        self._conn.execute(
            "INSERT INTO users (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
            (user, now_ms),
        )
        self._conn.execute(
            'INSERT INTO tokens ("user", token_hash, created_at) VALUES (?, ?, ?)',
            (user, _hash(token), now_ms),
        )
        return token

    def revoke(self, user: str, now_ms: int) -> int:
        """Revoke every live token of `user`; return how many were revoked."""
        cursor = self._conn.execute(
            'UPDATE tokens SET revoked_at = ? WHERE "user" = ? AND revoked_at IS NULL',
            (now_ms, user),
        )
        return cursor.rowcount

    def tokens(self) -> list[TokenInfo]:
        rows = self._conn.execute(
            'SELECT id, "user", created_at, revoked_at FROM tokens ORDER BY "user", id'
        )
        return [TokenInfo(*row) for row in rows]

    def authenticate(self, token: str) -> str | None:
        """The user a live token belongs to, or None."""
        if not token or len(token) > 256:
            return None
        presented = _hash(token)
        row = self._conn.execute(
            'SELECT "user", token_hash FROM tokens WHERE token_hash = ? AND revoked_at IS NULL',
            (presented,),
        ).fetchone()
        if row is None or not hmac.compare_digest(row[1], presented):
            return None
        return str(row[0])
