"""The connector registry: detection, --source, third-party connectors by entry point."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from citewise.connectors import BUILTIN_CONNECTORS, connector_for, detect_source
from citewise.errors import ConfigError
from conftest import CITEWISE
from exports import make_drive_takeout, make_mbox, make_notion_export, make_slack_export


def test_each_export_is_detected(tmp_path: Path) -> None:
    assert detect_source(str(make_slack_export(tmp_path / "s"))) == "slack"
    assert detect_source(str(make_notion_export(tmp_path / "n"))) == "notion"
    assert detect_source(str(make_mbox(tmp_path / "g"))) == "gmail"
    assert detect_source(str(make_drive_takeout(tmp_path / "d"))) == "drive"
    assert detect_source("https://docs.example.com/") == "web"
    (tmp_path / "notes").mkdir()
    assert detect_source(str(tmp_path / "notes")) == "files"
    assert list(BUILTIN_CONNECTORS)[-1] == "files"


def test_unknown_source_names_the_known_ones() -> None:
    with pytest.raises(
        ConfigError,
        match="known sources: discord, drive, files, gmail, messenger, notion, slack, telegram, web, whatsapp",
    ):
        connector_for("x", "dropbox")


PLUGIN = '''
from citewise.connectors import BaseConnector
from citewise.sources import text_item


class Recipes(BaseConnector):
    """One document per line of a .recipes file."""

    name = "recipes"

    @classmethod
    def detect(cls, location):
        return location.endswith(".recipes")

    def items(self):
        self._read("recipes://")
        with open(self.location, encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                title, _, text = line.partition(":")
                yield text_item(f"recipes://{title.strip()}", title.strip(), text.strip())
'''


def test_third_party_connector_by_entry_point(tmp_path: Path) -> None:
    package = tmp_path / "plugins"
    (package / "recipes_connector").mkdir(parents=True)
    (package / "recipes_connector" / "__init__.py").write_text(PLUGIN)
    dist = package / "recipes_connector-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: recipes-connector\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[citewise.connectors]\nrecipes = recipes_connector:Recipes\n"
    )
    recipes = tmp_path / "family.recipes"
    recipes.write_text(
        "Tarte tatin: caramelise six apples in butter, then bake under pastry.\n"
        "Ratatouille: stew courgettes, aubergines and tomatoes slowly.\n"
    )
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(package)!r})
        from citewise import Workspace
        from citewise.connectors import detect_source
        assert detect_source({str(recipes)!r}) == "recipes"
        with Workspace.open({str(tmp_path / "ws")!r}) as ws:
            report = ws.ingest([{str(recipes)!r}])
            print(report.added, ws.search("apples caramelised", k=1)[0].source)
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2 recipes://Tarte tatin"


def test_cli_ingests_an_export_with_a_streamed_progress(tmp_path: Path) -> None:
    export = make_slack_export(tmp_path)
    workspace = tmp_path / "ws"
    result = subprocess.run(
        [CITEWISE, "-w", str(workspace), "ingest", str(export), "-c", "slack"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("added 5, updated 0, unchanged 0, failed 0")
    forced = subprocess.run(
        [
            CITEWISE,
            "-w",
            str(workspace),
            "ingest",
            str(export),
            "-c",
            "files2",
            "--source",
            "files",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert forced.returncode == 0
    assert "a zip archive read as plain files" in forced.stderr
    asked = subprocess.run(
        [
            CITEWISE,
            "-w",
            str(workspace),
            "search",
            "staging database password",
            "-c",
            "slack",
            "-k",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "slack://T0CITEWISE/archives/C01GENERAL/p1767607320000100" in asked.stdout
