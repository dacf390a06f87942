"""Gmail Takeout mbox: threads, quotes, attachments, labels, Spam, broken messages, sync."""

from __future__ import annotations

from pathlib import Path

import pytest

from citewise.connectors import detect_source
from exports import make_mbox, stored_documents

THREAD = "gmail://me@example.com/thread/1789000000000000001"


def test_threads_attachments_and_labels(workspace, tmp_path: Path) -> None:
    mbox = make_mbox(tmp_path)
    assert detect_source(str(mbox)) == "gmail"
    report = workspace.ingest([mbox])
    assert report.added == 2
    assert [s.reason for s in report.skipped] == [
        "in Spam or Trash (--include-spam-trash to ingest)"
    ]
    # The threads are stored: what of them could not be read is a warning on each, not a
    # failed outcome beside its added one.
    assert report.failed == [] and report.warned == 2
    warned = {f.source: f.reason for f in report.warnings}
    assert warned[f"{THREAD}#<offsite-3@example.com>/scan.pdf"].startswith(
        "attachment: corrupt PDF"
    )
    bad = next(s for s in warned if s.endswith("#<bad-charset@example.com>"))
    assert "undecodable" in warned[bad]

    docs = stored_documents(workspace)
    offsite = docs[THREAD]
    text = workspace.store.document_text(offsite.id)
    assert offsite.title == "Q3 offsite venue"
    assert text.count("Lakeside Lodge") == 1, "the quoted copy in the reply is dropped"
    assert "I booked the coach from Lyon" in text
    assert "the boat trip leaves at 9:15" in text  # from the PDF attachment
    assert offsite.metadata["labels"] == ["Inbox", "Important"]
    assert offsite.metadata["authors"] == ["Alice Chen", "Bob Martin", "Zoé Dupont"]
    assert offsite.metadata["principals"] == ["me@example.com"]
    assert offsite.metadata["url"] == "https://mail.google.com/mail/u/0/#all/18d3ce057f2c8001"
    invoice = next(d for s, d in docs.items() if d.title == "Invoice 2231")
    assert "1,240 EUR" in workspace.store.document_text(invoice.id)
    assert "WIN-777" not in " ".join(workspace.store.document_text(d.id) for d in docs.values())


@pytest.mark.slow
def test_citation_points_to_the_message_and_attachment_page(workspace, tmp_path: Path) -> None:
    workspace.ingest([make_mbox(tmp_path)])
    hit = workspace.search("when does the boat trip leave", k=1)[0]
    assert hit.source == THREAD
    assert hit.page == 2
    assert hit.heading_path == (
        "Q3 offsite venue",
        "Zoé Dupont 2026-01-06 08:15 <offsite-3@example.com>",
        "attachment agenda.pdf",
    )
    answer = workspace.ask("Where will the Q3 offsite be?")
    assert "Lakeside Lodge" in answer.text
    assert answer.citations and answer.citations[0].hit.source == THREAD


def test_newer_mbox_updates_only_the_changed_thread(workspace, tmp_path: Path) -> None:
    workspace.ingest([make_mbox(tmp_path / "a", "v1")])
    report = workspace.ingest([make_mbox(tmp_path / "b", "v2")])
    assert (report.added, report.updated, report.unchanged, report.deleted) == (0, 1, 1, 0)
    text = workspace.store.document_text(stored_documents(workspace)[THREAD].id)
    assert "dinner on the 15th is at 19:30" in text


def test_spam_and_trash_on_request(workspace, tmp_path: Path) -> None:
    report = workspace.ingest([make_mbox(tmp_path)], include_spam_trash=True)
    assert report.added == 3 and not report.skipped


def test_an_mbox_inside_a_folder_is_read_as_mail(workspace, tmp_path: Path) -> None:
    folder = tmp_path / "takeout"
    folder.mkdir()
    make_mbox(folder)
    (folder / "notes.md").write_text("# Notes\n\nThe offsite is in May.\n")
    report = workspace.ingest([folder])
    # Two threads, the note and the PDF make_mbox leaves beside the mbox (it attaches it).
    assert report.added == 4
    assert THREAD in stored_documents(workspace)
    assert not [s for s in report.skipped if s.reason == "unsupported type"]


def test_source_gmail_on_a_file_that_is_not_an_mbox_says_so(workspace, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("Just some notes.\n")
    report = workspace.ingest([notes], source="gmail")
    assert report.added == 0
    assert [(f.source, f.reason) for f in report.failed] == [
        (
            str(notes),
            "not an mbox file: it must start with a 'From ' line "
            "(Gmail exports mail as .mbox files in Google Takeout)",
        )
    ]


def test_an_empty_or_garbage_mbox_is_named_as_a_failure(workspace, tmp_path: Path) -> None:
    """Issue 28: a zero-byte .mbox went unmentioned, and random bytes after a 'From ' line
    were indexed as a message of 1970 made of replacement characters."""
    import random

    folder = tmp_path / "takeout"
    folder.mkdir()
    noise = random.Random(28).randbytes(4096)
    (folder / "empty.mbox").write_bytes(b"")
    (folder / "noise.mbox").write_bytes(noise)
    (folder / "mangled.mbox").write_bytes(
        b"From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n" + noise.replace(b"\nFrom ", b"")
    )
    report = workspace.ingest([folder])
    assert report.added == 0 and not stored_documents(workspace)
    reasons = {Path(f.source).name: f.reason for f in report.failed}
    assert reasons == {
        "empty.mbox": "empty mailbox: the .mbox file holds no mail",
        "noise.mbox": "not an mbox file: it must start with a 'From ' line "
        "(Gmail exports mail as .mbox files in Google Takeout)",
        "mangled.mbox": "not an mbox file: no message in it could be read "
        "(malformed message: no mail headers)",
    }
