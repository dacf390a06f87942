"""``citewise serve``: a workspace behind an OpenAI-compatible HTTP API and a web UI."""

from __future__ import annotations

import ipaddress
import logging
import sys

from ..errors import ConfigError
from ..keys import any_keys
from ..secrets import redact_logs
from ..workspace import Workspace
from .app import create_app

__all__ = ["create_app", "is_loopback", "serve"]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    workspace: Workspace,
    host: str = "127.0.0.1",
    port: int = 8080,
    auth: bool | None = None,
    log_level: str = "info",
    batching: bool = True,
) -> None:
    """Run the server until interrupted. Binding beyond loopback requires API keys."""
    import uvicorn

    keys_exist = any_keys(workspace.store)
    if not is_loopback(host):
        if auth is False:
            raise ConfigError(f"refusing to serve {host} without authentication; drop --no-auth")
        if not keys_exist:
            raise ConfigError(
                f"serving on {host} needs API keys: create one with `citewise keys create`"
            )
        auth = True
    if auth and not keys_exist:
        raise ConfigError("authentication is on but no key exists: `citewise keys create` one")
    _log_json_access_lines(log_level)
    app = create_app(workspace, auth=auth, batching=batching)
    app.state.service.replica.note_address(f"{host}:{port}")  # the Health view's replicas
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=5,
    )


def _log_json_access_lines(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    redact_logs(handler)
    access = logging.getLogger("citewise.access")
    access.handlers[:] = [handler]
    access.setLevel(level.upper())
    access.propagate = False
