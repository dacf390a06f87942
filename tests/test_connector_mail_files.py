"""Mail as people save it: .eml files (threaded like an mbox's mail, with an .mbox beside
them too) and browser-saved .mht/.mhtml pages; bad ones named as failures."""

from __future__ import annotations

from pathlib import Path

from citewise.connectors import detect_source
from conftest import make_docx
from exports import make_eml, make_mbox, make_mht, stored_documents


def test_an_eml_with_an_attachment(workspace, tmp_path: Path) -> None:
    docx = make_docx(tmp_path / "policy.docx")
    eml = make_eml(
        tmp_path / "mail" / "Travel policy update.eml",
        "Travel policy update",
        "Hi team, from February the night train to Vienna counts as a business trip.",
        "travel-1@example.com",
        attachments=[
            ("policy.docx", docx.read_bytes(), "application/vnd.openxmlformats-officedocument"),
            ("notes.txt", b"Receipts go to finance within 30 days.", "text/plain"),
        ],
    )
    assert detect_source(str(eml)) == "gmail"
    report = workspace.ingest([tmp_path / "mail"])
    assert (report.added, report.failed) == (1, [])
    [(source, doc)] = stored_documents(workspace).items()
    assert source.startswith("gmail://mail/thread/")
    assert doc.title == "Travel policy update"
    assert doc.metadata["authors"] == ["Alice Chen"]
    assert doc.metadata["message_ids"] == ["travel-1@example.com"]
    body = workspace.search("night train to Vienna business trip", k=1)[0]
    assert body.source == source
    assert body.heading_path == (
        "Travel policy update",
        "Alice Chen 2026-01-05 10:00 <travel-1@example.com>",
    )
    attached = workspace.search("daily meal allowance abroad", k=1)[0]
    assert attached.source == source
    assert attached.heading_path[-1] == "attachment policy.docx"
    assert "within 30 days" in workspace.store.document_text(doc.id)


def test_eml_files_of_one_thread_are_one_thread(workspace, tmp_path: Path) -> None:
    folder = tmp_path / "saved"
    make_eml(
        folder / "a.eml",
        "Server room access",
        "The server room badge readers are replaced on Thursday.",
        "access-1@example.com",
    )
    make_eml(
        folder / "b.eml",
        "Re: Server room access",
        "Thanks. Until then, borrow the spare key from reception.\n\n"
        "On Mon, Jan 5, 2026 Alice Chen wrote:\n> The server room badge readers are replaced",
        "access-2@example.com",
        reply_to="access-1@example.com",
        sender="Bob Martin <bob@example.com>",
        date="Mon, 05 Jan 2026 11:00:00 +0000",
    )
    make_eml(
        folder / "c.eml",
        "Lunch",
        None,
        "lunch-1@example.com",
        html="<div><p>The <b>canteen</b> is closed on Friday.</p></div>",
    )
    report = workspace.ingest([folder])
    assert (report.added, report.failed) == (2, [])
    docs = stored_documents(workspace)
    thread = next(d for d in docs.values() if d.title == "Server room access")
    text = workspace.store.document_text(thread.id)
    assert "borrow the spare key" in text and text.count("badge readers") == 1
    assert thread.metadata["authors"] == ["Alice Chen", "Bob Martin"]
    lunch = next(d for d in docs.values() if d.title == "Lunch")
    assert "The canteen is closed on Friday." in workspace.store.document_text(lunch.id)
    again = workspace.ingest([folder])
    assert (again.added, again.updated, again.unchanged) == (0, 0, 2)


def test_an_eml_beside_the_mbox_joins_its_thread(workspace, tmp_path: Path) -> None:
    mbox = make_mbox(tmp_path / "takeout")
    make_eml(
        mbox.parent / "dinner.eml",
        "Re: Q3 offsite venue",
        "Saved from my phone: the dinner boat is booked for 20 people.",
        "offsite-saved@example.com",
        reply_to="offsite-3@example.com",
        date="Wed, 07 Jan 2026 09:00:00 +0000",
    )
    make_eml(  # the mbox's own message, saved as a file too: read once
        mbox.parent / "copy.eml",
        "Invoice 2231",
        "Invoice 2231 for 1,240 EUR is due on 31 January.",
        "invoice-1@example.com",
    )
    report = workspace.ingest([mbox.parent])
    assert report.added == 3 and report.failed == []  # two threads, and agenda.pdf beside them
    docs = stored_documents(workspace)
    offsite = docs["gmail://me@example.com/thread/1789000000000000001"]
    assert "the dinner boat is booked for 20 people" in workspace.store.document_text(offsite.id)
    assert offsite.metadata["message_ids"][-1] == "offsite-saved@example.com"
    invoice = next(d for d in docs.values() if d.title == "Invoice 2231")
    assert workspace.store.document_text(invoice.id).count("1,240 EUR") == 1


def test_a_browser_saved_mht_page(workspace, tmp_path: Path) -> None:
    folder = tmp_path / "pages"
    make_mht(
        folder / "Onboarding checklist.mhtml",
        "Onboarding checklist – IT",
        ["New laptops are imaged by the service desk within two working days.",
         "Request VPN access through the self-service portal; approval takes a day."],
    )  # fmt: skip
    report = workspace.ingest([folder])
    assert (report.added, report.failed) == (1, [])
    [doc] = stored_documents(workspace).values()
    assert doc.title == "Onboarding checklist – IT"
    text = workspace.store.document_text(doc.id)
    assert "approval takes a day" in text and "Home" not in text and "color" not in text
    hit = workspace.search("how long does laptop imaging take", k=1)[0]
    assert hit.source == str(folder / "Onboarding checklist.mhtml")


def test_bad_eml_and_mht_are_named_as_failures(workspace, tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "notes.eml").write_text("Just some notes, not a message.\nSecond line.\n")
    (folder / "empty.eml").write_bytes(b"")
    (folder / "noise.eml").write_bytes(bytes(range(256)) * 8)
    (folder / "text.mht").write_text(
        "MIME-Version: 1.0\nContent-Type: text/plain\n\nNo page in here.\n"
    )
    (folder / "garbage.mhtml").write_bytes(bytes(range(256)) * 8)
    report = workspace.ingest([folder])
    assert report.added == 0 and not stored_documents(workspace)
    reasons = {Path(f.source).name: f.reason for f in report.failed}
    no_html = (
        "not a MIME HTML archive (.mht): no text/html part in it "
        "(a browser saves a page as multipart/related with the HTML first)"
    )
    assert reasons == {
        "notes.eml": "not an e-mail message (.eml): no message in it could be read "
        "(malformed message: no mail headers)",
        "empty.eml": "empty file: the .eml file holds no message",
        "noise.eml": reasons["noise.eml"],
        "text.mht": no_html,
        "garbage.mhtml": no_html,
    }
    assert reasons["noise.eml"].startswith("not an e-mail message (.eml)")
