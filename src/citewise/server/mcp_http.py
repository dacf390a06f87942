"""``/mcp`` on ``citewise serve``: the MCP server (mcp_server.py) over Streamable HTTP.

Stateless, with JSON responses: each POST is answered on its own, so any replica behind a
load balancer can answer it, and no session outlives its request. The caller is the API key
the server's middleware identified for the request (app.py; ``needs_key`` covers ``/mcp``),
with the HTTP API's scopes, collections and rate limits.

DNS rebinding is refused here, before the SDK sees a request: without authentication (the
server is on loopback then) only a loopback Host is answered (421 otherwise), and a browser's
Origin must be the server's own, a loopback one or one of ``cors_origins`` (403 otherwise).
The SDK's own Host/Origin lists are off: they cannot say "same origin", which a server behind
a proxy under any name needs.

Without the ``mcp`` extra the path answers 501, naming the install command.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from ..access import Caller
from ..documents import Answer
from ..errors import AccessDenied
from ..keys import ApiKey
from .auth import LOOPBACK_HOSTS, host_name, host_refusal
from .errors import APIError, error_response
from .openai_routes import queue_seconds
from .service import Service

if TYPE_CHECKING:
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

INSTALL_HINT = "pip install 'citewise[mcp]'"


class Endpoint(Protocol):
    """The ASGI app at /mcp, and what create_app's lifespan runs around the server's life."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...

    def running(self) -> AbstractAsyncContextManager[None]: ...


def mcp_endpoint(service: Service, origins: Sequence[str]) -> Endpoint:
    """The /mcp endpoint, or one naming the extra to install when the SDK is missing."""
    try:
        import mcp.server.mcpserver  # noqa: F401 - the SDK and everything it imports
    except ImportError as exc:
        return MissingSdk(str(exc))
    return McpEndpoint(service, origins)


class McpEndpoint:
    def __init__(self, service: Service, origins: Sequence[str]) -> None:
        from ..mcp_server import create_server

        self.service = service
        self.origins = frozenset(o.rstrip("/") for o in origins)
        self.server = create_server(
            service.workspace,
            self._caller,
            shown=service.shown,
            admit=self._admit,
            spent=self._spent,
        )
        self._manager: StreamableHTTPSessionManager | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The SDK's session manager for one run of the app (a manager runs only once)."""
        from mcp.server.transport_security import TransportSecuritySettings

        self.server.streamable_http_app(
            stateless_http=True,
            json_response=True,
            # Checked in __call__ (same origin included): see the module's docstring.
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        manager = self.server.session_manager
        async with manager.run():
            self._manager = manager
            try:
                yield
            finally:
                self._manager = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self.refusal(Headers(scope=scope))
        if refusal is None and self._manager is None:
            refusal = APIError(503, "The MCP endpoint is starting or stopping", type="server_error")
        if refusal is not None:
            await error_response(refusal)(scope, receive, send)
            return
        assert self._manager is not None
        await self._manager.handle_request(scope, receive, send)

    def refusal(self, headers: Headers) -> APIError | None:
        """Why a request is refused against DNS rebinding, or None."""
        host = headers.get("host", "")
        refused = host_refusal(self.service, headers)
        if refused is not None:
            return refused
        origin = headers.get("origin")
        if origin is None or self.origin_allowed(origin, host):
            return None
        return APIError(
            403,
            "This Origin may not call /mcp: a browser page may call it from the server's own "
            "origin, a loopback one or one listed in cors_origins.",
            type="permission_error",
            code="origin_forbidden",
        )

    def origin_allowed(self, origin: str, host: str) -> bool:
        origin = origin.strip().rstrip("/")
        if origin in self.origins:
            return True
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False  # "null" (a sandboxed frame, a file) and anything else
        netloc = parts.netloc.lower()
        return host_name(netloc) in LOOPBACK_HOSTS or netloc == host.strip().lower()

    def _caller(self, request: Any) -> Caller:
        """The caller of a tool call: its key's, with the key's user's principals (read
        from the store on each call: tools run in worker threads)."""
        return self.service.caller(request_key(request))

    def _admit(self, key: Caller) -> None:
        """The key's request rate limit, taken once per tool call (it runs in a worker
        thread: with redis_url the buckets are a network call away)."""
        from mcp.server.mcpserver.exceptions import ToolError

        rpm, tpm = (key.key.rpm, key.key.tpm) if key.key else (None, None)
        verdict = self.service.limiter.check(key.name, rpm, tpm)
        if not verdict.allowed:
            self.service.metrics.rate_limited.labels(verdict.kind).inc()
            limit = verdict.headers.get(f"x-ratelimit-limit-{verdict.kind}")
            raise ToolError(
                f"Rate limit reached for {verdict.kind} per minute (limit {limit}); "
                f"retry in {max(1, math.ceil(verdict.retry_after))} s"
            )

    def _spent(self, key: Caller, answer: Answer) -> None:
        if answer.attempts:
            self.service.metrics.model_queue.observe(queue_seconds(answer))
        total = answer.usage.prompt_tokens + answer.usage.completion_tokens
        self.service.limiter.spend_tokens(key.name, key.key.tpm if key.key else None, total)


def request_key(request: Any) -> ApiKey:
    """The key the middleware identified for this HTTP request (fail closed without one)."""
    key = getattr(getattr(request, "state", None), "key", None)
    if not isinstance(key, ApiKey):
        raise AccessDenied("This request carries no identified API key", code="missing_api_key")
    return key


class MissingSdk:
    """/mcp without the mcp extra: 501, naming the install command."""

    def __init__(self, reason: str) -> None:
        self.error = APIError(
            501,
            f"MCP needs the MCP SDK on the server: {INSTALL_HINT} ({reason})",
            type="server_error",
            code="mcp_not_installed",
        )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await error_response(self.error)(scope, receive, send)
