"""Every field of OpenAI's chat-completions request, honoured or refused — never ignored.

A client that asks for JSON, a stop sequence or a tool must not get prose made without
it and no word of the difference. Each field of the request is one of:

* **honoured** (:data:`HONOURED`): applied to the answer (``schemas.py`` checks its value;
  one OpenAI's API would refuse is a 400 ``invalid_value`` naming it);
* **accepted** (:data:`ACCEPTED`): identifiers and caching hints that change nothing in an
  answer; taken and not used;
* **refused** (:data:`REFUSED`): a 400 ``unsupported_parameter`` naming it — unless its
  value asks for nothing (``"logprobs": false``, ``"tool_choice": "none"``), which clients
  and SDKs send as defaults;
* anything else: a 400 ``unknown_parameter``, as OpenAI's API refuses an unrecognized
  request argument.

``tests/test_openai_params.py`` holds this table to the openai SDK's list of fields and
to the table in ``docs/guide/server.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

HONOURED = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "n",
        "response_format",
    }
)
# citewise's own fields (the SDKs send them with ``extra_body``).
EXTENSIONS = frozenset({"collections", "where"})
# Taken and not used: who the end user is (the API key is the caller the ledger charges)
# and hints for OpenAI's prompt cache (each provider caches as it does).
ACCEPTED = frozenset(
    {
        "user",
        "safety_identifier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "prompt_cache_options",
    }
)


@dataclass(frozen=True)
class Refused:
    why: str  # what citewise cannot do, as the error message says it
    inert: tuple[Any, ...] = (None,)  # values that ask for nothing: accepted


_NO_TOOLS = "citewise answers from your documents and calls no tools"
REFUSED: dict[str, Refused] = {
    "tools": Refused(_NO_TOOLS),
    "tool_choice": Refused(_NO_TOOLS, (None, "none")),
    "parallel_tool_calls": Refused(_NO_TOOLS),
    "functions": Refused(_NO_TOOLS),
    "function_call": Refused(_NO_TOOLS, (None, "none")),
    "logprobs": Refused("citewise reports no token log probabilities", (None, False)),
    "top_logprobs": Refused("citewise reports no token log probabilities", (None, 0)),
    "logit_bias": Refused(
        "token ids differ between the models an assistant may route to", (None, {})
    ),
    "modalities": Refused("citewise answers in text only", (None, ["text"])),
    "audio": Refused("citewise answers in text only"),
    "prediction": Refused("citewise writes its answers from the sources: no predicted output"),
    "service_tier": Refused("citewise has one service tier", (None, "auto", "default")),
    "store": Refused("citewise stores no completions for later retrieval", (None, False)),
    "metadata": Refused("metadata tags a stored completion; citewise stores none", (None, {})),
    "reasoning_effort": Refused("citewise routes to no reasoning-effort setting"),
    "verbosity": Refused("citewise has no verbosity setting; ask in a system message"),
    "web_search_options": Refused("citewise searches your documents, not the web"),
    "moderation": Refused("citewise runs no moderation model"),
}


@dataclass(frozen=True)
class Problem:
    field: str | None  # None: a field name that cannot be shown (not valid Unicode)
    code: str  # unsupported_parameter | unknown_parameter
    message: str


def refused_field(body: Mapping[str, Any]) -> Problem | None:
    """The first field of a request body that is refused or unknown, if any."""
    for name, value in body.items():
        if name in HONOURED or name in EXTENSIONS or name in ACCEPTED:
            continue
        refused = REFUSED.get(name)
        if refused is None:
            shown = _shown(name)
            return Problem(
                shown,
                "unknown_parameter",
                f"Unrecognized request argument supplied: {shown or '(a name of invalid text)'}",
            )
        if not any(value == inert and type(value) is type(inert) for inert in refused.inert):
            return Problem(
                name,
                "unsupported_parameter",
                f"Unsupported parameter: '{name}' is not supported by this server: {refused.why}",
            )
    return None


def _shown(name: str) -> str | None:
    """A field name as an error may show it: cut at 64 characters; None if it is no valid
    Unicode (a lone surrogate), which the log and the response cannot carry."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return name if len(name) <= 64 else name[:64] + "…"
