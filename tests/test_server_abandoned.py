"""Clients that go away free the local model (issue 11: an abandoned stream held it for
minutes, and a timed-out request was generated to the end for nobody).

Each case is timed against a whole generation of the same question in the same run, so
the bound holds on a slow machine as on a fast one.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import openai
import pytest

from citewise import Workspace
from citewise.keys import create_key
from conftest import LiveServer, served

pytestmark = pytest.mark.slow

# A question SmolLM2 answers at length (about 370 tokens) when nothing stops it.
RAMBLE = "Explain everything about backups, keys, refunds and parking in detail."


@pytest.fixture
def server(ingested_template: Path, tmp_path: Path):
    shutil.copytree(ingested_template / "ws", tmp_path / "ws")
    # No answer checks and a long budget: the model writes until it is told to stop.
    workspace = Workspace.open(
        tmp_path / "ws", answer_check="off", answer_tokens=1000, min_relevance=0.0
    )
    key, _ = create_key(workspace.store, "tester", ["*"], ["ask"])
    with served(workspace, key) as live:
        yield live
    workspace.close()


def client(server: LiveServer, **options: float) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=server.key, max_retries=0, **options)


def seconds_until_the_model_is_free(server: LiveServer, limit: float = 120.0) -> float:
    turns = server.workspace.chat_model().primary._turns  # the local model behind the router
    started = time.monotonic()
    while turns.busy() and time.monotonic() - started < limit:
        time.sleep(0.05)
    assert not turns.busy(), f"the model was still busy after {limit:.0f} s"
    return time.monotonic() - started


def whole_generation_seconds(server: LiveServer) -> float:
    started = time.monotonic()
    response = client(server).chat.completions.create(
        model="citewise", messages=[{"role": "user", "content": RAMBLE}]
    )
    assert response.usage.completion_tokens > 100  # long enough to tell the cases apart
    return time.monotonic() - started


def test_a_stream_closed_after_a_few_chunks_frees_the_model(server: LiveServer) -> None:
    whole = whole_generation_seconds(server)
    stream = client(server).chat.completions.create(
        model="citewise", messages=[{"role": "user", "content": RAMBLE}], stream=True
    )
    for _, _chunk in zip(range(4), stream, strict=False):
        pass
    stream.close()
    assert seconds_until_the_model_is_free(server) < whole / 2
    short = client(server).chat.completions.create(
        model="citewise",
        messages=[{"role": "user", "content": "Where do visitors park?"}],
        max_tokens=5,
    )
    assert short.choices[0].message.content


def test_a_request_whose_client_timed_out_stops_generating(server: LiveServer) -> None:
    whole = whole_generation_seconds(server)
    impatient = client(server, timeout=whole / 4)
    with pytest.raises(openai.APITimeoutError):
        impatient.chat.completions.create(
            model="citewise", messages=[{"role": "user", "content": RAMBLE}]
        )
    assert seconds_until_the_model_is_free(server) < whole / 2
