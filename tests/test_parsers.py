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


# -- issue 28: layouts real files come in ------------------------------------------------

DIV_PAGE = """\
<!doctype html><html><head><title>Kitchen rules</title></head><body>
<div class="page"><div class="content"><div class="section">
<div class="title">Fridge</div>
<div class="text">Label your food with <b>your name</b> and the date.</div>
<div class="text">The fridge is emptied every <a href="/fri">Friday</a> at 16:00.</div>
</div></div></div></body></html>
"""


def test_html_text_directly_in_divs_is_read(tmp_path: Path) -> None:
    """A page built of divs, no <p> at all: it failed with "no text found in file"."""
    path = tmp_path / "kitchen.html"
    path.write_text(DIV_PAGE, encoding="utf-8")
    parsed = parse_file(path)
    assert [t for t, _, _ in block_texts(parsed)] == [
        "Fridge",
        "Label your food with your name and the date.",
        "The fridge is emptied every Friday at 16:00.",
    ]
    shallow = tmp_path / "shallow.html"
    shallow.write_text("<html><body><div>Depth one: the only text.</div></body></html>")
    assert parse_file(shallow).text == "Depth one: the only text."


def test_html_div_with_inline_text_and_child_blocks_reads_each_once(tmp_path: Path) -> None:
    path = tmp_path / "mixed.html"
    path.write_text(
        "<html><body><main><h1>Visitors</h1>"
        "<div>Sign in at the <em>front desk</em>.<p>Badges are yellow.</p>Return them "
        "on leaving.<div>Escort <span>visitors</span> at all times.</div><!-- a note --></div>"
        "<ul><li>Wi-Fi: <p>guest network</p></li></ul></main></body></html>",
        encoding="utf-8",
    )
    parsed = parse_file(path)
    texts = [(t, h) for t, h, _ in block_texts(parsed)]
    assert texts == [
        ("Visitors", ("Visitors",)),
        ("Sign in at the front desk.", ("Visitors",)),
        ("Badges are yellow.", ("Visitors",)),
        ("Return them on leaving.", ("Visitors",)),
        ("Escort visitors at all times.", ("Visitors",)),
        ("Wi-Fi: guest network", ("Visitors",)),
    ]
    for sentence in ("front desk", "yellow", "leaving", "Escort", "guest network"):
        assert parsed.text.count(sentence) == 1, sentence
    assert "a note" not in parsed.text


def test_markdown_heading_paths_are_plain_text(tmp_path: Path) -> None:
    """Notion writes headings as "## **📊 Research**": the ** stayed in every location."""
    path = tmp_path / "rfc.md"
    path.write_text(
        "# Product Design RFC\n\n## **📊 Research**\n\nTwelve interviews.\n\n"
        "### _Findings_ in `v2` and [the survey](survey.md)\n\nUsers want exports.\n",
        encoding="utf-8",
    )
    parsed = parse_file(path)
    found = {t: h for t, h, _ in block_texts(parsed)}
    assert found["Twelve interviews."] == ("Product Design RFC", "📊 Research")
    assert found["Users want exports."] == (
        "Product Design RFC",
        "📊 Research",
        "Findings in v2 and the survey",
    )


def test_a_docx_that_is_not_word_says_so_in_plain_words(tmp_path: Path) -> None:
    import zipfile

    empty = tmp_path / "empty.docx"
    zipfile.ZipFile(empty, "w").close()
    # The layout that raised "'lxml.etree._Element' object has no attribute 'overrides'":
    # a zip whose [Content_Types].xml is XML, but not Office's.
    foreign = tmp_path / "foreign.docx"
    with zipfile.ZipFile(foreign, "w") as out:
        out.writestr("[Content_Types].xml", "<Types/>")
        out.writestr("word/document.xml", "<document>Hello</document>")
    for path, words in (
        (empty, "not a Word document: the zip archive is empty"),
        (foreign, "not a Word document: its [Content_Types].xml, relationships or"),
    ):
        with pytest.raises(ParseError) as caught:
            parse_file(path)
        assert str(caught.value).startswith(words), caught.value
        assert "Error" not in str(caught.value) and "lxml" not in str(caught.value)


def test_srt_errors_name_the_line_in_plain_words(tmp_path: Path) -> None:
    path = tmp_path / "broken.srt"
    path.write_text(
        "1\n00:00:01,000 --> 00:00:03,000\nGood morning.\n\n"
        "2\n00:00:04,000 --> soon\nThis timing is broken.\n",
        encoding="utf-8",
    )
    with pytest.raises(ParseError) as caught:
        parse_file(path)
    message = str(caught.value)
    assert message.startswith(
        "malformed SRT: cannot read the cue at line 6: '00:00:04,000 --> soon'"
    )
    assert "Expected contiguous" not in message and "char " not in message


def test_an_srt_cue_without_its_timing_line_leaks_no_number(tmp_path: Path) -> None:
    """The missing_timeframe.srt layout: cue 2 has its number and text, no timing line."""
    path = tmp_path / "missing_timeframe.srt"
    path.write_text(
        "1\n00:00:01,000 --> 00:00:04,000\nWelcome to the onboarding call.\n\n"
        "2\nBadges are in the top drawer.\n\n"
        "3\n00:00:05,000 --> 00:00:08,000\nLet us start with security.\n\n"
        "4\n",
        encoding="utf-8",
    )
    text = parse_file(path).text
    assert "Badges are in the top drawer." in text and "Let us start with security." in text
    assert not any(number in text.split() for number in ("2", "4")), text


def test_sbv_captions_are_a_timed_transcript(tmp_path: Path) -> None:
    """YouTube's caption format: "H:MM:SS.mmm,H:MM:SS.mmm", the text, a blank line."""
    path = tmp_path / "sourdough.sbv"
    path.write_text(
        "0:00:01.000,0:00:04.000\nWelcome back to the bakery channel.\n\n"
        "0:00:04.500,0:00:09.250\nMaria: Feed the starter\ntwelve hours before baking.\n\n"
        "1:02:03.000,1:02:05.500\nThanks for watching!\n",
        encoding="utf-8",
    )
    parsed = parse_file(path)
    assert parsed.metadata["transcript_format"] == "sbv"
    assert parsed.metadata["speakers"] == ["Maria"]
    assert parsed.metadata["duration_seconds"] == 3725.5
    passages = {h[-1]: t for t, h, _ in block_texts(parsed)}
    assert passages["Maria 00:00:04-00:00:09"] == (
        "[00:00:04] Maria: Feed the starter twelve hours before baking."
    )
    assert "0:00:01.000" not in parsed.text


@pytest.mark.parametrize(
    ("encoding", "text"),
    [
        (
            "cp1252",
            "Caf\xe9 cr\xe8me br\xfbl\xe9e costs 4\u20ac \u2014 \u201cthe chef's\u201d pick.",
        ),
        ("latin-1", "Le gar\xe7on a mang\xe9 une cr\xe8me br\xfbl\xe9e \xe0 No\xebl."),
        ("shift_jis", "会議の議事録：来週の火曜日に新しい倉庫を開設します。担当は田中さんです。"),
    ],
)
def test_text_that_is_not_utf8_is_decoded_as_detected(
    tmp_path: Path, encoding: str, text: str
) -> None:
    path = tmp_path / f"legacy-{encoding}.txt"
    path.write_bytes(text.encode(encoding))
    assert parse_file(path).text == text


def test_block_ends_skip_trailing_whitespace_without_copying_the_text() -> None:
    """Each block's end is moved back over whitespace by scanning back from it: slicing
    the text up to every block made a 40 MB Markdown file's parse quadratic."""
    from citewise.parsers._common import trimmed_end
    from citewise.parsers.markdown import markdown_blocks

    text = "# Title\n\nFirst paragraph.  \n\n\n   \n## Next\n\nSecond one.\n\n"
    for end in range(len(text) + 1):
        assert trimmed_end(text, end) == len(text[:end].rstrip())
    assert trimmed_end(text, len(text), start=len(text) - 2) == len(text) - 2
    blocks, title = markdown_blocks(text)
    assert title == "Title"
    assert [text[b.start : b.end] for b in blocks] == [
        "# Title",
        "First paragraph.",
        "## Next",
        "Second one.",
    ]
