"""Errors citewise raises, each with a message that says what to do next.

    CitewiseError
    ├── InvalidInput           a caller's argument is invalid (a name, a filter key)
    ├── AccessDenied           the caller may not read or write it (403)
    ├── NotFound               what the caller named does not exist (404)
    ├── ConfigError            a setting is missing or invalid
    ├── WorkspaceError         the workspace is missing, locked or inconsistent
    │   ├── EmbedderMismatch   a collection was built with another embedder
    │   └── Unavailable        a shared dependency (store, ledger, rate limits) cannot
    │       │                  be reached now: retry later (the server answers 503)
    │       └── LedgerUnavailable  the usage ledger cannot be written (the call is refused)
    ├── ParseError             one input file could not be read (the ingest skips it)
    ├── ModelError             a model's files are missing or do not load
    ├── ProviderError          a chat or embedding provider failed (``kind``, a
    │   │                      ProviderErrorKind, says how)
    │   ├── MissingAPIKey      the provider needs a key that is not set
    │   └── ExtractionFailed   no reply valid against an extraction's schema (``raw``)
    ├── BudgetExceeded         a spending budget does not allow the call
    └── RedactionRefused       a request was not sent: it holds a blocked kind of
                               sensitive data, or finding it failed (fail closed)

The CLI turns these into one-line messages; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

from enum import Enum
from typing import Any


class CitewiseError(Exception):
    """Base class for every error citewise raises on purpose."""


class InvalidInput(CitewiseError):
    """The caller can fix it by changing the request (the server answers 422)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param  # the argument at fault: "where", "collection"


class AccessDenied(CitewiseError):
    """The caller may not read or write what it asked for (the server answers 403)."""

    def __init__(self, message: str, code: str = "forbidden") -> None:
        super().__init__(message)
        self.code = code  # collection_forbidden, insufficient_scope


class NotFound(CitewiseError):
    """What the caller named does not exist (the server answers 404)."""

    def __init__(self, message: str, code: str = "not_found") -> None:
        super().__init__(message)
        self.code = code  # collection_not_found, document_not_found


class ConfigError(CitewiseError):
    pass


class WorkspaceError(CitewiseError):
    pass


class EmbedderMismatch(WorkspaceError):
    pass


class Unavailable(WorkspaceError):
    """A dependency other replicas share is down or unreachable: nothing the caller did
    wrong, and retrying later will work. The message names the component, never its URL
    or credentials (the driver's own message may carry both; it goes to the log only)."""

    def __init__(self, component: str, message: str = "", retry_after: float = 5.0) -> None:
        super().__init__(message or f"the {component} cannot be reached; retry shortly")
        self.component = component  # store | ledger | rate_limits
        self.retry_after = retry_after


class LedgerUnavailable(Unavailable):
    def __init__(self, message: str) -> None:
        super().__init__("ledger", message)


class ParseError(CitewiseError):
    pass


class ModelError(CitewiseError):
    pass


class ProviderErrorKind(str, Enum):
    """How a provider call failed. A ``str`` enum: it compares equal to its value, so
    ``error.kind == "timeout"`` reads as before, but an unknown kind is refused when the
    error is made instead of drifting through the router and the server unnoticed."""

    # Transient: worth a retry or another target.
    CONNECTION = "connection"
    TIMEOUT = "timeout"
    RATE_LIMIT = "rate_limit"
    SERVER = "server"
    STREAM = "stream"
    UNAVAILABLE = "unavailable"  # it does not load: missing key, model or package
    # Neither the provider's fault nor the caller's: every turn at a one-request-at-a-time
    # model is taken (the router moves on; the breaker is untouched; 503 with Retry-After).
    BUSY = "busy"
    # The caller left while the request waited for its turn: it never ran.
    CANCELLED = "cancelled"
    # The caller's fault: another target would refuse the same request.
    INVALID_REQUEST = "invalid_request"
    AUTH = "auth"
    CONTEXT_LENGTH = "context_length"

    def __str__(self) -> str:
        return self.value

    @property
    def transient(self) -> bool:
        return self in TRANSIENT_KINDS


# The router retries and falls back on the transient kinds; the caller's faults fail fast.
TRANSIENT_KINDS = frozenset(
    {
        ProviderErrorKind.CONNECTION,
        ProviderErrorKind.TIMEOUT,
        ProviderErrorKind.RATE_LIMIT,
        ProviderErrorKind.SERVER,
        ProviderErrorKind.STREAM,
        ProviderErrorKind.UNAVAILABLE,
    }
)
CALLER_KINDS = frozenset(
    {ProviderErrorKind.INVALID_REQUEST, ProviderErrorKind.AUTH, ProviderErrorKind.CONTEXT_LENGTH}
)


class ProviderError(CitewiseError):
    """A model or embedding provider failed: ``kind`` (a :class:`ProviderErrorKind`) says
    how, ``status`` is the provider's HTTP status, ``retry_after`` its advice; ``param``
    names the request option at fault (``seed`` to a provider that has none)."""

    def __init__(
        self,
        message: str,
        kind: ProviderErrorKind | str = ProviderErrorKind.SERVER,
        status: int | None = None,
        retry_after: float | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = ProviderErrorKind(kind)  # a misspelt kind fails here, where it is made
        self.status = status
        self.retry_after = retry_after
        self.param = param
        self.attempts: tuple[Any, ...] = ()  # the router's record of targets tried (Attempt)
        self.usage: Any = None  # TokenUsage the provider reported before it failed, if any

    @property
    def transient(self) -> bool:
        return self.kind.transient


class MissingAPIKey(ProviderError):
    def __init__(self, message: str) -> None:
        super().__init__(message, kind="auth")


class ExtractionFailed(ProviderError):
    """The model gave no value valid against the caller's schema, however often it was told
    what was wrong (``Workspace.extract``): ``raw`` is its last reply as written and
    ``problem`` what is wrong with it. A ``server`` kind: another call may succeed."""

    def __init__(self, message: str, raw: str, problem: str) -> None:
        super().__init__(message, kind="server")
        self.raw = raw
        self.problem = problem


class BudgetExceeded(CitewiseError):
    """A budget (per key or assistant, per day or month) does not allow the call."""

    def __init__(self, message: str, budget: str, resets_at: str) -> None:
        super().__init__(message)
        self.budget = budget
        self.resets_at = resets_at


class RedactionRefused(CitewiseError):
    """A request was not sent to a model or embedder outside this machine: it holds a kind
    of sensitive data the policy blocks (``reason`` "blocked"), or finding sensitive data
    failed (``reason`` "detector"), so nothing could be masked for sure."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason
