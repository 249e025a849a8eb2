"""Who is calling: bearer tokens (``LESIONDX_TOKEN`` or per-user ``LESIONDX_TOKENS``) → the audit identity.

The identity always comes from the token the request proved it holds, never from a name the client
declares. Without any token configured (loopback default) every caller is ``anonymous``. Reader-study tokens
(``LESIONDX_READER_TOKENS``) pass only :func:`require_reader_access` (the reader-study case routes); every
route guarded by :func:`require_token` answers them 403, so a blinded reader cannot open studies or results.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

ANONYMOUS = "anonymous"
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
    given = credentials.credentials.strip() if credentials else ""
    user = authenticate(identities, given)
    if user is not None:
        return Caller(user)
    reader = authenticate(readers, given)
    if reader is not None:
        return Caller(reader, reader_only=True)
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

__all__ = ["ANONYMOUS", "Actor", "Caller", "authenticate", "authenticated_caller", "require_reader_access", "require_token"]
