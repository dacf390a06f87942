from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from citewise import Workspace
from citewise.errors import InvalidInput
from conftest import write_bad_files


def test_ingest_every_format_then_rerun_does_nothing(ingested) -> None:
    ws, corpus = ingested
    sources = set(ws.store.sources(ws.collection().id))
    names = {Path(s).name for s in sources}
    assert names == {
        "guide.md",
        "billing.rst",
        "handbook.html",
        "notes.txt",
        "thermostat.py",
        "safety.pdf",
        "travel.docx",
    }
    report = ws.ingest([corpus])
    assert (report.added, report.updated, report.unchanged, len(report.failed)) == (0, 0, 7, 0)


def test_ignored_and_hidden_files_are_not_ingested(ingested) -> None:
    ws, _ = ingested
    assert ws.search("BLUEBIRD launch codename", 5, mode="bm25") == []
    assert ws.search("Ignored scratch text", 5, mode="bm25") == []
    assert ws.search("Hidden file text", 5, mode="bm25") == []


def test_touched_but_unchanged_file_is_not_reparsed(ingested) -> None:
    ws, corpus = ingested
    os.utime(corpus / "notes.txt", None)
    report = ws.ingest([corpus / "notes.txt"])
    assert (report.added, report.updated, report.unchanged) == (0, 0, 1)


def test_changed_file_replaces_its_chunks(ingested, tmp_path: Path) -> None:
    ws, corpus = ingested
    notes = tmp_path / "notes.txt"
    notes.write_text((corpus / "notes.txt").read_text())
    ws.ingest([notes])
    only_notes = {"source": str(notes)}
    assert ws.search("vegetarian lasagna", 3, mode="bm25", where=only_notes)
    notes.write_text("The cafeteria now serves ramen on Fridays.\n")
    report = ws.ingest([notes])
    assert report.updated == 1
    hits = ws.search("cafeteria", 10, mode="bm25", where=only_notes)
    assert [h.text for h in hits] == ["The cafeteria now serves ramen on Fridays."]
    assert ws.search("lasagna", 10, mode="bm25", where=only_notes) == []
    assert ws.search("lasagna", 10, mode="bm25")  # the other copy is untouched
    assert ws.store.integrity_problems() == []


def test_sync_removes_documents_whose_files_are_gone(workspace: Workspace, corpus: Path) -> None:
    workspace.sync([corpus])
    (corpus / "notes.txt").unlink()
    report = workspace.sync([corpus])
    assert report.deleted == 1 and report.unchanged == 6
    assert workspace.search("vegetarian lasagna", 5, mode="bm25") == []
    assert workspace.store.integrity_problems() == []


def test_bad_files_are_reported_by_name_and_the_rest_is_ingested(
    workspace: Workspace, corpus: Path
) -> None:
    expected = write_bad_files(corpus / "bad")
    (corpus / "data.xyz").write_text("unsupported")
    report = workspace.ingest([corpus])
    failed = {Path(f.source).name: f.reason for f in report.failed}
    assert set(failed) == set(expected)
    for name, words in expected.items():
        assert words in failed[name], (name, failed[name])
    assert report.added == 7
    assert [Path(s.source).name for s in report.skipped] == ["data.xyz"]
    status = workspace.status()
    assert {Path(s).name for s, _ in status.runs[0]["failures"]} == set(expected)


def test_a_parser_crash_of_any_kind_skips_only_that_file(
    workspace: Workspace, corpus: Path
) -> None:
    # Valid header and trailer around a page tree that points nowhere: pypdf fails its own way.
    (corpus / "odd.pdf").write_bytes(
        b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
        b"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
        b"trailer << /Root 1 0 R >>\n%%EOF\n"
    )
    report = workspace.ingest([corpus])
    assert report.added == 7
    assert [Path(f.source).name for f in report.failed] == ["odd.pdf"]
    assert report.failed[0].reason


def test_fixed_file_is_picked_up_on_rerun(workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "later.md"
    path.write_text("")
    assert len(workspace.ingest([path]).failed) == 1
    path.write_text("# Later\n\nNow it has text about zeppelins.\n")
    report = workspace.ingest([path])
    assert report.added == 1 and not report.failed


def _big_corpus(root: Path, files: int) -> Path:
    root.mkdir()
    for i in range(files):
        paragraphs = [
            f"Document {i} paragraph {p} covers subject {i * 100 + p} in depth. " * 6
            for p in range(40)
        ]
        (root / f"doc{i:03d}.md").write_text(f"# Document {i}\n\n" + "\n\n".join(paragraphs))
    return root


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from citewise import Workspace
    # Ctrl-C as a terminal delivers it: a shell that starts the test run in the background
    # leaves SIGINT ignored, and Python then installs no KeyboardInterrupt handler.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    ws = Workspace.open(sys.argv[1])
    def on_progress(event):
        if event.done == int(sys.argv[3]):
            os.kill(os.getpid(), getattr(signal, sys.argv[4]))
    ws.ingest([sys.argv[2]], progress=on_progress)
    """
)


def _ingest_and_kill(
    ws_dir: Path, corpus: Path, at: int, signal_name: str
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(ws_dir), str(corpus), str(at), signal_name],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_killed_ingest_leaves_a_consistent_store_and_resumes(tmp_path: Path) -> None:
    corpus = _big_corpus(tmp_path / "big", 40)
    result = _ingest_and_kill(tmp_path / "ws", corpus, 30, "SIGKILL")
    assert result.returncode == -signal.SIGKILL, result.stderr
    db = sqlite3.connect(tmp_path / "ws" / "citewise.db")
    committed = db.execute("SELECT count(*) FROM documents").fetchone()[0]
    orphans = db.execute(
        "SELECT count(*) FROM chunks WHERE document_id NOT IN (SELECT id FROM documents)"
    ).fetchone()[0]
    db.close()
    assert 0 < committed < 40 and orphans == 0
    with Workspace.open(tmp_path / "ws") as ws:
        assert ws.store.integrity_problems() == []
        # It never got to say it finished: the next start saw its process gone.
        assert ws.status().runs[0]["status"] == "interrupted"
        assert ws.status().runs[0]["counts"]["kept_documents"] == committed
        report = ws.ingest([corpus])
        assert report.unchanged == committed and report.added == 40 - committed
        assert ws.store.integrity_problems() == []
        assert ws.status().runs[0]["status"] == "complete"


def test_ctrl_c_marks_the_run_interrupted(tmp_path: Path) -> None:
    corpus = _big_corpus(tmp_path / "big", 40)
    started = time.monotonic()
    result = _ingest_and_kill(tmp_path / "ws", corpus, 35, "SIGINT")
    assert result.returncode != 0 and "KeyboardInterrupt" in result.stderr
    assert time.monotonic() - started < 300
    with Workspace.open(tmp_path / "ws") as ws:
        run = ws.status().runs[0]
        assert run["status"] == "interrupted"
        assert ws.store.integrity_problems() == []
        assert ws.ingest([corpus]).added + run["counts"]["added"] == 40


def test_collection_names_are_validated_once_in_the_python_api(workspace, corpus) -> None:
    # ASCII only: a look-alike (fullwidth "Ａ", Cyrillic "а") would pose as another name.
    for bad in ("..", ".", "...", "a/b", "", "-x", "x" * 65, "Ａ", "\u0430pi", "café"):
        with pytest.raises(InvalidInput, match="invalid collection name"):
            workspace.ingest([corpus / "guide.md"], collection=bad)
    assert [c.name for c in workspace.collections()] == []
    for good in ("docs", "beir-scifact", "v1.2_notes", "Cafe"):
        workspace.ingest([corpus / "guide.md"], collection=good)
    assert {c.name for c in workspace.collections()} == {
        "docs",
        "beir-scifact",
        "v1.2_notes",
        "Cafe",
    }


def test_odd_entries_in_a_folder_are_named_and_the_rest_is_ingested(workspace, tmp_path) -> None:
    # Issue 11: each of these aborted a whole folder ingest with a traceback.
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.md").write_text("# Good\n\nThe good file is ingested.\n")
    (folder / "loop.md").symlink_to(folder / "loop.md")  # points at itself
    (folder / "dangling.md").symlink_to(folder / "nowhere.md")
    os.mkfifo(folder / "pipe.md")
    bad_name = os.fsencode(folder) + b"/caf\xe9-latin1.md"  # not UTF-8
    with open(bad_name, "wb") as handle:
        handle.write(b"# Latin-1 name\n\nStill text.\n")
    report = workspace.ingest([folder])
    assert report.added == 1 and [c.name for c in workspace.collections()] == ["default"]
    reasons = {Path(s.source).name: s.reason for s in report.failed + report.skipped}
    assert reasons["loop.md"] == "cannot read: Too many levels of symbolic links"
    assert reasons["dangling.md"] == "cannot read: No such file or directory"
    assert reasons["pipe.md"] == "not a regular file (a pipe, socket or device)"
    assert reasons["caf\ufffd-latin1.md"] == "file name is not valid UTF-8; rename the file"
    assert workspace.search("good file ingested", k=1)[0].source.endswith("good.md")
    again = workspace.ingest([folder])  # a rerun: the same verdicts, nothing redone or lost
    assert again.unchanged == 1 and again.deleted == 0 and len(again.failed) == 3


def test_each_document_is_committed_as_it_finishes(workspace, tmp_path: Path) -> None:
    """An interrupted ingest keeps every document it finished (Ctrl-C after the 5th here),
    and a rerun does only the rest."""
    folder = tmp_path / "notes"
    folder.mkdir()
    for n in range(12):
        (folder / f"note-{n:02d}.md").write_text(f"# Note {n}\n\nFact number {n} is true.\n")

    def interrupt(progress) -> None:
        if progress.done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        workspace.ingest([folder], progress=interrupt)
    assert workspace.status().collections[0].documents == 5
    rerun = workspace.ingest([folder])
    assert (rerun.unchanged, rerun.added) == (5, 7)


def test_a_document_extracting_too_much_text_is_named_and_skipped(tmp_path: Path) -> None:
    from citewise import Workspace

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "small.md").write_text("# Small\n\nThe cafeteria opens at noon.\n")
    (folder / "huge.txt").write_text("All work and no play makes Jack a dull boy. " * 60_000)
    with Workspace.open(tmp_path / "ws", max_document_mb=1) as ws:
        report = ws.ingest([folder])
    assert report.added == 1
    (failure,) = report.failed
    assert failure.source == str(folder / "huge.txt")
    assert failure.reason == "extracts to 3 MB of text, over the max_document_mb limit (1 MB)"


def test_a_subtitle_folder_reports_one_outcome_per_file(workspace, tmp_path: Path) -> None:
    """Issue 28: a folder of 33 subtitle files reported 34 outcomes: a WebVTT file with a
    cue left out counted as added and as failed. It is added, with a warning."""
    folder = tmp_path / "subtitles"
    folder.mkdir()
    for n in range(1, 29):
        (folder / f"episode-{n:02d}.srt").write_text(
            f"1\n00:00:01,000 --> 00:00:04,000\nEpisode {n} opens in the harbour.\n\n"
            f"2\n00:00:05,000 --> 00:00:08,000\nThe ferry leaves at {n} past nine.\n",
            encoding="utf-8",
        )
    (folder / "missing_timeframe.srt").write_text(
        "1\n00:00:01,000 --> 00:00:03,000\nHello.\n\n2\nNo timing line here.\n\n"
        "3\n00:00:04,000 --> 00:00:06,000\nGoodbye.\n",
        encoding="utf-8",
    )
    (folder / "trailer.sbv").write_text(
        "0:00:00.500,0:00:03.000\nComing this spring.\n", encoding="utf-8"
    )
    (folder / "interview.vtt").write_text(
        "WEBVTT\n\n00:00:01.000 --> 00:00:03.000\nThe readable cue.\n\n"
        "00:00:04,000 --> 00:00:06.000\nA cue with a comma in its timing.\n",
        encoding="utf-8",
    )
    (folder / "broken.srt").write_text("1\n00:00:01,000 --> later\nNo.\n", encoding="utf-8")
    (folder / "notes.vtt").write_text("", encoding="utf-8")
    files = sorted(folder.iterdir())
    assert len(files) == 33
    report = workspace.ingest([folder])
    outcomes = report.added + report.updated + report.unchanged
    outcomes += len(report.failed) + len(report.skipped)
    assert outcomes == 33 and report.added == 31
    assert {Path(f.source).name: f.reason for f in report.failed} == {
        "broken.srt": "malformed SRT: cannot read the cue at line 2: '00:00:01,000 --> later' "
        "(a cue is its number, a line like '00:01:02,500 --> 00:01:05,000', then its text)",
        "notes.vtt": "empty file",
    }
    assert report.warned == 1
    assert [(w.source, w.reason) for w in report.warnings] == [
        (
            f"{folder / 'interview.vtt'}: line 6",
            "WebVTT cue left out: unreadable timing '00:00:04,000 --> 00:00:06.000'",
        )
    ]
    assert report.counts()["warnings"] == 1
