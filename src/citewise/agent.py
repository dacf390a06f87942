"""Agent mode: the model searches the documents itself, then answers citing what it found.

A question whose facts sit in two documents ("Who manages the team that owns the billing
service?") needs a second search for a name only the first one finds. In agent mode
(``mode = "agent"``) the model gets three tools and decides:

    search(query, k?)   numbered passages [n]; a number names one chunk for the whole
                        answer, so the model cites passages from every step as [n]
    fetch(number)       the passages around passage [n] in its document
    answer(text)        the final answer (a plain-text reply counts as one too)

Each model turn goes through the workspace's router (ledger, budgets, the caller and
assistant charged). A tool call that fails (arguments that are no JSON, an unknown tool,
a search that raises) is told to the model as the tool's result and recorded; the loop goes
on. A provider's error ends the answer as it would a single-shot one.

The loop stops at the model's answer, after ``agent_steps`` model turns, or when
``agent_tokens`` would be exceeded; then one last single-shot call answers from the
passages found so far (or, with no budget left for it, the best passage is quoted), with a
warning saying why. Tiny local models cannot plan searches and some models cannot call
tools: agent mode answers single-shot for them, saying so in ``answer.warnings``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .answering import (
    INSTRUCTIONS_INTRO,
    NOTHING_FOUND,
    SYSTEM_PROMPT,
    AnswerOptions,
    AnswerStream,
    Prompt,
    ToolCallJoiner,
    format_passage,
    quoted_citation,
    strict_checks,
)
from .config import Settings
from .documents import AgentStep, Answer, Budget, Hit, Usage
from .grounding import MARKER, AnswerGuard, extractive_answer, segments, within_tokens
from .grounding import relevant as relevant_hits
from .providers.base import (
    ChatModel,
    Finished,
    Message,
    ModelRequest,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
    request_tokens,
    tool_definitions,
)

AGENT_PROMPT = (
    "You answer the user's question using only their documents, which you read through "
    "tools. Call search to find numbered passages. A question may need facts from several "
    "documents: when a passage names a team, person or system the question depends on, "
    "search for that too, and call fetch to read around a passage. Then answer: after each "
    "sentence, cite the passages it comes from like [1] or [2]. If the passages do not "
    "answer the question, say that you don't know."
)
MAX_K = 10  # most passages one search returns
RESULT_TOKENS = 1500  # most tokens one tool result takes (less in a small context window)
TOOLS = (
    Tool(
        "search",
        "Search the user's documents. Returns numbered passages like [3]; a passage keeps "
        "its number for the whole conversation, so cite it by that number. Search again "
        "with other words, or for a name or term a passage mentioned, to follow the "
        "question from one document to another.",
        {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What to look for."},
                "k": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_K,
                    "description": "How many passages (default 5).",
                },
            },
            "required": ["query"],
        },
    ),
    Tool(
        "fetch",
        "Read more of the document passage [number] comes from: the passages around it, "
        "numbered the same way.",
        {
            "type": "object",
            "properties": {"number": {"type": "integer", "description": "A passage number."}},
            "required": ["number"],
        },
    ),
    Tool(
        "answer",
        "Give the final answer, citing the passages each sentence comes from like [1] or "
        "[2]. Replying with plain text does the same.",
        {
            "type": "object",
            "properties": {"text": {"type": "string", "description": "The answer."}},
            "required": ["text"],
        },
    ),
)
Plan = Literal["tools", "steps", "tokens", "window", "empty"]  # a tool turn, or why not
STOPPED = {
    "steps": "the agent reached its limit of {steps} model turns (agent_steps) before answering",
    "tokens": "another search would have exceeded the agent's token budget "
    "(agent_tokens = {tokens})",
    "window": "the agent's conversation no longer fits the context window",
    "empty": "the model's answer was empty",
}


@dataclass(frozen=True)
class Library:
    """What the tools read: search within the question's collections and filters, and a
    document's passages in document order (a workspace provides both). ``readable``: which
    of a document's passages the caller may read (fetch shows only those)."""

    search: Callable[[str, int], list[Hit]]
    document_passages: Callable[[int], list[Hit]]
    readable: Callable[[Hit], bool] = lambda hit: True


def single_shot_reason(
    model: ChatModel, settings: Settings, options: AnswerOptions | None = None
) -> str:
    """Why agent mode cannot run for this model and request ("" when it can)."""
    options = options or AnswerOptions()
    if model.capabilities.local:
        return (
            f"agent mode needs a model that can plan its searches; the local model "
            f"{model.model_id} answered single-shot"
        )
    if not model.capabilities.tools:
        return f"agent mode needs a model that calls tools; {model.model_id} answered single-shot"
    if settings.answer_check == "quote":
        return "answer_check = quote calls no model: answered single-shot, not in agent mode"
    if options.output_schema is not None:
        return "a JSON answer (response_format) is made single-shot, not in agent mode"
    if options.tools or options.continuation:
        return "a request with its own tools is answered single-shot, not in agent mode"
    return ""


def agent_stream(
    question: str,
    library: Library,
    model: ChatModel,
    settings: Settings,
    caller: str = "",
    assistant: str = "",
    options: AnswerOptions | None = None,
) -> AnswerStream:
    """The agent's stream, or the single-shot one (saying why) where agent mode cannot run."""
    reason = single_shot_reason(model, settings, options)
    if not reason:
        return AgentStream(question, library, model, settings, caller, assistant, options)
    hits = library.search(question, settings.top_k * 2)
    return SingleShot(reason, question, hits, model, settings, caller, assistant, options)


class SingleShot(AnswerStream):
    """A single-shot answer given in agent mode's place, with the reason in its warnings."""

    def __init__(
        self,
        reason: str,
        question: str,
        hits: Sequence[Hit],
        model: ChatModel,
        settings: Settings,
        caller: str = "",
        assistant: str = "",
        options: AnswerOptions | None = None,
    ) -> None:
        super().__init__(question, hits, model, settings, caller, assistant, options)
        self.reason = reason

    def __iter__(self) -> Generator[str, None, None]:
        yield from super().__iter__()
        if self.answer is not None:
            self.answer.warnings.append(self.reason)


@dataclass
class _Turn:
    """One model turn: its text, the tools it called, what it cost."""

    text: str
    calls: list[ToolCall]
    usage: Usage
    finished: Finished | None
    attempts: list[Any] = field(default_factory=list)


class AgentStream(AnswerStream):
    """An :class:`AnswerStream` whose passages the model finds itself, over several
    turns: iterate for the answer's text (it comes once the model answers), then read
    ``.answer`` (``.answer.steps``: every tool call). ``.prompt.hits`` are the passages
    found so far, numbered as the answer cites them."""

    def __init__(
        self,
        question: str,
        library: Library,
        model: ChatModel,
        settings: Settings,
        caller: str = "",
        assistant: str = "",
        options: AnswerOptions | None = None,
    ) -> None:
        super().__init__(question, [], model, settings, caller, assistant, options)
        self.library = library
        self.found: list[Hit] = []  # every passage seen, numbered from 1 in this order
        self._numbers: dict[int, int] = {}  # chunk id -> its number
        self._costs: list[int] = []  # what each found passage takes in a single-shot prompt
        self.steps: list[AgentStep] = []
        self.warnings: list[str] = []
        self._usage = Usage()
        self._attempts: list[Any] = []
        self._final: AnswerStream | None = None
        self._window = min(settings.context_window, model.context_window)
        self._tools_tokens = model.count_tokens(tool_definitions(TOOLS))
        self.messages = [Message("system", self._system()), Message("user", question)]
        # The answer's opening prompt; its hits grow as the tools find passages.
        system_tokens = model.count_messages(self.messages[:1]) + self._tools_tokens
        question_tokens = model.count_tokens(question)
        budget = Budget(self._window, system_tokens, question_tokens, [], settings.answer_tokens)
        self.prompt = Prompt(
            self.messages, self.found, budget, system_tokens + question_tokens, self.warnings
        )

    def _system(self) -> str:
        instructions = self.options.instructions
        if not instructions:
            return AGENT_PROMPT
        # A client's instructions take a quarter of the context window at most.
        limit = max(self._window // 4, 1)
        if self.model.count_tokens(instructions) > limit:
            instructions = self.model.truncate(instructions, limit)
            self.warnings.append(
                f"the system instructions were truncated to {limit} tokens to fit the "
                "context window"
            )
        return f"{AGENT_PROMPT}\n\n{INSTRUCTIONS_INTRO}\n\n{instructions}"

    # -- the stream's interface ------------------------------------------------------

    def start(self) -> AgentStream:
        """Make the first model call now, so a budget that refuses it raises here, before
        any text is promised to a reader."""
        if self._response is None and not self.steps and self._plan(0) == "tools":
            self._response = self.model.generate(self._request())
        return self

    def close(self) -> None:
        if self._response is not None:
            with contextlib.suppress(ValueError):  # running in another thread: cancel() stops it
                self._response.close()
        if self._final is not None:
            self._final.close()

    def __iter__(self) -> Generator[str, None, None]:
        plan: Plan = "steps"
        finished: Finished | None = None
        for number in range(self.settings.agent_steps):
            if self._cancelled.is_set():
                break
            plan = self._plan(number)
            if plan != "tools":
                break
            turn = self._take_turn()
            finished = turn.finished
            if self._cancelled.is_set():
                break
            answer = self._run_tools(turn)
            if answer is not None and answer.strip():
                yield from self._answered(answer, turn)
                return
            if answer is not None:
                self._record_reply(turn, [], error="the reply was empty")
                plan = "empty"
                break
        if self._cancelled.is_set():  # the reader left: no last answer for nobody
            self.answer = self._answer("", finished, finish_reason="cancelled")
            return
        yield from self._answer_from_found(plan)

    # -- the loop -------------------------------------------------------------------

    def _plan(self, number: int) -> Plan:
        """Whether turn ``number`` may call tools, or why the loop stops before it. A tool
        turn must leave room in the token budget for a last answer over what it finds."""
        if number >= self.settings.agent_steps - 1:
            return "steps"
        prompt = self._conversation_tokens() + self._tools_tokens
        cost = prompt + self.settings.answer_tokens
        if cost > self._window:
            return "window"
        last_answer = min(self._window, self._single_shot_tokens() + self._result_tokens())
        if self._spent() + cost + last_answer > self.settings.agent_tokens:
            return "tokens"
        return "tools"

    def _request(self) -> ModelRequest:
        return ModelRequest.of(
            self.messages,
            max_tokens=self.settings.answer_tokens,
            temperature=self.settings.temperature,
            tools=TOOLS,
            purpose="agent",
            caller=self.caller,
            assistant=self.assistant,
            cancelled=self._cancelled,
            **self.options.sampling(),
        )

    def _take_turn(self) -> _Turn:
        """One model call with the tools, read to its end (a provider error is raised)."""
        if self._response is None:  # start() made the first call already
            self._response = self.model.generate(self._request())
        response = self._response
        text: list[str] = []
        calls = ToolCallJoiner()
        finished: Finished | None = None
        try:
            for event in response:
                if self._cancelled.is_set():
                    break
                if isinstance(event, TextDelta):
                    text.append(event.text)
                elif isinstance(event, ToolCallDelta):
                    calls.add(event)
                elif isinstance(event, Finished):
                    finished = event
        finally:
            response.close()  # stops generation, settles the ledger
            self._response = None
        # Any name passes: a tool the agent has not is told to the model as an error.
        turn = _Turn("".join(text), calls.calls(), self._usage_of(finished, text), finished)
        turn.attempts = list(finished.attempts if finished else getattr(response, "attempts", []))
        self._usage = _added(self._usage, turn.usage)
        self._attempts += turn.attempts
        return turn

    def _usage_of(self, finished: Finished | None, text: list[str]) -> Usage:
        if finished is not None:
            u = finished.usage
            return Usage(u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.estimated)
        # Stopped before its end: what was sent and received, estimated.
        prompt = self._conversation_tokens() + self._tools_tokens
        return Usage(prompt, self.model.count_tokens("".join(text)), estimated=True)

    def _run_tools(self, turn: _Turn) -> str | None:
        """Run the turn's tool calls and add them and their results to the conversation;
        the answer's text when the model answered (by text or the answer tool)."""
        if not turn.calls:
            return turn.text
        self.messages.append(Message("assistant", turn.text, tool_calls=tuple(turn.calls)))
        for index, call in enumerate(turn.calls):
            step, result = self._run_tool(call)
            if index == 0:  # the turn's tokens go to its first call
                step = replace(
                    step,
                    prompt_tokens=turn.usage.prompt_tokens,
                    completion_tokens=turn.usage.completion_tokens,
                )
            self.steps.append(step)
            if step.tool == "answer" and not step.error:
                return str(step.arguments["text"])
            self.messages.append(Message("tool", result, tool_call_id=call.id))
        return None

    def _run_tool(self, call: ToolCall) -> tuple[AgentStep, str]:
        """The step to record and the result the model reads. A failure is the model's to
        work around: it gets the error as the result, and the loop goes on."""
        try:
            arguments = json.loads(call.arguments or "{}")
        except ValueError as exc:
            return _failed(call.name, {}, f"the arguments are not valid JSON ({exc})")
        if not isinstance(arguments, dict):
            return _failed(call.name, {}, "the arguments must be a JSON object")
        tools: dict[str, Callable[[dict[str, Any]], tuple[list[int], str]]] = {
            "search": self._search,
            "fetch": self._fetch,
            "answer": _answer_argument,
        }
        if call.name not in tools:
            return _failed(call.name, arguments, f"there is no tool {call.name!r}")
        try:
            numbers, result = tools[call.name](arguments)
        except Exception as exc:  # a failing search or store: the model may try another way
            return _failed(call.name, arguments, str(exc) or type(exc).__name__)
        return AgentStep(call.name, arguments, numbers), result

    def _search(self, arguments: dict[str, Any]) -> tuple[list[int], str]:
        query = arguments.get("query")
        if not isinstance(query, str) or not query.strip():
            raise ValueError("search needs a query: a non-empty string")
        k = arguments.get("k", self.settings.top_k)
        if not isinstance(k, int) or isinstance(k, bool):
            raise ValueError("k must be an integer")
        hits = self.library.search(query, max(1, min(k, MAX_K)))
        relevant = relevant_hits(query, hits, self.settings.min_relevance)
        if not relevant:
            return [], f"No passage matched {query!r}. Try other words."
        return self._listed(relevant)

    def _fetch(self, arguments: dict[str, Any]) -> tuple[list[int], str]:
        number = arguments.get("number")
        if not self.found:
            raise ValueError("no passage has been found yet: search first")
        if not isinstance(number, int) or not 1 <= number <= len(self.found):
            raise ValueError(f"no passage [{number}]: the passages are [1] to [{len(self.found)}]")
        hit = self.found[number - 1]
        # Document ids name a document within its collection: another collection's
        # document of the same id is not this one.
        passages = [
            p
            for p in self.library.document_passages(hit.document_id)
            if p.collection == hit.collection and self.library.readable(p)
        ]
        ids = [p.chunk_id for p in passages]
        if hit.chunk_id not in ids:
            raise ValueError(f"the document of passage [{number}] is no longer stored")
        around = _around(passages, ids.index(hit.chunk_id), self._result_tokens(), self.model)
        return self._listed(around)

    def _listed(self, hits: Sequence[Hit]) -> tuple[list[int], str]:
        """Number the passages (a chunk seen before keeps its number and is not repeated)
        and list them for the model, within the result's token bound."""
        numbers: list[int] = []
        parts: list[str] = []
        room = self._result_tokens()
        for hit in hits:
            known = self._numbers.get(hit.chunk_id)
            if known is not None:
                part = f"[{known}] {hit.title} ({hit.location}): listed above"
            else:
                part = format_passage(len(self.found) + 1, hit)
            cost = self.model.count_tokens(part)
            if cost > room and parts:
                parts.append(f"({len(hits) - len(numbers)} more passages left out to save room)")
                break
            numbers.append(known or self._number(hit))
            parts.append(part)
            room -= cost
        return numbers, "\n\n".join(parts)

    def _number(self, hit: Hit) -> int:
        """The next number, given to a passage seen for the first time."""
        self.found.append(hit)
        self._numbers[hit.chunk_id] = len(self.found)
        self._costs.append(self.model.count_tokens(format_passage(len(self.found), hit)) + 2)
        return len(self.found)

    # -- token accounting ----------------------------------------------------------

    def _spent(self) -> int:
        return self._usage.prompt_tokens + self._usage.completion_tokens

    def _conversation_tokens(self) -> int:
        """The conversation's prompt tokens, the arguments of its tool calls included."""
        return request_tokens(self.model, self.messages)

    def _single_shot_tokens(self, passages: int | None = None) -> int:
        """What a last single-shot answer over the first ``passages`` found (all: None)
        would cost."""
        asked = [Message("system", SYSTEM_PROMPT), Message("user", f"Question: {self.question}")]
        costs = self._costs[:passages] if passages is not None else self._costs
        return self.model.count_messages(asked) + sum(costs) + 16 + self.settings.answer_tokens

    def _result_tokens(self) -> int:
        return max(200, min(RESULT_TOKENS, (self._window - self.settings.answer_tokens) // 4))

    # -- the answer -----------------------------------------------------------------

    def _answered(self, text: str, turn: _Turn) -> Iterator[str]:
        """The model's own answer, checked sentence by sentence as a single-shot one is:
        markers naming no passage are removed, a loop is cut; when strict checks leave
        nothing, the best passage found is quoted instead."""
        guard = AnswerGuard(self.found, self.question, strict_checks(self.settings, self.model))
        shown = ""
        for part in _checked(text, guard) if self.settings.answer_check != "off" else [text]:
            part = part if shown.strip() else part.lstrip()
            if part:
                shown += part
                yield part
        self.warnings.extend(guard.warnings())
        quoted, reason = None, None  # reason: how the quote shown instead ended
        if not shown.strip() and guard.strict:
            quoted = extractive_answer(self.question, self.found)
            # The caller's token limit holds for the quote as for the model's own words.
            shown, cut = within_tokens(
                quoted or NOTHING_FOUND, self.settings.answer_tokens, self.model.count_tokens
            )
            reason = "length" if cut else "stop"
            self.warnings.append(
                "the model's answer was not supported by the sources; quoted them instead"
            )
            yield shown
        text = shown.strip()
        if turn.calls:  # the answer tool: its step is recorded; note what it cites
            self.steps[-1].passages = self._cited(text)
        else:  # a plain-text reply: the turn is the answer's step
            self._record_reply(turn, self._cited(text))
        self.answer = self._answer(text, turn.finished, reason, extractive=quoted is not None)

    def _record_reply(self, turn: _Turn, cited: list[int], error: str = "") -> None:
        """A turn that called no tool is a step too: it holds the turn's tokens."""
        usage = turn.usage
        step = AgentStep("answer", {}, cited, usage.prompt_tokens, usage.completion_tokens, error)
        self.steps.append(step)

    def _cited(self, text: str) -> list[int]:
        """The passage numbers ``text`` cites, in order, once each."""
        numbers = [int(n) for n in MARKER.findall(text)]
        return list(dict.fromkeys(n for n in numbers if 1 <= n <= len(self.found)))

    def _answer(
        self,
        text: str,
        finished: Finished | None,
        finish_reason: str | None = None,
        extractive: bool = False,
    ) -> Answer:
        cited = self._cited(text)
        return Answer(
            self.question,
            text,
            [quoted_citation(n, self.found[n - 1], text, self.question) for n in cited],
            list(self.found),
            None,  # no one prompt: the steps hold each turn's tokens
            self._usage,
            finished.model if finished else self.model.model_id,
            warnings=self.warnings,
            extractive=extractive,
            # The given reason (cancelled), else the last turn's.
            finish_reason=finish_reason or (finished.finish_reason if finished else "stop"),
            target=finished.target if finished else "",
            attempts=self._attempts,
            steps=self.steps,
        )

    def _answer_from_found(self, why: Plan) -> Iterator[str]:
        """The loop stopped before the model answered: one single-shot answer over the
        passages found (their numbers kept), within what is left of the token budget."""
        left = self.settings.agent_tokens - self._spent()
        warning = STOPPED[why].format(
            steps=self.settings.agent_steps, tokens=self.settings.agent_tokens
        )
        settings, hits = self.settings, self.found
        if hits:  # every passage found counts (fetched ones carry no score), in order
            settings = replace(settings, min_relevance=float("-inf"), top_k=len(hits))
        else:  # nothing found yet: what a single-shot answer would search
            hits = self.library.search(self.question, self.settings.top_k * 2)
        first = self.model.count_tokens(format_passage(1, hits[0])) if hits else 0
        if left < self._single_shot_tokens(passages=0) + first:
            settings = replace(settings, answer_check="quote")  # no model call fits the budget
            warning += "; the best passage found is quoted instead"
        else:  # the prompt fits what is left of the budget: passages beyond it are left out
            settings = replace(settings, context_window=min(self._window, left))
            warning += "; it answered from the passages found so far"
        self.warnings.append(warning)
        stream = AnswerStream(
            self.question,
            hits,
            self.model,
            settings,
            self.caller,
            self.assistant,
            self.options,
            cancelled=self._cancelled,  # a reader who leaves stops this call too
        )
        self._final = stream.start()
        yield from stream
        assert stream.answer is not None
        self.answer = self._merged(stream.answer)

    def _merged(self, final: Answer) -> Answer:
        """The last single-shot answer with the loop's steps, usage and attempts."""
        u = final.usage
        cited = [c.number for c in final.citations]
        if u.prompt_tokens or u.completion_tokens:
            self.steps.append(AgentStep("answer", {}, cited, u.prompt_tokens, u.completion_tokens))
        return replace(
            final,
            hits=list(self.found) or final.hits,
            usage=_added(self._usage, u),
            warnings=self.warnings + final.warnings,
            attempts=self._attempts + final.attempts,
            steps=self.steps,
        )


def _checked(text: str, guard: AnswerGuard) -> Iterator[str]:
    """The answer's sentences as the checks leave them, up to a loop (where they stop)."""
    for segment in segments([text]):
        verdict = guard.check(segment)
        if verdict.stop:
            return
        yield verdict.text


def _failed(tool: str, arguments: dict[str, Any], error: str) -> tuple[AgentStep, str]:
    return AgentStep(tool, arguments, error=error), f"Error: {error}"


def _answer_argument(arguments: dict[str, Any]) -> tuple[list[int], str]:
    text = arguments.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("answer needs its text: a non-empty string")
    return [], text


def _around(passages: Sequence[Hit], index: int, limit: int, model: ChatModel) -> list[Hit]:
    """The passage at ``index`` and its neighbours, nearest first, within ``limit`` tokens;
    in document order."""
    chosen = {index}
    room = limit - model.count_tokens(passages[index].text)
    for distance in range(1, len(passages)):
        for near in (index + distance, index - distance):
            if 0 <= near < len(passages):
                cost = model.count_tokens(passages[near].text) + 16
                if cost > room:
                    return [passages[i] for i in sorted(chosen)]
                chosen.add(near)
                room -= cost
    return [passages[i] for i in sorted(chosen)]


def _added(total: Usage, more: Usage) -> Usage:
    return Usage(
        total.prompt_tokens + more.prompt_tokens,
        total.completion_tokens + more.completion_tokens,
        total.cached_tokens + more.cached_tokens,
        total.estimated or more.estimated,
    )
