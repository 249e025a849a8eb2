"""Upload admission: at most ``max_uploads`` uploads are read and checked at once (ASGI middleware).

An upload holds its files in memory while they are checked and de-identified (about 70 MB for one 16-megapixel
PNG), so without a bound N concurrent uploads need N times that. An upload that finds every place taken waits (in
the event loop: it holds no thread, so status requests stay quick) up to ``wait_s`` seconds, then gets
**503** with ``Retry-After``. A body that sends nothing for ``idle_s`` seconds gets **408** and frees its place
(a slow or stalled client cannot hold one for ever).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi.responses import JSONResponse

log = logging.getLogger("lesiondx.service")
UPLOAD_PATHS = ("/api/studies",)


class _Stalled(Exception):
    pass


class UploadGate:
    """ASGI middleware bounding concurrent ``POST /api/studies`` (see module docstring)."""

    def __init__(self, app: Any, max_uploads: int, wait_s: float, idle_s: float) -> None:
        self.app, self.max_uploads, self.wait_s, self.idle_s = app, max_uploads, wait_s, idle_s
        self._places: asyncio.Semaphore | None = None  # made in the server's event loop, on first use

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") not in UPLOAD_PATHS:
            await self.app(scope, receive, send)
            return
        if self._places is None:
            self._places = asyncio.Semaphore(self.max_uploads)
        try:
            if self._places.locked():  # (a free place is taken at once: wait_for(..., 0) would refuse even that)
                await asyncio.wait_for(self._places.acquire(), self.wait_s)
            else:
                await self._places.acquire()
        except asyncio.TimeoutError:
            log.warning("upload refused (503): %d uploads in progress for over %g s", self.max_uploads, self.wait_s)
            await JSONResponse({"detail": f"the service is busy with {self.max_uploads} other uploads: try again "
                                          "shortly (LESIONDX_MAX_UPLOADS)"}, status_code=503,
                               headers={"Retry-After": "10"})(scope, receive, send)
            return
        stalled = started = False

        async def timed_receive() -> dict:
            nonlocal stalled
            try:
                return await asyncio.wait_for(receive(), self.idle_s)
            except asyncio.TimeoutError:
                stalled = True
                raise _Stalled() from None

        async def tracked_send(message: dict) -> None:
            nonlocal started
            if stalled and not started:
                return  # the app's own answer to the aborted read: ours below replaces it
            started = True
            await send(message)

        try:
            await self.app(scope, timed_receive, tracked_send)
        except _Stalled:
            pass
        except Exception:
            if not stalled:
                raise
        finally:
            self._places.release()
        if stalled and not started:
            log.warning("upload abandoned (408): its client sent nothing for %g s", self.idle_s)
            await JSONResponse({"detail": f"the upload stalled: nothing received for {self.idle_s:g} s "
                                          "(LESIONDX_UPLOAD_IDLE_S)"}, status_code=408,
                               headers={"Connection": "close"})(scope, receive, send)


__all__ = ["UPLOAD_PATHS", "UploadGate"]
