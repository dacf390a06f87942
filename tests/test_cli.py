"""The real ``citewise`` console script, run as a user would."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import CITEWISE, write_bad_files


def citewise(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CITEWISE, *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def cli_workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A workspace with the corpus (and its bad files) ingested by the CLI, for tests
    that read it; each test that ingests makes its own."""
    root = tmp_path_factory.mktemp("cli")
    corpus = corpus_with_bad_files(root)
    assert citewise("-w", str(root / "ws"), "ingest", str(corpus)).returncode == 0
    return root / "ws", corpus


def corpus_with_bad_files(root: Path) -> Path:
    from conftest import write_corpus

    corpus = write_corpus(root / "corpus")
    write_bad_files(corpus / "bad")
    return corpus


def test_ingest_reports_a_summary_and_each_failure(tmp_path: Path) -> None:
    ws, corpus = tmp_path / "ws", corpus_with_bad_files(tmp_path)
    result = citewise("-w", str(ws), "ingest", str(corpus))
    assert result.returncode == 0, result.stderr
    assert "added 7, updated 0, unchanged 0, failed 5" in result.stdout
    assert "broken.pdf: corrupt PDF" in result.stderr
    assert "locked.pdf: encrypted PDF" in result.stderr
    again = citewise("-w", str(ws), "ingest", str(corpus))
    assert "added 0, updated 0, unchanged 7, failed 5" in again.stdout


def test_ingest_exits_1_when_a_path_is_missing_or_nothing_could_be_read(tmp_path: Path) -> None:
    # Issue 11: both exited 0, so scripts could not tell.
    ws = tmp_path / "ws"
    missing = citewise("-w", str(ws), "ingest", str(tmp_path / "no-such-folder"))
    assert missing.returncode == 1
    assert "no such file or directory" in missing.stdout + missing.stderr
    bad = tmp_path / "bad"
    write_bad_files(bad)
    only_bad = citewise("-w", str(ws), "ingest", str(bad))
    assert only_bad.returncode == 1 and "added 0" in only_bad.stdout
    (bad / "good.md").write_text("# Good\n\nA readable file.\n")
    mixed = citewise("-w", str(ws), "ingest", str(bad))
    assert mixed.returncode == 0 and "added 1" in mixed.stdout  # partial success succeeds


def test_search_json(cli_workspace) -> None:
    ws, _ = cli_workspace
    result = citewise("-w", str(ws), "search", "Where do visitors park?", "--json", "-k", "2")
    hits = json.loads(result.stdout)
    assert len(hits) == 2 and hits[0]["source"].endswith("handbook.html")
    assert hits[0]["heading_path"] == ["Office handbook", "Parking"]


def test_search_text_output_names_sources(cli_workspace) -> None:
    ws, _ = cli_workspace
    result = citewise("-w", str(ws), "search", "emergency assembly point", "-k", "1")
    assert "safety.pdf" in result.stdout and "page 2" in result.stdout


@pytest.mark.slow
def test_ask_streams_an_answer_with_sources_and_budget(cli_workspace) -> None:
    ws, _ = cli_workspace
    result = citewise("-w", str(ws), "ask", "How do I rotate the API keys?", "--verbose")
    assert result.returncode == 0, result.stderr
    assert "Sources" in result.stdout and "guide.md" in result.stdout
    assert "context window 2048: system+template" in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_ask_json(cli_workspace) -> None:
    ws, _ = cli_workspace
    result = citewise("-w", str(ws), "ask", "What is the daily meal allowance abroad?", "--json")
    answer = json.loads(result.stdout)
    assert answer["citations"] and answer["budget"]["context_window"] == 2048
    assert any(c["hit"]["source"].endswith("travel.docx") for c in answer["citations"])


def test_status_shows_counts_and_failed_files(cli_workspace) -> None:
    ws, _ = cli_workspace
    result = citewise("-w", str(ws), "status")
    assert "default" in result.stdout and "all-MiniLM-L6-v2 (384d)" in result.stdout
    assert "failed" in result.stdout and "broken.docx" in result.stdout


@pytest.mark.slow
def test_doctor_checks_everything(tmp_path: Path) -> None:
    from conftest import MARKDOWN

    ws = tmp_path / "ws"
    (tmp_path / "guide.md").write_text(MARKDOWN)
    assert citewise("-w", str(ws), "ingest", str(tmp_path / "guide.md")).returncode == 0
    result = citewise("-w", str(ws), "doctor")
    assert result.returncode == 0, result.stdout
    lines = [line.split(": ")[0] for line in result.stdout.splitlines() if line.startswith("✓")]
    assert lines[:4] == [
        "✓ workspace",
        "✓ embedder all-MiniLM-L6-v2",
        "✓ collection default",
        "✓ usage ledger",
    ]
    assert lines[4] == "✓ redaction" and "before no target" in result.stdout  # local only
    assert lines[6] == "✓ chat model local:smollm2-135m" and len(lines) == 7
    # llama.cpp generated in a child process before the model was loaded in this one.
    assert re.search(
        r"✓ llama\.cpp on .+: generates \d+ tokens/s in a child process", result.stdout
    )
    broken = citewise("-w", str(ws), "doctor", "--provider", "openai", env={"OPENAI_API_KEY": ""})
    assert broken.returncode == 1 and "✗ chat model openai:" in broken.stdout
    assert "No key found" in broken.stdout


@pytest.mark.slow
def test_doctor_checks_redis_and_every_target_of_a_chain(tmp_path: Path) -> None:
    from citewise.config import set_config_value
    from conftest import free_port

    ws = tmp_path / "ws"
    assert citewise("-w", str(ws), "init").returncode == 0
    # "default" names a chain: its targets are checked, not a local model called "default".
    set_config_value(ws / "citewise.toml", "model", "default")
    set_config_value(ws / "citewise.toml", "redis_url", f"redis://127.0.0.1:{free_port()}/0")
    with (ws / "citewise.toml").open("a", encoding="utf-8") as config:
        config.write('\n[models.default]\nchain = ["local:smollm2-135m", "openai:gpt-4o-mini"]\n')
    result = citewise("-w", str(ws), "doctor", env={"OPENAI_API_KEY": ""})
    assert result.returncode == 1
    assert "unknown local model" not in result.stdout + result.stderr
    assert "✓ chat model local:smollm2-135m" in result.stdout
    assert "✗ chat model openai:gpt-4o-mini" in result.stdout  # the fallback is checked too
    assert re.search(r"✗ rate limits \(Redis\): Redis cannot be reached", result.stdout)


def test_errors_are_one_line_without_traceback(cli_workspace, tmp_path: Path) -> None:
    ws, _ = cli_workspace
    result = citewise(
        "-w", str(ws), "ask", "anything about keys", "--model", str(tmp_path / "nope.gguf")
    )
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: model file {tmp_path / 'nope.gguf'} does not exist"
    debug = citewise(
        "--debug", "-w", str(ws), "ask", "keys", "--model", str(tmp_path / "nope.gguf")
    )
    assert "Traceback" in debug.stderr


def test_workspace_from_environment_and_dotenv(tmp_path: Path, cli_workspace) -> None:
    _, corpus = cli_workspace
    ws = tmp_path / "env-ws"
    (tmp_path / ".env").write_text(f"CITEWISE_WORKSPACE={ws}\nCITEWISE_TOP_K=3\n")
    result = citewise("ingest", str(corpus / "notes.txt"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (ws / "citewise.db").exists()
    config = citewise("config", "--json", cwd=tmp_path)
    top_k = next(row for row in json.loads(config.stdout) if row["setting"] == "top_k")
    assert (top_k["value"], top_k["source"]) == (3, "environment")


@pytest.mark.slow
def test_demo_prints_a_cited_answer(tmp_path: Path) -> None:
    result = citewise("-w", str(tmp_path / "demo"), "demo")
    assert result.returncode == 0, result.stderr
    assert "Q: What does the with statement do?" in result.stdout
    assert "Sources" in result.stdout and "pydoc:" in result.stdout
    assert "[1]" in result.stdout


def test_ingest_summary_counts_each_file_once_and_prints_names_on_one_line(
    tmp_path: Path,
) -> None:
    """Issue 28: a file added with a problem in part of it was counted as added and as
    failed, and a file name holding a newline broke the summary across lines."""
    folder = tmp_path / "calls"
    folder.mkdir()
    (folder / "standup.vtt").write_text(
        "WEBVTT\n\n00:00:01.000 --> 00:00:03.000\nThe build is green.\n\n"
        "00:00:04,000 --> 00:00:06.000\nA cue with a comma in its timing.\n",
        encoding="utf-8",
    )
    (folder / "minutes\nFINAL\x1b[2J.pdf").write_bytes(b"%PDF-1.4\nnot really a pdf\n%%EOF")
    result = citewise("-w", str(tmp_path / "ws"), "ingest", str(folder))
    assert result.returncode == 0, result.stderr
    assert "added 1, updated 0, unchanged 0, failed 1, 1 stored with warnings ·" in result.stdout
    lines = result.stderr.splitlines()
    assert f"failed {folder}/minutes\\nFINAL\\x1b[2J.pdf: corrupt PDF" in " ".join(lines)
    assert any(line.startswith("failed ") and "minutes\\nFINAL" in line for line in lines)
    assert "\x1b[2J" not in result.stderr
    assert any(
        line.startswith(f"warning {folder}/standup.vtt: line 6: WebVTT cue left out")
        for line in lines
    )
