"""Property-based tests over the server's own OpenAPI schema (schemathesis + hypothesis):
every route, with an admin key and with none, answers generated and mutated requests
without a 500, with every error in OpenAI's shape, through the middleware that logs and
counts it (``x-request-id``)."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from citewise import Workspace
from citewise.keys import create_key
from citewise.server import create_app
from conftest import LiveServer


@pytest.fixture(scope="module")
def fuzzed_server(
    ingested_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(ingested_template / "ws", root / "ws")
    # No model generation: answers quote their best passage, so each case takes milliseconds.
    (root / "ws" / "citewise.toml").write_text('answer_check = "quote"\nmax_upload_mb = 1\n')
    workspace = Workspace.open(root / "ws")
    key = create_key(workspace.store, "fuzzer", ["*"], ["admin"])[0]
    with LiveServer(create_app(workspace)) as live:
        live.key = key
        yield live
    workspace.close()


@pytest.mark.slow
def test_no_route_breaks_under_generated_requests(fuzzed_server: LiveServer) -> None:
    raw = httpx.get(
        fuzzed_server.url + "/openapi.json",
        headers={"Authorization": f"Bearer {fuzzed_server.key}"},
    ).json()
    operations = [
        result.ok() for result in schemathesis.openapi.from_dict(raw).get_all_operations()
    ]
    assert len(operations) >= 13  # every /v1 route of the API is in the schema

    for operation, mode in itertools.product(operations, schemathesis.GenerationMode):
        # Positive cases follow the schema; negative ones break it on purpose.

        @given(case=operation.as_strategy(mode))
        @settings(
            max_examples=15,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def no_500(case: schemathesis.Case) -> None:
            check_case(case, fuzzed_server)

        try:
            no_500()
        except Unsatisfiable:
            # A route without inputs (GET /v1/models) has no invalid request to make.
            assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label


def check_case(case: schemathesis.Case, server: LiveServer) -> None:
    for headers in ({"Authorization": f"Bearer {server.key}"}, {}):
        response = case.call(base_url=server.url, headers=headers, timeout=60)
        where = f"{case.method} {case.formatted_path} -> {response.status_code}"
        assert response.status_code < 500, f"{where}: {response.text[:300]}"
        assert response.headers.get("x-request-id"), f"{where}: not seen by the middleware"
        if not headers and case.path.startswith("/v1/"):
            assert response.status_code == 401, where  # no API route is open without a key
        if not headers and case.path.startswith("/media/"):
            # A recording's link is its own credential (signed; server/media.py).
            assert response.status_code == 403, where
        if response.status_code >= 400:
            error = response.json().get("error")
            assert isinstance(error, dict) and isinstance(error.get("message"), str), where
            assert {"message", "type", "param", "code"} <= set(error), where
