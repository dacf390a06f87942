from __future__ import annotations

from pathlib import Path

import pytest

from citewise import ConfigError
from citewise.config import CONFIG_FILE, SETTINGS, Settings, config_template


def test_precedence_argument_file_environment_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Settings.load(tmp_path).top_k == 5
    monkeypatch.setenv("CITEWISE_TOP_K", "7")
    assert Settings.load(tmp_path).top_k == 7
    (tmp_path / CONFIG_FILE).write_text("top_k = 9\n")
    assert Settings.load(tmp_path).top_k == 9
    assert Settings.load(tmp_path, top_k=11).top_k == 11


def test_invalid_settings_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / CONFIG_FILE).write_text("top_kk = 3\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        Settings.load(tmp_path)
    (tmp_path / CONFIG_FILE).write_text("top_k = \n")
    with pytest.raises(ConfigError, match=CONFIG_FILE):
        Settings.load(tmp_path)
    monkeypatch.setenv("CITEWISE_CONTEXT_WINDOW", "big")
    with pytest.raises(ConfigError, match="context_window"):
        Settings.load(None)
    monkeypatch.delenv("CITEWISE_CONTEXT_WINDOW")
    with pytest.raises(ConfigError, match="fusion must be 'adaptive', 'convex' or 'rrf'"):
        Settings.load(None, fusion="avg")


def test_template_documents_every_setting() -> None:
    template = config_template()
    for setting in SETTINGS:
        assert f"# {setting.name} = " in template
        assert setting.help in template


def test_readme_documents_every_setting_and_command() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for setting in SETTINGS:
        assert f"`{setting.name}`" in readme, setting.name
    from citewise.cli import cli

    for name in cli.commands:
        assert f"citewise {name}" in readme, name
