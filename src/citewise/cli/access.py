"""``citewise users``, ``citewise groups`` and ``citewise access``: who may read what.

Users are identified by e-mail address; sources that name people by other ids (a Slack
export's ``U123ABC``) reach them through aliases (``slack:U123ABC``). Groups hold users.
A document open to its collection is read by everyone who reads the collection; a
restricted one only by the users (or members of the groups) its access list names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from rich.table import Table

from ..access import user_caller
from ..errors import NotFound
from ..storage import Storage
from .common import Context, console, esc, to_json


@click.group()
def users() -> None:
    """Add, list and remove the users documents can be restricted to."""


@users.command("add")
@click.argument("email")
@click.option("--name", default="", help="The user's display name.")
@click.option(
    "--alias",
    "aliases",
    multiple=True,
    metavar="ID",
    help="Another id a source names this user by, e.g. slack:U012AB3CD (repeatable).",
)
@click.pass_obj
def add_user(ctx: Context, email: str, name: str, aliases: tuple[str, ...]) -> None:
    """Add a user (by e-mail address) and the ids sources know them by."""
    store = ctx.workspace().store
    record = store.add_user(email, name)
    try:
        for alias in aliases:
            store.add_alias(record.email, alias)
    except Exception:
        store.remove_user(record.email)  # all or nothing: no half-added user stays
        raise
    shown = f" (aliases {', '.join(aliases)})" if aliases else ""
    console.print(f"Added user {record.email}{shown}.", markup=False)


@users.command("alias")
@click.argument("email")
@click.argument("alias")
@click.pass_obj
def alias_user(ctx: Context, email: str, alias: str) -> None:
    """Name another id a source knows EMAIL by (e.g. slack:U012AB3CD)."""
    ctx.workspace().store.add_alias(email, alias)
    console.print(f"{alias} is now {email.lower()}.", markup=False)


@users.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def list_users(ctx: Context, as_json: bool) -> None:
    """List users with their aliases and groups."""
    records = ctx.workspace().store.users()
    if as_json:
        console.out(to_json(records))
        return
    table = Table("email", "name", "aliases", "groups", "created")
    for r in records:
        table.add_row(
            esc(r.email),
            esc(r.name),
            esc(", ".join(r.aliases)),
            esc(", ".join(r.groups)),
            esc(r.created_at),
        )
    console.print(table)


@users.command("remove")
@click.argument("email")
@click.pass_obj
def remove_user(ctx: Context, email: str) -> None:
    """Remove a user, its memberships and aliases, and revoke its API keys."""
    if not ctx.workspace().store.remove_user(email):
        raise NotFound(f"No user '{email}'", code="user_not_found")
    console.print(f"Removed {email.lower()}; its keys are revoked.", markup=False)


@click.group()
def groups() -> None:
    """Add, list and remove groups of users, and their members."""


@groups.command("add")
@click.argument("name")
@click.option("--member", "members", multiple=True, metavar="EMAIL", help="(repeatable)")
@click.pass_obj
def add_group(ctx: Context, name: str, members: tuple[str, ...]) -> None:
    """Add a group (documents name it as group:NAME), with members if given."""
    store = ctx.workspace().store
    store.add_group(name)
    for email in members:
        store.add_member(name, email)
    console.print(f"Added group {name} ({len(members)} members).", markup=False)


@groups.command("join")
@click.argument("name")
@click.argument("emails", nargs=-1, required=True)
@click.pass_obj
def join_group(ctx: Context, name: str, emails: tuple[str, ...]) -> None:
    """Add users to a group."""
    store = ctx.workspace().store
    for email in emails:
        store.add_member(name, email)
    console.print(f"{', '.join(emails)} joined {name}.", markup=False)


@groups.command("leave")
@click.argument("name")
@click.argument("emails", nargs=-1, required=True)
@click.pass_obj
def leave_group(ctx: Context, name: str, emails: tuple[str, ...]) -> None:
    """Remove users from a group; their next query no longer reads its documents."""
    store = ctx.workspace().store
    for email in emails:
        if not store.remove_member(name, email):
            raise NotFound(f"{email} is not a member of {name}", code="member_not_found")
    console.print(f"{', '.join(emails)} left {name}.", markup=False)


@groups.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def list_groups(ctx: Context, as_json: bool) -> None:
    """List groups and their members."""
    records = ctx.workspace().store.groups()
    if as_json:
        console.out(to_json(records))
        return
    table = Table("group", "members", "created")
    for r in records:
        table.add_row(esc(r.name), esc(", ".join(r.members)), esc(r.created_at))
    console.print(table)


@groups.command("remove")
@click.argument("name")
@click.pass_obj
def remove_group(ctx: Context, name: str) -> None:
    """Remove a group; documents restricted to it are no longer read through it."""
    if not ctx.workspace().store.remove_group(name):
        raise NotFound(f"No group '{name}'", code="group_not_found")
    console.print(f"Removed group {name}.", markup=False)


@click.group()
def access() -> None:
    """Explain who may read a document."""


@access.command("explain")
@click.argument("document")
@click.option("--user", "email", required=True, help="The user's e-mail address.")
@click.option("--collection", "-c", default="default", show_default=True)
@click.pass_obj
def explain(ctx: Context, document: str, email: str, collection: str) -> None:
    """Say whether USER may read DOCUMENT (its id, or its source as ingested) and why."""
    store = ctx.workspace().store
    console.print(explanation(store, collection, document, email), markup=False)


def explanation(store: Storage, collection: str, document: str, email: str) -> str:
    """Whether ``email`` may read a document, and the reason, in one paragraph."""
    target = store.collection(collection)
    if target is None:
        raise NotFound(f"No collection named '{collection}'", code="collection_not_found")
    document_id = _document_id(store, target.id, document)
    record = store.document(target.id, document_id)
    if record is None:
        raise NotFound(f"No document {document} in '{collection}'", code="document_not_found")
    caller = user_caller(store, email)
    access = store.document_access(document_id)
    name = f"'{record.title}' ({collection}/{document_id}, {record.source})"
    if not access.restricted:
        return f"{caller.user} can read {name}: it is open to everyone who reads '{collection}'."
    listed = ", ".join(access.principals) or "nobody"
    shared = sorted(caller.principals.intersection(access.principals))
    if shared:
        return (
            f"{caller.user} can read {name}: it is restricted to {listed}, and "
            f"{caller.user} acts as {', '.join(shared)}."
        )
    acts = ", ".join(sorted(caller.principals))
    return (
        f"{caller.user} cannot read {name}: it is restricted to {listed}, and "
        f"{caller.user} acts only as {acts}."
    )


def _document_id(store: Storage, collection_id: int, document: str) -> int:
    if document.isdigit():
        return int(document)
    state = store.document_state(collection_id, document)
    if state is None:
        raise NotFound(f"No document with source {document!r}", code="document_not_found")
    return state.id


COMMANDS: list[Callable[..., Any]] = [users, groups, access]
