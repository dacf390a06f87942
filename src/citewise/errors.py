"""Errors citewise raises, each with a message that says what to do next.

    CitewiseError
    ├── InvalidInput           a caller's argument is invalid (a name, a filter key)
    ├── ConfigError            a setting is missing or invalid
    ├── WorkspaceError         the workspace is missing, locked or inconsistent
    │   ├── EmbedderMismatch   a collection was built with another embedder
    │   └── Unavailable        a shared dependency (store, ledger, rate limits) cannot
    │       │                  be reached now: retry later (the server answers 503)
    │       └── LedgerUnavailable  the usage ledger cannot be written (the call is refused)
    ├── ParseError             one input file could not be read (the ingest skips it)
    ├── ModelError             a model's files are missing or do not load
    ├── ProviderError          a chat or embedding provider failed (``kind`` says how)
    │   └── MissingAPIKey      the provider needs a key that is not set
    └── BudgetExceeded         a spending budget does not allow the call

The CLI turns these into one-line messages; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

from typing import Any


class CitewiseError(Exception):
    """Base class for every error citewise raises on purpose."""


class InvalidInput(CitewiseError):
    """The caller can fix it by changing the request (the server answers 422)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param  # the argument at fault: "where", "collection"


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


# How a provider call failed. The router retries and falls back on the transient kinds;
# the caller's faults fail fast (another target would refuse the same request).
TRANSIENT_KINDS = frozenset(
    {"connection", "timeout", "rate_limit", "server", "stream", "unavailable"}
)
CALLER_KINDS = frozenset({"invalid_request", "auth", "context_length"})


class ProviderError(CitewiseError):
    """A model or embedding provider failed.

    ``kind``: connection | timeout | rate_limit | server | stream | unavailable (it does not
    load: missing key, model or package) — transient: worth a retry or another target — or invalid_request | auth | context_length (the request or the key
    is at fault). ``status`` is the provider's HTTP status, ``retry_after`` its advice.
    """

    def __init__(
        self,
        message: str,
        kind: str = "server",
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after
        self.attempts: tuple = ()  # the router's record of targets tried (router.Attempt)
        self.usage: Any = None  # TokenUsage the provider reported before it failed, if any

    @property
    def transient(self) -> bool:
        return self.kind in TRANSIENT_KINDS


class MissingAPIKey(ProviderError):
    def __init__(self, message: str) -> None:
        super().__init__(message, kind="auth")


class BudgetExceeded(CitewiseError):
    """A budget (per key or assistant, per day or month) does not allow the call."""

    def __init__(self, message: str, budget: str, resets_at: str) -> None:
        super().__init__(message)
        self.budget = budget
        self.resets_at = resets_at
