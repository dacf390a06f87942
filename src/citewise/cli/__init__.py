"""The ``citewise`` command: a thin shell over :class:`citewise.Workspace`."""

from __future__ import annotations

import logging
from typing import Any

import click
from dotenv import find_dotenv, load_dotenv

from ..config import setting_from_env
from ..errors import CitewiseError, Unavailable
from ..secrets import redact_logs, redact_url
from . import (
    access,
    admin,
    cache,
    evaluate,
    extract,
    ingest,
    query,
    serving,
    transcript,
    tune,
    usage,
)
from .common import Context


class CitewiseGroup(click.Group):
    """Turns citewise's own errors into one line; other exceptions keep their traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CitewiseError as exc:
            if ctx.meta.get("debug") or _raise_errors():
                raise
            failure = TemporaryFailure if isinstance(exc, Unavailable) else click.ClickException
            raise failure(redact_url(str(exc))) from exc


def _raise_errors() -> bool:
    """CITEWISE_RAISE_ERRORS: a value that is no boolean still asks for the traceback (it
    is set), rather than raising a second error over the one being reported."""
    try:
        return setting_from_env("raise_errors", bool)
    except CitewiseError:
        return True


class TemporaryFailure(click.ClickException):
    """A shared dependency is down: exit status 75 (sysexits' EX_TEMPFAIL), not 1, so a
    script or a scheduler may retry the command later."""

    exit_code = 75


@click.group(cls=CitewiseGroup)
@click.option(
    "--workspace",
    "-w",
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


for module in (
    ingest,
    query,
    extract,
    admin,
    access,
    evaluate,
    tune,
    transcript,
    serving,
    usage,
    cache,
):
    for command in module.COMMANDS:
        cli.add_command(command)


def main() -> None:
    load_dotenv(find_dotenv(usecwd=True), override=False)
    cli(prog_name="citewise")


if __name__ == "__main__":  # pragma: no cover
    main()
