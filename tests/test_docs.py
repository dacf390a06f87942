"""The documentation: generated reference pages match the code, and the README's way into docs/."""

from __future__ import annotations

import importlib.util
import re
import unicodedata
from pathlib import Path

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
STALE = "out of date: run `make docs` (docs/gen_reference.py)"


def generator():
    spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def slug(heading: str) -> str:
    """An anchor as MkDocs (Python-Markdown's toc) makes it from a heading."""
    text = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.S | re.M)
    return {slug(m[1]) for m in re.finditer(r"^#{1,6} (.+?)\s*$", text, re.M)}


def test_settings_reference_lists_every_setting_row() -> None:
    from citewise.config import SETTINGS, env_var

    gen = generator()
    page = DOCS / "reference" / "settings.md"
    text = page.read_text(encoding="utf-8")
    assert text == gen.render_settings(), f"{page.relative_to(ROOT)} is {STALE}"
    rows = {}
    for line in text.splitlines():
        if line.startswith("| `"):
            cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
            rows[cells[0].strip("`")] = cells[1:]
    assert len(rows) == len(SETTINGS)
    for setting in SETTINGS:
        assert rows.get(setting.name) == [
            f"`{setting.default!r}`",
            f"`{env_var(setting.name)}`",
            gen.cell(setting.help),
        ], setting.name


def test_cli_reference_shows_the_help_of_every_command() -> None:
    import click

    from citewise.cli import cli

    page = DOCS / "reference" / "cli.md"
    text = page.read_text(encoding="utf-8")
    assert text == generator().render_cli(), f"{page.relative_to(ROOT)} is {STALE}"
    for name, command in cli.commands.items():
        assert f"## citewise {name}\n" in text, name
        if isinstance(command, click.Group):
            for sub in command.commands:
                assert f"### citewise {name} {sub}\n" in text, f"{name} {sub}"


def test_readme_links_into_docs_point_at_pages_and_headings_that_exist() -> None:
    readme = README.read_text(encoding="utf-8")
    links = re.findall(r"\]\((docs/[^)\s#]+)(?:#([^)\s]+))?\)", readme)
    assert len(links) >= 10, "the README points into docs/ for everything past the first steps"
    for target, anchor in links:
        page = ROOT / target
        assert page.is_file(), target
        if anchor:
            assert anchor in anchors(page), f"{target}#{anchor}"


def test_readme_is_an_introduction_with_the_served_snippet() -> None:
    readme = README.read_text(encoding="utf-8")
    assert len(readme.splitlines()) < 300, "README.md grew past 300 lines: move detail into docs/"
    for command in ("make demo", "make test"):
        assert command in readme

    def snippet(text: str) -> str:
        marker = text.index("<!-- snippet: openai-sdk")
        return re.search(r"```python\n(.*?)```", text[marker:], re.S).group(1)

    server = (DOCS / "guide" / "server.md").read_text(encoding="utf-8")
    assert snippet(server) == snippet(readme), "docs/guide/server.md shows the README's snippet"
