"""``citewise migrate --to URL``: copy a workspace's store into another backend as stored —
documents, chunks and their vectors (nothing is parsed or embedded again) with their access
lists, collection settings, users, groups and aliases, API keys, answer feedback, and the
usage ledger with its budgets.

Each document is copied in its own transaction, and a document already in the target
with the same content hash is skipped, so an interrupted migration run again picks up
where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ConfigError
from ..ledger import LedgerStore
from . import Storage


@dataclass
class MigrationReport:
    collections: int = 0
    documents: int = 0  # copied now
    unchanged: int = 0  # already in the target (an earlier, interrupted run)
    chunks: int = 0
    keys: int = 0
    users: int = 0
    groups: int = 0
    feedback: int = 0
    ledger_rows: int = 0
    budgets: int = 0


def copy_store(
    source: Storage,
    target: Storage,
    source_ledger: LedgerStore | None = None,
    target_ledger: LedgerStore | None = None,
    progress: Callable[[str], None] | None = None,
) -> MigrationReport:
    report = MigrationReport()
    for collection in source.collections():
        copied = target.create_collection(collection.name, collection.embedder, collection.dim)
        if (copied.embedder, copied.dim) != (collection.embedder, collection.dim):
            raise ConfigError(
                f"collection {collection.name!r} exists in the target with another embedder "
                f"({copied.embedder}, {copied.dim} dimensions)"
            )
        report.collections += 1
        tuned = source.collection_settings(collection.id)
        if tuned is not None:
            target.set_collection_settings(copied.id, *tuned)
        for stored in source.export_documents(collection.id):
            state = target.document_state(copied.id, stored.document.source)
            if state is not None and state.content_hash == stored.document.content_hash:
                report.unchanged += 1
                continue
            target.replace_document(
                copied.id,
                stored.document,
                stored.chunks,
                stored.vectors,
                stored.mtime_ns,
                stored.size,
            )
            report.documents += 1
            report.chunks += len(stored.chunks)
            if progress is not None:
                progress(stored.document.source)
    _copy_users(source, target, report)  # before the keys, which name their users
    report.keys = sum(target.import_api_key(row) for row in source.export_api_keys())
    if not target.feedback():  # feedback has no natural key: copied into an empty target only
        for f in source.feedback():
            target.add_feedback(
                f["key_name"],
                f["rating"],
                f["question"],
                f["answer"],
                f["citations"],
                f["model"],
                f["comment"],
            )
            report.feedback += 1
    if source_ledger is not None and target_ledger is not None:
        _copy_ledger(source_ledger, target_ledger, report)
    return report


def _copy_users(source: Storage, target: Storage, report: MigrationReport) -> None:
    """Users (with their aliases) and groups (with their members) the target lacks."""
    for user in source.users():
        if target.user(user.email) is None:
            target.add_user(user.email, user.name)
            report.users += 1
        for alias in user.aliases:
            target.add_alias(user.email, alias)
    known = {g.name for g in target.groups()}
    for group in source.groups():
        if group.name not in known:
            target.add_group(group.name)
            report.groups += 1
        for email in group.members:
            target.add_member(group.name, email)


def _copy_ledger(source: LedgerStore, target: LedgerStore, report: MigrationReport) -> None:
    if target.rows():
        return  # copied by an earlier run (rows have no natural key either)
    rows = source.rows()
    target.settle([], rows)
    report.ledger_rows = len(rows)
    for rule in source.budgets():
        target.set_budget(rule)
        report.budgets += 1
