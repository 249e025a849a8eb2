"""Who is calling: bearer tokens (``LESIONDX_TOKEN`` or per-user ``LESIONDX_TOKENS``) → the audit identity.

The identity always comes from the token the request proved it holds, never from a name the client
declares. Without any token configured (loopback default) every caller is ``anonymous``. Reader-study tokens
(``LESIONDX_READER_TOKENS``) pass only :func:`require_reader_access` (the reader-study case routes); every
route guarded by :func:`require_token` answers them 403, so a blinded reader cannot open studies or results.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

ANONYMOUS = "anonymous"
log = logging.getLogger("lesiondx.service")


class FailedTokens:
    """Wrong tokens per client address: after ``limit`` within ``window_s`` seconds, every request from
    that address gets 429 (``Retry-After``) until the window has passed, whatever token it sends: a token cannot be
    guessed at network speed. Bounded to ``max_clients`` addresses (the oldest forgotten first). The address is
    uvicorn's ``request.client``: behind a proxy on 127.0.0.1 the ``X-Forwarded-For`` client; a proxy on another host
    must be listed in ``FORWARDED_ALLOW_IPS``, or its clients share its address (and one limit)."""

    def __init__(self, limit: int = 20, window_s: float = 60.0, max_clients: int = 10_000) -> None:
        self.limit, self.window_s, self.max_clients = limit, window_s, max_clients
        self._seen: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def wait_s(self, client: str) -> float:
        """Seconds ``client`` must wait before it may try again (0: it may)."""
        now = time.monotonic()
        with self._lock:
            times = [t for t in self._seen.get(client, ()) if t > now - self.window_s]
            if not times:
                self._seen.pop(client, None)
                return 0.0
            self._seen[client] = times
            return times[0] + self.window_s - now if len(times) >= self.limit else 0.0

    def failed(self, client: str) -> None:
        """Count one wrong token from ``client`` (a warning, without the token, when it hits the limit)."""
        now = time.monotonic()
        with self._lock:
            times = [t for t in self._seen.pop(client, ()) if t > now - self.window_s] + [now]
            self._seen[client] = times
            while len(self._seen) > self.max_clients:
                self._seen.popitem(last=False)
        if len(times) == self.limit:
            log.warning("%d wrong API tokens from %s within %g s: its requests get 429 for a while",
                        self.limit, client, self.window_s)
bearer = HTTPBearer(auto_error=False, description="LESIONDX_TOKEN or your own token from LESIONDX_TOKENS")


def authenticate(identities: dict[str, str], given: str) -> str | None:
    """The user whose token is ``given`` (constant-time comparison against every token), else ``None``."""
    found = None
    for token, user in identities.items():
        if secrets.compare_digest(given.encode(), token.encode()):
            found = user
    return found


@dataclass(frozen=True)
class Caller:
    """The authenticated caller: identity (staff user or reader) and whether the token is reader-study only."""

    identity: str
    reader_only: bool = False


def authenticated_caller(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Caller:
    """Staff or reader-study caller proved by ``Authorization: Bearer <token>``; 401 when tokens are configured
    and none matches; ``anonymous`` staff when no token is configured."""
    settings = request.app.state.core.settings
    identities, readers = settings.identities, settings.reader_identities
    if not identities and not readers:
        return Caller(ANONYMOUS)
    throttle: FailedTokens | None = getattr(request.app.state, "failed_tokens", None)
    client = request.client.host if request.client else "?"
    wait = throttle.wait_s(client) if throttle is not None else 0.0
    if wait > 0:
        raise HTTPException(429, f"too many wrong API tokens from this address: try again in {wait:.0f} s",
                            headers={"Retry-After": str(max(1, round(wait)))})
    given = credentials.credentials.strip() if credentials else ""
    user = authenticate(identities, given)
    if user is not None:
        return Caller(user)
    reader = authenticate(readers, given)
    if reader is not None:
        return Caller(reader, reader_only=True)
    if throttle is not None and given:  # a missing token guesses nothing (the web page polls before one is typed)
        throttle.failed(client)
    raise HTTPException(401, "missing or wrong API token (send 'Authorization: Bearer <token>')",
                        headers={"WWW-Authenticate": "Bearer"})


def require_token(request: Request,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None) -> str:
    """Check ``Authorization: Bearer <token>`` when tokens are configured; return the caller's identity.
    Reader-study tokens are refused (403) here."""
    caller = authenticated_caller(request, credentials)
    if caller.reader_only:
        raise HTTPException(403, f"a reader-study token ({caller.identity}) opens only the reader-study cases handed "
                                 "out to that reader (/reader, /api/reader/next)")
    return caller.identity


def require_reader_access(request: Request,
                          credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None) -> Caller:
    """Staff or reader-study token (the reader-study case routes check what a reader token may see)."""
    return authenticated_caller(request, credentials)


Actor = Annotated[str, Depends(require_token)]

__all__ = ["ANONYMOUS", "Actor", "Caller", "FailedTokens", "authenticate", "authenticated_caller", "require_reader_access", "require_token"]
