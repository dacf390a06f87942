"""Notion Markdown & CSV exports: hierarchy, links, databases, attachments, sync."""

from __future__ import annotations

from pathlib import Path

import pytest

from citewise.connectors import detect_source
from exports import (
    CAMPAIGN,
    LOGIN,
    ONCALL,
    PROJECTS,
    RECIPES,
    SPRINT_ROWS,
    TASKS,
    WIKI,
    make_notion_export,
    make_notion_projects_export,
    stored_documents,
)


@pytest.mark.slow
def test_pages_databases_and_attachments(workspace, tmp_path: Path) -> None:
    export = make_notion_export(tmp_path)
    assert detect_source(str(export)) == "notion"
    report = workspace.ingest([export])
    assert report.failed == [] and report.added == 7
    docs = stored_documents(workspace)
    wiki = docs[f"notion://{WIKI}/{WIKI}"]
    text = workspace.store.document_text(wiki.id)
    assert "See the on-call guide (On-call) and Tasks." in text
    assert wiki.metadata["url"] == f"https://www.notion.so/{WIKI}"
    login = docs[f"notion://{WIKI}/{LOGIN}"]
    assert login.metadata["properties"] == {"Status": "Done", "Owner": "Alice"}
    assert login.metadata["path"] == ["Engineering Wiki", "Tasks"]
    rows = {d.title: d for d in docs.values() if d.metadata.get("database") == "Tasks"}
    assert set(rows) == {"Tasks: Migrate to Postgres 17", "Tasks: Café menu ☕"}
    migrate = rows["Tasks: Migrate to Postgres 17"]
    assert migrate.metadata["properties"]["Owner"] == "Bob"
    assert "Status: In progress" in workspace.store.document_text(migrate.id)
    assert any(d.title == "Pager runbook" for d in docs.values())

    hit = workspace.search("page the secondary engineer", k=1)[0]
    assert hit.source == f"notion://{WIKI}/{ONCALL}"
    assert hit.heading_path == ("Engineering Wiki", "On-call", "Escalation")
    pdf = workspace.search("reset the pager red button", k=1)[0]
    assert pdf.page == 2 and pdf.heading_path[:3] == (
        "Engineering Wiki",
        "On-call",
        "pager-runbook.pdf",
    )
    answer = workspace.ask("When do we page the secondary engineer?")
    assert answer.citations[0].hit.source == f"notion://{WIKI}/{ONCALL}"


def test_newer_export_updates_and_deletes_within_its_trees(workspace, tmp_path: Path) -> None:
    workspace.ingest([make_notion_export(tmp_path / "a", "v1")])
    report = workspace.ingest([make_notion_export(tmp_path / "b", "v2", nested_zip=False)])
    # On-call changed; the login page left the wiki (its row is now a record);
    # Recipes is another tree, absent from this export, so it stays.
    assert (report.updated, report.deleted, report.added) == (1, 1, 1)
    docs = stored_documents(workspace)
    assert f"notion://{WIKI}/{LOGIN}" not in docs
    assert f"notion://{RECIPES}/{RECIPES}" in docs
    assert "after 10 minutes" in workspace.store.document_text(docs[f"notion://{WIKI}/{ONCALL}"].id)


def test_whole_workspace_export_deletes_trees_missing_from_it(workspace, tmp_path: Path) -> None:
    workspace.ingest([make_notion_export(tmp_path / "a", "v1")])
    broken = make_notion_export(tmp_path / "b", "v2", broken_csv=True)
    report = workspace.ingest([broken], whole_workspace=True)
    assert report.deleted == 0, "an export with a broken part is not known to be whole"
    assert f"notion://{RECIPES}/{RECIPES}" in stored_documents(workspace)
    report = workspace.ingest([make_notion_export(tmp_path / "c", "v2")], whole_workspace=True)
    docs = stored_documents(workspace)
    assert f"notion://{RECIPES}/{RECIPES}" not in docs  # its tree left the workspace
    assert f"notion://{WIKI}/{LOGIN}" not in docs and f"notion://{WIKI}/{ONCALL}" in docs
    assert report.deleted == 2


def test_whole_workspace_flag_from_the_cli(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from citewise import Workspace
    from citewise.cli import cli

    def recipes_stored() -> bool:
        with Workspace.open(tmp_path / "ws") as workspace:
            return f"notion://{RECIPES}/{RECIPES}" in stored_documents(workspace)

    runner, ws = CliRunner(), str(tmp_path / "ws")
    for args in (
        ["ingest", str(make_notion_export(tmp_path / "a", "v1"))],
        ["ingest", str(make_notion_export(tmp_path / "b", "v2"))],
    ):
        result = runner.invoke(cli, ["-w", ws, *args])
        assert result.exit_code == 0, result.output
    assert recipes_stored()
    v2 = str(tmp_path / "b" / "Export-v2.zip")
    pruned = runner.invoke(cli, ["-w", ws, "ingest", "--whole-workspace", v2])
    assert pruned.exit_code == 0 and "deleted 1," in pruned.output, pruned.output
    assert not recipes_stored()


def test_broken_database_and_truncated_zip(workspace, tmp_path: Path) -> None:
    workspace.ingest([make_notion_export(tmp_path / "a", "v1")])
    before = set(stored_documents(workspace))
    report = workspace.ingest([make_notion_export(tmp_path / "b", "v2", broken_csv=True)])
    assert len(report.failed) == 1
    assert report.failed[0].source.endswith(f"Tasks {TASKS}_all.csv")
    assert "unreadable database" in report.failed[0].reason
    assert report.deleted == 0, "a tree with a broken part deletes nothing"
    assert set(stored_documents(workspace)) == before
    archive = make_notion_export(tmp_path / "c", "v1")
    archive.write_bytes(archive.read_bytes()[:200])
    truncated = workspace.ingest([archive], source="notion")
    assert len(truncated.failed) == 1 and "unreadable Notion export" in truncated.failed[0].reason


def _zip_folder(folder: Path, target: Path, extra: dict[str, bytes] | None = None) -> Path:
    import zipfile

    with zipfile.ZipFile(target, "w") as out:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                out.write(path, path.relative_to(folder.parent).as_posix())
        for name, data in (extra or {}).items():
            out.writestr(name, data)
    return target


def test_macos_zip_metadata_is_not_a_failure_and_deletes_still_work(
    workspace, tmp_path: Path
) -> None:
    """A zip made on macOS holds __MACOSX/._Page.md AppleDouble files beside the export."""
    folder = make_notion_export(tmp_path, nested_zip=False)
    apple = {
        f"__MACOSX/{folder.name}/._Recipes {RECIPES}.md": b"\x00\x05\x16\x07binary",
        f"{folder.name}/.DS_Store": b"\x00\x00\x00\x01Bud1",
    }
    first = _zip_folder(folder, tmp_path / "v1.zip", apple)
    assert detect_source(str(first)) == "notion"
    report = workspace.ingest([first])
    assert report.failed == [] and report.added == 7
    (folder / f"Recipes {RECIPES}.md").unlink()  # deleted in Notion, exported again
    second = _zip_folder(folder, tmp_path / "v2.zip", apple)
    again = workspace.ingest([second], whole_workspace=True)
    assert again.failed == [] and again.deleted == 1
    assert f"notion://{RECIPES}/{RECIPES}" not in stored_documents(workspace)


def test_an_unzipped_export_in_its_wrapping_folder_is_an_export(workspace, tmp_path: Path) -> None:
    folder = make_notion_export(tmp_path / "Export-5a1b2c", nested_zip=False)
    wrapper = folder.parent
    assert detect_source(str(wrapper)) == "notion"
    report = workspace.ingest([wrapper])
    assert report.added == 7
    assert f"notion://{WIKI}/{WIKI}" in stored_documents(workspace)


def test_an_export_of_databases_only_is_detected(workspace, tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / f"Reading list {TASKS}.csv").write_text(
        "Name,Author\nDune,Frank Herbert\nEmma,Jane Austen\n", encoding="utf-8"
    )
    assert detect_source(str(folder)) == "notion"
    report = workspace.ingest([folder])
    titles = {d.title for d in stored_documents(workspace).values()}
    assert report.added == 2 and titles == {"Reading list: Dune", "Reading list: Emma"}


def test_a_linked_database_view_does_not_duplicate_its_row_pages(workspace, tmp_path: Path) -> None:
    folder = make_notion_export(tmp_path, nested_zip=False)
    # A page elsewhere embeds a linked view of Tasks: Notion exports its rows again.
    board = folder / f"Team board {'6' * 32}"
    board.mkdir()
    (board / f"Tasks {'7' * 32}.csv").write_text(
        "Name,Status,Owner,Due\nFix login bug,Done,Alice,2026-01-10\n", encoding="utf-8"
    )
    report = workspace.ingest([folder])
    titles = [d.title for d in stored_documents(workspace).values()]
    assert report.failed == []
    assert "Fix login bug" in titles and "Tasks: Fix login bug" not in titles


def test_a_zip_bomb_member_is_refused_from_its_directory(workspace, tmp_path: Path) -> None:
    """A page that inflates past the per-file limit is named and skipped before it is read
    (the zip weighs well under a megabyte); the rest of the export is ingested."""
    import resource
    import zipfile

    from citewise.connectors.archive import MAX_MEMBER_BYTES

    folder = make_notion_export(tmp_path, nested_zip=False)
    bomb = tmp_path / "bomb.zip"
    _zip_folder(folder, bomb)
    with zipfile.ZipFile(bomb, "a", zipfile.ZIP_DEFLATED) as out:
        name = f"{folder.name}/Huge {'8' * 32}.md"
        with out.open(name, "w", force_zip64=True) as member:
            zeros = b"\0" * (1 << 20)
            for _ in range(MAX_MEMBER_BYTES // len(zeros) + 8):
                member.write(zeros)
    assert bomb.stat().st_size < 2 * 1024 * 1024
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = workspace.ingest([bomb])
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert report.added == 7
    (failure,) = report.failed
    assert (
        failure.source.endswith(f"Huge {'8' * 32}.md") and "over the 256 MB limit" in failure.reason
    )
    assert grown_mb < 100  # the member was never inflated


def test_a_truncated_zip_is_named_as_such(workspace, tmp_path: Path) -> None:
    archive = make_notion_export(tmp_path, "v1")
    archive.write_bytes(archive.read_bytes()[:300])
    report = workspace.ingest([archive])  # no connector recognises it any more
    (failure,) = report.failed
    assert failure.reason.startswith("corrupt or truncated zip archive")


def test_relations_linked_views_images_and_bold_headings(workspace, tmp_path: Path) -> None:
    """Issue 28: relation values kept their URL-encoded paths, a linked view's rows were
    indexed twice, attached images went unmentioned, and bold headings kept their **."""
    folder = make_notion_projects_export(tmp_path)
    report = workspace.ingest([folder])
    assert report.failed == []
    docs = stored_documents(workspace)
    tasks = {d.title: d for d in docs.values() if d.metadata.get("database") == "Tasks"}
    assert sorted(tasks) == sorted(f"Tasks: {name}" for name, _, _ in SPRINT_ROWS)  # once each
    brief = tasks["Tasks: Write the brief"]
    assert brief.metadata["properties"]["Project"] == "Marketing campaign"
    text = workspace.store.document_text(brief.id)
    assert "Project: Marketing campaign" in text and "%20" not in text and ".md" not in text
    draft = tasks["Tasks: Pick launch date"].metadata["properties"]["Project"]
    assert draft == "Q3 (draft) plan"
    campaign = docs[f"notion://{PROJECTS}/{CAMPAIGN}"]
    assert campaign.metadata["properties"]["Design RFC"] == "Product Design RFC"
    assert "%20" not in workspace.store.document_text(campaign.id)

    skipped = {Path(s.source).name: s.reason for s in report.skipped}
    assert skipped == {
        "whiteboard.png": "an image: its text is not read (no OCR)",
        "mockup.jpg": "an image: its text is not read (no OCR)",
    }
    # Four pages, the Projects row without a page, three tasks: nothing twice.
    assert report.added == len(docs) == 8

    hit = workspace.search("interviewed twelve customers onboarding", k=1)[0]
    assert hit.heading_path == ("Design", "Product Design RFC", "📊 Research")
