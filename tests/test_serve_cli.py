"""`citewise keys` and `citewise serve` as a user runs them, with the README's openai snippet."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import CITEWISE

pytestmark = pytest.mark.slow  # real servers (and a browser or the chat model)

README = Path(__file__).parents[1] / "README.md"


def readme_snippet() -> str:
    text = README.read_text(encoding="utf-8")
    marker = text.index("<!-- snippet: openai-sdk")
    return re.search(r"```python\n(.*?)```", text[marker:], re.S).group(1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(*args: str, workspace: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CITEWISE, "-w", str(workspace), *args], capture_output=True, text=True, timeout=120
    )


def test_keys_and_serve_with_the_readme_snippet(ingested_template: Path, tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    shutil.copytree(ingested_template / "ws", workspace)
    created = run(
        "keys",
        "create",
        "--name",
        "alice",
        "--collections",
        "default",
        "--scopes",
        "ask",
        "--rpm",
        "30",
        workspace=workspace,
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert re.fullmatch(r"cw-[\w-]{40,}", key)
    listed = run("keys", "list", workspace=workspace)
    assert "alice" in listed.stdout and key not in listed.stdout and "30" in listed.stdout
    duplicate = run("keys", "create", "--name", "alice", workspace=workspace)
    assert duplicate.returncode != 0 and "exists" in duplicate.stderr

    port = free_port()
    server = subprocess.Popen(
        [CITEWISE, "-w", str(workspace), "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise AssertionError(f"server never became ready: {server.stderr.read()}")
        assert httpx.get(url + "/readyz").json()["auth"] is True

        snippet = readme_snippet().replace("http://127.0.0.1:8080", url).replace("cw-…", key)
        answer = subprocess.run(
            [sys.executable, "-c", snippet], capture_output=True, text=True, timeout=120
        )
        assert answer.returncode == 0, answer.stderr
        assert "keyctl rotate" in answer.stdout
        assert "[1] Deployment guide (Deployment guide > Rotating API keys" in answer.stdout

        assert run("keys", "revoke", "alice", workspace=workspace).returncode == 0
        refused = subprocess.run(
            [sys.executable, "-c", snippet], capture_output=True, text=True, timeout=120
        )
        assert refused.returncode != 0 and "AuthenticationError" in refused.stderr
    finally:
        server.send_signal(signal.SIGINT)
        _, log = server.communicate(timeout=30)
    assert server.returncode == 0
    assert key not in log
    assert '"path": "/v1/chat/completions"' in log and '"key": "alice"' in log
