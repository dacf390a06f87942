"""Every field of OpenAI's chat-completions and Responses requests, honoured or refused —
never ignored.

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

``tests/test_openai_params.py`` holds these tables to the openai SDK's lists of fields and
to the tables in ``docs/guide/server.md``.
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
        "tools",
        "tool_choice",
    }
)
# citewise's own fields (the SDKs send them with ``extra_body``).
EXTENSIONS = frozenset({"collections", "where", "no_cache"})
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


_FUNCTIONS = "the deprecated functions API; send tools and tool_choice"
REFUSED: dict[str, Refused] = {
    # The model may call several tools in one turn; it cannot be held to one.
    "parallel_tool_calls": Refused("the model may call several tools at once", (None, True)),
    "functions": Refused(_FUNCTIONS),
    "function_call": Refused(_FUNCTIONS, (None, "none")),
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


# -- the Responses API (/v1/responses) --------------------------------------------------

RESPONSES_HONOURED = frozenset(
    {
        "model",
        "input",
        "instructions",
        "stream",
        "max_output_tokens",
        "temperature",
        "top_p",
        "tools",
        "tool_choice",
        "text",  # its format: text, json_object, json_schema
        "metadata",  # returned with the response, as OpenAI's API does
        "truncation",  # citewise always fits the prompt: passages go first
    }
)
RESPONSES_ACCEPTED = ACCEPTED | {"stream_options"}  # include_obfuscation: no effect here
_NOT_STORED = "citewise stores no responses: send the whole conversation as input"
RESPONSES_REFUSED: dict[str, Refused] = {
    "parallel_tool_calls": REFUSED["parallel_tool_calls"],
    "store": Refused(_NOT_STORED, (None, False)),
    "previous_response_id": Refused(_NOT_STORED),
    "conversation": Refused(_NOT_STORED),
    "prompt": Refused("citewise keeps no stored prompts"),
    "background": Refused("citewise answers while the request waits", (None, False)),
    "background_options": Refused("citewise answers while the request waits"),
    "include": Refused("citewise includes no extra output items", (None, [])),
    "top_logprobs": REFUSED["top_logprobs"],
    "reasoning": Refused("citewise routes to no reasoning settings"),
    "max_tool_calls": Refused("citewise cannot bound the model's tool calls in one turn"),
    "service_tier": REFUSED["service_tier"],
    "context_management": Refused("citewise fits each prompt itself (passages go first)"),
    "moderation": REFUSED["moderation"],
    "image": Refused("citewise answers in text only"),
    "access_programs": Refused("citewise has no access programs"),
}


def refused_field(
    body: Mapping[str, Any],
    honoured: frozenset[str] = HONOURED,
    accepted: frozenset[str] = ACCEPTED,
    refused_fields: Mapping[str, Refused] = REFUSED,
) -> Problem | None:
    """The first field of a request body that is refused or unknown, if any (by default
    of a chat completion; the RESPONSES_ tables for the Responses API)."""
    for name, value in body.items():
        if name in honoured or name in EXTENSIONS or name in accepted:
            continue
        refused = refused_fields.get(name)
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
