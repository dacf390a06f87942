"""The ``citewise`` command: a thin shell over :class:`citewise.Workspace`."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click
from dotenv import find_dotenv, load_dotenv

from ..errors import CitewiseError, Unavailable
from ..secrets import redact_logs, redact_url
from . import admin, evaluate, ingest, query, serving, transcript, tune, usage
from .common import Context


class CitewiseGroup(click.Group):
    """Turns citewise's own errors into one line; other exceptions keep their traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CitewiseError as exc:
            if ctx.meta.get("debug") or os.environ.get("CITEWISE_RAISE_ERRORS"):
                raise
            error = click.ClickException(redact_url(str(exc)))
            error.exit_code = exit_code(exc)
            raise error from exc


def exit_code(exc: CitewiseError) -> int:
    """1, or 75 (sysexits' EX_TEMPFAIL) when a shared dependency is down: a script or
    a scheduler may retry the command later."""
    return 75 if isinstance(exc, Unavailable) else 1


@click.group(cls=CitewiseGroup)
@click.option(
    "--workspace",
    "-w",
    envvar="CITEWISE_WORKSPACE",
    type=click.Path(file_okay=False),
    help="Workspace directory (default: $CITEWISE_WORKSPACE or a per-user data directory).",
)
@click.option("--debug", is_flag=True, help="Show full tracebacks and debug logs.")
@click.version_option(package_name="citewise")
@click.pass_context
def cli(ctx: click.Context, workspace: str | None, debug: bool) -> None:
    """Ask questions of your own documents and get answers that cite their sources."""
    ctx.meta["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.ERROR,
        format="%(levelname)s %(name)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        redact_logs(handler)  # no URL secret in a log line or traceback
    ctx.obj = Context(workspace)
    ctx.call_on_close(ctx.obj.close)


for module in (ingest, query, admin, evaluate, tune, transcript, serving, usage):
    for command in module.COMMANDS:
        cli.add_command(command)


def main() -> None:
    load_dotenv(find_dotenv(usecwd=True), override=False)
    cli(prog_name="citewise")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
