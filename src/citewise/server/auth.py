"""Who is calling: the bearer key, its scope, and its rate limits — checked on every request."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers

from ..keys import OPEN_ACCESS, ApiKey
from .errors import APIError
from .service import Service


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service  # create_app sets it; state is untyped
    return service


def caller(scope: str) -> Callable[[Request], Awaitable[ApiKey]]:
    """A FastAPI dependency: the caller's key, once it is known, allowed and within its limits."""

    async def dependency(request: Request) -> ApiKey:
        service = service_of(request)
        # Normally known already: the middleware identifies the key before the body is read.
        key = getattr(request.state, "key", None)
        if key is None:
            key = await _identify(service, request.headers) if service.auth else OPEN_ACCESS
        request.state.key_name = key.name
        if not key.allows_scope(scope):
            raise APIError(
                403,
                f"This key lacks the '{scope}' scope",
                type="permission_error",
                code="insufficient_scope",
            )
        # In a worker thread: with redis_url the buckets are a network call away.
        verdict = await run_in_threadpool(service.limiter.check, key.name, key.rpm, key.tpm)
        request.state.ratelimit_headers = verdict.headers
        if not verdict.allowed:
            service.metrics.rate_limited.labels(verdict.kind).inc()
            limit = verdict.headers.get(f"x-ratelimit-limit-{verdict.kind}")
            raise APIError(
                429,
                f"Rate limit reached for {verdict.kind} per minute (limit {limit}); "
                f"retry in {verdict.retry_after:.1f} s",
                type=verdict.kind,
                code="rate_limit_exceeded",
                headers={
                    "Retry-After": str(max(1, math.ceil(verdict.retry_after))),
                    **verdict.headers,
                },
            )
        return key

    return dependency


def needs_key(path: str) -> bool:
    """Routes that require a key when auth is on (the web page and health checks do not)."""
    return path.startswith(("/v1/", "/mcp/")) or path in ("/openapi.json", "/metrics", "/mcp")


async def identify(service: Service, headers: Headers) -> ApiKey:
    """The caller's key (OPEN_ACCESS without auth), or a 401 naming what is wrong."""
    return await _identify(service, headers) if service.auth else OPEN_ACCESS


async def _identify(service: Service, headers: Headers) -> ApiKey:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise APIError(
            401,
            "You didn't provide an API key. Send it as 'Authorization: Bearer "
            "<key>'; `citewise keys create` makes one.",
            code="missing_api_key",
        )
    key = await run_in_threadpool(service.authenticate, token.strip())
    if key is None:
        raise APIError(401, "Incorrect or revoked API key provided.", code="invalid_api_key")
    return key


# Route parameters: `key: AskKey` authenticates, checks the scope and the limits.
AskKey = Annotated[ApiKey, Depends(caller("ask"))]
IngestKey = Annotated[ApiKey, Depends(caller("ingest"))]
AdminKey = Annotated[ApiKey, Depends(caller("admin"))]


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})


def host_name(netloc: str) -> str:
    """The host of a Host header or an origin's netloc, without its port, lower-cased."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        return netloc[: netloc.find("]") + 1] if "]" in netloc else netloc
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


def host_refusal(service: Service, headers: Headers) -> APIError | None:
    """Without keys the server listens on loopback only: a request addressed to another
    name is a DNS-rebinding page reaching it through a browser (421). None: go on."""
    if service.auth or host_name(headers.get("host", "")) in LOOPBACK_HOSTS:
        return None
    return APIError(
        421,
        "Without authentication the API answers only requests addressed to this "
        "machine (Host localhost or 127.0.0.1); create an API key to serve others.",
        code="invalid_host",
    )
