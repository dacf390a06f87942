"""Progress you can see: a long file reports each embedded slice (Python API, CLI, job
API), and a run killed mid-file is marked interrupted at the next start."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from citewise import Workspace
from citewise.ingest import EMBED_BATCH_CHUNKS, Ingestor, Progress
from citewise.sources import Skipped, SourceItem, file_items
from conftest import CITEWISE, LiveServer

WORDS = [
    "greenhouse",
    "fans",
    "start",
    "at",
    "thirty",
    "one",
    "degrees",
    "orchard",
    "watered",
    "every",
    "tuesday",
    "dawn",
]


def write_long_file(path: Path, megabytes: float) -> Path:
    """Markdown of about ``megabytes``: sections of paragraphs of words."""
    size = int(megabytes * 1024 * 1024)
    parts: list[str] = []
    written, n = 0, 0
    while written < size:
        if n % 20 == 0:
            parts.append(f"\n## Section {n // 20}\n\n")
        words = (WORDS[(n * 7 + i) % len(WORDS)] for i in range(60 + n % 50))
        parts.append(" ".join(words) + f" paragraph {n}.\n\n")
        written += len(parts[-1])
        n += 1
    path.write_text("".join(parts))
    return path


def ingest_long_file(tmp_path: Path, megabytes: float) -> None:
    """A long file through the real embedder, in chunks small enough that it makes many
    slices without taking long to embed."""
    long_file = write_long_file(tmp_path / "long.md", megabytes)
    with Workspace.open(tmp_path / "ws") as ws:
        embedder = ws.embedder()
        collection = ws.store.create_collection("docs", embedder.model_id, embedder.dim)
        ingestor = Ingestor(ws.store, collection, embedder, 24, 0)
        events: list[Progress] = []
        report = ingestor.run([*ws_items(long_file)], progress=events.append)
    slices = [e for e in events if e.outcome == "embedding"]
    total = report.chunks
    assert total > 4 * EMBED_BATCH_CHUNKS
    # One event per slice embedded, chunk counts rising to the file's total.
    assert len(slices) == -(-total // EMBED_BATCH_CHUNKS)
    done = [e.chunks_done for e in slices]
    assert done == sorted(done) and len(set(done)) == len(done) and done[-1] == total
    assert {e.chunks_total for e in slices} == {total}
    assert {e.source for e in slices} == {str(long_file.resolve())}
    assert all(e.done == 0 and e.total == 1 and e.chunks == 0 for e in slices)
    tokens = [e.tokens for e in events]
    assert tokens == sorted(tokens) and tokens[-1] == report.tokens
    assert slices[-1].eta_seconds == 0 and all(e.eta_seconds is not None for e in slices)
    # The file's own event comes after its slices, once it is stored.
    assert events[-1].outcome == "added" and events[-1].chunks == total
    assert events[-1].committed == (str(long_file.resolve()),)


def ws_items(path: Path) -> list[SourceItem | Skipped]:
    return list(file_items([path.resolve()]))


def test_a_long_file_reports_each_embedded_slice(tmp_path: Path) -> None:
    ingest_long_file(tmp_path, 0.2)


def small_chunks_env() -> dict[str, str]:
    """Small chunks: a short file is many chunks, so many slices, quickly embedded."""
    return {**os.environ, "CITEWISE_CHUNK_TOKENS": "16", "CITEWISE_CHUNK_OVERLAP": "0"}


def test_the_cli_bar_moves_within_a_long_file(tmp_path: Path) -> None:
    long_file = write_long_file(tmp_path / "long.md", 0.03)
    env = small_chunks_env() | {"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1", "COLUMNS": "200"}
    result = subprocess.run(
        [CITEWISE, "-w", str(tmp_path / "ws"), "ingest", str(long_file)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    total = int(re.search(r"added 1, .* · (\d+) chunks", result.stdout).group(1))  # type: ignore[union-attr]
    assert total > EMBED_BATCH_CHUNKS
    shown = [int(n) for n in re.findall(rf"long\.md ([\d,]+)/{total:,} chunks", result.stderr)]
    assert shown and shown == sorted(shown), result.stderr[-2000:]


def test_the_job_api_shows_the_current_files_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from citewise.keys import create_key
    from citewise.server import create_app

    monkeypatch.setattr("citewise.ingest.EMBED_BATCH_CHUNKS", 16)
    monkeypatch.setattr("citewise.server.jobs.SAVE_EVERY", 0.0)
    long_file = write_long_file(tmp_path / "long.md", 0.01)
    workspace = Workspace.open(tmp_path / "ws", chunk_tokens=16, chunk_overlap=0)
    key, _ = create_key(workspace.store, "tester", ["*"], ["ask", "ingest", "admin"])
    seen: list[tuple[int, int]] = []
    try:
        with LiveServer(create_app(workspace)) as live:
            headers = {"Authorization": f"Bearer {key}"}
            response = httpx.post(
                live.url + "/v1/collections/docs/documents",
                headers=headers,
                files=[("files", ("long.md", long_file.read_bytes()))],
                timeout=30,
            )
            assert response.status_code == 202
            job_url = f"{live.url}/v1/jobs/{response.json()['id']}"
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                job = httpx.get(job_url, headers=headers).json()
                (file,) = job["files"]
                seen.append((file["chunks_done"], file["chunks_total"]))
                if job["status"] in ("done", "failed"):
                    break
                time.sleep(0.01)
    finally:
        workspace.close()
    assert job["status"] == "done" and file["status"] == "added"
    total = file["chunks"]
    assert total > 3 * 16 and file["chunks_done"] == file["chunks_total"] == total
    partial = [done for done, of in seen if of == total and 0 < done < total]
    assert partial and partial == sorted(partial), seen
    assert all(done <= of for done, of in seen)


KILL_IN_LONG_FILE = textwrap.dedent(
    """
    import os, signal, sys
    from citewise import Workspace
    ws = Workspace.open(sys.argv[1], chunk_tokens=16, chunk_overlap=0)
    def on_progress(event):
        if event.outcome == "embedding":
            os.kill(os.getpid(), signal.SIGKILL)
    ws.ingest([sys.argv[2]], progress=on_progress)
    """
)


def test_a_run_killed_mid_file_is_marked_interrupted_and_resumes(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for n in range(4):
        (folder / f"a{n}.md").write_text(f"# Note {n}\n\nFact number {n} is true.\n")
    write_long_file(folder / "z-long.md", 0.03)
    result = subprocess.run(
        [sys.executable, "-c", KILL_IN_LONG_FILE, str(tmp_path / "ws"), str(folder)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    status = subprocess.run(
        [CITEWISE, "-w", str(tmp_path / "ws"), "status"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert status.returncode == 0, status.stderr
    said = " ".join(status.stdout.split())
    assert "did not finish (interrupted, kept 4 documents stored before it stopped" in said
    with Workspace.open(tmp_path / "ws", chunk_tokens=16, chunk_overlap=0) as ws:
        (run,) = ws.status().runs
        assert run["status"] == "interrupted"
        assert run["counts"] == {"kept_documents": 4, "kept_chunks": 4}
        assert ws.store.integrity_problems() == []
        stored = {
            s: ws.store.document_state(ws.collection().id, s)
            for s in ws.store.sources(ws.collection().id)
        }
        assert len(stored) == 4
        report = ws.ingest([folder])
        assert (report.unchanged, report.added) == (4, 1)  # the 4 kept are not re-embedded
        for source, before in stored.items():
            assert ws.store.document_state(ws.collection().id, source) == before
        assert ws.status().runs[0]["status"] == "complete"
        assert ws.store.integrity_problems() == []


def test_a_run_still_going_is_not_marked_interrupted(workspace: Workspace) -> None:
    from citewise.ingest import run_worker

    collection = workspace.collection()
    workspace.store.start_run(collection.id, run_worker())  # this very process: alive
    workspace.store.start_run(collection.id, "elsewhere:1")  # another host: cannot tell
    assert workspace.store.interrupt_runs(lambda worker: False) == 0
    with Workspace.open(workspace.path) as again:
        assert again.status().runs[0]["status"] == "running"
