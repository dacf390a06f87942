"""Slack exports: threads, rendering, principals, incremental sync and broken input."""

from __future__ import annotations

from pathlib import Path

import pytest

from citewise.connectors import detect_source
from exports import TEAM, make_slack_dated_export, make_slack_export, stored_documents

GENERAL = f"slack://{TEAM}/archives/C01GENERAL"


def test_threads_windows_and_rendering(workspace, tmp_path: Path) -> None:
    export = make_slack_export(tmp_path)
    assert detect_source(str(export)) == "slack"
    report = workspace.ingest([export])
    assert report.failed == []
    stored = stored_documents(workspace)
    thread = stored[f"{GENERAL}/p1767607320000100"]
    text = workspace.store.document_text(thread.id)
    # The reply posted a day later belongs to the thread; the bot and the join are gone.
    assert "Done, the new password is in the vault." in text
    assert "Deploy #412" not in text and "has joined" not in text
    assert "@Bob Martin you did it last time" in text
    assert "restart the API pods 🎉 see the runbook (https://wiki.example.com/db)" in text
    assert thread.metadata["principals"] == ["Alice Chen", "Bob Martin", "Zoé"]
    assert thread.metadata["authors"] == ["Alice Chen", "Bob Martin"]
    assert thread.metadata["locator"] == "archives/C01GENERAL/p1767607320000100"
    assert thread.metadata["thread_ts"] == "1767607320.000100"
    lunch = next(r for s, r in stored.items() if "Lunch" in r.title)
    lunch_text = workspace.store.document_text(lunch.id)
    assert "4th floor today & tomorrow 🍕" in lunch_text and "@here the café closes" in lunch_text
    assert lunch.metadata["thread_ts"] is None  # a time window, not a thread
    design = next(r for r in stored.values() if r.metadata["channel"] == "#design")
    assert "[file: Logo v3]" in workspace.store.document_text(design.id)
    dm = next(r for r in stored.values() if r.metadata["conversation_kind"] == "dm")
    assert dm.metadata["channel"] == "DM Alice Chen, Bob Martin"
    assert len(stored) == 5


@pytest.mark.slow
def test_answer_cites_the_thread(workspace, tmp_path: Path) -> None:
    workspace.ingest([make_slack_export(tmp_path)])
    hits = workspace.search("rotate the staging database password", k=3)
    assert hits[0].source == f"{GENERAL}/p1767607320000100"
    assert hits[0].location.startswith("#general > thread 2026-01-05 10:02 by Alice Chen")
    answer = workspace.ask("How do we rotate the staging database password?")
    assert answer.citations[0].hit.source == f"{GENERAL}/p1767607320000100"
    filtered = workspace.search("password", where={"channel": "#random"})
    assert all(h.source.startswith(f"slack://{TEAM}/archives/C02RANDOM") for h in filtered)


def test_newer_export_updates_adds_and_deletes(workspace, tmp_path: Path) -> None:
    first = workspace.ingest([make_slack_export(tmp_path, "v1")])
    assert first.added == 5
    second = workspace.ingest([make_slack_export(tmp_path, "v2")])
    assert (second.added, second.updated, second.unchanged, second.deleted) == (1, 1, 3, 1)
    stored = stored_documents(workspace)
    assert not any("C02RANDOM" in s for s in stored)
    thread = stored[f"{GENERAL}/p1767607320000100"]
    assert "every quarter" in workspace.store.document_text(thread.id)
    assert "(edited)" in workspace.store.document_text(thread.id)
    again = workspace.ingest([make_slack_export(tmp_path, "v2")])
    assert (again.added, again.updated, again.deleted, again.unchanged) == (0, 0, 0, 5)


def test_a_malformed_day_file_is_reported_and_keeps_its_channel(workspace, tmp_path: Path) -> None:
    workspace.ingest([make_slack_export(tmp_path, "v1")])
    broken = make_slack_export(tmp_path / "b", "v2", broken_day=True)
    report = workspace.ingest([broken])
    assert len(report.failed) == 1
    failure = report.failed[0]
    assert (
        failure.source.endswith("design/2026-01-06.json") and "malformed day file" in failure.reason
    )
    # Everything else was ingested; nothing the broken export could not vouch for was deleted.
    assert report.deleted == 1  # the random channel: its folder was read completely
    stored = stored_documents(workspace)
    assert any("G01DESIGN" in s for s in stored)
    assert "Reminder" in " ".join(r.title for r in stored.values())
    status = workspace.status()
    assert status.runs[0]["failures"][0][0].endswith("2026-01-06.json")


def test_a_truncated_zip_fails_alone(workspace, tmp_path: Path) -> None:
    workspace.ingest([make_slack_export(tmp_path, "v1")])
    archive = make_slack_export(tmp_path / "t", "v2")
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    report = workspace.ingest([archive], source="slack")
    assert len(report.failed) == 1 and "unreadable Slack export" in report.failed[0].reason
    assert report.deleted == 0 and len(stored_documents(workspace)) == 5


def test_unzipped_folder_works_too(workspace, tmp_path: Path) -> None:
    folder = make_slack_export(tmp_path, as_zip=False)
    assert detect_source(str(folder)) == "slack"
    assert workspace.ingest([folder]).added == 5


JAN_FEB = {
    "2026-01-05": ["The wiki moved to Confluence over the weekend."],
    "2026-01-20": ["Parking permits for 2026 are at the front desk."],
    "2026-02-10": ["The February all-hands is in the big auditorium."],
}
MARCH = {
    "2026-03-02": ["Quarterly security review starts next Monday."],
    "2026-03-16": ["The new coffee machine on floor 3 takes oat milk."],
}


def test_an_export_of_later_dates_keeps_older_history(workspace, tmp_path: Path) -> None:
    """Issue 28: an export of March deleted everything from January and February."""
    first = workspace.ingest([make_slack_dated_export(tmp_path, "jan-feb", JAN_FEB)])
    assert first.added == 3 and first.notes == []
    march = workspace.ingest([make_slack_dated_export(tmp_path, "march", MARCH)])
    assert (march.added, march.deleted) == (2, 0)
    assert march.notes == ["kept 3 documents outside this export's dates 2026-03-02…2026-03-16"]
    assert len(stored_documents(workspace)) == 5
    for question, day in (("where are parking permits", 20), ("oat milk coffee machine", 16)):
        hit = workspace.search(question, k=1)[0]
        assert hit.source.startswith(GENERAL) and f"-{day:02d} " in hit.location

    # A new export of January and February: what is missing from it, inside its dates, is
    # deleted (Slack deleted it); March is outside them and kept.
    edited = {day: texts for day, texts in JAN_FEB.items() if day != "2026-01-20"}
    again = workspace.ingest([make_slack_dated_export(tmp_path, "jan-feb-again", edited)])
    assert (again.deleted, again.unchanged) == (1, 2)
    assert again.notes == ["kept 2 documents outside this export's dates 2026-01-05…2026-02-10"]
    texts = " ".join(
        workspace.store.document_text(d.id) for d in stored_documents(workspace).values()
    )
    assert "Parking permits" not in texts and "oat milk" in texts and "Confluence" in texts


def test_the_summary_says_what_was_kept(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from citewise.cli import cli

    runner, ws = CliRunner(), str(tmp_path / "ws")
    for name, days in (("jan-feb", JAN_FEB), ("march", MARCH)):
        export = make_slack_dated_export(tmp_path, name, days)
        result = runner.invoke(cli, ["-w", ws, "ingest", str(export)])
        assert result.exit_code == 0, result.output
    assert "kept 3 documents outside this export's dates 2026-03-02…2026-03-16" in result.output
