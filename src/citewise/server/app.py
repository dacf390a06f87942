"""The ASGI app: routes, error shapes, limits, metrics, access logs and the web UI."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import CitewiseError, Unavailable
from ..secrets import redact_url
from ..workspace import Workspace
from . import (
    admin_data_routes,
    admin_eval_routes,
    admin_routes,
    data_routes,
    media,
    openai_routes,
    responses_routes,
)
from .auth import AdminKey, AskKey, host_refusal, identify, needs_key, service_of
from .errors import (
    APIError,
    api_error_handler,
    citewise_error_handler,
    error_body,
    error_response,
    http_error_handler,
    unavailable,
    unavailable_handler,
    validation_error_handler,
)
from .mcp_http import mcp_endpoint
from .service import Service

access_log = logging.getLogger("citewise.access")
WEB = files("citewise") / "web"
# The UI loads only its own files: no inline script, no third-party origin.
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)


# On every response: no content-type sniffing, no referrer leaking a URL to elsewhere.
SECURITY_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"))
# On every response of the web app (its page and its files, by any path): its CSP, and no
# framing by another site (X-Frame-Options for browsers that predate frame-ancestors).
WEB_HEADERS = ((b"content-security-policy", CSP.encode()), (b"x-frame-options", b"DENY"))
# What a cross-origin browser app may send: any request header (mirrored back). The origin
# is what is trusted; credentials are bearer keys, never cookies, so a listed origin gains
# nothing a header list would hold back, and openai-node's own headers (x-stainless-os,
# x-stainless-retry-count, …, openai-organization, openai-project, openai-beta,
# idempotency-key) change between releases.
CORS_ALLOW_HEADERS = ["*"]
# Response headers a browser app may read: rate limits, routing, and what the SDKs read
# to decide on a retry (x-should-retry, retry-after) or to report a failure (x-request-id).
CORS_EXPOSE_HEADERS = [
    "Retry-After",
    "x-should-retry",
    "x-request-id",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
    "x-citewise-target",
    "x-citewise-attempts",
]


def create_app(workspace: Workspace, auth: bool | None = None, batching: bool = True) -> FastAPI:
    service = Service(workspace, auth=auth, batching=batching)
    origins = [o.strip().rstrip("/") for o in service.settings.cors_origins.split(",") if o.strip()]
    # /mcp: the MCP server over Streamable HTTP (mcp_http.py), its session manager run here.
    mcp = mcp_endpoint(service, origins)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        threading.Thread(target=service.warm_up, name="citewise-warm-up", daemon=True).start()
        service.replica.start()  # its record among the replicas (the Health view)
        service.traffic.start()  # requests and 429s per key, flushed to the store
        async with mcp.running():
            yield
        service.close()

    # No Swagger page: it loads scripts from a CDN. The schema itself needs a key.
    app = FastAPI(
        title="citewise",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(known_query_only)],
    )
    app.state.service = service
    app.add_exception_handler(APIError, api_error_handler)
    app.add_exception_handler(Unavailable, unavailable_handler)
    # Any other citewise error a route lets through: its one mapping (server/errors.py).
    app.add_exception_handler(CitewiseError, citewise_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(Exception, _unexpected_error)
    app.include_router(openai_routes.router)
    app.include_router(responses_routes.router)
    app.include_router(data_routes.router)
    app.include_router(media.router)
    app.include_router(admin_routes.router)  # the operator console's /v1/admin/...
    app.include_router(admin_eval_routes.router)  # its evaluation runs
    app.include_router(admin_data_routes.router)  # its collections, documents and jobs
    _add_operational_routes(app)
    _add_web_routes(app)
    app.router.routes.append(Route("/mcp", endpoint=mcp))  # an ASGI app: every method
    # Browser apps on these origins may call the API (keys still required). Without any,
    # every preflight is refused the same way: 400, "Disallowed CORS origin".
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=CORS_ALLOW_HEADERS,
        expose_headers=CORS_EXPOSE_HEADERS,
        max_age=600,
    )
    admin_routes.count_requests(app)  # requests and 429s per key, inside the next one
    app.add_middleware(ObservabilityMiddleware, service=service)
    return app


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logging.getLogger("citewise.server").exception("unhandled error on %s", request.url.path)
    return JSONResponse(error_body("The server hit an internal error.", "server_error"), 500)


def _add_operational_routes(app: FastAPI) -> None:
    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(key: AskKey) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.api_route("/healthz", methods=["GET", "HEAD"], include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.api_route("/readyz", methods=["GET", "HEAD"], include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        """503 only when this replica cannot serve (still loading, its model failed to
        load): a load balancer takes it out. A shared dependency that is down (store,
        ledger, Redis) is "degraded" with 200 — every replica sees the same outage, and
        draining them all would turn a blip into a full outage; requests that need it get
        503 with Retry-After meanwhile. Without an admin key only statuses are shown."""
        service = service_of(request)
        if not service.ready.is_set():
            return JSONResponse({"status": "loading"}, 503)
        status, details = await run_in_threadpool(service.dependencies)
        model = "error" if service.startup_error else "ok"
        body: dict[str, Any] = {
            "status": "error"
            if service.startup_error
            else "degraded"
            if "unavailable" in status.values()
            else "ready",
            "auth": service.auth,
            "components": {**status, "model": model},
        }
        if await _is_admin(service, request):
            details["model"] = redact_url(service.startup_error or "loaded")
            body |= {"details": details, "replica": service.jobs.worker}
        return JSONResponse(body, 503 if service.startup_error else 200)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request, key: AdminKey) -> Response:
        return Response(
            service_of(request).metrics.render(),
            media_type="text/plain; version=0.0.4; charset=utf-8",
        )


async def _is_admin(service: Service, request: Request) -> bool:
    """Whether the request carries a key with the admin scope (any caller without auth)."""
    if "authorization" not in request.headers and service.auth:
        return False
    try:
        key = await identify(service, request.headers)
    except (APIError, Unavailable):
        return False
    return key.allows_scope("admin")


async def known_query_only(request: Request) -> None:
    """Every API route refuses a query argument it does not take (a 400 naming it), as
    OpenAI's API refuses an unknown one: a misspelt ``?group-by=`` is not silently ignored."""
    if not request.url.path.startswith("/v1/") or not request.query_params:
        return
    known = _query_names(request.scope.get("route"))
    for name in request.query_params:
        if name not in known:
            shown = name if len(name) <= 64 else name[:64] + "…"
            raise APIError(
                400,
                f"Unrecognized query parameter {shown!r} for {request.method} {request.url.path}",
                code="unknown_parameter",
                param=shown,
            )


def _query_names(route: Any) -> set[str]:
    """The query arguments a route takes, its dependencies' included (a short walk: only
    requests with a query string take it)."""
    names: set[str] = set()
    pending = [getattr(route, "dependant", None)]
    while pending:
        dependant = pending.pop()
        if dependant is not None:
            names.update(field.alias for field in dependant.query_params)
            pending.extend(dependant.dependencies)
    return names


def _is_web(path: str) -> bool:
    """The web app's paths: its pages and its files (headers: WEB_HEADERS)."""
    return path in ("/", "/admin", "/static") or path.startswith("/static/")


def _add_web_routes(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=str(WEB)), name="static")

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(str(WEB / "index.html"))  # with WEB_HEADERS (the middleware)

    @app.api_route("/admin", methods=["GET", "HEAD"], include_in_schema=False)
    async def admin() -> FileResponse:
        # The operator console: the page needs no key, its /v1/admin/... calls an admin one.
        return FileResponse(str(WEB / "admin.html"))


class BodyTooLarge(Exception):
    pass


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


class ObservabilityMiddleware:
    """Request ids, body-size limits, rate-limit headers, Prometheus metrics and one JSON
    access-log line per request — without keys, query strings or document text."""

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = uuid.uuid4().hex[:16]
        state: dict[str, Any] = scope.setdefault("state", {})
        limit = self._body_limit(scope)
        status: dict[str, Any] = {"code": 500, "sent": False}
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._reject(send, status, limit)
        else:
            received = 0

            async def limited_receive() -> Message:
                nonlocal received
                message = await receive()
                received += len(message.get("body", b""))
                if received > limit:
                    status["too_large"] = True
                    raise BodyTooLarge()
                return message

            async def send_with_headers(message: Message) -> None:
                if status.get("too_large"):
                    # The app turned the aborted body into its own error; answer 413 instead.
                    if message["type"] == "http.response.start":
                        await self._reject(send, status, limit)
                    return
                if message["type"] == "http.response.start":
                    status["code"], status["sent"] = message["status"], True
                    headers = list(message.get("headers", []))
                    present = {name.lower() for name, _ in headers}
                    headers.append((b"x-request-id", request_id.encode()))
                    web = WEB_HEADERS if _is_web(scope["path"]) else ()
                    for name, value in (*SECURITY_HEADERS, *web):
                        if name not in present:
                            headers.append((name, value))
                    for name, value in state.get("ratelimit_headers", {}).items():
                        if name.encode() not in present:
                            headers.append((name.encode(), value.encode()))
                    message = {**message, "headers": headers}
                await send(message)

            try:
                if await self._identified(scope, state, send_with_headers, status):
                    await self.app(scope, limited_receive, send_with_headers)
                # else: answered 401 before a byte of the body was read or parsed
            except BodyTooLarge:
                if not status["sent"]:
                    await self._reject(send, status, limit)
            except Unavailable as exc:  # raised where no route's handler sees it
                self.service.metrics.outages.labels(exc.component, "refused").inc()
                status["code"] = 503
                if not status["sent"]:
                    await error_response(unavailable(exc))(scope, receive, send_with_headers)
            except Exception:
                # Answered here, not by Starlette's outermost handler, which re-raises:
                # uvicorn then drops the keep-alive connection and the request would go
                # missing from the access log and the metrics.
                logging.getLogger("citewise.server").exception(
                    "unhandled error on %s", scope["path"]
                )
                status["code"] = 500  # logged and counted by _observe below
                if not status["sent"]:
                    await JSONResponse(
                        error_body("The server hit an internal error.", "server_error"), 500
                    )(scope, receive, send_with_headers)
        self._observe(scope, state, status["code"], time.perf_counter() - started, request_id)

    async def _identified(
        self, scope: Scope, state: dict[str, Any], send: Send, status: dict[str, Any]
    ) -> bool:
        """Fail closed: the key is checked before the body is read, so a caller without
        one learns nothing from validation errors. The route's dependency reuses it."""
        if scope["method"] == "OPTIONS" or not needs_key(scope["path"]):
            return True  # CORS preflights carry no credentials by design
        headers = Headers(scope=scope)
        refused = host_refusal(self.service, headers)
        if refused is not None:
            status["code"] = refused.status
            await error_response(refused)(scope, _no_body, send)
            return False
        try:
            state["key"] = await identify(self.service, headers)
        except APIError as error:
            await error_response(error)(scope, _no_body, send)
            return False
        except Unavailable as exc:  # the keys live in the store: no store, no answer
            self.service.metrics.outages.labels(exc.component, "refused").inc()
            status["code"] = 503
            await error_response(unavailable(exc))(scope, _no_body, send)
            return False
        state["key_name"] = state["key"].name
        return True

    def _body_limit(self, scope: Scope) -> int:
        if scope["method"] == "POST" and scope["path"].endswith("/documents"):
            return self.service.settings.max_upload_mb * 1024 * 1024 + 64 * 1024
        return self.service.settings.max_request_kb * 1024

    async def _reject(self, send: Send, status: dict[str, Any], limit: int) -> None:
        body = json.dumps(
            error_body(
                f"Request body larger than {limit} bytes",
                "invalid_request_error",
                "request_too_large",
            )
        ).encode()
        status["code"], status["sent"] = 413, True
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _observe(
        self, scope: Scope, state: dict[str, Any], code: int, seconds: float, request_id: str
    ) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or (
            "/static" if scope["path"].startswith("/static") else "unmatched"
        )
        metrics = self.service.metrics
        metrics.requests.labels(scope["method"], template, str(code)).inc()
        metrics.latency.labels(template).observe(seconds)
        if code >= 400:
            metrics.errors.labels(_error_type(code)).inc()
        if access_log.isEnabledFor(logging.INFO):
            client = scope.get("client") or ("", 0)
            access_log.info(
                json.dumps(
                    {
                        "ts": round(time.time(), 3),
                        "request_id": request_id,
                        "method": scope["method"],
                        "path": scope["path"],
                        "route": template,
                        "status": code,
                        "duration_ms": round(seconds * 1000, 2),
                        "key": state.get("key_name"),
                        "client": client[0],
                        # A stream answered 200 and then failed: an error all the same.
                        "outcome": "error" if code >= 400 or "stream_error" in state else "ok",
                        "error": state.get("stream_error"),
                    }
                )
            )


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _error_type(code: int) -> str:
    return {
        401: "authentication_error",
        403: "permission_error",
        404: "not_found",
        413: "request_too_large",
        422: "invalid_request_error",
        429: "rate_limit_error",
    }.get(code, "server_error" if code >= 500 else "invalid_request_error")
