"""Names that become paths, and addresses that name readers: one definition each, checked
where they enter the Python API.

A collection name becomes a folder (``WORKSPACE/uploads/NAME``); a name of dots would
climb out of it (``..`` wrote uploads into the workspace root, over ``citewise.toml``).
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from .errors import InvalidInput

# An ASCII letter or digit first (so never ".", ".." or "-x"), then ASCII letters, digits,
# . _ - : no look-alikes ("Ａ", fullwidth, beside "A"), nothing Unicode normalises to another
# name, and a folder name every file system and URL keeps as it is.
COLLECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
COLLECTION_NAME_RULE = (
    "1-64 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit"
)


def check_collection_name(name: str) -> str:
    if not isinstance(name, str) or not COLLECTION_NAME.fullmatch(name):
        raise InvalidInput(
            f"invalid collection name {name!r}: use {COLLECTION_NAME_RULE}", param="collection"
        )
    return name


def inside(root: Path, *parts: str) -> Path:
    """``root / parts``, refused unless it resolves to a path inside ``root``."""
    path = root.joinpath(*parts)
    if not path.resolve().is_relative_to(root.resolve()) or path.resolve() == root.resolve():
        raise InvalidInput(f"{'/'.join(parts)!r} would leave {root}")
    return path


def fold_address(address: str) -> str:
    """An e-mail address as identities compare it: Unicode compatibility forms folded
    (NFKC: a full-width ＠ is @) and case folded, so "Zoé@Example.com" from one source and
    "zoé@example.com" from another are one reader."""
    return unicodedata.normalize("NFKC", address).strip().casefold()


# Characters that would break a line of output or disguise a name: controls (a newline, an
# escape sequence), line and paragraph separators, and the bidirectional overrides.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """A name (a file's, a source's) or a reason as one line of text: its control
    characters written as escapes, ``"a\\nb.md"`` as ``a\\nb.md``."""
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
