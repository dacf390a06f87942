"""Errors citewise raises, each with a message that says what to do next.

    CitewiseError
    ├── InvalidInput           a caller's argument is invalid (a name, a filter key)
    ├── ConfigError            a setting is missing or invalid
    ├── WorkspaceError         the workspace is missing, locked or inconsistent
    │   └── EmbedderMismatch   a collection was built with another embedder
    ├── ParseError             one input file could not be read (the ingest skips it)
    ├── ModelError             a model's files are missing or do not load
    └── ProviderError          a chat or embedding provider failed
        └── MissingAPIKey      the provider needs a key that is not set

The CLI turns these into one-line messages; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations


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


class ParseError(CitewiseError):
    pass


class ModelError(CitewiseError):
    pass


class ProviderError(CitewiseError):
    pass


class MissingAPIKey(ProviderError):
    pass
