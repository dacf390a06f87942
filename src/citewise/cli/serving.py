"""``citewise serve`` and ``citewise keys``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import click
from rich.table import Table

from ..keys import SCOPES, create_key, list_keys, revoke_key, stored_traffic
from .common import Context, console, errors, esc, to_json


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to bind; anything but loopback requires API keys.",
)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option(
    "--auth/--no-auth",
    default=None,
    help="Require API keys (default: on as soon as any key exists).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
@click.option(
    "--batching/--no-batching",
    default=True,
    show_default=True,
    help="Share embedder calls between concurrent requests.",
)
@click.pass_obj
def serve(
    ctx: Context, host: str, port: int, auth: bool | None, log_level: str, batching: bool
) -> None:
    """Serve the workspace: an OpenAI-compatible API at /v1, a web UI at / and MCP at /mcp."""
    from ..server import serve as run_server

    workspace = ctx.workspace()
    errors.print(
        f"citewise serving {workspace.path} on http://{host}:{port}  (web UI at /, API at /v1)",
        markup=False,
    )
    run_server(workspace, host, port, auth, log_level, batching)


@click.command("mcp")
@click.option(
    "--key-env",
    metavar="NAME",
    help="Environment variable holding an API key (cw-…): serve only what that key may read "
    "(its collections and scopes). Default: everything, as the workspace's owner.",
)
@click.pass_obj
def mcp_command(ctx: Context, key_env: str | None) -> None:
    """Serve the workspace to MCP clients (Claude Desktop, Cursor, VS Code) over stdio.

    Tools: search, fetch, ask and list_collections. Over HTTP, `citewise serve` answers MCP
    at /mcp."""
    import os

    from ..access import Caller, as_caller, key_caller
    from ..config import setting_from_env
    from ..errors import AccessDenied, ConfigError
    from ..keys import authenticate
    from .query import reader

    try:
        import mcp.server.mcpserver  # noqa: F401 - the SDK and everything it imports
    except ImportError as exc:
        raise ConfigError(
            f"citewise mcp needs the MCP SDK: pip install 'citewise[mcp]' ({exc})"
        ) from exc
    from ..mcp_server import serve_stdio

    workspace = ctx.workspace()
    if key_env:
        # Never the key itself on the command line: process listings show arguments.
        secret = os.environ.get(key_env, "").strip()
        if not secret:
            raise ConfigError(f"--key-env {key_env}: that environment variable is not set")

        def caller_of(request: object) -> Caller:
            key = authenticate(workspace.store, secret)  # each call: a revocation is at once
            if key is None:
                raise AccessDenied(f"The key in {key_env} is unknown or revoked")
            return key_caller(key, workspace.store)

        caller_of(None)  # a wrong key fails here, before a client connects
    else:
        # The workspace's owner; model calls charged as `citewise ask` charges them.
        # $CITEWISE_USER as `--as` reads it: a user of the workspace reads as that user.
        owner = as_caller(reader(workspace, setting_from_env("user", str)))

        def caller_of(request: object) -> Caller:
            return owner

    errors.print(f"citewise MCP server on stdio for {workspace.path}", markup=False)
    serve_stdio(workspace, caller_of)


@click.group()
def keys() -> None:
    """Create, list and revoke the server's API keys."""


@keys.command("create")
@click.option("--name", required=True, help="A name for the key (shown in logs and metrics).")
@click.option(
    "--collections",
    default="*",
    show_default=True,
    help="Comma-separated collections the key may use; * for all.",
)
@click.option(
    "--scopes",
    default="ask",
    show_default=True,
    help=f"Comma-separated scopes: {', '.join(SCOPES)}.",
)
@click.option("--rpm", type=click.IntRange(min=1), help="Requests per minute (default: no limit).")
@click.option("--tpm", type=click.IntRange(min=1), help="Tokens per minute (default: no limit).")
@click.option(
    "--user",
    "email",
    help="The user the key belongs to (`citewise users add`): it reads only the documents "
    "that user may read. Without it, a service key reads every document of its collections.",
)
@click.pass_obj
def create(
    ctx: Context,
    name: str,
    collections: str,
    scopes: str,
    rpm: int | None,
    tpm: int | None,
    email: str | None,
) -> None:
    """Create a key and print it once; only its hash is stored."""
    key, record = create_key(
        ctx.workspace().store, name, _split(collections), _split(scopes), rpm, tpm, user=email
    )
    owner = f" of user {record.user}" if record.user else " (a service key)"
    errors.print(
        f"Created key {record.name!r}{owner} for collections {', '.join(record.collections)} "
        f"with scopes {', '.join(record.scopes)}. It is shown only now:",
        markup=False,
    )
    console.out(key)


@keys.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked keys.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def list_(ctx: Context, include_revoked: bool, as_json: bool) -> None:
    """List keys (names, prefixes, scopes and limits — never the keys).

    Each key's requests and 429 answers over the last 24 h and in total are those every
    server replica stored (written every few seconds)."""
    store = ctx.workspace().store
    records = list_keys(store, include_revoked)
    traffic = stored_traffic(store)
    none = {"requests": 0, "rate_limited": 0, "requests_24h": 0, "rate_limited_24h": 0}
    if as_json:
        rows = [
            asdict(r) | {k: v for k, v in traffic.get(r.name, none).items() if k != "last_seen"}
            for r in records
        ]
        console.out(to_json(rows))
        return
    table = Table(
        "name",
        "user",
        "prefix",
        "collections",
        "scopes",
        "rpm",
        "tpm",
        "created",
        "revoked",
        "requests 24h/all",
        "429s 24h/all",
    )
    for r in records:
        seen = traffic.get(r.name, none)
        table.add_row(
            esc(r.name),
            esc(r.user or "(service)"),
            esc(r.prefix + "…"),
            esc(",".join(r.collections)),
            esc(",".join(r.scopes)),
            str(r.rpm or "-"),
            str(r.tpm or "-"),
            esc(r.created_at),
            esc(r.revoked_at or ""),
            f"{seen['requests_24h']}/{seen['requests']}",
            f"{seen['rate_limited_24h']}/{seen['rate_limited']}",
        )
    console.print(table)


@keys.command("revoke")
@click.argument("name")
@click.pass_obj
def revoke(ctx: Context, name: str) -> None:
    """Revoke a key; the server refuses it from the next request on."""
    revoke_key(ctx.workspace().store, name)
    console.print(f"Revoked {name!r}.", markup=False)


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


COMMANDS: list[Callable[..., Any]] = [serve, mcp_command, keys]
