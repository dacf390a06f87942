"""A corpus every Python has offline: the language reference topics in ``pydoc_data``."""

from __future__ import annotations

from collections.abc import Iterator

from .sources import SourceItem, text_item

DEMO_COLLECTION = "python-docs"
DEMO_QUESTION = "What does the with statement do?"


def demo_items() -> Iterator[SourceItem]:
    from pydoc_data.topics import topics

    for name, text in sorted(topics.items()):
        title = _title(text) or name
        yield text_item(
            f"pydoc:{name}", f"Python reference: {title}", text, {"corpus": "pydoc_data"}
        )


def _title(text: str) -> str:
    """The first heading of a topic, which pydoc underlines with * = or -."""
    lines = text.strip().splitlines()
    if len(lines) > 1 and lines[1] and set(lines[1]) <= set("*=-"):
        return lines[0].strip()
    return ""
