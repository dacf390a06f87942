"""User text is never markup: the real ``citewise`` command prints brackets in documents,
titles, file names, sources, errors and hints as they are.

Rich read them as markup: a passage with "[/bold]" crashed `citewise search` with a
MarkupError traceback, and "[kde-isl]" (a mail subject), "[audio]" (in the hint
"pip install 'citewise[audio]'") and "[red]" (a file name) silently vanished.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from test_cli import citewise

MARKDOWN = """\
# Release notes [kde-isl]

The build closes the tag with [/bold] and never opens it.
Install the speech extra with pip install 'citewise[audio]' and see [link=x]the docs[/link].
"""

MAIL = b"""\
From MAILER-DAEMON Mon Jan  5 10:00:00 2026
From: Alice Chen <alice@example.com>
To: team@example.com
Subject: [kde-isl] Translation freeze
Date: Mon, 05 Jan 2026 10:00:00 +0000
Message-ID: <freeze@example.com>
X-Gmail-Labels: Inbox
Content-Type: text/plain; charset="utf-8"

The translation freeze for the [kde-isl] team starts on Friday.
"""

HINT = "pip install 'citewise[audio]'"

# The `citewise` entry point with faster-whisper hidden, as if the audio extra were not
# installed (the test environment has it), so a recording fails with the install hint.
WITHOUT_AUDIO_EXTRA = """\
import sys
sys.modules["faster_whisper"] = None
from citewise.cli import main
sys.argv = ["citewise", *sys.argv[1:]]
main()
"""


def write_bracket_corpus(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "[red]bad.md").write_text(MARKDOWN, encoding="utf-8")
    (root / "mail.mbox").write_bytes(MAIL)
    (root / "[link=x]broken.pdf").write_bytes(b"%PDF-1.4\nnot really a pdf\n%%EOF")
    return root


def assert_no_traceback(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert "MarkupError" not in result.stdout + result.stderr


@pytest.fixture(scope="module")
def bracket_workspace(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path, subprocess.CompletedProcess]:
    root = tmp_path_factory.mktemp("markup")
    corpus = write_bracket_corpus(root / "corpus")
    ingest = citewise("-w", str(root / "ws"), "ingest", str(corpus))
    return root / "ws", corpus, ingest


def test_ingest_names_bracketed_files_verbatim(bracket_workspace) -> None:
    _, corpus, ingest = bracket_workspace
    assert_no_traceback(ingest)
    assert ingest.returncode == 0, ingest.stderr
    assert "added 2, updated 0, unchanged 0, failed 1" in ingest.stdout
    assert f"failed {corpus / '[link=x]broken.pdf'}: corrupt PDF" in ingest.stderr


def test_search_prints_bracketed_text_titles_and_sources_verbatim(bracket_workspace) -> None:
    ws, corpus, _ = bracket_workspace
    result = citewise("-w", str(ws), "search", "the build closes the tag", "-k", "2")
    assert_no_traceback(result)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"1. Release notes [kde-isl] ({corpus / '[red]bad.md'} · " in out
    assert "The build closes the tag with [/bold] and never opens it." in out
    assert f"Install the speech extra with {HINT} and see [link=x]the docs[/link]." in out
    assert "2. [kde-isl] Translation freeze (gmail://" in out  # a mail subject as the title
    assert "The translation freeze for the [kde-isl] team starts on Friday." in out


def test_status_prints_bracketed_failures_verbatim(bracket_workspace) -> None:
    ws, corpus, _ = bracket_workspace
    result = citewise("-w", str(ws), "status")
    assert_no_traceback(result)
    assert result.returncode == 0, result.stderr
    assert f"failed {corpus / '[link=x]broken.pdf'}: corrupt PDF" in result.stdout


@pytest.mark.slow
def test_ask_prints_bracketed_sources_and_titles_verbatim(bracket_workspace) -> None:
    ws, _, _ = bracket_workspace
    result = citewise(
        "-w",
        str(ws),
        "ask",
        "When does the translation freeze for the kde-isl team start?",
        "--verbose",
    )
    assert_no_traceback(result)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # --verbose lists the passages the model saw, with their titles.
    assert any(
        line.startswith("  [1] score") and line.endswith(" [kde-isl] Translation freeze")
        for line in lines
    ), result.stdout
    assert any(line.endswith(" Release notes [kde-isl]") for line in lines), result.stdout
    assert "Sources" in result.stdout
    assert "[1] [kde-isl] Translation freeze — gmail://" in result.stdout


def test_missing_extra_hint_prints_verbatim(tmp_path: Path) -> None:
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    (recordings / "[audio]talk.mp3").write_bytes(b"ID3 not really audio")
    ws = str(tmp_path / "ws")
    ingest = subprocess.run(
        [sys.executable, "-c", WITHOUT_AUDIO_EXTRA, "-w", ws, "ingest", str(recordings)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert_no_traceback(ingest)
    assert ingest.returncode == 1  # nothing could be read
    expected = (
        f"failed {recordings / '[audio]talk.mp3'}: audio and video need faster-whisper: {HINT}"
    )
    assert expected in ingest.stderr
    status = citewise("-w", ws, "status")
    assert_no_traceback(status)
    assert expected in status.stdout


def test_errors_print_user_text_verbatim(bracket_workspace, tmp_path: Path) -> None:
    ws, corpus, _ = bracket_workspace
    model = tmp_path / "[red]nope.gguf"
    missing = citewise("-w", str(ws), "ask", "anything", "--model", str(model))
    assert_no_traceback(missing)
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"Error: model file {model} does not exist"
    bad_name = citewise("-w", str(ws), "ingest", "-c", "[bold]team", str(corpus))
    assert_no_traceback(bad_name)
    assert bad_name.returncode == 1
    assert "Error: invalid collection name '[bold]team'" in bad_name.stderr
