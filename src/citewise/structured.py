"""Structured output: one JSON value that validates against a JSON Schema, from any model.

The request carries the schema (:class:`~citewise.providers.base.OutputSchema`) through
the model contract, so each provider constrains the output its own way — a grammar for
the local model, the API's JSON-schema mode for remote ones — and the router, ledger and
budgets apply as to any call. What comes back is validated here all the same (an
OpenAI-compatible server may ignore the field); an invalid value is asked for once more
with the validation error, then refused with that error.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import jsonschema

from .errors import ConfigError, ModelError
from .providers.base import (
    ChatModel,
    Finished,
    Message,
    ModelRequest,
    OutputSchema,
    TextDelta,
    TokenUsage,
)

ATTEMPTS = 2  # the first answer and one more with the validation error


@dataclass(frozen=True)
class StructuredAnswer:
    value: Any  # the parsed JSON, valid against the schema
    text: str  # what the model wrote
    usage: TokenUsage  # over every attempt
    target: str  # "provider:model" that answered (the router fills it)


def schema_of(name: str, schema: dict[str, Any]) -> OutputSchema:
    """An :class:`OutputSchema`, after checking that ``schema`` is a valid JSON Schema."""
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ConfigError(f"invalid JSON schema {name!r}: {exc.message}") from exc
    return OutputSchema(name, schema)


def generate_json(
    model: ChatModel,
    messages: Sequence[Message],
    output: OutputSchema,
    max_tokens: int = 256,
    **request: Any,
) -> StructuredAnswer:
    """The model's answer to ``messages`` as a JSON value valid against ``output``;
    ``request`` sets the other :class:`ModelRequest` fields (purpose, caller, assistant)."""
    validator = jsonschema.validators.validator_for(output.schema)(output.schema)
    conversation = [*_with_instruction(messages, output)]
    usage, problem = TokenUsage(), ""
    for _ in range(ATTEMPTS):
        call = ModelRequest.of(conversation, max_tokens=max_tokens, output_schema=output, **request)
        text, finished = _text_and_end(model, call)
        usage = usage + finished.usage
        value, problem = _checked(text, finished, validator)
        if not problem:
            return StructuredAnswer(value, text, usage, finished.target or finished.model)
        conversation += [Message("assistant", text), Message("user", _retry_prompt(problem))]
    raise ModelError(f"{model.model_id} gave no JSON valid against {output.name!r}: {problem}")


def _with_instruction(messages: Sequence[Message], output: OutputSchema) -> list[Message]:
    """``messages`` with the schema stated in the system message: models told what to
    write fill the fields better than models only constrained to it."""
    rule = json_rule(output)
    if messages and messages[0].role == "system":
        return [replace(messages[0], content=f"{messages[0].content}\n\n{rule}"), *messages[1:]]
    return [Message("system", rule), *messages]


def json_rule(output: OutputSchema) -> str:
    """The instruction that states the schema to the model."""
    return "Reply with only a JSON value valid against this JSON Schema: " + json.dumps(
        output.schema, separators=(",", ":")
    )


def json_problem(text: str, output: OutputSchema) -> str:
    """What is wrong with ``text`` as a value of ``output`` ("" when nothing is)."""
    validator = jsonschema.validators.validator_for(output.schema)(output.schema)
    return _checked(text, None, validator)[1]


def _text_and_end(model: ChatModel, request: ModelRequest) -> tuple[str, Finished]:
    parts: list[str] = []
    finished: Finished | None = None
    for event in model.generate(request):
        if isinstance(event, TextDelta):
            parts.append(event.text)
        elif isinstance(event, Finished):
            finished = event
    assert finished is not None, "every response ends with a Finished event"
    return "".join(parts), finished


def _checked(text: str, finished: Finished | None, validator: Any) -> tuple[Any, str]:
    """(value, "") or (None, what is wrong with it)."""
    if finished is not None and finished.finish_reason == "length":
        return None, f"the answer was cut at max_tokens ({finished.usage.completion_tokens})"
    try:
        value = json.loads(text, strict=False)  # control characters in strings: the local
        # grammar (llama-cpp-python's converter) lets a raw newline into a string
    except json.JSONDecodeError as exc:
        return None, f"not JSON ({exc.msg} at character {exc.pos})"
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the top level"
        return None, f"at {where}: {error.message}"
    return value, ""


def _retry_prompt(problem: str) -> str:
    return f"That reply is not valid: {problem}. Reply again with only the corrected JSON."
