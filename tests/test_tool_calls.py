"""Tool calling through every chat provider, with tool_choice honoured: OpenAI's and
Anthropic's wire formats against their stand-ins (tests/standins.py), the router's refusal
for a target that cannot call tools, the local model's grammar-constrained calls, and
llama.cpp's own OpenAI-compatible server."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from citewise import ProviderError
from citewise.providers.anthropic import AnthropicChatModel
from citewise.providers.base import (
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
    ToolCall,
    ToolCallDelta,
)
from citewise.providers.local import (
    LlamaCppModel,
    ToolReply,
    chat_messages,
    renders_tool_role,
    request_grammar,
    results_as_user_turns,
    tool_schema,
)
from citewise.providers.openai import OpenAIChatModel
from citewise.providers.router import Policy, Router, Target
from standins import stand_in
from test_providers import start_llama_server

WEATHER = Tool(
    "get_weather",
    "The current weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
ORDERS = Tool(
    "lookup_order",
    "Look up an order by its number.",
    {
        "type": "object",
        "properties": {"order_id": {"type": "integer"}},
        "required": ["order_id"],
    },
)
TOOLS = (WEATHER, ORDERS)
ASK_WEATHER = [Message("user", "What is the weather in Paris?")]
# The model asked for the weather, the client ran the tool: the turns that follow.
ANSWERED = [
    *ASK_WEATHER,
    Message("assistant", tool_calls=(ToolCall("call_1", "get_weather", '{"city": "Paris"}'),)),
    Message("tool", "Sunny, 24 C", tool_call_id="call_1"),
]


def calls_of(events: Sequence[Event]) -> list[ToolCall]:
    """The tool-call deltas joined per call, as a client assembles them."""
    calls: dict[int, ToolCall] = {}
    for e in events:
        if isinstance(e, ToolCallDelta):
            known = calls.get(e.index, ToolCall("", "", ""))
            calls[e.index] = ToolCall(
                known.id or e.id or "", known.name or e.name or "", known.arguments + e.arguments
            )
    return [calls[i] for i in sorted(calls)]


def text_in(events: Sequence[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def finished(events: Sequence[Event]) -> Finished:
    last = events[-1]
    assert isinstance(last, Finished)
    return last


def assert_valid_call(call: ToolCall, tools: Sequence[Tool]) -> None:
    """The call names one of ``tools`` and its arguments parse and fit that tool."""
    by_name = {t.name: t for t in tools}
    assert call.name in by_name, call
    jsonschema.validate(json.loads(call.arguments), by_name[call.name].parameters)


# -- OpenAI's Chat Completions (stand-in) ------------------------------------------------


@pytest.mark.parametrize(
    "choice, name, wire",
    [
        ("auto", None, "auto"),
        ("none", None, "none"),
        ("required", None, "required"),
        ("required", "lookup_order", {"type": "function", "function": {"name": "lookup_order"}}),
    ],
)
def test_openai_sends_tools_with_each_tool_choice_as_documented(
    choice: Any, name: str | None, wire: Any
) -> None:
    with stand_in("openai") as (url, script):
        model = OpenAIChatModel("gpt-test", "sk-test", url, 4096)
        request = ModelRequest.of(ASK_WEATHER, tools=TOOLS, tool_choice=choice, tool_name=name)
        list(model.generate(request))
    body = script.served[0].body
    assert body["tool_choice"] == wire
    assert body["tools"] == [
        {
            "type": "function",
            "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
        }
        for t in TOOLS
    ]


def test_openai_sends_no_tool_choice_without_tools() -> None:
    with stand_in("openai") as (url, script):
        model = OpenAIChatModel("gpt-test", "sk-test", url, 4096)
        list(model.generate(ModelRequest.of(ASK_WEATHER, tool_choice="required")))
    assert "tools" not in script.served[0].body and "tool_choice" not in script.served[0].body


def test_openai_tool_call_deltas_come_back_as_tool_call_deltas() -> None:
    with stand_in("openai") as (url, script):
        script.behaviours.append('call:lookup_order:{"order_id": 1234}')
        model = OpenAIChatModel("gpt-test", "sk-test", url, 4096)
        events = list(model.generate(ModelRequest.of(ASK_WEATHER, tools=TOOLS)))
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert len(deltas) == 3  # the call's start, then its arguments in two fragments
    assert (deltas[0].id, deltas[0].name) == ("call_1", "lookup_order")
    assert all(d.id is None and d.name is None and d.index == 0 for d in deltas[1:])
    (call,) = calls_of(events)
    assert_valid_call(call, TOOLS)
    assert json.loads(call.arguments) == {"order_id": 1234}
    assert text_in(events) == "" and finished(events).finish_reason == "tool_calls"


STRICT_OK = Tool(
    "lookup_order",
    "Look up an order by its number.",
    {
        "type": "object",
        "properties": {"order_id": {"type": "integer"}},
        "required": ["order_id"],
        "additionalProperties": False,
    },
    strict=True,
)


def test_openai_forwards_strict_only_when_asked_and_the_schema_allows_it() -> None:
    # WEATHER's schema is open (no additionalProperties: false): strict mode would refuse it.
    open_strict = Tool(WEATHER.name, WEATHER.description, WEATHER.parameters, strict=True)
    with stand_in("openai") as (url, script):
        model = OpenAIChatModel("gpt-test", "sk-test", url, 4096)
        for tools in ((STRICT_OK, open_strict), TOOLS):
            list(model.generate(ModelRequest.of(ASK_WEATHER, tools=tools)))
    sent = [[t["function"] for t in served.body["tools"]] for served in script.served]
    assert sent[0][0]["strict"] is True and "strict" not in sent[0][1]
    assert all("strict" not in function for function in sent[1])


def chunk_call(index: int, id: str | None = None, name: str | None = None, arguments: str = ""):
    from openai.types.chat.chat_completion_chunk import ChoiceDeltaToolCall

    function = {"name": name, "arguments": arguments} if name or arguments else None
    return ChoiceDeltaToolCall.model_validate(
        {"index": index, "id": id, "type": "function", "function": function}
    )


def test_openai_tool_call_ids_and_names_pass_once_whichever_chunk_brings_them() -> None:
    from citewise.providers.openai import _ToolCallStream

    stream = _ToolCallStream()
    chunks = [
        chunk_call(0, id="call_a"),  # the id first, alone
        chunk_call(0, name="get_weather"),  # then the name
        chunk_call(0, id="call_a", name="get_weather", arguments='{"city"'),  # llama.cpp repeats
        chunk_call(0, arguments=': "Oslo"}'),
        chunk_call(1, id="call_b", name="lookup_order", arguments='{"order_id": 7}'),
    ]
    deltas = [stream.delta(c) for c in chunks]
    assert [(d.index, d.id, d.name) for d in deltas] == [
        (0, "call_a", None),
        (0, None, "get_weather"),
        (0, None, None),
        (0, None, None),
        (1, "call_b", "lookup_order"),
    ]
    assert stream.seen
    assert calls_of(deltas) == [
        ToolCall("call_a", "get_weather", '{"city": "Oslo"}'),
        ToolCall("call_b", "lookup_order", '{"order_id": 7}'),
    ]


def test_one_joiner_gives_calls_ids_and_refuses_names_never_offered() -> None:
    from citewise.answering import ToolCallJoiner

    joiner = ToolCallJoiner()
    for delta in (
        ToolCallDelta(0, None, "get_weather", '{"city": "Oslo"}'),
        ToolCallDelta(1, None, "get_weather", '{"city": "Rome"}'),
    ):
        joiner.add(delta)
    first, second = joiner.calls(TOOLS)
    assert first.id.startswith("call_") and second.id.startswith("call_")
    assert first.id != second.id  # unique: each result must name its call
    for name, problem in (("send_email", "'send_email', which is not among"), ("", "without a")):
        joiner = ToolCallJoiner()
        joiner.add(ToolCallDelta(0, "call_1", name, "{}"))
        with pytest.raises(ProviderError, match=problem) as refused:
            joiner.calls(TOOLS, "openai:gpt-test")
        assert refused.value.kind == "server"
        assert joiner.calls()[0].name == name  # agent mode tells the model instead


def test_a_strict_tools_calls_are_checked_against_its_parameters() -> None:
    from citewise.answering import ToolCallJoiner

    for arguments, valid in (('{"order_id": 7}', True), ('{"order_id": "7"}', False)):
        joiner = ToolCallJoiner()
        joiner.add(ToolCallDelta(0, "call_1", "lookup_order", arguments))
        if valid:
            assert joiner.calls([STRICT_OK])[0].arguments == arguments
            continue
        with pytest.raises(ProviderError, match="'lookup_order' with arguments") as refused:
            joiner.calls([STRICT_OK])
        assert refused.value.kind == "server"
        assert joiner.calls([ORDERS])  # not strict: passed on as the model wrote them


def test_openai_serialises_a_tool_call_turn_and_its_result() -> None:
    with stand_in("openai") as (url, script):
        model = OpenAIChatModel("gpt-test", "sk-test", url, 4096)
        list(model.generate(ModelRequest.of(ANSWERED, tools=TOOLS)))
    assert script.served[0].body["messages"] == [
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "content": "Sunny, 24 C", "tool_call_id": "call_1"},
    ]


# -- Anthropic's Messages API (stand-in) -------------------------------------------------


@pytest.mark.parametrize(
    "choice, name, wire, behaviour",
    [
        ("auto", None, {"type": "auto"}, "tool_use"),
        ("required", None, {"type": "any"}, "tool_use"),
        ("required", "get_weather", {"type": "tool", "name": "get_weather"}, "tool_use"),
        ("none", None, {"type": "none"}, "ok"),
    ],
)
def test_anthropic_maps_tool_choice_to_its_own_shape(
    choice: Any, name: str | None, wire: dict[str, str], behaviour: str
) -> None:
    with stand_in("anthropic") as (url, script):
        script.behaviours.append(behaviour)
        model = AnthropicChatModel("claude-test", "sk-ant-test", url, 4096)
        request = ModelRequest.of(ASK_WEATHER, tools=TOOLS, tool_choice=choice, tool_name=name)
        events = list(model.generate(request))
    body = script.served[0].body
    assert body["tool_choice"] == wire
    assert [t["name"] for t in body["tools"]] == ["get_weather", "lookup_order"]
    assert body["tools"][1]["input_schema"] == ORDERS.parameters
    if behaviour == "ok":
        assert text_in(events) and not calls_of(events)
        assert finished(events).finish_reason == "stop"
    else:
        (call,) = calls_of(events)
        assert call.id == "toolu_1" and json.loads(call.arguments) == {"city": "Paris"}
        assert_valid_call(call, TOOLS)
        assert finished(events).finish_reason == "tool_calls"


def test_anthropic_serialises_a_tool_call_turn_and_its_result() -> None:
    with stand_in("anthropic") as (url, script):
        model = AnthropicChatModel("claude-test", "sk-ant-test", url, 4096)
        list(model.generate(ModelRequest.of(ANSWERED, tools=TOOLS)))
    assert script.served[0].body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "call_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                }
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "Sunny, 24 C"}],
        },
    ]


def test_anthropic_tells_tool_turns_as_text_to_a_request_without_tools() -> None:
    """The Messages API refuses tool_use blocks in a request without tools: a conversation
    whose tools the client no longer sends keeps its calls and results, as text."""
    with stand_in("anthropic") as (url, script):
        model = AnthropicChatModel("claude-test", "sk-ant-test", url, 4096)
        list(model.generate(ModelRequest.of(ANSWERED)))
    body = script.served[0].body
    assert "tools" not in body and "tool_choice" not in body
    assert body["messages"][1:] == [
        {"role": "assistant", "content": 'Called tool get_weather with {"city": "Paris"}'},
        {"role": "user", "content": "Result of get_weather: Sunny, 24 C"},
    ]


def test_anthropics_forced_tool_for_an_output_schema_refuses_the_clients_tools(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An SDK without output_config answers a schema through a forced tool, whose arguments
    are the (text) answer. It would take the place of the client's tools: a request with
    both is refused naming tools, never sent without them."""
    schema = OutputSchema("answer", {"type": "object", "properties": {"city": {"type": "string"}}})
    with stand_in("anthropic") as (url, script):
        model = AnthropicChatModel("claude-test", "sk-ant-test", url, 4096)
        monkeypatch.setattr(model, "_takes_output_config", False)  # as an older SDK
        both = ModelRequest.of(
            ASK_WEATHER, tools=TOOLS, tool_choice="required", output_schema=schema
        )
        with pytest.raises(ProviderError, match="forced tool") as refused:
            list(model.generate(both))
        assert (refused.value.kind, refused.value.param) == ("invalid_request", "tools")
        assert script.served == []
        script.behaviours.append("tool_use")
        events = list(model.generate(ModelRequest.of(ASK_WEATHER, output_schema=schema)))
    body = script.served[0].body
    assert body["tool_choice"] == {"type": "tool", "name": "answer"}
    assert [t["name"] for t in body["tools"]] == ["answer"]
    assert json.loads(text_in(events)) == {"city": "Paris"} and not calls_of(events)
    assert finished(events).finish_reason == "stop"


# -- the router: a target that cannot call tools refuses them ----------------------------


class TextOnlyModel(BaseChatModel):
    """A plug-in provider that answers in text and declares no tool calling."""

    name = "textonly"

    def __init__(self) -> None:
        self.model_id = "plain"
        self.context_window = 4096
        self.capabilities = Capabilities(4096)
        self.requests: list[ModelRequest] = []

    def generate(self, request: ModelRequest) -> Generator[Event, None, None]:
        self.requests.append(request)
        yield TextDelta("plain text")
        yield Finished(TokenUsage(1, 2), "stop", self.name, self.model_id)


def router_over(text_only: TextOnlyModel, openai_url: str, policy: Policy) -> Router:
    chain = [
        Target("textonly:plain", "textonly", "plain", max_retries=0),
        Target("openai:gpt-test", "openai", "gpt-test", base_url=openai_url, max_retries=0),
    ]

    def load(target: Target) -> Any:
        if target.provider == "textonly":
            return text_only
        return OpenAIChatModel(target.model, "sk-test", target.base_url, 4096)

    return Router("chain", chain, load, policy)


def test_a_target_that_cannot_call_tools_refuses_them_never_drops_them() -> None:
    text_only = TextOnlyModel()
    with stand_in("openai") as (url, script):
        router = router_over(text_only, url, Policy())
        with pytest.raises(ProviderError) as refused:
            list(router.generate(ModelRequest.of(ASK_WEATHER, tools=TOOLS)))
        assert (refused.value.kind, refused.value.param) == ("invalid_request", "tools")
        assert "textonly:plain cannot call tools" in str(refused.value)
        assert text_only.requests == [] and script.served == []
        # Without tools the same target answers.
        assert text_in(list(router.generate(ModelRequest.of(ASK_WEATHER)))) == "plain text"
        # A chain that moves on after a refusal: the next target gets the tools.
        script.behaviours.append("tool_call")
        events = list(
            router_over(text_only, url, Policy(fallback_on_caller_errors=True)).generate(
                ModelRequest.of(ASK_WEATHER, tools=TOOLS)
            )
        )
    assert [(a.target, a.kind) for a in finished(events).attempts] == [
        ("textonly:plain", "invalid_request"),
        ("openai:gpt-test", None),
    ]
    assert [t["function"]["name"] for t in script.served[-1].body["tools"]] == [
        "get_weather",
        "lookup_order",
    ]
    assert calls_of(events)[0].name == "get_weather"


# -- counting what a request with tools takes -------------------------------------------


def test_prompts_and_budgets_count_the_tools_and_the_calls() -> None:
    from citewise.providers.base import request_tokens, tool_definitions

    model = TextOnlyModel()
    calls_and_tools = request_tokens(model, ANSWERED, TOOLS)
    call = ANSWERED[1].tool_calls[0]
    assert calls_and_tools >= (
        model.count_messages(ANSWERED)
        + model.count_tokens(call.name + call.arguments)
        + model.count_tokens(tool_definitions(TOOLS))
    )
    router = Router("chain", [Target("textonly:plain", "textonly", "plain")], lambda t: model)
    with_tools, _ = router.worst_case(ModelRequest.of(ANSWERED, tools=TOOLS, max_tokens=10))
    without, _ = router.worst_case(ModelRequest.of(ANSWERED, max_tokens=10))
    assert with_tools == calls_and_tools + 10
    assert without == request_tokens(model, ANSWERED) + 10 < with_tools


def test_the_answer_prompt_counts_the_tools_and_refuses_an_oversized_continuation() -> None:
    from citewise.answering import AnswerOptions, build_prompt
    from citewise.config import Settings
    from citewise.errors import InvalidInput
    from citewise.providers.base import request_tokens

    model = TextOnlyModel()
    settings = Settings.load(context_window=4096, answer_tokens=256)
    question = ASK_WEATHER[0].content
    plain = build_prompt(question, [], model, settings)
    continued = AnswerOptions(tools=TOOLS, continuation=tuple(ANSWERED[1:]))
    prompt = build_prompt(question, [], model, settings, continued)
    assert prompt.prompt_tokens == request_tokens(model, prompt.messages, TOOLS)
    assert prompt.prompt_tokens > plain.prompt_tokens + request_tokens(model, [], TOOLS)
    assert prompt.budget.total <= 4096
    huge = Message("tool", "sunny " * 4000, tool_call_id="call_1")
    oversized = AnswerOptions(tools=TOOLS, continuation=(ANSWERED[1], huge))
    with pytest.raises(InvalidInput, match="leave no room for a 256-token answer") as refused:
        build_prompt(question, [], model, settings, oversized)
    assert refused.value.param == "messages"


# -- the local model's tool JSON, without the model --------------------------------------


def test_the_reply_schema_pairs_each_name_with_its_own_arguments() -> None:
    required = tool_schema(ModelRequest.of(ASK_WEATHER, tools=TOOLS, tool_choice="required"))
    jsonschema.validate(
        {"tool_calls": [{"name": "lookup_order", "arguments": {"order_id": 7}}]}, required
    )
    for wrong in (
        {"tool_calls": [{"name": "get_weather", "arguments": {"order_id": 7}}]},
        {"tool_calls": [{"name": "lookup_order", "arguments": {"order_id": "7"}}]},
        {"tool_calls": [{"name": "send_email", "arguments": {}}]},
        {"tool_calls": []},
        {"content": "It is sunny."},  # required: a call, not text
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(wrong, required)
    named = tool_schema(ModelRequest.of(ASK_WEATHER, tools=TOOLS, tool_name="get_weather"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {"tool_calls": [{"name": "lookup_order", "arguments": {"order_id": 7}}]}, named
        )
    auto = tool_schema(ModelRequest.of(ASK_WEATHER, tools=TOOLS))
    jsonschema.validate({"content": "It is sunny."}, auto)
    jsonschema.validate(
        {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}, auto
    )
    # llama.cpp's converter takes it: the grammar builds.
    assert request_grammar(ModelRequest.of(ASK_WEATHER, tools=TOOLS)) is not None
    assert request_grammar(ModelRequest.of(ASK_WEATHER, tools=TOOLS, tool_choice="none")) is None


def test_a_text_reply_streams_its_text_as_it_comes_and_only_the_text() -> None:
    reply = ToolReply(streams_text=True)
    pieces = ['{"con', 'tent": "Sun', "ny \\u00e", '9t\\u00e9 \\"ici', '\\" \\ud83d', '\\ude00"}']
    streamed = [reply.feed(p) for p in pieces]
    assert streamed == ["", "Sun", "ny ", 'été "ici', '" ', "😀"]
    assert reply.close() == [] and not reply.called


def test_a_tool_reply_becomes_tool_call_deltas_with_ids() -> None:
    reply = ToolReply(streams_text=True)
    raw = '{"tool_calls": [{"name": "lookup_order", "arguments": {"order_id": 12}}]}'
    assert [reply.feed(raw[:20]), reply.feed(raw[20:])] == ["", ""]
    (delta,) = reply.close()
    assert isinstance(delta, ToolCallDelta) and reply.called
    assert delta.index == 0 and delta.name == "lookup_order"
    assert delta.id is not None and delta.id.startswith("call_") and len(delta.id) == 29
    assert json.loads(delta.arguments) == {"order_id": 12}
    cut = ToolReply(streams_text=True)
    cut.feed(raw[:40])  # max_tokens cut the call: nothing half-made goes out
    assert cut.close() == [] and not cut.called


def test_an_output_schema_answer_in_tool_mode_is_sent_as_json() -> None:
    reply = ToolReply(streams_text=False)
    assert reply.feed('{"content": {"city": "Oslo"}}') == ""
    assert reply.close() == [TextDelta('{"city": "Oslo"}')]


CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>\\n'}}{% endfor %}"
)
# Gemma 3's rule: turns alternate user/assistant, else the template raises.
ALTERNATING = (
    "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate') }}{% endif %}"
    "{{ message['role'] + ': ' + message['content'] + '\\n' }}{% endfor %}"
)


def test_tool_results_become_user_turns_where_the_template_has_no_tool_turn() -> None:
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    chatml = Jinja2ChatFormatter(CHATML, eos_token="</s>", bos_token="<s>")
    alternating = Jinja2ChatFormatter(ALTERNATING, eos_token="</s>", bos_token="<s>")
    assert renders_tool_role(chatml) and not renders_tool_role(alternating)
    two_results = [
        Message("user", "Weather in Paris and my order 7?"),
        Message(
            "assistant",
            tool_calls=(
                ToolCall("call_1", "get_weather", '{"city": "Paris"}'),
                ToolCall("call_2", "lookup_order", '{"order_id": 7}'),
            ),
        ),
        Message("tool", "Sunny, 24 C", tool_call_id="call_1"),
        Message("tool", "Shipped", tool_call_id="call_2"),
    ]
    turns = results_as_user_turns(two_results)
    assert [t.role for t in turns] == ["user", "assistant", "user"]
    assert turns[2].content == (
        "Result of tool get_weather (call_1): Sunny, 24 C\n\n"
        "Result of tool lookup_order (call_2): Shipped"
    )
    prompt = alternating(messages=chat_messages(two_results, tool_role=False)).prompt
    assert '"name": "lookup_order", "arguments": {"order_id": 7}' in prompt  # the calls shown
    assert "Result of tool lookup_order (call_2): Shipped" in prompt
    with pytest.raises(ValueError, match="alternate"):
        alternating(messages=chat_messages(two_results, tool_role=True))


# -- the local model (SmolLM2-135M in process) -------------------------------------------


@pytest.fixture(scope="module")
def local_model(gguf_path: Path) -> LlamaCppModel:
    return LlamaCppModel(gguf_path, context_window=2048)


def local_events(
    model: LlamaCppModel, messages: Sequence[Message], max_tokens: int = 120, **options: Any
) -> list[Event]:
    request = ModelRequest.of(messages, tools=TOOLS, max_tokens=max_tokens, **options)
    return list(model.generate(request))


@pytest.mark.slow
def test_the_local_model_must_call_a_tool_and_its_call_validates(
    local_model: LlamaCppModel,
) -> None:
    assert local_model.capabilities.tools
    for question in ("What is the weather in Paris?", "Where is my order 1234?"):
        events = local_events(local_model, [Message("user", question)], tool_choice="required")
        calls = calls_of(events)
        assert calls, events
        for call in calls:
            assert_valid_call(call, TOOLS)
            assert call.id.startswith("call_")
        assert text_in(events) == "" and finished(events).finish_reason == "tool_calls"


@pytest.mark.slow
def test_the_local_model_calls_the_named_tool(local_model: LlamaCppModel) -> None:
    for tool in TOOLS:
        events = local_events(local_model, ASK_WEATHER, tool_choice="required", tool_name=tool.name)
        calls = calls_of(events)
        assert calls and {c.name for c in calls} == {tool.name}, events
        for call in calls:
            assert_valid_call(call, [tool])


@pytest.mark.slow
def test_the_local_model_on_auto_answers_in_text_or_a_valid_call(
    local_model: LlamaCppModel,
) -> None:
    for question in ("What is the weather in Paris?", "Hi! How are you today?"):
        events = local_events(local_model, [Message("user", question)], tool_choice="auto")
        calls, text = calls_of(events), text_in(events)
        assert bool(calls) != bool(text), events  # one or the other
        if calls:
            for call in calls:
                assert_valid_call(call, TOOLS)
            assert finished(events).finish_reason == "tool_calls"
        else:  # the answer's text, never the JSON around it
            assert not text.lstrip().startswith("{"), text


@pytest.mark.slow
def test_the_local_model_on_none_writes_text_only(local_model: LlamaCppModel) -> None:
    events = local_events(local_model, ASK_WEATHER, max_tokens=30, tool_choice="none")
    assert text_in(events).strip() and not calls_of(events)
    assert finished(events).finish_reason in ("stop", "length")


@pytest.mark.slow
def test_the_local_model_answers_from_the_tool_result(local_model: LlamaCppModel) -> None:
    events = local_events(local_model, ANSWERED, tool_choice="none")
    assert not calls_of(events)
    assert "24" in text_in(events)  # it read the result of the call it made


@pytest.mark.slow
def test_the_local_prompt_count_includes_the_tools(local_model: LlamaCppModel) -> None:
    assert local_model._tool_role  # SmolLM2's ChatML template shows "tool" turns as they are
    with_tools = local_model.count_messages(ASK_WEATHER, TOOLS)
    assert with_tools > local_model.count_messages(ASK_WEATHER) + 50
    events = local_events(local_model, ASK_WEATHER, tool_choice="required")
    assert finished(events).usage.prompt_tokens == with_tools  # what was really sent


@pytest.mark.slow
def test_the_local_model_refuses_a_named_tool_it_was_not_given(
    local_model: LlamaCppModel,
) -> None:
    with pytest.raises(ProviderError, match="'send_email', which is not among") as refused:
        local_events(local_model, ASK_WEATHER, tool_choice="required", tool_name="send_email")
    assert (refused.value.kind, refused.value.param) == ("invalid_request", "tool_choice")


# -- llama.cpp's OpenAI-compatible server (llama-cpp-python's) ----------------------------


@pytest.fixture(scope="module")
def function_calling_server(gguf_path: Path) -> Iterator[str]:
    """llama-cpp-python's server with its tool-calling chat format (its default format
    ignores tools)."""
    with tempfile.TemporaryDirectory() as logs:
        process, base_url = start_llama_server(
            gguf_path, Path(logs), "--chat_format", "chatml-function-calling"
        )
        yield base_url
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.slow
def test_llama_server_calls_the_named_tool_with_parseable_arguments(
    function_calling_server: str,
) -> None:
    model = OpenAIChatModel("smollm2", None, function_calling_server, 2048)
    request = ModelRequest.of(
        ASK_WEATHER, tools=TOOLS, tool_choice="required", tool_name="get_weather", max_tokens=60
    )
    events = list(model.generate(request))
    (call,) = calls_of(events)
    assert_valid_call(call, [WEATHER])
    # The server repeats the call's id and name in every chunk; the contract has them once.
    named = [e for e in events if isinstance(e, ToolCallDelta) and e.name is not None]
    assert len(named) == 1 and named[0].id
    assert finished(events).finish_reason == "tool_calls"


@pytest.mark.slow
def test_llama_server_cannot_stream_a_required_tool_call(function_calling_server: str) -> None:
    """llama-cpp-python's chatml-function-calling handler takes a named tool or "auto"
    only: "required" fails its assertion after the 200 went out, so the stream breaks."""
    model = OpenAIChatModel("smollm2", None, function_calling_server, 2048)
    request = ModelRequest.of(ASK_WEATHER, tools=TOOLS, tool_choice="required", max_tokens=60)
    with pytest.raises(ProviderError, match="ended the stream before the model finished") as broke:
        list(model.generate(request))
    assert broke.value.kind == "stream"
