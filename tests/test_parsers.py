from __future__ import annotations

from pathlib import Path

import pytest

from citewise.errors import ParseError
from citewise.parsers import parse_file
from conftest import write_bad_files, write_corpus


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("parsers") / "corpus")


def block_texts(parsed):
    return [(parsed.text[b.start : b.end], b.heading_path, b.page) for b in parsed.blocks]


def test_markdown_headings_become_heading_paths(files: Path) -> None:
    parsed = parse_file(files / "guide.md")
    assert parsed.title == "Deployment guide"
    blocks = block_texts(parsed)
    rotate = next(b for b in blocks if "keyctl rotate" in b[0])
    assert rotate[1] == ("Deployment guide", "Rotating API keys")
    code = next(b for b in parsed.blocks if b.kind == "code")
    assert parsed.text[code.start : code.end].startswith("```python")
    assert code.heading_path == ("Deployment guide", "Backups")


def test_rst_sections_from_docutils(files: Path) -> None:
    parsed = parse_file(files / "billing.rst")
    assert parsed.title == "Billing manual"
    blocks = block_texts(parsed)
    refunds = next(b for b in blocks if "14 business days" in b[0])
    assert refunds[1] == ("Billing manual", "Refunds")
    disputes = next(b for b in blocks if "Chargeback" in b[0])
    assert disputes[1] == ("Billing manual", "Refunds", "Disputes")


def test_html_keeps_main_content_only(files: Path) -> None:
    parsed = parse_file(files / "handbook.html")
    assert parsed.title == "Office handbook"
    assert "var x" not in parsed.text and "Home | About" not in parsed.text
    assert "Copyright" not in parsed.text
    parking = next(b for b in block_texts(parsed) if "level P2" in b[0])
    assert parking[1] == ("Office handbook", "Parking")


def test_pdf_keeps_page_numbers(files: Path) -> None:
    parsed = parse_file(files / "safety.pdf")
    assert parsed.title == "Safety procedures"
    pages = {text: page for text, _, page in block_texts(parsed)}
    assert any("Fire drills" in t and p == 1 for t, p in pages.items())
    assert any("north parking lot" in t and p == 2 for t, p in pages.items())


def test_docx_headings_and_tables(files: Path) -> None:
    parsed = parse_file(files / "travel.docx")
    assert parsed.title == "Travel policy"
    blocks = block_texts(parsed)
    allowance = next(b for b in blocks if "65 euros" in b[0])
    assert allowance[1] == ("Travel policy", "Per diem")
    assert any("Zurich | 240 CHF" in b[0] for b in blocks)


def test_python_split_by_definitions(files: Path) -> None:
    parsed = parse_file(files / "src" / "thermostat.py")
    paths = [b.heading_path for b in parsed.blocks]
    assert ("class Thermostat", "def set_target") in paths
    assert ("def fahrenheit",) in paths
    assert parsed.metadata["language"] == "python"


def test_spans_point_into_the_text(files: Path) -> None:
    for name in (
        "guide.md",
        "billing.rst",
        "handbook.html",
        "notes.txt",
        "safety.pdf",
        "travel.docx",
    ):
        parsed = parse_file(files / name)
        assert parsed.blocks, name
        for block in parsed.blocks:
            assert 0 <= block.start < block.end <= len(parsed.text)
            assert parsed.text[block.start : block.end].strip()


def test_bad_files_raise_parse_error_with_reason(tmp_path: Path) -> None:
    expected = write_bad_files(tmp_path)
    for name, words in expected.items():
        with pytest.raises(ParseError, match=words):
            parse_file(tmp_path / name)


def test_unsupported_suffix(tmp_path: Path) -> None:
    path = tmp_path / "data.xyz"
    path.write_text("hello")
    with pytest.raises(ParseError, match=r"unsupported file type \.xyz"):
        parse_file(path)


def test_cp1252_text_is_decoded(tmp_path: Path) -> None:
    path = tmp_path / "legacy.txt"
    path.write_bytes("Caf\xe9 cr\xe8me costs 4\x80.".encode("latin-1"))
    assert "Café crème" in parse_file(path).text
