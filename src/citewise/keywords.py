"""The words a keyword search scores, the same for every keyword backend."""

from __future__ import annotations

import re

# Longer queries keep their first terms on both keyword paths: each costs scoring time.
MAX_QUERY_TERMS = 1024

# Common English function words: they match nearly every chunk and only slow BM25 down.
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
    ]
)
_WORD = re.compile(r"\w+", re.UNICODE)


def query_terms(text: str) -> list[str]:
    """The words a keyword search scores, lower-cased, stop words removed (unless that
    leaves none), in order, *every occurrence kept*.

    A word repeated in a query counts once per occurrence, as in BM25's reference
    implementations (Lucene, bm25s): a long query says what matters most by repeating
    it. Dropping the repeats cost 0.052 nDCG@10 on CISI (median query 73 words).
    """
    words = [w.lower() for w in _WORD.findall(text)]
    content = [w for w in words if w not in STOPWORDS] or words
    return content[:MAX_QUERY_TERMS]


def fts_query(text: str) -> str | None:
    """An FTS5 OR-query of the query's terms, each quoted (so no word is an operator).
    FTS5's bm25() scores each OR-ed phrase, so a repeated term weighs once per repeat."""
    terms = query_terms(text)
    return " OR ".join(f'"{w}"' for w in terms) if terms else None
