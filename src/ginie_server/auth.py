"""Bearer-token authentication of HTTP requests and WebSocket upgrades.

A request carries `Authorization: Bearer <token>`. A missing, unknown or revoked token is
refused with 401; an address that keeps sending bad tokens is refused with 429 for a while
(see `throttle`). Tokens are never logged.
"""

from __future__ import annotations

from dataclasses import dataclass

from websockets.datastructures import Headers

from ginie_server.storage.users import UserStore
from ginie_server.throttle import AuthThrottle


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request was refused: an HTTP status and the JSON body's `error`."""

    status: int
    error: str
    retry_after_ms: int = 0


def bearer_token(headers: Headers) -> str | None:
    """The token of the request's `Authorization: Bearer` header, if there is exactly one."""
    values = headers.get_all("Authorization")
    if len(values) != 1:
        return None
    scheme, _, token = values[0].strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None


class Authenticator:
    """Maps a request's token to its user, counting failures per client address."""

    def __init__(self, users: UserStore, throttle: AuthThrottle) -> None:
        self._users = users
        self._throttle = throttle

    def authenticate(self, headers: Headers, address: str) -> str | Refusal:
        """The user the request belongs to, or the refusal to answer with."""
        blocked = self._throttle.blocked_for_ms(address)
        if blocked > 0:
            return Refusal(429, "too_many_attempts", blocked)
        token = bearer_token(headers)
        user = self._users.authenticate(token) if token is not None else None
        if user is None:
            self._throttle.record_failure(address)
            return Refusal(401, "unauthorized")
        return user
