"""Google Drive Takeout: converted Docs/Sheets/Slides, PDFs, multi-part zips, sync."""

from __future__ import annotations

from pathlib import Path

import pytest

from citewise.connectors import detect_source
from citewise.errors import ParseError
from citewise.parsers import parse_file
from exports import make_drive_takeout, make_pptx, make_xlsx, stored_documents


def test_xlsx_rows_keep_their_headers(tmp_path: Path) -> None:
    parsed = parse_file(make_xlsx(tmp_path / "b.xlsx", [("Platform", "Q1", 120000, "Alice")]))
    first = parsed.blocks[0]
    assert first.heading_path == ("Budget 2026", "rows 2-2")
    assert parsed.text[first.start : first.end] == (
        "Team: Platform; Quarter: Q1; Amount (EUR): 120000; Owner: Alice"
    )
    assert parsed.blocks[1].heading_path == ("Notes", "rows 2-2")
    with pytest.raises(ParseError, match="XLSX"):
        (tmp_path / "bad.xlsx").write_bytes(b"PK\x03\x04 nope")
        parse_file(tmp_path / "bad.xlsx")


def test_pptx_one_passage_per_slide_with_notes(tmp_path: Path) -> None:
    parsed = parse_file(
        make_pptx(
            tmp_path / "d.pptx",
            [("Intro", "Hello", ""), ("Roadmap", "Ship in May", "Say May twice.")],
        )
    )
    assert [b.heading_path for b in parsed.blocks] == [("Slide 1: Intro",), ("Slide 2: Roadmap",)]
    assert "Notes: Say May twice." in parsed.text
    assert parsed.title == "Intro"


@pytest.mark.slow
def test_takeout_parts_are_read_together(workspace, tmp_path: Path) -> None:
    first_part = make_drive_takeout(tmp_path)
    assert detect_source(str(first_part)) == "drive"
    report = workspace.ingest([first_part])
    assert report.failed == []
    assert report.added == 4
    assert [s.source for s in report.skipped] == ["drive://photo.jpg"]
    docs = stored_documents(workspace)
    assert set(docs) == {
        "drive://Finance/Budget.xlsx",
        "drive://Sales/Kickoff deck.pptx",
        "drive://Travel policy.docx",
        "drive://Safety.pdf",
    }
    assert docs["drive://Finance/Budget.xlsx"].metadata["format"] == "Google Sheets or Excel"
    hit = workspace.search("when does the mobile app launch", k=1)[0]
    assert hit.source == "drive://Sales/Kickoff deck.pptx"
    assert hit.heading_path == ("Kickoff deck", "Slide 2: Roadmap")
    budget = workspace.search("Platform team budget amount", k=1)[0]
    assert budget.heading_path == ("Budget", "Budget 2026", "rows 2-3")
    answer = workspace.ask("What is the daily meal allowance abroad?")
    assert "65" in answer.text
    assert answer.citations[0].hit.source == "drive://Travel policy.docx"


def test_newer_takeout_syncs_and_a_broken_part_deletes_nothing(workspace, tmp_path: Path) -> None:
    workspace.ingest([make_drive_takeout(tmp_path / "a", "v1")])
    broken = workspace.ingest([make_drive_takeout(tmp_path / "b", "v2", broken=True)])
    assert len(broken.failed) == 1 and "unreadable Takeout part" in broken.failed[0].reason
    assert broken.deleted == 0 and "drive://Safety.pdf" in stored_documents(workspace)
    report = workspace.ingest([make_drive_takeout(tmp_path / "c", "v2")])
    # The broken run already updated what its readable part held; now Safety.pdf is gone.
    assert report.deleted == 1 and report.added == 0
    assert report.updated + report.unchanged == 3
    budget = stored_documents(workspace)["drive://Finance/Budget.xlsx"]
    assert "135000" in workspace.store.document_text(budget.id)
