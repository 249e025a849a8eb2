"""Browser-facing defences of the service, as one ASGI middleware plus helpers.

* **Host allow-list** (DNS rebinding): a page on ``evil.example`` that re-points its name at
  127.0.0.1 sends ``Host: evil.example``; only ``localhost``, IP literals (a rebinding attack needs a
  name), the ``--host`` name and ``LESIONDX_ALLOWED_HOSTS`` are answered, others get HTTP 400.
* **Same-origin check** on state-changing methods (POST/PUT/PATCH/DELETE): a request whose
  ``Origin`` (or, without one, ``Referer``) names another site, or ``Origin: null``, gets HTTP 403.
  Browsers always send ``Origin`` on cross-origin POSTs, so a cross-site form cannot create studies
  in token-less loopback mode; clients that send neither (curl, scripts) are not affected.
* **Security headers** on every response: a Content-Security-Policy without inline scripts (pages
  that carry inline scripts list their SHA-256 hashes, see :func:`page_csp`), ``frame-ancestors
  'none'`` + ``X-Frame-Options: DENY``, ``nosniff``, ``Referrer-Policy: no-referrer``.

Hand-written rather than Starlette's ``TrustedHostMiddleware``/a CORS package: those neither accept
any IP literal nor check ``Origin`` on same-origin-only APIs; the rules above are a few lines each.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK_NAMES = ("localhost", "localhost.localdomain")
# 'wasm-unsafe-eval' allows WebAssembly compilation only (image codecs of viewer libraries), never JS eval.
CSP_DIRECTIVES = {
    "default-src": "'self'", "script-src": "'self' 'wasm-unsafe-eval'", "style-src": "'self' 'unsafe-inline'",
    "img-src": "'self' data: blob:", "font-src": "'self' data:", "connect-src": "'self'",
    "worker-src": "'self' blob:", "object-src": "'none'", "base-uri": "'none'", "form-action": "'self'",
    "frame-ancestors": "'none'",
}
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("x-frame-options", "DENY"), ("x-content-type-options", "nosniff"), ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
)
_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc\s*=)[^>]*>(.*?)</script>", re.DOTALL | re.IGNORECASE)
_PATH = re.compile(r"(?<![\w.:/~-])(?:/[^\s/'\"(),;:<>]+)+/([^\s/'\"(),;:<>]+)")


def content_security_policy(script_hashes: tuple[str, ...] = ()) -> str:
    """The CSP header value; ``script_hashes`` (``sha256-...``) allow exactly those inline scripts."""
    directives = dict(CSP_DIRECTIVES)
    if script_hashes:
        directives["script-src"] += "".join(f" '{h}'" for h in script_hashes)
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def page_csp(html: str) -> str:
    """The CSP for one rendered page: the default policy plus the hash of each of its inline scripts."""
    hashes = tuple("sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
                   for body in _INLINE_SCRIPT.findall(html))
    return content_security_policy(hashes)


def host_name(value: str) -> str:
    """The host part of a ``Host`` header or URL netloc, lower case, without port or IPv6 brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def host_allowed(host_header: str, allowed: tuple[str, ...]) -> bool:
    """True when the ``Host`` header names this service (see the module docstring)."""
    name = host_name(host_header)
    if not name:
        return False
    if name in LOOPBACK_NAMES or "*" in allowed:
        return True
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    return any(name == pattern or (pattern.startswith("*.") and name.endswith(pattern[1:])) for pattern in allowed)


def _netloc(value: str) -> str:
    """``host:port`` of an Origin/Referer URL with default ports dropped ('' when unparseable)."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return ""
    if not parts.hostname:
        return ""
    default = {"http": 80, "https": 443}.get(parts.scheme)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return host if port in (None, default) else f"{host}:{port}"


def cross_site_reason(headers: dict[str, str]) -> str | None:
    """Why a state-changing request is refused as cross-site, or ``None`` when it is same-origin
    (or comes from a non-browser client that sends neither ``Origin`` nor ``Referer``)."""
    host = headers.get("host", "").strip().lower()
    for default in (":80", ":443"):
        host = host.removesuffix(default)
    origin = headers.get("origin")
    if origin is not None:
        if origin.strip().lower() == "null":
            return "Origin: null (sandboxed or file page)"
        return None if _netloc(origin) == host else "its Origin is another site"
    referer = headers.get("referer")
    if referer:
        return None if _netloc(referer) == host else "its Referer is another site"
    if headers.get("sec-fetch-site") in ("cross-site", "same-site"):
        return "Sec-Fetch-Site says it comes from another site"
    return None


def scrub_paths(text: str) -> str:
    """``text`` with absolute file-system paths cut to their last component (no server paths in messages)."""
    return _PATH.sub(lambda m: m.group(1), text)


class WebSafety:
    """ASGI middleware: Host allow-list, same-origin check on state-changing methods, security headers."""

    def __init__(self, app: Any, allowed_hosts: tuple[str, ...]) -> None:
        self.app, self.allowed_hosts = app, tuple(h.lower() for h in allowed_hosts)
        self.csp = content_security_policy()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}

        async def secured_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(b"content-security-policy", self.csp.encode())] if b"content-security-policy" not in present else []
                extra += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS if k.encode() not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        host = headers.get("host", "")
        if not host_allowed(host, self.allowed_hosts):
            shown = re.sub(r"[^A-Za-z0-9.:\[\]-]", "?", host)[:80]
            await JSONResponse({"detail": f"host {shown!r} is not served here (DNS rebinding guard); add it to "
                                          "LESIONDX_ALLOWED_HOSTS if this is the service's own name"},
                               status_code=400)(scope, receive, secured_send)
            return
        if scope["type"] == "http" and scope.get("method", "GET").upper() in STATE_CHANGING:
            reason = cross_site_reason(headers)
            if reason is not None:
                await JSONResponse({"detail": f"cross-site request refused: {reason}"},
                                   status_code=403)(scope, receive, secured_send)
                return
        await self.app(scope, receive, secured_send)


__all__ = ["WebSafety", "content_security_policy", "cross_site_reason", "host_allowed", "page_csp", "scrub_paths"]
