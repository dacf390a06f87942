"""Errors are mapped once at each boundary: every kind of citewise error has one HTTP status
and code in OpenAI's envelope (the server), and one exit status and one line (the CLI).
The tables here pin them: a change to what clients see is a change to this file."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from citewise.errors import (
    AccessDenied,
    BudgetExceeded,
    CitewiseError,
    ConfigError,
    EmbedderMismatch,
    InvalidInput,
    LedgerUnavailable,
    ModelError,
    NotFound,
    ParseError,
    ProviderError,
    ProviderErrorKind,
    Unavailable,
    WorkspaceError,
)
from citewise.server.errors import PROVIDER_STATUS, error_response, from_citewise
from conftest import CITEWISE

PROVIDER_KINDS = {
    "connection": (502, "upstream_error", None),
    "timeout": (504, "upstream_timeout", None),
    "rate_limit": (503, "upstream_unavailable", "7"),
    "server": (502, "upstream_error", None),
    "stream": (502, "upstream_error", None),
    "unavailable": (503, "upstream_unavailable", "7"),
    "busy": (503, "model_busy", "7"),
    "cancelled": (499, "client_closed_request", None),
    "invalid_request": (400, "upstream_invalid_request", None),
    "auth": (502, "upstream_error", None),
    "context_length": (400, "context_length_exceeded", None),
}


def envelope(error: CitewiseError) -> tuple[int, dict, dict[str, str]]:
    response = error_response(from_citewise(error))
    return response.status_code, json.loads(response.body), dict(response.headers)


def test_every_provider_kind_is_pinned() -> None:
    assert {kind.value for kind in ProviderErrorKind} == set(PROVIDER_KINDS)
    assert set(PROVIDER_STATUS) == set(ProviderErrorKind)


@pytest.mark.parametrize("kind", sorted(PROVIDER_KINDS))
def test_provider_kinds_map_to_one_status_each(kind: str) -> None:
    status, code, retry_after = PROVIDER_KINDS[kind]
    got, body, headers = envelope(ProviderError(f"{kind} happened", kind, retry_after=7))
    assert got == status
    assert body == {
        "error": {
            "message": f"{kind} happened",
            "type": "invalid_request_error" if status < 500 else "server_error",
            "param": "messages" if kind == "context_length" else None,
            "code": code,
        }
    }
    assert headers.get("retry-after") == retry_after


def test_an_unknown_provider_kind_is_refused_where_it_is_made() -> None:
    with pytest.raises(ValueError):
        ProviderError("oops", "timed_out")
    error = ProviderError("slow", "timeout")
    assert error.kind is ProviderErrorKind.TIMEOUT and error.kind == "timeout"
    assert error.transient and not ProviderError("no", "auth").transient
    assert not ProviderError("wait", "busy").transient  # never opens a circuit breaker


OTHERS = [
    (AccessDenied("not yours", code="collection_forbidden"), 403, "collection_forbidden", None),
    (NotFound("no such", code="collection_not_found"), 404, "collection_not_found", None),
    (InvalidInput("bad filter", param="where"), 422, "invalid_request", "where"),
    (
        BudgetExceeded("over", "key x $1/day", "2026-12-08T00:00:00Z"),
        429,
        "insufficient_quota",
        None,
    ),
    (Unavailable("store"), 503, "store_unavailable", None),
    (LedgerUnavailable("ledger down"), 503, "ledger_unavailable", None),
    (Unavailable("rate_limits"), 503, "rate_limits_unavailable", None),
    (EmbedderMismatch("other embedder"), 409, "embedder_mismatch", None),
    (ParseError("not a PDF"), 422, "unparseable_input", None),
    (ModelError("weights missing"), 503, "model_unavailable", None),
    (ConfigError("bad setting"), 500, "server_misconfigured", None),
    (WorkspaceError("no collection"), 400, "workspace_error", None),
]


@pytest.mark.parametrize(("error", "status", "code", "param"), OTHERS, ids=lambda v: str(v)[:20])
def test_the_rest_of_the_hierarchy_maps_to_one_status_each(
    error: CitewiseError, status: int, code: str, param: str | None
) -> None:
    got, body, headers = envelope(error)
    assert (got, body["error"]["code"], body["error"]["param"]) == (status, code, param)
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"] == str(error)
    if status == 503:
        assert int(headers["retry-after"]) >= 1
    if status == 429:
        assert headers["x-should-retry"] == "false"  # waiting does not refill a budget


def test_the_cli_prints_one_line_and_exits_75_when_a_dependency_is_down(tmp_path: Path) -> None:
    # A PostgreSQL store nobody listens on: the workspace cannot be reached right now.
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "citewise.toml").write_text('store = "postgresql://citewise@127.0.0.1:1/citewise"\n')
    result = subprocess.run(
        [CITEWISE, "-w", str(ws), "status"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CITEWISE_RAISE_ERRORS": ""},
    )
    assert result.returncode == 75, result.stderr
    assert result.stderr.strip().splitlines() == [
        "Error: the store (PostgreSQL) cannot be reached; retry shortly"
    ]


def test_access_is_decided_by_the_caller_not_the_transport() -> None:
    from citewise.access import readable_collections, require_scope
    from citewise.keys import ApiKey

    team = ApiKey("team", "", ("handbook",), ("ask",))
    existing = ["handbook", "hr"]
    assert readable_collections(team, existing, None) == ["handbook"]  # all it may read
    assert readable_collections(team, existing, ["handbook"]) == ["handbook"]
    with pytest.raises(AccessDenied) as denied:
        readable_collections(team, existing, ["hr"])
    assert denied.value.code == "collection_forbidden"
    with pytest.raises(AccessDenied):  # asking for a forbidden one among allowed ones
        readable_collections(team, existing, ["handbook", "hr"])
    with pytest.raises(NotFound):
        readable_collections(ApiKey("all", "", ("*",), ("ask",)), existing, ["nope"])
    # An assistant's default collections that do not exist are skipped, not an error.
    everyone = ApiKey("all", "", ("*",), ("ask",))
    assert readable_collections(everyone, existing, None, defaults=["hr", "gone"]) == ["hr"]
    with pytest.raises(AccessDenied, match="'ingest' scope"):
        require_scope(team, "ingest")
