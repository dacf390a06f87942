from __future__ import annotations

import itertools

from citewise.chunking import chunk_document
from citewise.documents import Block, Document
from citewise.parsers._common import paragraph_blocks


def make_document(text: str, blocks: list[Block] | None = None) -> Document:
    return Document("mem:doc", "Doc", text, blocks or paragraph_blocks(text), "hash")


def test_chunks_respect_token_limit_and_point_at_their_text(embedder) -> None:
    paragraphs = [
        f"Paragraph {i} talks about topic {i} in some detail. " * (i % 5 + 1) for i in range(40)
    ]
    text = "\n\n".join(paragraphs)
    chunks = chunk_document(make_document(text), embedder.token_offsets, 64, 16)
    assert len(chunks) > 5
    for chunk in chunks:
        assert chunk.text == text[chunk.start : chunk.end]
        assert len(embedder.token_offsets([chunk.text])[0]) <= 64 + 2  # joins may merge a token
        assert chunk.n_tokens <= 64
    covered = set()
    for chunk in chunks:
        covered.update(range(chunk.start, chunk.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())


def test_consecutive_chunks_overlap(embedder) -> None:
    text = "\n\n".join(f"Sentence number {i} is here." for i in range(60))
    chunks = chunk_document(make_document(text), embedder.token_offsets, 40, 12)
    overlaps = [a.end > b.start for a, b in itertools.pairwise(chunks)]
    assert all(overlaps)


def test_long_paragraph_is_cut_at_sentences(embedder) -> None:
    text = " ".join(f"This is sentence {i} of one very long paragraph." for i in range(50))
    chunks = chunk_document(make_document(text), embedder.token_offsets, 50, 0)
    assert len(chunks) > 3
    assert all(c.text.endswith(".") for c in chunks)


def test_a_sentence_longer_than_the_limit_is_cut_by_tokens(embedder) -> None:
    text = "word " * 500
    chunks = chunk_document(make_document(text.strip()), embedder.token_offsets, 100, 0)
    assert [c.n_tokens for c in chunks] == [100] * 5


def test_chunks_do_not_cross_headings_or_pages(embedder) -> None:
    text = "Alpha intro.\n\nBeta body.\n\nGamma page two."
    blocks = [
        Block(0, 12, ("A",), 1),
        Block(14, 24, ("B",), 1),
        Block(26, 41, ("B",), 2),
    ]
    chunks = chunk_document(make_document(text, blocks), embedder.token_offsets, 200, 0)
    assert [(c.text, c.heading_path, c.page) for c in chunks] == [
        ("Alpha intro.", ("A",), 1),
        ("Beta body.", ("B",), 1),
        ("Gamma page two.", ("B",), 2),
    ]


def test_a_huge_string_without_spaces_becomes_many_bounded_chunks(embedder) -> None:
    """WordPiece reads a 5 MB run without spaces as one unknown token; characters bound it."""
    from citewise.chunking import CHARS_PER_TOKEN

    text = "x" * 5_000_000
    document = Document("s", "t", text, [Block(0, len(text), ("t",))], "h")
    chunks = chunk_document(document, embedder.token_offsets, 200, 32)
    assert max(len(c.text) for c in chunks) <= 200 * CHARS_PER_TOKEN
    assert "".join(c.text for c in chunks) == text  # every character kept, none twice
    assert len(chunks) == -(-len(text) // (200 * CHARS_PER_TOKEN))
