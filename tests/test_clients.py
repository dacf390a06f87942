"""Issue 25: the citations reach users of the clients engineers use — LangChain's
ChatOpenAI (Chat Completions and the Responses API, invoke and stream), LlamaIndex's
OpenAILike and OpenAIResponses (chat and stream_chat) and ``llm``'s default streaming
mode — and LangChain's tool calling works through citewise. A real server; its model is a
STAND-IN for an OpenAI-compatible API (tests/standins.py).

LlamaIndex's OpenAI integration requires openai<3, which .venv's openai cannot share: it
runs in .venv-clients (`make clients-env`, pinned by constraints-clients.txt)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from conftest import LiveServer, served_over_standin
from standins import Script

QUESTION = "How do I rotate the API keys?"
CLIENTS_PYTHON = Path(__file__).parents[1] / ".venv-clients" / "bin" / "python"


@pytest.fixture(scope="module")
def standin(standin_url: tuple[str, Script]) -> tuple[str, Script]:
    return standin_url


@pytest.fixture(scope="module")
def server(
    ingested_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
    standin: tuple[str, Script],
) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("clients")
    notes = ("[assistants.notes]", 'sources_in_text = "footnotes"')
    with served_over_standin(ingested_template, root, standin[0], *notes) as live:
        yield live


@pytest.fixture
def fresh(standin: tuple[str, Script]) -> Script:
    script = standin[1]
    script.served.clear()
    script.behaviours.clear()
    script.reply = Script.reply
    return script


def chat(server: LiveServer, **options: object) -> ChatOpenAI:
    return ChatOpenAI(
        model="citewise",
        base_url=server.url + "/v1",
        api_key="unused",  # type: ignore[arg-type]
        max_retries=0,
        **options,  # type: ignore[arg-type]
    )


def citations_of(message: AIMessage) -> list[dict[str, object]]:
    """The url_citation annotations LangChain keeps on the message's text blocks."""
    blocks = message.content if isinstance(message.content, list) else []
    return [
        annotation
        for block in blocks
        if isinstance(block, dict)
        for annotation in block.get("annotations", [])
    ]


@pytest.mark.slow  # a server
def test_langchain_keeps_the_citations_with_the_responses_api(
    server: LiveServer, fresh: Script
) -> None:
    model = chat(server, use_responses_api=True)
    message = model.invoke(QUESTION)
    assert "rotated" in message.text
    annotations = citations_of(message)
    assert annotations and {a["type"] for a in annotations} == {"url_citation"}
    assert all(message.text[a["start_index"] : a["end_index"]] == "[1]" for a in annotations)  # type: ignore[index,misc]

    chunks = list(model.stream(QUESTION))
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk
    assert isinstance(merged, AIMessageChunk)
    streamed = citations_of(merged)
    assert streamed and streamed[0]["url"] == annotations[0]["url"]


@pytest.mark.slow  # a server
def test_langchain_tool_calls_through_chat_completions(server: LiveServer, fresh: Script) -> None:
    @tool
    def weather(city: str) -> str:
        """The weather in a city."""
        return "sunny"

    fresh.behaviours.append("tool_call")
    message = chat(server).bind_tools([weather]).invoke(QUESTION)
    assert [call["name"] for call in message.tool_calls] == ["weather"]
    assert message.tool_calls[0]["args"] == {"city": "Paris"}
    assert fresh.served[0].body["tools"][0]["function"]["name"] == "weather"


@pytest.mark.slow  # a server
def test_llm_streaming_shows_the_sources_of_an_assistant_with_footnotes(
    server: LiveServer, fresh: Script, tmp_path: Path
) -> None:
    """``llm`` streams by default and keeps only the text: an assistant with
    ``sources_in_text = "footnotes"`` puts the sources there."""
    (tmp_path / "extra-openai-models.yaml").write_text(
        f"- model_id: citewise-notes\n  model_name: notes\n  api_base: {server.url}/v1\n",
        encoding="utf-8",
    )
    env = {**os.environ, "LLM_USER_PATH": str(tmp_path), "OPENAI_API_KEY": "unused"}
    llm = Path(sys.executable).with_name("llm")
    result = subprocess.run(
        [str(llm), "-m", "citewise-notes", QUESTION],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answer, sources = result.stdout.split("Sources:\n")
    assert "[1]" in answer and sources.startswith("[1] ")
    assert fresh.served[0].body["stream"] is True  # it streamed


# What a LlamaIndex user reaches, written as a user would write it (run by .venv-clients'
# Python with the server's URL and the question; prints JSON). ChatResponse.raw is what the
# openai SDK parsed — a ChatCompletion, a ChatCompletionChunk, a Response, a
# ResponseCompletedEvent — and keeps citewise's own fields as attributes (`raw.citations`),
# not keys: `raw["citations"]` is a TypeError. The SDK types the annotations of a whole
# answer and leaves those of a stream as dicts. OpenAIResponses copies them to
# `additional_kwargs["annotations"]`; OpenAILike leaves them on `raw` only.
LLAMAINDEX = """
import json
import sys

from llama_index.core.llms import ChatMessage
from llama_index.llms.openai import OpenAIResponses
from llama_index.llms.openai_like import OpenAILike

url, question = sys.argv[1] + "/v1", [ChatMessage(role="user", content=sys.argv[2])]
found = {}

llm = OpenAILike(
    model="citewise", api_base=url, api_key="unused", is_chat_model=True, max_retries=0
)
response = llm.chat(question)
found["chat"] = {
    "text": response.message.content,
    "citations": response.raw.citations,
    "annotations": [
        [a.url_citation.title, a.url_citation.start_index, a.url_citation.end_index]
        for a in response.raw.choices[0].message.annotations
    ],
}

chunks = list(llm.stream_chat(question))
last = chunks[-1]  # the chunk that ends the answer carries its sources
found["stream_chat"] = {
    "text": last.message.content,
    "citations": last.raw.citations,
    "annotations": [
        [a["url_citation"]["title"], a["url_citation"]["start_index"], a["url_citation"]["end_index"]]
        for a in last.raw.choices[0].delta.annotations
    ],
}

# context_window: LlamaIndex's own metadata, looked up by model name unless given (it
# raises on a name that is not OpenAI's).
llm = OpenAIResponses(
    model="citewise", api_base=url, api_key="unused", context_window=3900, max_retries=0
)
response = llm.chat(question)
found["responses"] = {
    "text": response.message.content,
    "citations": response.raw.citations,
    "annotations": [
        [a.title, a.start_index, a.end_index] for a in response.additional_kwargs["annotations"]
    ],
}

chunks = list(llm.stream_chat(question))
last = chunks[-1]  # raw: the response.completed event
found["responses_stream"] = {
    "text": last.message.content,
    "citations": last.raw.response.citations,
    "annotations": [
        [a["title"], a["start_index"], a["end_index"]] for a in last.additional_kwargs["annotations"]
    ],
}
print(json.dumps(found))
"""


@pytest.mark.slow  # a server
def test_llamaindex_users_reach_the_citations(server: LiveServer, fresh: Script) -> None:
    """OpenAILike (chat and stream_chat) and OpenAIResponses (the same two), in
    .venv-clients: citewise's ``citations`` and the ``url_citation`` annotations, each
    naming the span of ``[1]`` and the cited document."""
    assert CLIENTS_PYTHON.exists(), (
        f"{CLIENTS_PYTHON} is missing: run `make clients-env` (LlamaIndex's OpenAI "
        "integration needs openai<3, so it has its own environment)"
    )
    result = subprocess.run(
        [str(CLIENTS_PYTHON), "-c", LLAMAINDEX, server.url, QUESTION],
        capture_output=True,
        text=True,
        env={**os.environ, "OPENAI_API_KEY": "unused"},
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert list(found) == ["chat", "stream_chat", "responses", "responses_stream"]
    for mode, reached in found.items():
        text = reached["text"]
        assert "rotated" in text, (mode, text)
        assert [c["title"] for c in reached["citations"]] == ["Deployment guide"], mode
        assert reached["citations"][0]["number"] == 1, mode
        assert reached["annotations"], (mode, reached)
        for title, start, end in reached["annotations"]:
            assert title == "Deployment guide", mode
            assert text[start:end] == "[1]", (mode, text, start, end)
    assert len(fresh.served) == 4  # one answer from the model per call
