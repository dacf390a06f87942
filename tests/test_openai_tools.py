"""Issue 25: the client's tools on /v1/chat/completions (the model calls them, the client
runs them and sends the results back, the answer still cites the sources) and citations
where OpenAI's clients look for them (``message.annotations``, footnotes in the text).
Through the official openai SDK against a real server whose model is a STAND-IN for an
OpenAI-compatible API (tests/standins.py), which records what reaches it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from citewise import Workspace
from citewise.server import create_app
from conftest import LiveServer, served_over_standin
from standins import Script

QUESTION = "How do I rotate the API keys?"
WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
CALLED = [
    {"role": "user", "content": QUESTION},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 degrees"},
]


@pytest.fixture(scope="module")
def standin(standin_url: tuple[str, Script]) -> Script:
    return standin_url[1]


@pytest.fixture(scope="module")
def server(
    ingested_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
    standin_url: tuple[str, Script],
) -> Iterator[LiveServer]:
    assistants = (
        "[assistants.notes]",
        'sources_in_text = "footnotes"',
        "[assistants.quoter]",
        'answer_check = "quote"',
        "[assistants.strict]",
        'answer_check = "strict"',
        "[assistants.agent]",
        'mode = "agent"',
    )
    root = tmp_path_factory.mktemp("tools")
    with served_over_standin(ingested_template, root, standin_url[0], *assistants) as live:
        yield live


@pytest.fixture
def client(server: LiveServer, standin: Script) -> openai.OpenAI:
    standin.served.clear()
    standin.behaviours.clear()
    standin.reply = Script.reply
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def bad_request(client: openai.OpenAI, status: int = 400, **request: Any) -> dict[str, Any]:
    request.setdefault("model", "citewise")
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(**request)
    assert caught.value.status_code == status
    body = caught.value.body
    assert isinstance(body, dict)
    return body


# -- the model calls the client's tools ------------------------------------------------------


@pytest.mark.slow  # a server
def test_a_tool_call_reaches_the_client_with_its_arguments(
    client: openai.OpenAI, standin: Script
) -> None:
    standin.behaviours.append("tool_call")
    response = client.chat.completions.create(
        model="citewise", messages=[{"role": "user", "content": QUESTION}], tools=[WEATHER]
    )
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.type == "function" and call.function.name == "weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert call.id
    (served,) = standin.served
    assert served.body["tools"] == [WEATHER]
    # The model saw the sources with the tools: it may answer from them instead.
    assert "Sources:" in served.body["messages"][-1]["content"]


@pytest.mark.slow  # a server
def test_a_streamed_tool_call_arrives_as_tool_call_deltas(
    client: openai.OpenAI, standin: Script
) -> None:
    standin.behaviours.append("tool_call")
    stream = client.chat.completions.create(
        model="citewise",
        messages=[{"role": "user", "content": QUESTION}],
        tools=[WEATHER],
        tool_choice="required",
        stream=True,
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or ():
                call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += delta.id or ""
                call["name"] += (delta.function.name or "") if delta.function else ""
                call["arguments"] += (delta.function.arguments or "") if delta.function else ""
            finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    assert list(calls) == [0]
    assert calls[0]["name"] == "weather" and calls[0]["id"]
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}


@pytest.mark.slow  # a server
def test_tool_results_reach_the_model_after_the_grounded_question(
    client: openai.OpenAI, standin: Script
) -> None:
    response = client.chat.completions.create(model="citewise", messages=CALLED, tools=[WEATHER])
    message = response.choices[0].message
    assert "rotated" in (message.content or "") and message.tool_calls is None
    (served,) = standin.served
    roles = [m["role"] for m in served.body["messages"]]
    assert roles == ["system", "user", "assistant", "tool"]
    asked, called, result = served.body["messages"][1:]
    assert "Sources:" in asked["content"] and QUESTION in asked["content"]
    assert called["tool_calls"][0]["id"] == "call_1"
    assert called["tool_calls"][0]["function"]["name"] == "weather"
    assert result == {"role": "tool", "content": "sunny, 21 degrees", "tool_call_id": "call_1"}


@pytest.mark.slow  # a server
def test_tool_choice_none_sends_the_tools_with_choice_none(
    client: openai.OpenAI, standin: Script
) -> None:
    """As OpenAI's API: the model knows the tools (it may have called them earlier in the
    conversation) and is told to call none."""
    response = client.chat.completions.create(
        model="citewise", messages=CALLED, tools=[WEATHER], tool_choice="none"
    )
    assert response.choices[0].message.tool_calls is None
    (served,) = standin.served
    assert served.body["tools"] == [WEATHER] and served.body["tool_choice"] == "none"
    assert [m["role"] for m in served.body["messages"]] == ["system", "user", "assistant", "tool"]


@pytest.mark.slow  # a server
def test_malformed_tool_requests_are_refused_naming_the_field(
    client: openai.OpenAI, standin: Script
) -> None:
    user = [{"role": "user", "content": QUESTION}]
    unknown = {"type": "function", "function": {"name": "nowhere"}}
    error = bad_request(client, messages=user, tools=[WEATHER], tool_choice=unknown)
    assert (error["param"], error["code"]) == ("tool_choice", "invalid_value")
    bad_schema = {"type": "function", "function": {"name": "w", "parameters": {"type": 7}}}
    error = bad_request(client, messages=user, tools=[bad_schema])
    assert (error["param"], error["code"]) == ("tools", "invalid_value")
    error = bad_request(client, messages=user, tools=[{"type": "file_search"}])
    assert error["param"] == "tools"
    error = bad_request(client, messages=user, tool_choice="required")
    assert error["param"] == "tool_choice"
    # A tool result that answers no call, and a call left unanswered.
    stray = [*CALLED[:2], {"role": "tool", "tool_call_id": "call_9", "content": "x"}]
    error = bad_request(client, 422, messages=stray)
    assert (error["param"], error["code"]) == ("messages", "invalid_messages")
    error = bad_request(client, 422, messages=CALLED[:2])
    assert error["code"] == "invalid_messages"
    # The quoting assistant calls no model: tools are refused, not dropped.
    error = bad_request(client, model="quoter", messages=user, tools=[WEATHER])
    assert (error["param"], error["code"]) == ("tools", "unsupported_parameter")
    assert standin.served == []


def function(**fields: Any) -> dict[str, Any]:
    """WEATHER with ``fields`` changed in its function."""
    return {"type": "function", "function": {**WEATHER["function"], **fields}}


@pytest.mark.slow  # a server
def test_tool_errors_name_what_is_wrong(client: openai.OpenAI, standin: Script) -> None:
    user = [{"role": "user", "content": QUESTION}]
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"tools": [{**WEATHER, "cache": True}]}, "tools", "unexpected field(s) cache"),
        ({"tools": [WEATHER, WEATHER]}, "tools", "two tools are named 'weather'"),
        (
            {"tools": [function(parameters={"type": "string"})]},
            "tools",
            "tools[0].parameters must be a JSON Schema of type 'object'",
        ),
        (  # the Responses API's shape on chat completions
            {"tools": [WEATHER], "tool_choice": {"type": "function", "name": "weather"}},
            "tool_choice",
            "use {'type': 'function', 'function': {'name': 'weather'}}",
        ),
        (  # too many, whatever they are: counted before each is read
            {"tools": [{"type": "file_search"}] * 129},
            "tools",
            "give at most 128 tools, not 129",
        ),
    ]
    for fields, param, problem in cases:
        error = bad_request(client, messages=user, **fields)
        assert error["param"] == param and problem in error["message"], error
    assert standin.served == []
    # A description may be null, as the SDKs' types allow.
    client.chat.completions.create(
        model="citewise", messages=user, tools=[function(description=None)]
    )
    assert standin.served[0].body["tools"][0]["function"]["description"] == ""


@pytest.mark.slow  # a server
def test_a_call_of_a_tool_never_offered_is_a_bad_gateway(
    client: openai.OpenAI, standin: Script
) -> None:
    standin.behaviours.append('call:send_email:{"to": "x"}')
    error = bad_request(
        client, 502, messages=[{"role": "user", "content": QUESTION}], tools=[WEATHER]
    )
    assert error["code"] == "upstream_error"
    assert "'send_email', which is not among the request's tools (weather)" in error["message"]


STRICT_WEATHER = function(
    strict=True,
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
)


@pytest.mark.slow  # a server
def test_a_strict_tools_arguments_are_held_to_its_parameters(
    client: openai.OpenAI, standin: Script
) -> None:
    user = [{"role": "user", "content": QUESTION}]
    standin.behaviours.extend(['call:weather:{"city": "Oslo"}', 'call:weather:{"town": 7}'])
    response = client.chat.completions.create(
        model="citewise", messages=user, tools=[STRICT_WEATHER]
    )
    (call,) = response.choices[0].message.tool_calls or []
    assert json.loads(call.function.arguments) == {"city": "Oslo"}
    assert standin.served[0].body["tools"][0]["function"]["strict"] is True
    error = bad_request(client, 502, messages=user, tools=[STRICT_WEATHER])
    assert "called the tool 'weather' with arguments its strict parameters" in error["message"]
    # Not strict: the arguments are the client's to check.
    standin.behaviours.append('call:weather:{"town": 7}')
    loose = client.chat.completions.create(model="citewise", messages=user, tools=[WEATHER])
    assert loose.choices[0].message.tool_calls


@pytest.mark.slow  # a server
def test_tool_results_too_large_for_the_context_window_are_refused_before_any_call(
    client: openai.OpenAI, standin: Script
) -> None:
    huge = [*CALLED[:2], {"role": "tool", "tool_call_id": "call_1", "content": "sunny " * 5000}]
    error = bad_request(client, 422, messages=huge, tools=[WEATHER])
    assert error["param"] == "messages"
    assert (
        "leave no room for a" in error["message"]
        and "2048-token context window" in (error["message"])
    )
    assert standin.served == []


@pytest.mark.slow  # a server
def test_strict_checks_an_operator_set_stay_with_tool_results(
    client: openai.OpenAI, standin: Script
) -> None:
    """``answer_check = "strict"`` keeps dropping what the passages do not support, tool
    results or not (only "auto" relaxes for them): the best passage is quoted instead."""
    standin.reply = "Bananas grow purple on the dark side of the moon."
    response = client.chat.completions.create(model="strict", messages=CALLED, tools=[WEATHER])
    text = response.choices[0].message.content or ""
    assert "Bananas" not in text and text.startswith("From the sources (Rotating API keys): “")
    assert "keyctl rotate --all" in text and text.endswith("[1]")


# -- citations where OpenAI's clients look --------------------------------------------------


def marked(text: str, annotations: list[dict[str, Any]]) -> list[str]:
    return [
        text[a["url_citation"]["start_index"] : a["url_citation"]["end_index"]] for a in annotations
    ]


@pytest.mark.slow  # a server
def test_markers_are_url_citation_annotations(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model="citewise", messages=[{"role": "user", "content": QUESTION}]
    )
    message = response.choices[0].message
    text = message.content or ""
    annotations = [a.model_dump() for a in message.annotations or ()]
    assert annotations and marked(text, annotations) == ["[1]"] * len(annotations)
    cited = response.model_extra["citations"][0]  # type: ignore[index]
    citation = annotations[0]["url_citation"]
    assert citation["title"] == cited["title"]
    assert citation["url"].startswith(cited["url"] or cited["source"])


@pytest.mark.slow  # a server
def test_a_stream_ends_with_the_annotations_of_the_text_it_sent(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="citewise", messages=[{"role": "user", "content": QUESTION}], stream=True
    )
    text, annotations = "", []
    for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            annotations += (choice.delta.model_extra or {}).get("annotations", [])
    assert "[1]" in text
    assert annotations and marked(text, annotations) == ["[1]"] * len(annotations)


@pytest.mark.slow  # a server
def test_the_last_chunk_lists_the_passages_again(client: openai.OpenAI, standin: Script) -> None:
    """In agent mode the first chunk's search_results is empty (the model finds the passages
    while it works): the last chunk carries them, for every answer."""
    user = [{"role": "user", "content": QUESTION}]
    whole = client.chat.completions.create(model="citewise", messages=user)
    expected = whole.model_extra["search_results"]  # type: ignore[index]
    for model in ("citewise", "agent"):
        if model == "agent":
            standin.behaviours.append('call:search:{"query": "rotate the API keys"}')
        chunks = list(client.chat.completions.create(model=model, messages=user, stream=True))
        first = chunks[0].model_extra
        (finished,) = [c for c in chunks if c.choices and c.choices[0].finish_reason]
        results = finished.model_extra["search_results"]  # type: ignore[index]
        assert results and [r["number"] for r in results] == list(range(1, len(results) + 1))
        if model == "citewise":
            assert results == expected == first["search_results"]  # type: ignore[index]
        else:
            assert first["search_results"] == []  # type: ignore[index]
            steps = finished.model_extra["citewise"]["steps"]  # type: ignore[index]
            assert steps[0]["tool"] == "search"
        assert finished is chunks[-1]


@pytest.mark.slow  # a server
def test_an_assistant_can_list_the_sources_in_the_text(client: openai.OpenAI) -> None:
    """For clients that show only the text (llm's streaming mode)."""
    response = client.chat.completions.create(
        model="notes", messages=[{"role": "user", "content": QUESTION}]
    )
    text = response.choices[0].message.content or ""
    body, sources = text.split("\n\nSources:\n")
    title = response.model_extra["citations"][0]["title"]  # type: ignore[index]
    assert "[1]" in body and sources.startswith(f"[1] {title}")
    # The markers of the answer are annotated, not the footnotes' "[1] Title — url" lines.
    annotations = [a.model_dump() for a in response.choices[0].message.annotations or ()]
    assert annotations and all(a["url_citation"]["end_index"] <= len(body) for a in annotations)
    streamed = "".join(
        choice.delta.content or ""
        for chunk in client.chat.completions.create(
            model="notes", messages=[{"role": "user", "content": QUESTION}], stream=True
        )
        for choice in chunk.choices
    )
    assert streamed == text


JSON_REPLY = '{"answer": "Keys are rotated every night [1].", "pages": [1]}'


@pytest.mark.slow  # a server
def test_a_json_answer_gets_no_footnotes_and_annotations_inside_its_strings_only(
    client: openai.OpenAI, standin: Script
) -> None:
    standin.reply = JSON_REPLY
    request: dict[str, Any] = {
        "model": "notes",  # an assistant that adds footnotes to text answers
        "messages": [{"role": "user", "content": QUESTION}],
        "response_format": {"type": "json_object"},
    }
    response = client.chat.completions.create(**request)
    message = response.choices[0].message
    assert json.loads(message.content or "") == json.loads(JSON_REPLY)  # still JSON
    annotations = [a.model_dump() for a in message.annotations or ()]
    assert marked(message.content or "", annotations) == ["[1]"]  # not the array's [1]
    assert annotations[0]["url_citation"]["start_index"] == JSON_REPLY.index("[1]")
    text, streamed = "", []
    for chunk in client.chat.completions.create(stream=True, **request):
        for choice in chunk.choices:
            text += choice.delta.content or ""
            streamed += (choice.delta.model_extra or {}).get("annotations", [])
    assert text == message.content and streamed == annotations


def test_annotation_offsets_count_characters_past_an_emoji() -> None:
    """Offsets are Python code points: an emoji (two UTF-16 units, four UTF-8 bytes) is one."""
    from citewise.documents import Hit
    from citewise.server.citations import marker_annotations

    hit = Hit(1, 1, "default", "guide.md", "Guide", "Keys rotate.", 0, 12, None, (), 1.0)
    text = "🔑 Keys are rotated nightly [1]."
    (annotation,) = marker_annotations(text, [hit])
    assert text[annotation.start : annotation.end] == "[1]"
    assert annotation.start == text.index("[1]") == 27
    quoted = '{"note": "🔑 [1]", "ids": [1]}'
    (inside,) = marker_annotations(quoted, [hit], json_answer=True)
    assert quoted[inside.start : inside.end] == "[1]" and inside.start == 12


# -- the local model (llama.cpp in the server's process) -----------------------------------

ORDER = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "An order's status by its number",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "integer", "minimum": 1}},
            "required": ["order_id"],
            "additionalProperties": False,
        },
    },
}


@pytest.fixture(scope="module")
def local_server(
    ingested_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("local-tools")
    shutil.copytree(ingested_template / "ws", root / "ws")
    workspace = Workspace.open(root / "ws")
    with LiveServer(create_app(workspace, auth=False)) as live:
        yield live
    workspace.close()


@pytest.mark.slow  # the local model
def test_the_local_model_calls_a_named_tool_with_valid_arguments(
    local_server: LiveServer,
) -> None:
    import jsonschema

    client = openai.OpenAI(base_url=local_server.url + "/v1", api_key="unused", max_retries=0)
    chosen = {"type": "function", "function": {"name": "lookup_order"}}
    for stream in (False, True):
        request: dict[str, Any] = {
            "model": "citewise",
            "messages": [{"role": "user", "content": "Where is my order 4417?"}],
            "tools": [WEATHER, ORDER],
            "tool_choice": chosen,
        }
        if stream:
            calls: dict[int, dict[str, str]] = {}
            for chunk in client.chat.completions.create(stream=True, **request):
                for choice in chunk.choices:
                    for delta in choice.delta.tool_calls or ():
                        call = calls.setdefault(delta.index, {"name": "", "arguments": ""})
                        call["name"] += (delta.function.name or "") if delta.function else ""
                        call["arguments"] += (
                            (delta.function.arguments or "") if delta.function else ""
                        )
            (name, arguments) = (calls[0]["name"], calls[0]["arguments"])
        else:
            response = client.chat.completions.create(**request)
            assert response.choices[0].finish_reason == "tool_calls"
            (call,) = response.choices[0].message.tool_calls or []
            name, arguments = call.function.name, call.function.arguments
        assert name == "lookup_order"
        jsonschema.validate(json.loads(arguments), ORDER["function"]["parameters"])
