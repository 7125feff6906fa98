"""The token that keeps a `neurorl ui` page to the user who started it.

On a shared login node every user reaches 127.0.0.1, so a port alone protects nothing: as
Jupyter does, the server prints a URL with `?token=...`; the first visit trades it for a cookie
(and is sent on to the same address without the token, so it stays out of the history and of
copied links); scripts may send it as `Authorization: token ...`. Anything else gets 403.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send


def new_token() -> str:
    return secrets.token_urlsafe(32)


class TokenGate:
    """ASGI middleware: lets a request through only with the server's token."""

    def __init__(self, app: ASGIApp, token: str, cookie: str):
        self.app, self.token, self.cookie = app, token, cookie

    def _valid(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if self._valid(request.query_params.get("token")):
            kept = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            target = request.url.path + (f"?{urlencode(kept)}" if kept else "")
            response = RedirectResponse(target, status_code=303)
            response.set_cookie(self.cookie, self.token, httponly=True, samesite="strict", path="/")
            await response(scope, receive, send)
            return
        header = request.headers.get("authorization", "")
        given = header[len("token "):] if header.lower().startswith("token ") else request.cookies.get(self.cookie)
        if self._valid(given):
            await self.app(scope, receive, send)
            return
        response = PlainTextResponse(
            "403 Forbidden: open the address that `neurorl ui` printed when it started (it carries ?token=...).\n",
            status_code=403)
        await response(scope, receive, send)
