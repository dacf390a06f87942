"""Issue 25: every field of OpenAI's chat-completions request is honoured or refused with a
400 naming it — never silently dropped. Through the official openai SDK against a real
server; stand-in providers (tests/standins.py) record what reaches an OpenAI-compatible or
Anthropic API, and a few slow tests run the local model itself."""

from __future__ import annotations

import inspect
import json
import shutil
import typing
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anthropic
import jsonschema
import openai
import pytest
from openai.types.chat import completion_create_params

from citewise import Workspace
from citewise.answering import INSTRUCTIONS_INTRO, SYSTEM_PROMPT
from citewise.providers.base import ModelRequest
from citewise.providers.local import sampling_options
from citewise.server import create_app
from citewise.server.chat_params import ACCEPTED, EXTENSIONS, HONOURED, REFUSED
from conftest import LiveServer, served_over_standin
from standins import Script, stand_in

QUESTION = "How do I rotate the API keys?"
ASK = [{"role": "user", "content": QUESTION}]
DOCS = Path(__file__).parents[1] / "docs" / "guide" / "server.md"
SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string", "maxLength": 200}},
    "required": ["answer"],
    "additionalProperties": False,
}


# -- the table ----------------------------------------------------------------------------


def test_every_field_of_the_sdks_request_is_honoured_accepted_or_refused() -> None:
    """A field the openai SDK can send and the server has not decided on fails here (an SDK
    upgrade that adds one): decide it in chat_params.py and document it."""
    sdk = set(typing.get_type_hints(completion_create_params.CompletionCreateParamsStreaming))
    decided = HONOURED | ACCEPTED | set(REFUSED)
    assert sdk - decided == set()
    assert decided - sdk == set(), "the table names a field OpenAI's request does not have"
    assert not (HONOURED & ACCEPTED or HONOURED & set(REFUSED) or ACCEPTED & set(REFUSED))
    assert {"collections", "where", "no_cache"} == EXTENSIONS


def test_the_docs_table_covers_every_field() -> None:
    page = DOCS.read_text(encoding="utf-8")
    section = page.split("## Chat request parameters", 1)[1].split("\n## ", 1)[0]
    for name in HONOURED | ACCEPTED | set(REFUSED) | EXTENSIONS:
        assert f"`{name}`" in section, f"{name} is missing from {DOCS.name}"


def test_the_local_provider_passes_the_options_to_llama_cpp() -> None:
    plain = sampling_options(ModelRequest(()), 1.1, 0.5)
    assert plain == {"repeat_penalty": 1.1, "frequency_penalty": 0.5, "seed": 0}
    request = ModelRequest(
        (),
        stop=("\n\n", "END"),
        seed=2**40 + 7,
        top_p=0.5,
        presence_penalty=0.25,
        frequency_penalty=-1.0,
    )
    assert sampling_options(request, 1.1, 0.5) == {
        "repeat_penalty": 1.1,
        "frequency_penalty": -1.0,  # the caller's value replaces citewise's default
        "presence_penalty": 0.25,
        "top_p": 0.5,
        "stop": ["\n\n", "END"],
        "seed": (2**40 + 7) % 0xFFFFFFFF,  # llama.cpp's seed is 32-bit
    }


# -- a server over stand-in providers ----------------------------------------------------


@pytest.fixture(scope="module")
def standins() -> Iterator[SimpleNamespace]:
    with (
        stand_in("openai") as (openai_url, openai_script),
        stand_in("anthropic") as (anthropic_url, anthropic_script),
    ):
        yield SimpleNamespace(
            openai_url=openai_url,
            openai=openai_script,
            anthropic_url=anthropic_url,
            anthropic=anthropic_script,
        )


@pytest.fixture(scope="module")
def server(
    ingested_template: Path, tmp_path_factory: pytest.TempPathFactory, standins: SimpleNamespace
) -> Iterator[LiveServer]:
    """The workspace's model is an OpenAI-compatible stand-in; the assistant ``claude``
    answers through the Anthropic stand-in, ``strict`` refuses system messages."""
    root = tmp_path_factory.mktemp("params")
    assistants = (
        "[assistants.claude]",
        'provider = "anthropic"',
        'model = "claude-standin"',
        f'base_url = "{standins.anthropic_url}"',
        "[assistants.strict]",
        'system_messages = "refuse"',
        "[assistants.quoter]",
        'answer_check = "quote"',
    )
    with served_over_standin(ingested_template, root, standins.openai_url, *assistants) as live:
        yield live


@pytest.fixture
def client(server: LiveServer, standins: SimpleNamespace) -> openai.OpenAI:
    for script in (standins.openai, standins.anthropic):
        script.served.clear()
        script.reply = Script.reply
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def refused(client: openai.OpenAI, **request: Any) -> dict[str, Any]:
    """The error body of a chat completion that must be a 400."""
    request.setdefault("model", "citewise")
    request.setdefault("messages", ASK)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(**request)
    assert caught.value.status_code == 400
    error = caught.value.body
    assert isinstance(error, dict) and set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    return error


# Each refused parameter with a value that asks for the feature.
REFUSED_VALUES: dict[str, Any] = {
    "parallel_tool_calls": False,
    "functions": [{"name": "weather", "parameters": {}}],
    "function_call": "auto",
    "logprobs": True,
    "top_logprobs": 3,
    "logit_bias": {"50256": -100},
    "modalities": ["text", "audio"],
    "audio": {"voice": "alloy", "format": "wav"},
    "prediction": {"type": "content", "content": "Keys are rotated"},
    "service_tier": "flex",
    "store": True,
    "metadata": {"team": "ops"},
    "reasoning_effort": "low",
    "verbosity": "low",
    "web_search_options": {},
    "moderation": {"model": "omni-moderation-latest"},
}


@pytest.mark.slow  # a server
@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_refused_parameter_is_a_400_naming_it(
    name: str, client: openai.OpenAI, standins: SimpleNamespace
) -> None:
    for stream in (False, True):
        error = refused(client, stream=stream, **{name: REFUSED_VALUES[name]})
        assert (error["param"], error["code"]) == (name, "unsupported_parameter"), error
        assert name in error["message"]
    assert standins.openai.served == []  # refused before any model call


@pytest.mark.slow  # a server
def test_values_that_ask_for_nothing_and_accepted_fields_are_taken(
    client: openai.OpenAI, standins: SimpleNamespace
) -> None:
    """SDKs and frameworks send defaults (``logprobs: false``, ``n: 1``): not refused."""
    response = client.chat.completions.create(
        model="citewise",
        messages=ASK,
        n=1,
        logprobs=False,
        top_logprobs=0,
        tool_choice="none",
        store=False,
        modalities=["text"],
        service_tier="auto",
        logit_bias={},
        response_format={"type": "text"},
        user="end-user-7",
        safety_identifier="hashed-user",
        prompt_cache_key="faq",
    )
    assert "rotated" in response.choices[0].message.content
    (served,) = standins.openai.served
    assert "tool_choice" not in served.body and "user" not in served.body  # nothing passed on


@pytest.mark.slow  # a server
def test_an_unknown_field_is_refused(client: openai.OpenAI) -> None:
    error = refused(client, extra_body={"temprature": 0.2})
    assert (error["param"], error["code"]) == ("temprature", "unknown_parameter")
    assert error["message"] == "Unrecognized request argument supplied: temprature"


INVALID: dict[str, Any] = {
    "presence_penalty": 2.5,
    "frequency_penalty": -2.01,
    "top_p": 1.5,
    "temperature": 3,
    "n": 2,
    "stop": ["a", "b", "c", "d", "e"],
    "max_tokens": 0,
    "response_format": {"type": "xml"},
}


@pytest.mark.slow  # a server
@pytest.mark.parametrize("name", sorted(INVALID))
def test_a_value_out_of_range_is_a_400_invalid_value(name: str, client: openai.OpenAI) -> None:
    error = refused(client, **{name: INVALID[name]})
    assert (error["param"], error["code"]) == (name, "invalid_value"), error


@pytest.mark.slow  # a server
def test_an_invalid_json_schema_is_refused(client: openai.OpenAI) -> None:
    for response_format in (
        {"type": "json_schema", "json_schema": {"name": "a b", "schema": SCHEMA}},
        {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nope"}}},
        {"type": "json_schema"},
        # Python's backtracking regex on text the client steers: refused, not run.
        {
            "type": "json_schema",
            "json_schema": {
                "name": "x",
                "schema": {"type": "object", "properties": {"a": {"pattern": "^(a+)+$"}}},
            },
        },
    ):
        error = refused(client, response_format=response_format)
        assert (error["param"], error["code"]) == ("response_format", "invalid_value"), error


@pytest.mark.slow  # a server
def test_an_assistant_without_a_model_refuses_what_only_a_model_honours(
    client: openai.OpenAI, standins: SimpleNamespace
) -> None:
    for request, param in (
        ({"stop": ["."]}, "stop"),
        ({"seed": 7}, "seed"),
        ({"temperature": 0.2}, "temperature"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"messages": [{"role": "system", "content": "Be brief."}, *ASK]}, "messages"),
    ):
        error = refused(client, model="quoter", **request)
        assert (error["param"], error["code"]) == (param, "unsupported_parameter"), error
    # Without them the quoting assistant answers, and no model was asked.
    answer = client.chat.completions.create(model="quoter", messages=ASK)
    assert answer.choices[0].message.content
    assert not standins.openai.served


@pytest.mark.slow  # a server
def test_sampling_options_reach_an_openai_compatible_provider(
    client: openai.OpenAI, standins: SimpleNamespace
) -> None:
    response = client.chat.completions.create(
        model="citewise",
        messages=ASK,
        stop=["\n\n", "END"],
        seed=42,
        top_p=0.5,
        presence_penalty=0.25,
        frequency_penalty=-0.5,
        temperature=0.3,
    )
    assert response.choices[0].finish_reason == "stop"
    (served,) = standins.openai.served
    sent = {k: served.body.get(k) for k in ("stop", "seed", "top_p", "temperature")}
    assert sent == {"stop": ["\n\n", "END"], "seed": 42, "top_p": 0.5, "temperature": 0.3}
    assert (served.body["presence_penalty"], served.body["frequency_penalty"]) == (0.25, -0.5)
    client.chat.completions.create(model="citewise", messages=ASK, stop="END")
    assert standins.openai.served[-1].body["stop"] == ["END"]  # one string: a list of one


@pytest.mark.slow  # a server
def test_json_reaches_the_provider_and_comes_back_validated(
    client: openai.OpenAI, standins: SimpleNamespace
) -> None:
    standins.openai.reply = '{"answer": "Run keyctl rotate --all, then restart the gateway. [1]"}'
    for stream in (False, True):
        format_ = {"type": "json_schema", "json_schema": {"name": "reply", "schema": SCHEMA}}
        if stream:
            chunks = list(
                client.chat.completions.create(
                    model="citewise", messages=ASK, response_format=format_, stream=True
                )
            )
            content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            citations = next(
                c.model_extra["citations"] for c in chunks if c.model_extra.get("citations")
            )
        else:
            response = client.chat.completions.create(
                model="citewise", messages=ASK, response_format=format_
            )
            content = response.choices[0].message.content
            citations = response.model_extra["citations"]
        value = json.loads(content)  # the message content is the JSON value itself
        jsonschema.validate(value, SCHEMA)
        assert [c["number"] for c in citations] == [1]  # its [n] markers, in the citations
        sent = standins.openai.served[-1].body
        assert sent["response_format"]["type"] == "json_schema"
        assert sent["response_format"]["json_schema"]["schema"] == SCHEMA
        assert "JSON Schema" in sent["messages"][0]["content"]
    # json_object: any object, stated to the model and asked of the API.
    client.chat.completions.create(
        model="citewise", messages=ASK, response_format={"type": "json_object"}
    )
    assert standins.openai.served[-1].body["response_format"]["json_schema"]["schema"] == {
        "type": "object"
    }
    # A model that ignores the format is caught, not passed on as JSON.
    standins.openai.reply = "Keys are rotated every night. [1]"
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="citewise", messages=ASK, response_format={"type": "json_object"}
        )
    assert caught.value.status_code == 502 and "response_format" in caught.value.message


@pytest.mark.slow  # a server
def test_anthropic_takes_stop_sequences_and_refuses_what_it_has_not(
    client: openai.OpenAI, standins: SimpleNamespace
) -> None:
    response = client.chat.completions.create(model="claude", messages=ASK, stop=["END"])
    assert "rotated" in response.choices[0].message.content
    assert standins.anthropic.served[-1].body["stop_sequences"] == ["END"]
    # The Messages API has no seed and no penalties (nor, in newer SDKs, temperature and
    # top_p): refused up front, before a stream starts.
    lacking = {"seed": 1, "presence_penalty": 0.5, "frequency_penalty": 0.5}
    takes = inspect.signature(anthropic.Anthropic(api_key="x").messages.create).parameters
    lacking |= {name: 0.5 for name in ("temperature", "top_p") if name not in takes}
    for name, value in lacking.items():
        for stream in (False, True):
            error = refused(client, model="claude", stream=stream, **{name: value})
            assert (error["param"], error["code"]) == (name, "unsupported_parameter")
    assert len(standins.anthropic.served) == 1


@pytest.mark.slow  # a server
def test_image_parts_and_function_calls_are_refused_naming_messages(
    client: openai.OpenAI,
) -> None:
    image = {
        "role": "user",
        "content": [
            {"type": "text", "text": QUESTION},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ],
    }
    function_turns = [
        {"role": "user", "content": "What is the weather?"},
        {"role": "assistant", "content": None, "function_call": {"name": "w", "arguments": "{}"}},
        *ASK,
    ]
    for messages, said in (([image], "image_url"), (function_turns, "function_call")):
        error = refused(client, messages=messages)
        assert (error["param"], error["code"]) == ("messages", "unsupported_parameter")
        assert said in error["message"]


@pytest.mark.slow  # a server
def test_a_system_message_reaches_the_prompt_after_citewises_rules(
    client: openai.OpenAI, standins: SimpleNamespace
) -> None:
    for role in ("system", "developer"):
        client.chat.completions.create(
            model="citewise",
            messages=[{"role": role, "content": "Answer in one short sentence."}, *ASK],
        )
        system = standins.openai.served[-1].body["messages"][0]
        assert system["role"] == "system"
        assert system["content"].startswith(SYSTEM_PROMPT)  # citewise's rules come first
        assert system["content"].endswith(f"{INSTRUCTIONS_INTRO}\n\nAnswer in one short sentence.")
    # The assistant with system_messages = "refuse" says so.
    error = refused(
        client, model="strict", messages=[{"role": "system", "content": "Be brief."}, *ASK]
    )
    assert (error["param"], error["code"]) == ("messages", "unsupported_parameter")
    assert "system_messages" in error["message"]
    answered = client.chat.completions.create(model="strict", messages=ASK)
    assert answered.choices[0].message.content


@pytest.mark.slow  # servers
def test_a_fallback_target_that_cannot_honour_an_option_refuses_it(
    ingested, standins: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chain's first target decides up front; a fallback that cannot honour an option
    (Claude has no seed) refuses the call, naming it, instead of answering without it."""
    monkeypatch.setenv("STANDIN_KEY", "sk-standin")
    ws, _ = ingested
    with (ws.path / "citewise.toml").open("a", encoding="utf-8") as config:
        config.write(
            "\n".join(
                [
                    'model = "chain"',
                    "[models.chain]",
                    'chain = ["openai:first", "anthropic:second"]',
                    '[targets."openai:first"]',
                    f'base_url = "{standins.openai_url}"',
                    'api_key_env = "STANDIN_KEY"',
                    "max_retries = 0",
                    '[targets."anthropic:second"]',
                    f'base_url = "{standins.anthropic_url}"',
                    'api_key_env = "STANDIN_KEY"',
                    "",
                ]
            )
        )
    standins.openai.behaviours.append("500")
    claude_calls = len(standins.anthropic.served)
    workspace = Workspace.open(ws.path)
    try:
        with LiveServer(create_app(workspace, auth=False)) as live:
            client = openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)
            error = refused(client, seed=7)
    finally:
        workspace.close()
    assert (error["param"], error["code"]) == ("seed", "unsupported_parameter")
    assert len(standins.anthropic.served) == claude_calls  # refused before it was sent


# -- the local model ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def local(ingested_template: Path, tmp_path_factory: pytest.TempPathFactory):
    """The workspace's own local model; the assistant ``plain`` passes its text unchecked."""
    root = tmp_path_factory.mktemp("local")
    shutil.copytree(ingested_template / "ws", root / "ws")
    (root / "ws" / "citewise.toml").write_text('[assistants.plain]\nanswer_check = "off"\n')
    workspace = Workspace.open(root / "ws")
    with LiveServer(create_app(workspace, auth=False)) as live:
        yield openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)
    workspace.close()


@pytest.mark.slow  # the local model
def test_the_local_model_answers_in_json_that_validates(local: openai.OpenAI) -> None:
    formats = {
        "json_object": {"type": "json_object"},
        "json_schema": {"type": "json_schema", "json_schema": {"name": "reply", "schema": SCHEMA}},
    }
    for kind, response_format in formats.items():
        # A little frequency penalty: the tiny model otherwise may loop inside a string
        # until max_tokens (the grammar turns citewise's default penalty off).
        response = local.chat.completions.create(
            model="citewise",
            messages=ASK,
            response_format=response_format,
            max_tokens=300,
            frequency_penalty=0.5,
        )
        choice = response.choices[0]
        assert choice.finish_reason == "stop", (kind, choice.message.content)
        value = json.loads(choice.message.content)
        assert isinstance(value, dict), kind
        if kind == "json_schema":
            jsonschema.validate(value, SCHEMA)
        assert response.model_extra["search_results"], "the passages the model saw"


@pytest.mark.slow  # the local model
def test_a_stop_sequence_cuts_the_local_models_answer(local: openai.OpenAI) -> None:
    # Stops common enough that any answer meets one: the text ends before the first.
    stops = [" the", ".", ","]
    cut = local.chat.completions.create(model="plain", messages=ASK, max_tokens=60, stop=stops)
    text = cut.choices[0].message.content
    assert cut.choices[0].finish_reason == "stop", text
    assert text and not any(stop in text for stop in stops), text
    assert cut.usage.completion_tokens < 60


def _closed(properties: dict[str, Any], *optional: str) -> dict[str, Any]:
    """An object of ``properties`` and no others, every one required but ``optional``."""
    required = [name for name in properties if name not in optional]
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _text(limit: int = 40) -> dict[str, Any]:
    # Bounded: the tiny model may otherwise write one string until max_tokens.
    return {"type": "string", "maxLength": limit}


INTEGER = {"type": "integer"}
STEP = _closed({"order": INTEGER, "action": _text()})
# The JSON Schema features clients send in response_format, one schema each.
SCHEMAS: dict[str, dict[str, Any]] = {
    "nested_object": _closed(
        {"answer": _text(80), "source": _closed({"title": _text(), "section": _text()})}
    ),
    "array_of_objects": _closed(
        {"steps": {"type": "array", "items": STEP, "minItems": 1, "maxItems": 3}}
    ),
    "string_enums": _closed(
        {
            "priority": {"type": "string", "enum": ["low", "medium", "high"]},
            "status": {"enum": ["open", "in progress", "done"]},
        }
    ),
    "integer_enum": _closed({"effort": {"type": "integer", "enum": [1, 2, 3, 5, 8]}}),
    "numbers_and_booleans": _closed(
        {"seconds": {"type": "number"}, "count": INTEGER, "automatic": {"type": "boolean"}}
    ),
    # The grammar does not enforce numeric bounds (llama-cpp-python's converter ignores
    # them): the server's check of the reply does, a 502 for a value out of range.
    "integer_bounds": _closed(
        {
            "confidence": {"type": "integer", "minimum": 1, "maximum": 5},
            "retries": {"type": "integer", "minimum": 0, "exclusiveMaximum": 4},
        }
    ),
    "nullable_type_list": _closed(
        {
            "owner": {"type": ["string", "null"], "maxLength": 40},
            "team": {**_closed({"name": _text()}), "type": ["object", "null"]},
        }
    ),
    "nullable_any_of": _closed(
        {"expires": {"anyOf": [_text(40), {"type": "null"}]}, "answer": _text(80)}
    ),
    "optional_properties": _closed(
        {"answer": _text(80), "command": _text(), "note": _text()}, "command", "note"
    ),
    "const": _closed(
        {"kind": {"const": "key-rotation"}, "version": {"const": 2}, "answer": _text(80)}
    ),
    "date_and_uuid_formats": _closed(
        {
            "day": {"type": "string", "format": "date"},
            "at": {"type": "string", "format": "date-time"},
            "id": {"type": "string", "format": "uuid"},
        }
    ),
    "email_format": _closed({"contact": {"type": "string", "format": "email", "maxLength": 60}}),
    "defs_and_refs": {
        "$defs": {"step": STEP},
        **_closed({"steps": {"type": "array", "items": {"$ref": "#/$defs/step"}, "maxItems": 3}}),
    },
    "one_of_objects": _closed(
        {
            "how": {
                "oneOf": [
                    _closed({"command": _text()}),
                    _closed({"url": _text(), "method": {"enum": ["GET", "POST"]}}),
                ]
            }
        }
    ),
    "any_of_objects": {
        "anyOf": [_closed({"answer": _text(80)}), _closed({"error": _text(), "code": INTEGER})]
    },
    "unique_enum_array": _closed(
        {
            "tags": {
                "type": "array",
                "items": {"enum": ["security", "keys", "ops", "billing", "api"]},
                "uniqueItems": True,
                "maxItems": 5,
            }
        }
    ),
    "top_level_array": {"type": "array", "items": _text(), "minItems": 1, "maxItems": 3},
    "deep_nesting": _closed(
        {"a": _closed({"b": _closed({"c": _closed({"d": _text(), "n": INTEGER})})})}
    ),
    "long_property_names": _closed(
        {
            "the_command_an_administrator_runs_to_rotate_every_api_key": _text(),
            "whether_the_gateway_must_be_restarted_after_the_rotation": {"type": "boolean"},
        }
    ),
    "unicode_property_names": _closed(
        {"clé": _text(), "größe": INTEGER, "説明": _text(), "ответ": {"type": "boolean"}}
    ),
}
# The formats the grammar writes: checked as assertions too (jsonschema's default only
# annotates). Without rfc3339-validator jsonschema checks no date-time: Python does here.
ENFORCED_FORMATS = jsonschema.FormatChecker(["date", "uuid"])


@ENFORCED_FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    # Python 3.10's fromisoformat takes no "Z" (3.11's does).
    return not isinstance(value, str) or bool(datetime.fromisoformat(value.replace("Z", "+00:00")))


@pytest.mark.slow  # the local model, 20 times
def test_the_local_model_writes_json_valid_against_varied_schemas(local: openai.OpenAI) -> None:
    problems: dict[str, str] = {}
    for name, schema in SCHEMAS.items():
        spec = {"name": name, "schema": schema, "strict": True}
        try:
            response = local.chat.completions.create(
                model="citewise",
                messages=ASK,
                response_format={"type": "json_schema", "json_schema": spec},
                max_tokens=250,
                frequency_penalty=0.5,
            )
        except openai.APIStatusError as exc:  # the server's own check refused the reply
            problems[name] = f"{exc.status_code}: {exc.message}"
            continue
        choice = response.choices[0]
        text = choice.message.content
        if choice.finish_reason != "stop":
            problems[name] = f"finish_reason {choice.finish_reason}: {text!r}"
            continue
        try:
            value = json.loads(text)
            jsonschema.validate(value, schema)
            jsonschema.validate(value, schema, format_checker=ENFORCED_FORMATS)
        except (ValueError, jsonschema.ValidationError) as exc:
            problems[name] = f"{text!r}: {exc}"
    assert problems == {}


@pytest.mark.slow  # the local model's server
def test_a_schema_with_a_pattern_is_refused_for_the_local_model(local: openai.OpenAI) -> None:
    schema = _closed({"command": {"type": "string", "pattern": "^keyctl [a-z ]+$"}})
    format_ = {"type": "json_schema", "json_schema": {"name": "cmd", "schema": schema}}
    error = refused(local, response_format=format_)
    assert error["param"] == "response_format"
    assert "pattern" in error["message"]


@pytest.mark.slow  # the local model
def test_quotes_backslashes_and_emoji_in_a_schemas_literals_come_back_as_json(
    local: openai.OpenAI,
) -> None:
    """Property names, enum and const values are written into the grammar as JSON text: a
    quote there once broke the grammar (llama.cpp crashed the server), a backslash or a
    newline came back as invalid JSON, an emoji as a string the schema refuses."""
    schema = _closed(
        {
            'say "hi"': {"enum": ["C:\\keys", "line\nbreak"]},
            "mood": {"enum": ["😀", "😢"]},
            "kind": {"const": "tab\there"},
            "ключ😀": {"type": "boolean"},
        }
    )
    spec = {"name": "literals", "schema": schema, "strict": True}
    response = local.chat.completions.create(
        model="citewise",
        messages=ASK,
        response_format={"type": "json_schema", "json_schema": spec},
        max_tokens=100,
    )
    choice = response.choices[0]
    assert choice.finish_reason == "stop", choice.message.content
    jsonschema.validate(json.loads(choice.message.content), schema)  # strict JSON
