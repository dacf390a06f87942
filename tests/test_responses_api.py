"""Issue 25: OpenAI's Responses API (/v1/responses) through the official openai SDK's
``client.responses``, streamed and not: cited answers with ``url_citation`` annotations,
the client's tools as function calls, JSON formats, and every request field honoured or
refused. The workspace's model is a STAND-IN for an OpenAI-compatible API
(tests/standins.py), which records what reaches it."""

from __future__ import annotations

import json
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.responses import response_create_params

from citewise.server.chat_params import (
    RESPONSES_ACCEPTED,
    RESPONSES_HONOURED,
    RESPONSES_REFUSED,
)
from conftest import LiveServer, served_over_standin
from standins import Script

QUESTION = "How do I rotate the API keys?"
WEATHER = {
    "type": "function",
    "name": "weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def test_every_field_of_the_sdks_responses_request_is_decided() -> None:
    sdk = set(typing.get_type_hints(response_create_params.ResponseCreateParamsStreaming))
    decided = RESPONSES_HONOURED | RESPONSES_ACCEPTED | set(RESPONSES_REFUSED)
    assert sdk - decided == set()
    assert decided - sdk == set()


def test_the_docs_table_covers_every_responses_field() -> None:
    page = (Path(__file__).parents[1] / "docs" / "guide" / "server.md").read_text("utf-8")
    section = page.split("## The Responses API", 1)[1].split("\n## ", 1)[0]
    for name in RESPONSES_HONOURED | RESPONSES_ACCEPTED | set(RESPONSES_REFUSED):
        assert f"`{name}`" in section, f"{name} is missing from server.md"


@pytest.fixture(scope="module")
def standin(standin_url: tuple[str, Script]) -> tuple[str, Script]:
    return standin_url


@pytest.fixture(scope="module")
def server(
    ingested_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
    standin: tuple[str, Script],
) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("responses")
    assistants = (
        "[assistants.notes]",
        'sources_in_text = "footnotes"',
        "[assistants.nosystem]",
        'system_messages = "refuse"',
    )
    with served_over_standin(ingested_template, root, standin[0], *assistants) as live:
        yield live


@pytest.fixture
def client(server: LiveServer, standin: tuple[str, Script]) -> openai.OpenAI:
    script = standin[1]
    script.served.clear()
    script.behaviours.clear()
    script.reply = Script.reply
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def spans(text: str, annotations: list[Any]) -> list[str]:
    return [text[a.start_index : a.end_index] for a in annotations]


@pytest.mark.slow  # a server
def test_a_response_cites_its_sources_as_annotations(client: openai.OpenAI) -> None:
    response = client.responses.create(model="citewise", input=QUESTION)
    assert response.status == "completed" and response.object == "response"
    assert "rotated" in response.output_text
    (message,) = response.output
    assert message.type == "message"
    (part,) = message.content
    assert part.type == "output_text"
    assert part.annotations and spans(part.text, part.annotations) == ["[1]"] * len(
        part.annotations
    )
    cited = response.model_extra["citations"][0]  # type: ignore[index]
    assert part.annotations[0].type == "url_citation"
    assert part.annotations[0].title == cited["title"]
    assert response.usage is not None and response.usage.output_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens


@pytest.mark.slow  # a server
def test_a_streamed_response_sends_the_typed_events(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="citewise", input=QUESTION, stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    added = [e.annotation for e in events if e.type == "response.output_text.annotation.added"]
    assert added and spans(text, added) == ["[1]"] * len(added)
    done = events[-1].response  # type: ignore[union-attr]
    assert done.output_text == text
    assert done.output[0].content[0].annotations  # type: ignore[union-attr]


@pytest.mark.slow  # a server
def test_the_sdks_stream_helper_assembles_the_response(client: openai.OpenAI) -> None:
    with client.responses.stream(model="citewise", input=QUESTION) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text and "[1]" in final.output_text


@pytest.mark.slow  # a server
def test_a_function_call_and_its_output_round_trip(
    client: openai.OpenAI, standin: tuple[str, Script]
) -> None:
    script = standin[1]
    script.behaviours.append("tool_call")
    response = client.responses.create(model="citewise", input=QUESTION, tools=[WEATHER])
    (call,) = [item for item in response.output if item.type == "function_call"]
    assert call.name == "weather" and json.loads(call.arguments) == {"city": "Paris"}
    assert script.served[0].body["tools"][0]["function"]["name"] == "weather"
    # The client runs the tool and sends the whole conversation back.
    follow_up = client.responses.create(
        model="citewise",
        tools=[WEATHER],
        input=[
            {"role": "user", "content": QUESTION},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
    )
    assert "rotated" in follow_up.output_text
    messages = script.served[1].body["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool"]
    assert messages[3] == {"role": "tool", "content": "sunny", "tool_call_id": call.call_id}


@pytest.mark.slow  # a server
def test_a_turn_that_says_something_and_calls_a_tool_round_trips(
    client: openai.OpenAI, standin: tuple[str, Script]
) -> None:
    """Its output is a message item, then a function_call item: fed back as they are,
    they are one assistant turn (text and the call), answered by the function's output."""
    script = standin[1]
    script.behaviours.append('text_call:weather:{"city": "Paris"}')
    response = client.responses.create(model="citewise", input=QUESTION, tools=[WEATHER])
    assert [item.type for item in response.output] == ["message", "function_call"]
    call = response.output[1]
    assert call.type == "function_call"
    follow_up = client.responses.create(
        model="citewise",
        tools=[WEATHER],
        input=[
            {"role": "user", "content": QUESTION},
            *[item.model_dump(exclude_none=True) for item in response.output],
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
    )
    assert follow_up.status == "completed" and "rotated" in follow_up.output_text
    messages = script.served[1].body["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool"]
    said = messages[2]
    assert "rotated" in said["content"]  # the text the turn said, with its call
    assert [c["id"] for c in said["tool_calls"]] == [call.call_id]


@pytest.mark.slow  # a server
def test_tools_echo_the_strict_the_client_sent(client: openai.OpenAI) -> None:
    tools = [WEATHER, {**WEATHER, "name": "forecast", "strict": False}]
    response = client.responses.create(model="citewise", input=QUESTION, tools=tools)
    assert [t.strict for t in response.tools] == [None, False]  # type: ignore[union-attr]


@pytest.mark.slow  # a server
def test_an_answer_cut_by_max_output_tokens_is_incomplete(client: openai.OpenAI) -> None:
    response = client.responses.create(model="citewise", input=QUESTION, max_output_tokens=4)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output[0].status == "incomplete"  # type: ignore[union-attr]
    events = list(
        client.responses.create(model="citewise", input=QUESTION, max_output_tokens=4, stream=True)
    )
    assert events[-1].type == "response.incomplete"  # as OpenAI's API ends such a stream
    assert "response.completed" not in [e.type for e in events]
    done = events[-1].response  # type: ignore[union-attr]
    assert done.status == "incomplete" and done.output[0].status == "incomplete"
    items = [e.item for e in events if e.type == "response.output_item.done"]  # type: ignore[union-attr]
    assert items[0].status == "incomplete"
    # The SDK's stream helper, as against OpenAI itself, finds no completed response.
    with (
        client.responses.stream(model="citewise", input=QUESTION, max_output_tokens=4) as stream,
        pytest.raises(RuntimeError, match=r"response\.completed"),
    ):
        stream.get_final_response()


@pytest.mark.slow  # a server
def test_a_streamed_function_call(client: openai.OpenAI, standin: tuple[str, Script]) -> None:
    standin[1].behaviours.append("tool_call")
    with client.responses.stream(
        model="citewise", input=QUESTION, tools=[WEATHER], tool_choice="required"
    ) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.done" in kinds
    (call,) = [item for item in final.output if item.type == "function_call"]
    assert json.loads(call.arguments) == {"city": "Paris"}


@pytest.mark.slow  # a server
def test_instructions_and_json_format_reach_the_model(
    client: openai.OpenAI, standin: tuple[str, Script]
) -> None:
    script = standin[1]
    script.reply = '{"answer": "Keys are rotated nightly [1]"}'
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    response = client.responses.create(
        model="citewise",
        input=QUESTION,
        instructions="Answer in one short sentence.",
        text={"format": {"type": "json_schema", "name": "short", "schema": schema}},
        max_output_tokens=64,
        temperature=0.2,
    )
    assert json.loads(response.output_text) == {"answer": "Keys are rotated nightly [1]"}
    (served,) = script.served
    assert served.body["response_format"]["json_schema"]["schema"] == schema
    assert "Answer in one short sentence." in served.body["messages"][0]["content"]
    assert served.body["max_tokens"] == 64 and served.body["temperature"] == 0.2


@pytest.mark.slow  # a server
def test_footnotes_in_the_text_for_text_only_clients(client: openai.OpenAI) -> None:
    response = client.responses.create(model="notes", input=QUESTION)
    assert "\n\nSources:\n[1] " in response.output_text
    with client.responses.stream(model="notes", input=QUESTION) as stream:
        streamed = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
    assert streamed == response.output_text


@pytest.mark.slow  # a server
def test_a_json_answer_gets_no_footnotes(
    client: openai.OpenAI, standin: tuple[str, Script]
) -> None:
    reply = '{"answer": "Keys are rotated every night [1]."}'
    standin[1].reply = reply
    json_format: Any = {"format": {"type": "json_object"}}
    response = client.responses.create(model="notes", input=QUESTION, text=json_format)
    assert json.loads(response.output_text) == json.loads(reply)
    (part,) = response.output[0].content  # type: ignore[union-attr]
    assert spans(part.text, part.annotations) == ["[1]"]  # type: ignore[union-attr]
    with client.responses.stream(model="notes", input=QUESTION, text=json_format) as stream:
        streamed = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
    assert streamed == response.output_text


@pytest.mark.slow  # a server
def test_errors_name_the_responses_own_fields(
    client: openai.OpenAI, standin: tuple[str, Script]
) -> None:
    # An assistant that takes no system messages refuses instructions, naming them.
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="nosystem", input=QUESTION, instructions="Be brief.")
    error = caught.value.body
    assert isinstance(error, dict) and error["param"] == "instructions", error
    assert error["message"].startswith("instructions is a system message")
    output = [
        {"role": "user", "content": QUESTION},
        {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": 7},
    ]
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="citewise", input=output)  # type: ignore[arg-type]
    error = caught.value.body
    assert isinstance(error, dict) and "input[2].output must be text" in error["message"]
    assert standin[1].served == []
    # A text part whose text is null is empty, not "None".
    parts = [{"type": "input_text", "text": QUESTION}, {"type": "input_text", "text": None}]
    client.responses.create(model="citewise", input=[{"role": "user", "content": parts}])  # type: ignore[list-item]
    assert "None" not in standin[1].served[0].body["messages"][-1]["content"]


REFUSED_VALUES: dict[str, Any] = {
    "store": True,
    "previous_response_id": "resp_123",
    "conversation": "conv_1",
    "prompt": {"id": "pmpt_1"},
    "background": True,
    "include": ["message.output_text.logprobs"],
    "reasoning": {"effort": "low"},
    "max_tool_calls": 2,
    "parallel_tool_calls": False,
    "top_logprobs": 3,
    "service_tier": "flex",
}


@pytest.mark.slow  # a server
@pytest.mark.parametrize("name", sorted(REFUSED_VALUES))
def test_a_refused_field_is_a_400_naming_it(
    name: str, client: openai.OpenAI, standin: tuple[str, Script]
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="citewise", input=QUESTION, **{name: REFUSED_VALUES[name]})
    error = caught.value.body
    assert isinstance(error, dict)
    assert (error["param"], error["code"]) == (name, "unsupported_parameter")
    assert standin[1].served == []


@pytest.mark.slow  # a server
def test_inputs_citewise_cannot_read_are_refused(client: openai.OpenAI) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"tools": [{"type": "web_search"}]}, "tools"),
        ({"input": [{"type": "reasoning", "summary": []}]}, "input"),
        ({"text": {"format": {"type": "xml"}}}, "text.format"),
        (
            {
                "input": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_image", "image_url": "data:image/png;base64,AA"}
                        ],
                    }
                ]
            },
            "input",  # the request's own field, not chat's "messages"
        ),
    ]
    for fields, param in cases:
        fields.setdefault("input", QUESTION)
        with pytest.raises(openai.BadRequestError) as caught:
            client.responses.create(model="citewise", **fields)
        error = caught.value.body
        assert isinstance(error, dict) and error["param"] == param, (fields, error)
