"""Errors in the shape the OpenAI SDKs parse: ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import (
    AccessDenied,
    BudgetExceeded,
    CitewiseError,
    ConfigError,
    EmbedderMismatch,
    InvalidInput,
    ModelError,
    NotFound,
    ParseError,
    ProviderError,
    ProviderErrorKind,
    RedactionRefused,
    Unavailable,
    WorkspaceError,
)

if TYPE_CHECKING:
    from ..providers.router import Attempt

T = TypeVar("T")


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers: Mapping[str, str] = headers or {}


def error_body(
    message: str, type: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def from_citewise(exc: CitewiseError) -> APIError:
    """One mapping from citewise's errors to HTTP: what the caller can fix is a 422 naming
    the argument; a model provider's outage a 502/503/504, which the SDKs retry; an
    exhausted budget OpenAI's 429 ``insufficient_quota``; a shared dependency that is down
    a 503 with Retry-After; the rest by :data:`OTHER_STATUS`."""
    if isinstance(exc, AccessDenied):
        return APIError(403, str(exc), type="permission_error", code=exc.code)
    if isinstance(exc, NotFound):
        return APIError(404, str(exc), code=exc.code)
    if isinstance(exc, InvalidInput):
        return APIError(422, str(exc), code="invalid_request", param=exc.param)
    if isinstance(exc, ProviderError):
        return _from_provider(exc)
    if isinstance(exc, BudgetExceeded):
        # The SDKs retry a 429 unless told not to: waiting does not refill a budget.
        return APIError(
            429,
            str(exc),
            type="insufficient_quota",
            code="insufficient_quota",
            headers={"x-should-retry": "false"},
        )
    if isinstance(exc, Unavailable):
        return unavailable(exc)
    if isinstance(exc, RedactionRefused):
        # Blocked data is the request's (never retried); a failed detector is ours (503).
        if exc.reason == "blocked":
            return APIError(422, str(exc), code="sensitive_data_blocked")
        return APIError(503, str(exc), type="server_error", code="redaction_failed")
    for kind, (status, code) in OTHER_STATUS.items():
        if isinstance(exc, kind):
            type_ = "invalid_request_error" if status < 500 else "server_error"
            retry = {"Retry-After": "5"} if status == 503 else {}
            return APIError(status, str(exc), type=type_, code=code, headers=retry)
    return APIError(400, str(exc), code="citewise_error")


# The rest of the hierarchy (errors.py), most specific first: a code names the kind of
# failure, never a Python class.
OTHER_STATUS: dict[type[CitewiseError], tuple[int, str]] = {
    EmbedderMismatch: (409, "embedder_mismatch"),  # the collection needs its own embedder
    ParseError: (422, "unparseable_input"),  # the caller's file cannot be read
    ModelError: (503, "model_unavailable"),  # the server's model files do not load
    ConfigError: (500, "server_misconfigured"),  # the operator's setting, not the caller's
    WorkspaceError: (400, "workspace_error"),
}


def unavailable(exc: Unavailable) -> APIError:
    """A shared dependency that is down: 503 with ``Retry-After`` (the SDKs retry it), its
    code naming the component (``store_unavailable``), never its URL or the driver's words."""
    return APIError(
        503,
        str(exc),
        type="server_error",
        code=f"{exc.component}_unavailable",
        headers={"Retry-After": str(max(1, math.ceil(exc.retry_after)))},
    )


def guarded(function: Callable[[], T]) -> T:
    """``function()``, with citewise's errors raised as the API errors they map to."""
    try:
        return function()
    except CitewiseError as exc:
        raise from_citewise(exc) from exc


# Every provider failure kind, once: the HTTP status and error code API clients see.
# 5xx are what the SDKs retry; a caller's fault is a 400 (retrying cannot help).
# auth is the server's key to the provider, not the caller's: a bad gateway.
PROVIDER_STATUS: dict[ProviderErrorKind, tuple[int, str]] = {
    ProviderErrorKind.CONTEXT_LENGTH: (400, "context_length_exceeded"),
    ProviderErrorKind.INVALID_REQUEST: (400, "upstream_invalid_request"),
    ProviderErrorKind.BUSY: (503, "model_busy"),
    ProviderErrorKind.CANCELLED: (499, "client_closed_request"),  # nginx's: nobody reads it
    ProviderErrorKind.RATE_LIMIT: (503, "upstream_unavailable"),
    ProviderErrorKind.UNAVAILABLE: (503, "upstream_unavailable"),
    ProviderErrorKind.TIMEOUT: (504, "upstream_timeout"),
    ProviderErrorKind.CONNECTION: (502, "upstream_error"),
    ProviderErrorKind.SERVER: (502, "upstream_error"),
    ProviderErrorKind.STREAM: (502, "upstream_error"),
    ProviderErrorKind.AUTH: (502, "upstream_error"),
}


def _from_provider(exc: ProviderError) -> APIError:
    headers = {"x-citewise-attempts": attempts_header(exc.attempts)} if exc.attempts else {}
    status, code = PROVIDER_STATUS[exc.kind]
    if exc.attempts and all(getattr(a, "status", "") == "circuit_open" for a in exc.attempts):
        status, code = 503, "upstream_unavailable"  # every target's circuit is open
    if status == 503:
        retry_after = (
            exc.retry_after
            if exc.retry_after is not None
            else (5.0 if exc.kind == ProviderErrorKind.BUSY else None)
        )
        if retry_after is not None:
            headers["Retry-After"] = str(max(1, round(retry_after)))
    kind = "invalid_request_error" if status < 500 else "server_error"
    param = exc.param or ("messages" if exc.kind == ProviderErrorKind.CONTEXT_LENGTH else None)
    if exc.param and exc.kind == ProviderErrorKind.INVALID_REQUEST:
        code = "unsupported_parameter"  # an option the target cannot honour (seed to Claude)
    return APIError(status, str(exc), type=kind, code=code, param=param, headers=headers)


def attempts_header(attempts: Sequence[Attempt]) -> str:
    """``openai:gpt-4o-mini=error, local:smollm2-135m=ok``: which targets were tried."""
    return ", ".join(f"{a.target}={a.status}" for a in attempts)


def error_response(error: APIError) -> JSONResponse:
    return JSONResponse(
        error_body(error.message, error.type, error.code, error.param),
        status_code=error.status,
        headers=error.headers,
    )


async def unavailable_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Unavailable)
    request.app.state.service.metrics.outages.labels(exc.component, "refused").inc()
    return error_response(unavailable(exc))


async def citewise_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CitewiseError)
    return error_response(from_citewise(exc))


async def api_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, APIError)
    return error_response(exc)


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    param = None
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            # Its loc is a byte offset, not a field: the body as a whole is unreadable.
            reason = (error.get("ctx") or {}).get("error", "invalid JSON")
            return error_response(
                APIError(
                    400,
                    f"The request body is not valid JSON ({reason}, at byte {error['loc'][-1]})",
                    code="invalid_json",
                )
            )
        where = _field_path(error)
        if (error.get("ctx") or {}).get("status") == 400:
            # A refused parameter or a value OpenAI's API refuses (schemas.py): its 400,
            # with its code (unsupported_parameter, unknown_parameter, invalid_value).
            return error_response(
                APIError(400, error.get("msg", "invalid"), code=error["type"], param=where or None)
            )
        param = param or where or None
        problems.append(f"{where or 'body'}: {error.get('msg', 'invalid')}")
    message = "Invalid request - " + "; ".join(problems)
    return error_response(APIError(422, message, code="invalid_request", param=param))


def _field_path(error: dict[str, Any]) -> str:
    """The field an error is about, as the caller named it (``messages.0.content``,
    ``limit``): without FastAPI's location prefix (body, query, path)."""
    loc = list(error.get("loc", ()))
    if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
        loc = loc[1:]
    field = (error.get("ctx") or {}).get("field")  # an ignored field (schemas.py)
    if field:
        loc.append(field)
    return ".".join(str(part) for part in loc)


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {400: "invalid_json", 404: "not_found", 405: "method_not_allowed"}
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    if exc.status_code == 400 and message == "There was an error parsing the body":
        message = "The request body could not be parsed; send JSON encoded as UTF-8"
    if exc.status_code == 404 and message == "Not Found":
        message = f"Unknown endpoint {request.method} {request.url.path}"
    return error_response(
        APIError(exc.status_code, message, code=codes.get(exc.status_code), headers=exc.headers)
    )
