"""Where a workspace keeps its data: a backend chosen by the ``store`` setting's URL.

"" (the default)          SQLite in the workspace directory — no service to run
postgresql://…            PostgreSQL with pgvector, shared by server replicas
                          (``pip install 'citewise[postgres]'``; the password from
                          ``PGPASSWORD`` / ``~/.pgpass``, never the config file)

Backends register a factory per URL scheme — the built-ins as plug-ins do — so adding
one touches one module.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from ..errors import ConfigError
from .base import (
    AccessStore,
    Collection,
    CollectionStore,
    DocumentAccess,
    DocumentRecord,
    DocumentState,
    DocumentStore,
    FeedbackStore,
    GroupRecord,
    JobRecord,
    JobStore,
    KeyStore,
    KeyTrafficStore,
    KeywordSearch,
    RunStore,
    SourceKindStats,
    Storage,
    StorageFactory,
    UserRecord,
    VectorSearch,
)

# scheme -> factory(url, workspace directory)
BACKENDS: dict[str, StorageFactory] = {}


def register_backend(scheme: str, factory: StorageFactory) -> None:
    BACKENDS[scheme] = factory


def open_storage(url: str, workspace: Path) -> Storage:
    """The store ``url`` names ("" or ``sqlite``: the workspace's own SQLite file)."""
    scheme = urlsplit(url).scheme if url else "sqlite"
    factory = BACKENDS.get(scheme)
    if factory is None:
        known = ", ".join(sorted(BACKENDS))
        raise ConfigError(f"unknown store {redacted(url)!r}; use one of: {known}")
    return factory(url, workspace)


def redacted(url: str) -> str:
    """The URL without a password (nor any other secret), for messages and status."""
    from ..secrets import redact_url

    return redact_url(url)


def _sqlite(url: str, workspace: Path) -> Storage:
    from .sqlite import DATABASE_FILE, SqliteStore

    return SqliteStore(workspace / DATABASE_FILE)


def _postgres(url: str, workspace: Path) -> Storage:
    from .postgres import PostgresStore

    return PostgresStore(url)


register_backend("sqlite", _sqlite)
register_backend("postgresql", _postgres)
register_backend("postgres", _postgres)

__all__ = [
    "BACKENDS",
    "AccessStore",
    "Collection",
    "CollectionStore",
    "DocumentAccess",
    "DocumentRecord",
    "DocumentState",
    "DocumentStore",
    "FeedbackStore",
    "GroupRecord",
    "JobRecord",
    "JobStore",
    "KeyStore",
    "KeyTrafficStore",
    "KeywordSearch",
    "RunStore",
    "SourceKindStats",
    "Storage",
    "StorageFactory",
    "UserRecord",
    "VectorSearch",
    "open_storage",
    "redacted",
    "register_backend",
]
