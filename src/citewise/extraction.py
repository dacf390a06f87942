"""Grounded structured output: a JSON value of the caller's schema, each field citing the
passages it comes from (``Workspace.extract``).

The instruction retrieves passages as a question does, numbered [1..N] in the prompt
(``answering.build_prompt``). The model answers constrained to a *wrapped* schema: each
top-level property ``p`` of the caller's object schema becomes
``{"value": <p's schema>, "citations": [numbers from 1..N]}``, so every field carries
the passages that support it (a schema that is no object with properties is wrapped
whole, as one field ``value``). The reply is unwrapped, validated against the caller's
schema (and its Pydantic class), and each cited passage gets the quoted span that
supports the field's value, as an answer's citations do. An invalid reply is asked for
again with what is wrong with it, ``retries`` times, then refused with
:class:`~citewise.errors.ExtractionFailed`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import TYPE_CHECKING, Any

from referencing.exceptions import Unresolvable

from .answering import Prompt, build_prompt, quoted_citation
from .config import Settings
from .documents import Citation, Hit, Usage
from .errors import ConfigError, ExtractionFailed, InvalidInput
from .grounding import relevant as relevant_hits
from .providers.base import ChatModel, Finished, ModelRequest, OutputSchema, text_of
from .structured import json_problem, json_rule, schema_of

if TYPE_CHECKING:
    from pydantic import BaseModel

WHOLE = "value"  # the one field a schema that is no object with properties is wrapped as
NOTHING_RELEVANT = (
    "nothing in your documents was relevant to the instruction; the model was not asked, "
    "so nothing was extracted"
)
EXTRACT_RULES = (
    "You extract information from the numbered sources in the user's message, using only "
    'those sources. Fill each field\'s "value" from the sources and list in its "citations" '
    "the numbers of the sources that support it."
)


@dataclass(frozen=True)
class UserSchema:
    """The caller's schema as JSON Schema, with its Pydantic class when it came as one."""

    output: OutputSchema
    model_class: type[BaseModel] | None = None

    @property
    def whole(self) -> bool:
        """Wrapped whole, as one field: the schema is no object with properties."""
        schema = self.output.schema
        properties = schema.get("properties")
        is_object = schema.get("type", "object") == "object"
        return not (is_object and isinstance(properties, dict) and properties)


@dataclass
class Extraction:
    """What ``Workspace.extract`` returns: ``data`` valid against the caller's schema (None
    when nothing relevant was found: ``refused``), each field's citations with quotes."""

    instruction: str
    data: Any
    citations: dict[str, list[Citation]]  # field → the passages that support its value
    sources: list[Hit]  # the passages cited, in number order
    hits: list[Hit]  # the passages in the prompt: [n] is hits[n - 1]
    usage: Usage  # over every model call, retries included
    model: str
    obj: Any = None  # for a Pydantic class: the validated instance
    refused: bool = False  # nothing relevant was found: no model call, data None
    warnings: list[str] = field(default_factory=list)
    target: str = ""  # "provider:model" that answered
    attempts: list[Any] = field(default_factory=list)  # router.Attempt of every call
    tries: int = 0  # model calls made: 1, more when a reply was invalid
    raw: str = ""  # the model's accepted reply, as written (the wrapped value)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: data, citations by field, usage and who answered."""
        return {
            "instruction": self.instruction,
            "data": self.data,
            "citations": {
                name: [citation_dict(c) for c in cited] for name, cited in self.citations.items()
            },
            "usage": asdict(self.usage),
            "model": self.model,
            "target": self.target,
            "tries": self.tries,
            "refused": self.refused,
            "warnings": list(self.warnings),
            "attempts": [_plain(a) for a in self.attempts],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)


def _plain(record: Any) -> Any:
    """A router.Attempt (a dataclass) as a JSON-ready dict."""
    return asdict(record) if is_dataclass(record) and not isinstance(record, type) else record


def citation_dict(citation: Citation) -> dict[str, Any]:
    hit = citation.hit
    return {
        "number": citation.number,
        "title": hit.title,
        "source": hit.source,
        "url": hit.url,
        "location": hit.location,
        "quote": citation.quote,
        "quote_start": citation.quote_start,
        "quote_end": citation.quote_end,
    }


# -- the caller's schema and its wrapped form -----------------------------------------


def user_schema(schema: dict[str, Any] | type[BaseModel]) -> UserSchema:
    """``schema`` (a JSON Schema dict or a Pydantic model class), checked."""
    if isinstance(schema, dict):
        return UserSchema(_checked_schema(schema_name(schema.get("title")), schema))
    if isinstance(schema, type) and hasattr(schema, "model_json_schema"):
        return UserSchema(
            _checked_schema(schema_name(schema.__name__), schema.model_json_schema()), schema
        )
    raise InvalidInput(
        f"schema must be a JSON Schema dict or a Pydantic model class, not {schema!r}",
        param="schema",
    )


def schema_name(title: object) -> str:
    """An OutputSchema name ([a-zA-Z0-9_-]{1,64}, as the APIs require) from a title."""
    name = re.sub(r"[^a-zA-Z0-9_-]+", "_", str(title or "")).strip("_")[:64]
    return name or "extraction"


def _checked_schema(name: str, schema: dict[str, Any]) -> OutputSchema:
    try:
        return schema_of(name, schema)
    except ConfigError as exc:  # the caller's argument, not a setting
        raise InvalidInput(str(exc), param="schema") from exc


def wrapped_schema(user: UserSchema, passages: int) -> OutputSchema:
    """The schema the model answers in: each field as ``{"value", "citations"}``, the
    citations numbers of the ``passages`` in the prompt."""
    schema = user.output.schema
    if user.whole:
        properties, required = {WHOLE: schema}, [WHOLE]
    else:
        properties = schema["properties"]
        required = [p for p in schema.get("required", []) if p in properties]
    wrapped: dict[str, Any] = {
        "type": "object",
        "properties": {name: _cited(sub, passages) for name, sub in properties.items()},
        "required": required,
        "additionalProperties": False,
    }
    # A "$ref" points from the root: the definitions stay where it looks for them.
    for keyword in ("$schema", "$defs", "definitions"):
        if keyword in schema:
            wrapped[keyword] = schema[keyword]
    return OutputSchema(user.output.name, wrapped)


def _cited(value_schema: Any, passages: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "value": value_schema,
            "citations": {
                "type": "array",
                "items": {"enum": list(range(1, passages + 1))},
                "minItems": 1,
                "maxItems": passages,  # a small model repeating "1, 1, …" stops here
                "uniqueItems": True,
            },
        },
        "required": ["value", "citations"],
        "additionalProperties": False,
    }


# -- extraction -------------------------------------------------------------------------


@dataclass
class _Reply:
    """One checked model reply: the unwrapped value, or what is wrong with it."""

    raw: str
    finished: Finished
    problem: str = ""
    data: Any = None
    obj: Any = None
    cited: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class _Calls:
    """What every model call of one extraction cost, and who answered the last."""

    usage: Usage = field(default_factory=Usage)
    attempts: list[Any] = field(default_factory=list)
    tries: int = 0

    def add(self, finished: Finished) -> None:
        u = finished.usage
        self.usage = Usage(
            self.usage.prompt_tokens + u.prompt_tokens,
            self.usage.completion_tokens + u.completion_tokens,
            self.usage.cached_tokens + u.cached_tokens,
            self.usage.estimated or u.estimated,
        )
        self.attempts += finished.attempts
        self.tries += 1


def extract(
    instruction: str,
    schema: dict[str, Any] | type[BaseModel],
    hits: Sequence[Hit],
    model: ChatModel,
    settings: Settings,
    caller: str = "",
    retries: int = 2,
) -> Extraction:
    """``schema``'s value from the relevant ``hits``, each field citing its passages.

    With no relevant passage the model is not asked (it would have to invent the values
    the schema demands): the result is ``refused``, with ``data`` None and a warning.
    A reply that is no JSON, breaks the schema or cites a number outside 1..N is asked
    for again with the problem, up to ``retries`` times; then :class:`ExtractionFailed`.
    """
    user = user_schema(schema)
    _check_arguments(retries, settings)
    relevant = relevant_hits(instruction, hits, settings.min_relevance)[: settings.top_k]
    if not relevant:
        return _nothing_found(instruction, model)
    calls, question = _Calls(), instruction
    for _ in range(retries + 1):
        prompt, output = fitted_prompt(question, relevant, user, model, settings)
        reply = _ask(model, prompt, output, settings, caller)
        calls.add(reply.finished)
        _check(reply, user, output)
        if not reply.problem:
            return _extraction(instruction, reply, prompt, calls, user.whole)
        question = _correction(instruction, reply.problem)
    tries = f"{calls.tries} {'try' if calls.tries == 1 else 'tries'}"
    raise ExtractionFailed(
        f"{reply.finished.target or reply.finished.model} gave no value valid against the "
        f"schema {user.output.name!r} in {tries}: {reply.problem}. Try a larger model or a "
        "simpler schema.",
        raw=reply.raw,
        problem=reply.problem,
    )


def _check_arguments(retries: int, settings: Settings) -> None:
    if retries < 0:
        raise InvalidInput(f"retries must be 0 or more, not {retries}", param="retries")
    if settings.answer_check == "quote":
        raise InvalidInput(
            "this assistant quotes its sources without a model (answer_check = quote): "
            "it cannot extract",
            param="schema",
        )


def _nothing_found(instruction: str, model: ChatModel) -> Extraction:
    return Extraction(
        instruction,
        None,
        {},
        [],
        [],
        Usage(),
        model.model_id,
        refused=True,
        warnings=[NOTHING_RELEVANT],
    )


def fitted_prompt(
    question: str, hits: Sequence[Hit], user: UserSchema, model: ChatModel, settings: Settings
) -> tuple[Prompt, OutputSchema]:
    """The prompt with as many passages as fit, and the wrapped schema citing just those."""
    output = wrapped_schema(user, len(hits))
    prompt = build_prompt(question, hits, model, settings, system_text=_rules(output))
    if len(prompt.hits) < len(hits):  # fewer fit: the schema names only those (and shrinks)
        output = wrapped_schema(user, len(prompt.hits))
        prompt = build_prompt(question, prompt.hits, model, settings, system_text=_rules(output))
    if not prompt.hits:
        raise InvalidInput(
            f"the schema {user.output.name!r} leaves no room for a passage in the model's "
            f"context window ({prompt.budget.context_window} tokens): simplify the schema or "
            "raise context_window",
            param="schema",
        )
    return prompt, output


def _rules(output: OutputSchema) -> str:
    return f"{EXTRACT_RULES}\n\n{json_rule(output)}"


def _correction(instruction: str, problem: str) -> str:
    return (
        f"{instruction}\n\nYour previous reply was not valid: {problem}. "
        "Reply again with only the corrected JSON."
    )


def _ask(
    model: ChatModel, prompt: Prompt, output: OutputSchema, settings: Settings, caller: str
) -> _Reply:
    request = ModelRequest.of(
        prompt.messages,
        max_tokens=settings.answer_tokens,
        temperature=settings.temperature,
        output_schema=output,
        purpose="extract",
        caller=caller,
    )
    raw, finished = text_of(model.generate(request))
    assert finished is not None, "every response ends with a Finished event"
    return _Reply(raw, finished)


def _check(reply: _Reply, user: UserSchema, output: OutputSchema) -> None:
    """Fill ``reply``'s data, object and cited numbers, or its problem."""
    if reply.finished.finish_reason == "length":
        reply.problem = (
            f"the reply was cut at max_tokens ({reply.finished.usage.completion_tokens}); "
            "raise answer_tokens or ask for less"
        )
        return
    reply.problem = _schema_problem(reply.raw, output)  # JSON, fields, numbers in 1..N
    if reply.problem:
        return
    wrapped = json.loads(reply.raw, strict=False)
    order = [WHOLE] if user.whole else list(user.output.schema["properties"])
    reply.data = wrapped[WHOLE]["value"] if user.whole else _values(wrapped, order)
    reply.cited = {
        name: list(dict.fromkeys(wrapped[name]["citations"])) for name in order if name in wrapped
    }
    reply.problem = _schema_problem(json.dumps(reply.data), user.output)
    if not reply.problem and user.model_class is not None:
        reply.obj, reply.problem = _validated(user.model_class, reply.data)


def _values(wrapped: dict[str, Any], order: list[str]) -> dict[str, Any]:
    """The fields' values in the schema's order (a grammar may have sorted the keys)."""
    return {name: wrapped[name]["value"] for name in order if name in wrapped}


def _schema_problem(text: str, output: OutputSchema) -> str:
    try:
        return json_problem(text, output)
    except Unresolvable as exc:  # a "$ref" to nowhere: the caller's schema is at fault
        raise InvalidInput(
            f"the schema {output.name!r} cannot be applied: {exc}", param="schema"
        ) from exc


def _validated(model_class: type[BaseModel], data: Any) -> tuple[Any, str]:
    """(the Pydantic instance, "") or (None, what its validators refuse)."""
    from pydantic import ValidationError

    try:
        return model_class.model_validate(data), ""
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "/".join(str(p) for p in first["loc"]) or "the top level"
        return None, f"at {where}: {first['msg']}"


def _extraction(
    instruction: str, reply: _Reply, prompt: Prompt, calls: _Calls, whole: bool
) -> Extraction:
    citations: dict[str, list[Citation]] = {}
    for name, numbers in reply.cited.items():
        # The instruction's words rank the sentences whose words the value does not decide.
        claim = f"{_claim(reply.data, None if whole else name)}\n{instruction}"
        citations[name] = [
            quoted_citation(n, prompt.hits[n - 1], claim, instruction) for n in numbers
        ]
    numbers = sorted({n for cited in reply.cited.values() for n in cited})
    return Extraction(
        instruction,
        reply.data,
        citations,
        [prompt.hits[n - 1] for n in numbers],
        list(prompt.hits),
        calls.usage,
        reply.finished.model,
        obj=reply.obj,
        warnings=list(prompt.warnings),
        target=reply.finished.target,
        attempts=calls.attempts,
        tries=calls.tries,
        raw=reply.raw,
    )


def _claim(data: Any, name: str | None) -> str:
    """A field as the answer sentence its quote is found for: its name (whose words say
    what the value is about) and its value's scalars; ``name`` None: the whole value."""
    if name is None:
        return " ".join(_scalars(data))
    return " ".join([name.replace("_", " "), *_scalars(data[name])])


def _scalars(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _scalars(v)]
    if isinstance(value, list):
        return [s for v in value for s in _scalars(v)]
    return [] if value is None else [str(value)]
