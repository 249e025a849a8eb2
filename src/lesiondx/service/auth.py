"""Who is calling: bearer tokens (``LESIONDX_TOKEN`` or per-user ``LESIONDX_TOKENS``) → the audit identity.

The identity always comes from the token the request proved it holds, never from a name the client
declares. Without any token configured (loopback default) every caller is ``anonymous``.
"""

from __future__ import annotations

import secrets
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


def require_token(request: Request,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None) -> str:
    """Check ``Authorization: Bearer <token>`` when tokens are configured; return the caller's identity."""
    identities = request.app.state.core.settings.identities
    if not identities:
        return ANONYMOUS
    user = authenticate(identities, credentials.credentials.strip() if credentials else "")
    if user is None:
        raise HTTPException(401, "missing or wrong API token (send 'Authorization: Bearer <token>')",
                            headers={"WWW-Authenticate": "Bearer"})
    return user


Actor = Annotated[str, Depends(require_token)]

__all__ = ["ANONYMOUS", "Actor", "authenticate", "require_token"]
