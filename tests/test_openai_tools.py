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
from conftest import LiveServer
from standins import Script, stand_in

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
def standin_url() -> Iterator[tuple[str, Script]]:
    with stand_in("openai") as (url, script):
        yield url, script


@pytest.fixture(scope="module")
def standin(standin_url: tuple[str, Script]) -> Script:
    return standin_url[1]


@pytest.fixture(scope="module")
def server(
    ingested_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
    standin_url: tuple[str, Script],
) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("tools")
    shutil.copytree(ingested_template / "ws", root / "ws")
    (root / "ws" / "citewise.toml").write_text(
        "\n".join(
            [
                'provider = "openai"',
                'model = "standin-model"',
                f'base_url = "{standin_url[0]}"',
                'api_key_env = "STANDIN_KEY"',
                "[assistants.notes]",
                'sources_in_text = "footnotes"',
                "[assistants.quoter]",
                'answer_check = "quote"',
                "",
            ]
        ),
        encoding="utf-8",
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("STANDIN_KEY", "sk-standin")
        workspace = Workspace.open(root / "ws")
        with LiveServer(create_app(workspace, auth=False)) as live:
            yield live
        workspace.close()


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
def test_tool_choice_none_sends_the_model_no_tools(client: openai.OpenAI, standin: Script) -> None:
    response = client.chat.completions.create(
        model="citewise",
        messages=[{"role": "user", "content": QUESTION}],
        tools=[WEATHER],
        tool_choice="none",
    )
    assert response.choices[0].message.tool_calls is None
    (served,) = standin.served
    assert "tools" not in served.body


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
def test_an_assistant_can_list_the_sources_in_the_text(client: openai.OpenAI) -> None:
    """For clients that show only the text (llm's streaming mode)."""
    response = client.chat.completions.create(
        model="notes", messages=[{"role": "user", "content": QUESTION}]
    )
    text = response.choices[0].message.content or ""
    body, sources = text.split("\n\nSources:\n")
    title = response.model_extra["citations"][0]["title"]  # type: ignore[index]
    assert "[1]" in body and sources.startswith(f"[1] {title}")
    streamed = "".join(
        choice.delta.content or ""
        for chunk in client.chat.completions.create(
            model="notes", messages=[{"role": "user", "content": QUESTION}], stream=True
        )
        for choice in chunk.choices
    )
    assert streamed == text


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
