"""Hits → a budgeted prompt → a streamed answer with numbered citations.

The prompt never overflows the model's context window: passages go in by rank
until the next would not fit, and the rendered prompt is counted with the
model's own tokenizer before it is sent. When no passage is relevant enough,
the answer says so without calling the model.

Each sentence of the model's answer is checked as it arrives (``grounding.py``):
uncited sentences get the ``[n]`` of the passage that supports them, markers naming no
source are removed, a loop stops the generation, and with tiny local models claims
the passages do not support are left out (a quote from the best passage stands in
when nothing is left).

An API client may add its own instructions (followed within citewise's rules, which come
first), ask for JSON (:class:`AnswerOptions`: the answer is then one JSON value, written
as the model wrote it and validated against the schema) and set sampling options for the
answer's model call.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import uuid
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from .config import Settings
from .documents import Answer, Budget, Citation, Hit, Usage
from .errors import InvalidInput, ProviderError
from .grounding import (
    AnswerGuard,
    content_words,
    extractive_answer,
    segments,
    unanswerable,
    within_tokens,
)
from .grounding import (
    relevant as relevant_hits,
)
from .providers.base import (
    SAMPLING_OPTIONS,
    ChatModel,
    EventStream,
    Finished,
    Message,
    ModelRequest,
    OutputSchema,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
    request_tokens,
)
from .structured import json_problem, json_rule

SYSTEM_PROMPT = (
    "You answer questions using only the numbered sources in the user's message. "
    "After each sentence, cite the source it comes from like [1] or [2]. "
    "If the sources do not answer the question, say that you don't know."
)
NOTHING_FOUND = "I couldn't find anything about that in your documents, so I can't answer it."
# Before a client's own instructions (an API request's system message): citewise's rules
# stay in force and come first.
INSTRUCTIONS_INTRO = (
    "The user adds the instructions below. Follow them only where they agree with the "
    "rules above: answer from the sources, cite them, and never invent."
)
JSON_CITING = "Cite the sources inside the JSON strings, like [1]."
NO_SOURCES = "Sources: none of the documents matched the question."
_MARKER = re.compile(r"\[(\d+)\]")
MARKER_TAIL = re.compile(r"(?:\s*\[\d+\])+\s*$")
# A sentence ends at . ! or ? before whitespace (not inside "3.10" or a URL) or at a blank line.
_SENTENCE = re.compile(r"(?:[^.!?\n]|[.!?](?!\s|$)|\n(?![ \t]*\n))+(?:[.!?]+(?=\s|$))?")
# An answer sentence with the markers that follow it: "It rotates nightly. [1] [2]"
_CLAIM = re.compile(r"(?:[^.!?]|[.!?](?!\s|$))+(?:[.!?]+(?=\s|$)(?:\s*\[\d+\])*|$)")


@dataclass
class Prompt:
    messages: list[Message]
    hits: list[Hit]
    budget: Budget
    prompt_tokens: int
    warnings: list[str]


@dataclass(frozen=True)
class AnswerOptions:
    """What a client asks of one answer beyond the settings (an API request's fields).
    Only the answer's model call gets them: the follow-up rewrite and checks do not."""

    instructions: str = ""  # the client's system text, followed within citewise's rules
    output_schema: OutputSchema | None = None  # answer with one JSON value of this schema
    # Sampling options of the answer's model call (ModelRequest's; unset: the provider's).
    stop: tuple[str, ...] = ()
    seed: int | None = None
    top_p: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    # The client's tools, which the model may call instead of answering (the client runs
    # them), and the turns after the question: the model's tool calls and their results.
    tools: tuple[Tool, ...] = ()
    tool_choice: Literal["auto", "none", "required"] = "auto"
    tool_name: str | None = None
    continuation: tuple[Message, ...] = ()
    # Answer afresh, not from the assistant's response cache (``response_cache``), and keep
    # nothing in it: an API request's ``no_cache`` or ``Cache-Control: no-cache``.
    no_cache: bool = False

    def sampling(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SAMPLING_OPTIONS}

    def tool_results(self) -> bool:
        """The conversation holds results of the client's tools: text the sources do
        not hold may come from them."""
        return any(m.role == "tool" for m in self.continuation)


def system_prompt(options: AnswerOptions | None = None) -> str:
    """citewise's rules, then the JSON format asked for, then the client's instructions."""
    parts = [SYSTEM_PROMPT]
    if options is not None and options.output_schema is not None:
        parts.append(f"{json_rule(options.output_schema)}\n{JSON_CITING}")
    if options is not None and options.instructions:
        parts.append(f"{INSTRUCTIONS_INTRO}\n\n{options.instructions}")
    return "\n\n".join(parts)


def format_passage(number: int, hit: Hit) -> str:
    return f"[{number}] {hit.title} ({hit.location})\n{hit.text.strip()}"


def build_prompt(
    question: str,
    hits: Sequence[Hit],
    model: ChatModel,
    settings: Settings,
    options: AnswerOptions | None = None,
    system_text: str | None = None,
) -> Prompt:
    """``system_text``: a system message in place of the answering rules (extraction
    states its own)."""
    window = min(settings.context_window, model.context_window)
    reserve = settings.answer_tokens
    warnings: list[str] = []
    if options is not None and options.instructions:
        # A client's instructions take a quarter of the prompt's room at most.
        rules = model.count_messages([Message("system", system_prompt())])
        limit = max((window - reserve - rules) // 4, 1)
        if model.count_tokens(options.instructions) > limit:
            options = replace(options, instructions=model.truncate(options.instructions, limit))
            warnings.append(
                f"the system instructions were truncated to {limit} tokens to fit the "
                "context window"
            )
    system = Message("system", system_prompt(options) if system_text is None else system_text)
    system_tokens = model.count_messages([system])
    # A question may take half of the prompt's room at most: the passages must fit too.
    question_limit = (window - reserve - system_tokens) // 2
    question, question_tokens, truncated = _fit_question(question, model, question_limit)
    if truncated:
        warnings.append(
            f"the question was truncated to {question_tokens} tokens to fit the context window"
        )
    continuation = options.continuation if options is not None else ()
    tools = options.tools if options is not None else ()
    if continuation or tools:
        # The tool calls and results come after the question, and the tools' definitions
        # go along: passages make room for them.
        added = request_tokens(model, continuation, tools)
        question_tokens += added
        if window - reserve - system_tokens - question_tokens - 16 < 0:
            raise InvalidInput(
                f"the tool calls, their results and the tools take {added} tokens: with the "
                f"question and citewise's rules ({system_tokens} tokens) they leave no room "
                f"for a {reserve}-token answer in the {window}-token context window; send "
                "shorter tool results",
                param="messages",
            )
    room = window - reserve - system_tokens - question_tokens - 16
    chosen: list[Hit] = []
    costs: list[int] = []
    for hit in hits:
        cost = model.count_tokens(format_passage(len(chosen) + 1, hit)) + 2
        if cost > room:
            break  # the rest rank lower: drop them rather than reorder relevance
        chosen.append(hit)
        costs.append(cost)
        room -= cost
    messages = _messages(question, chosen, system.content) + list(continuation)
    total = request_tokens(model, messages, tools)
    while chosen and total + reserve > window:  # the estimate was off: drop the least relevant
        chosen.pop()
        costs.pop()
        messages = _messages(question, chosen, system.content) + list(continuation)
        total = request_tokens(model, messages, tools)
    budget = Budget(
        context_window=window,
        system_tokens=total - question_tokens - sum(costs),
        question_tokens=question_tokens,
        passage_tokens=costs,
        answer_reserve=reserve,
        dropped_passages=len(hits) - len(chosen),
        question_truncated=truncated,
    )
    return Prompt(messages, chosen, budget, total, warnings)


def _messages(question: str, hits: Sequence[Hit], system: str = SYSTEM_PROMPT) -> list[Message]:
    sources = "\n\n".join(format_passage(n, hit) for n, hit in enumerate(hits, start=1))
    listed = f"Sources:\n\n{sources}" if hits else NO_SOURCES
    return [Message("system", system), Message("user", f"{listed}\n\nQuestion: {question}")]


def _fit_question(question: str, model: ChatModel, limit: int) -> tuple[str, int, bool]:
    tokens = model.count_tokens(f"Question: {question}")
    if tokens <= limit:
        return question, tokens, False
    shorter = model.truncate(question, max(limit - 4, 1))
    return shorter, model.count_tokens(f"Question: {shorter}"), True


class AnswerStream:
    """Iterate for the answer's text as it is generated; then ``.answer`` holds the result.

    Text arrives a sentence at a time: each sentence is checked (``grounding.py``) before
    it is shown, so a marker naming no source, a loop or (in strict mode) an unsupported
    claim never reaches the reader. A JSON answer (``options.output_schema``) is passed on
    as the model writes it — sentence checks would break the value — and validated at its
    end; with no relevant passage the model is still asked, told that none matched.
    """

    def __init__(
        self,
        question: str,
        hits: Sequence[Hit],
        model: ChatModel,
        settings: Settings,
        caller: str = "",
        assistant: str = "",
        options: AnswerOptions | None = None,
        cancelled: threading.Event | None = None,
        cache_scope: str | None = None,
    ) -> None:
        """``cancelled``: an event shared with whoever may stop this answer (an agent's
        last single-shot call stops with the agent); by default its own. ``cache_scope``:
        the retrieval behind ``hits`` (Workspace.cache_scope) when the answer may come from
        the response cache and go into it; None: it may not."""
        self.question = question
        self.model = model
        self.settings = settings
        self.caller, self.assistant = caller, assistant  # who the model call is charged to
        self.options = options or AnswerOptions()
        self.json = self.options.output_schema is not None
        if settings.answer_check == "quote" and (self.json or self.options.tools):
            param = "response_format" if self.json else "tools"
            raise InvalidInput(
                "this assistant quotes its sources without a model (answer_check = quote): "
                f"it cannot honour {param}",
                param=param,
            )
        # With no relevant passage the model is still asked when the client needs its reply
        # in a form only it can give (JSON), or may need it to call a tool or read results.
        may_call = bool(self.options.tools) and self.options.tool_choice != "none"
        self.asks_model_anyway = self.json or may_call or bool(self.options.continuation)
        relevant = relevant_hits(question, hits, settings.min_relevance, settings.top_k)
        # A small model asked about a plan, date or code no passage names answers anyway
        # from the passages that are alike: nothing to ask it.
        self.unanswerable = (
            unanswerable(question, relevant)
            if relevant and not self.asks_model_anyway and strict_checks(settings, model)
            else ""
        )
        if self.unanswerable:
            relevant = []
        self.prompt = (
            build_prompt(question, relevant, model, settings, self.options)
            if relevant or self.asks_model_anyway
            else None
        )
        self.answer: Answer | None = None
        self._parts: list[str] = []
        self._generated: list[str] = []
        self._finished: Finished | None = None
        self._tool_calls = ToolCallJoiner()
        self._cancelled = cancelled if cancelled is not None else threading.Event()
        self._response: EventStream | None = None
        self.cache_scope = cache_scope

    def start(self) -> AnswerStream:
        """Call the model (unless there is nothing to ask it): a budget that refuses the
        call raises here, before any text is promised to a reader."""
        if (
            self._response is None
            and self.prompt is not None
            and (self.prompt.hits or self.asks_model_anyway)
            and (self.settings.answer_check != "quote")
        ):
            request = ModelRequest.of(
                self.prompt.messages,
                max_tokens=self.settings.answer_tokens,
                temperature=self.settings.temperature,
                output_schema=self.options.output_schema,
                tools=self.options.tools,
                tool_choice=self.options.tool_choice,
                tool_name=self.options.tool_name,
                caller=self.caller,
                assistant=self.assistant,
                cancelled=self._cancelled,
                cache=self.cache_scope is not None,
                cache_scope=self.cache_scope or "",
                **self.options.sampling(),
            )
            self._response = self.model.generate(request)
        return self

    @property
    def cache_status(self) -> str:
        """``hit`` when the answer's model call is replayed from the response cache,
        ``miss`` when it was looked up there and is made afresh; "" when the cache was not
        asked (it is off, bypassed, or no model call is made). Known once started."""
        return str(getattr(self._response, "cache", "") or "")

    def close(self) -> None:
        """Release the model call (its budget hold is settled); safe if never iterated."""
        if self._response is not None:
            with contextlib.suppress(ValueError):  # running in another thread: cancel() stops it
                self._response.close()

    def cancel(self) -> None:
        """Stop generating at the next token (the reader is gone); safe from any thread.
        The model is released as soon as the generation loop sees it."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        """Whether the reader left (``cancel``)."""
        return self._cancelled.is_set()

    def __iter__(self) -> Generator[str, None, None]:
        if self.prompt is None or not (self.prompt.hits or self.asks_model_anyway):
            yield NOTHING_FOUND
            warnings = self.prompt.warnings if self.prompt else []
            if self.unanswerable:
                warnings = [*warnings, self.unanswerable]
            self.answer = Answer(
                self.question,
                NOTHING_FOUND,
                [],
                [],
                None,
                Usage(),
                self.model.model_id,
                refused=True,
                warnings=warnings,
            )
            return
        # Claims from the client's tool results are not in the passages: the strict checks
        # "auto" applies would drop them (an operator's "strict" stays). Markers are still
        # checked.
        relaxed = self.options.tool_results() and self.settings.answer_check == "auto"
        strict = strict_checks(self.settings, self.model) and not relaxed
        guard = AnswerGuard(self.prompt.hits, self.question, strict)
        if self.settings.answer_check == "quote":  # no model: the best passage sentence
            yield from self._quoted(guard)
            return
        events = self.start()._response
        assert events is not None
        try:
            if self.settings.answer_check == "off" or self.json:
                yield from (self._emit(d) for d in self._recorded(events))
            else:
                yield from self._checked(self._recorded(events), guard)
        finally:
            events.close()  # stops generation, settles the ledger
        if self.json:
            self._check_json()
        elif not "".join(self._parts).strip() and guard.strict and not self._tool_calls:
            yield from self._quoted(guard)
            return
        self.answer = self._finish(guard, extractive=False)

    def _check_json(self) -> None:
        """A JSON answer that ended by itself must be a valid value of the schema. One cut
        by ``max_tokens`` (finish reason ``length``) or by a stop sequence the client set
        is passed on as it is, as OpenAI's API does."""
        finished, output = self._finished, self.options.output_schema
        if finished is None or finished.finish_reason != "stop" or output is None:
            return
        if self.options.stop:
            return
        try:
            problem = json_problem("".join(self._parts), output)
        except Exception as exc:  # jsonschema cannot apply the schema: a "$ref" to nowhere
            raise InvalidInput(
                f"response_format's schema cannot be applied: {exc}", param="response_format"
            ) from exc
        if problem:
            where = finished.target or finished.model
            raise ProviderError(
                f"{where} gave no JSON valid against response_format {output.name!r}: {problem}",
                kind="server",
            )

    def _quoted(self, guard: AnswerGuard) -> Iterator[str]:
        assert self.prompt is not None
        quoted = extractive_answer(self.question, self.prompt.hits)
        # The caller's token limit holds for a quote as for the model's own words.
        text, cut = within_tokens(
            quoted or NOTHING_FOUND, self.settings.answer_tokens, self.model.count_tokens
        )
        yield self._emit(text)
        self.answer = self._finish(guard, extractive=quoted is not None, cut=cut)

    def _checked(self, deltas: Iterator[str], guard: AnswerGuard) -> Iterator[str]:
        # Text that leads into what follows ("For example:", or in strict mode a header or
        # a restated question) waits for a sentence that says something, and goes with it.
        pending = ""
        for segment in segments(deltas):
            verdict = guard.check(segment)
            if verdict.stop:
                return
            if guard.strict and not self._parts and guard.dropped:
                return  # the opening claim is unsupported: quote the sources instead
            text = pending + verdict.text
            if not text.strip():
                continue
            leads_in = MARKER_TAIL.sub("", text).rstrip().endswith(":")
            if leads_in or (guard.strict and not verdict.judged):
                pending = text
                continue
            pending = ""
            yield self._emit(text if self._parts else text.lstrip())

    def _recorded(self, events: Iterator[object]) -> Iterator[str]:
        for event in events:
            if self._cancelled.is_set():
                return
            if isinstance(event, Finished):
                self._finished = event
            elif isinstance(event, ToolCallDelta):
                self._tool_calls.add(event)
            elif isinstance(event, TextDelta):
                self._generated.append(event.text)
                yield event.text

    def tool_calls(self) -> list[ToolCall]:
        """The client's tools the model called, whole, in the order it called them (a call
        naming no tool offered, or breaking a strict tool's parameters: ProviderError)."""
        finished = self._finished
        where = (finished.target or finished.model) if finished else self.model.model_id
        return self._tool_calls.calls(self.options.tools, where)

    def _emit(self, text: str) -> str:
        self._parts.append(text)
        return text

    def _finish(self, guard: AnswerGuard, extractive: bool, cut: bool = False) -> Answer:
        """The answer as shown; ``cut``: a quote shown in its place was cut to the
        caller's token limit (finish reason "length")."""
        assert self.prompt is not None
        text = "".join(self._parts).strip()
        warnings = list(self.prompt.warnings) + guard.warnings()
        if extractive:
            warnings.append(
                "the model's answer was not supported by the sources; quoted them instead"
            )
        # A JSON answer cites with the markers inside its strings (an array [1] is no marker).
        cites = json_strings(text) if self.json else text
        numbers = [int(m) for m in _MARKER.findall(cites)]
        cited = list(dict.fromkeys(n for n in numbers if 1 <= n <= len(self.prompt.hits)))
        citations = [
            quoted_citation(n, self.prompt.hits[n - 1], cites, self.question) for n in cited
        ]
        refused = text == NOTHING_FOUND
        finished = self._finished
        if finished is not None:  # what the provider counted, including text left out
            u = finished.usage
            usage = Usage(u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.estimated)
            model, reason = finished.model, finished.finish_reason
            target, attempts = finished.target, list(finished.attempts)
            if extractive or refused:  # the model's words were replaced: their end is not shown
                reason = "length" if cut else "stop"
        else:  # no model call (quoted), or the checks stopped it before its end
            generated = "".join(self._generated)
            called = bool(generated) or self.settings.answer_check != "quote"
            usage = Usage(
                self.prompt.prompt_tokens if called else 0,
                self.model.count_tokens(generated) if generated else 0,
                estimated=called,
            )
            model, reason = self.model.model_id, "length" if cut else "stop"
            # A routed call stopped by the checks still ran: its attempts (the last one
            # "cancelled") are on the closed response, as the ledger recorded them.
            attempts = list(getattr(self._response, "attempts", None) or [])
            target = attempts[-1].target if attempts else ""
        return Answer(
            self.question,
            text,
            citations,
            list(self.prompt.hits),
            self.prompt.budget,
            usage,
            model,
            refused=refused,
            warnings=warnings,
            extractive=extractive,
            finish_reason=reason,
            target=target,
            attempts=attempts,
            tool_calls=self.tool_calls(),
        )


class ToolCallJoiner:
    """A response's tool-call deltas joined into whole calls, by index, in call order: each
    call's id and name from the deltas that carry them, its arguments' fragments in order.
    A call the provider gave no id (a local model's) gets a unique one: the client's tool
    result must name the call it answers."""

    def __init__(self) -> None:
        self._joined: dict[int, ToolCallDelta] = {}

    def __bool__(self) -> bool:
        return bool(self._joined)

    def add(self, delta: ToolCallDelta) -> None:
        known = self._joined.get(delta.index)
        self._joined[delta.index] = (
            delta
            if known is None
            else replace(
                known,
                id=known.id or delta.id,
                name=known.name or delta.name,
                arguments=known.arguments + delta.arguments,
            )
        )

    def calls(
        self, offered: Sequence[Tool] | None = None, where: str = "the model"
    ) -> list[ToolCall]:
        """The whole calls. With ``offered`` (the client's tools) each must name one of them,
        and a tool that asked for strict arguments gets arguments valid against its
        parameters: else a ProviderError naming the tool (kind server, a 502: the model or
        its API broke the request's contract). Without, any name passes (agent mode tells
        the model its mistake instead)."""
        calls = [
            ToolCall(d.id or f"call_{uuid.uuid4().hex[:24]}", d.name or "", d.arguments or "{}")
            for _, d in sorted(self._joined.items())
        ]
        if offered is not None:
            for call in calls:
                _check_call(call, offered, where)
        return calls


def _check_call(call: ToolCall, offered: Sequence[Tool], where: str) -> None:
    tools = {t.name: t for t in offered}
    if call.name not in tools:
        listed = ", ".join(sorted(tools)) or "none"
        named = f"the tool {call.name!r}" if call.name else "a tool without a name"
        raise ProviderError(
            f"{where} called {named}, which is not among the request's tools ({listed})",
            kind="server",
        )
    tool = tools[call.name]
    if tool.strict:
        try:
            problem = json_problem(call.arguments, OutputSchema(tool.name, tool.parameters))
        except Exception as exc:  # jsonschema cannot apply the schema: a "$ref" to nowhere
            raise InvalidInput(
                f"the parameters of the tool {tool.name!r} cannot be applied: {exc}",
                param="tools",
            ) from exc
        if problem:
            raise ProviderError(
                f"{where} called the tool {tool.name!r} with arguments its strict parameters "
                f"do not allow: {problem}",
                kind="server",
            )


def json_strings(text: str) -> str:
    """The strings of a JSON value, a line each (``text`` itself if it is no JSON)."""
    try:
        value = json.loads(text, strict=False)
    except ValueError:
        return text
    found: list[str] = []
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            pending.extend(reversed([*item.values()]))
        elif isinstance(item, list):
            pending.extend(reversed(item))
    return "\n".join(found)


def strict_checks(settings: Settings, model: ChatModel) -> bool:
    """Strict checking drops unsupported sentences; ``auto`` applies it to local models,
    which are tiny, and leaves remote models' paraphrases alone."""
    if settings.answer_check == "auto":
        return model.capabilities.local
    return settings.answer_check in ("strict", "quote")  # "off": the model's text as written


def quoted_citation(number: int, hit: Hit, answer: str, question: str = "") -> Citation:
    """The quoted span: the passage sentence that best supports the first answer sentence
    citing [number] — most of the words that sentence adds to the question (a passage
    sentence that merely repeats the question supports nothing), then most words overall."""
    claims = [m.group() for m in _CLAIM.finditer(answer) if f"[{number}]" in m.group()]
    answer_words = content_words(claims[0] if claims else answer)
    new_words = answer_words - content_words(question)
    best, best_overlap = None, (-1, -1)
    for match in _SENTENCE.finditer(hit.text):
        words = content_words(match.group())
        overlap = (len(words & new_words), len(words & answer_words))
        if overlap > best_overlap and match.group().strip():
            best, best_overlap = match, overlap
    if best is None:
        return Citation(number, hit, hit.text.strip(), hit.start, hit.end)
    start, end = best.start(), best.end()
    first_line = hit.text[start:end].lstrip().split("\n", 1)
    if (
        first_line[0].startswith("#") and len(first_line) == 2
    ):  # a Markdown heading: in the location already
        start = hit.text.index(first_line[1], start)
    quote = hit.text[start:end].strip()
    offset = hit.start + start + (len(hit.text[start:end]) - len(hit.text[start:end].lstrip()))
    return Citation(number, hit, quote, offset, offset + len(quote))
