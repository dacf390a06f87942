"""Agent mode (``agent.py``): the model searches, reads and searches again, then answers.

The model is the OpenAI STAND-IN (``standins.py``), scripted one behaviour per request:
``call:search:{...}`` replies with that tool call, ``ok`` with its text reply. Retrieval,
the router, the ledger and the checks are the real ones, over a small ingested corpus.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from citewise import ConfigError, ProviderError, Workspace
from citewise.agent import AgentStream, Library, single_shot_reason
from citewise.answering import AnswerStream
from citewise.cli import cli
from citewise.config import Settings
from citewise.providers.base import BaseChatModel, Capabilities
from standins import Script, stand_in

DOCUMENTS = {
    "payments.md": "# Payments service\n\nThe Payments service is owned by the Ledger team. "
    "It settles card transactions every hour.\n",
    "ledger-team.md": "# Ledger team\n\nThe Ledger team is managed by Priya Raman. "
    "The team works from the Oslo office.\n",
    "cafeteria.md": "# Cafeteria\n\nThe cafeteria serves soup on Mondays and pasta on Fridays.\n",
}
QUESTION = "Who manages the team that owns the Payments service?"
FIRST = 'call:search:{"query": "Who owns the Payments service?", "k": 1}'
SECOND = 'call:search:{"query": "Who manages the Ledger team?", "k": 1}'
TWO_HOP_REPLY = "The Ledger team owns the Payments service [1]. Priya Raman manages it [2]."


@pytest.fixture(scope="module")
def corpus_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three documents ingested once (local embedder); tests get a copy."""
    root = tmp_path_factory.mktemp("agent")
    docs = root / "docs"
    docs.mkdir()
    for name, text in DOCUMENTS.items():
        (docs / name).write_text(text, encoding="utf-8")
    with Workspace.open(root / "ws") as ws:
        assert ws.ingest([docs]).added == 3
    return root / "ws"


def open_agent(path: Path, url: str, **settings: object) -> Workspace:
    """The workspace at ``path`` in agent mode, its model the stand-in at ``url``."""
    return Workspace.open(
        path, provider="openai", base_url=url, model="gpt-test", mode="agent", **settings
    )


@pytest.fixture
def agent(corpus_workspace: Path, tmp_path: Path) -> Iterator[tuple[Workspace, Script]]:
    """(a workspace in agent mode whose model is the stand-in, the stand-in's script)."""
    shutil.copytree(corpus_workspace, tmp_path / "ws")
    with stand_in("openai") as (url, script):
        ws = open_agent(tmp_path / "ws", url)
        try:
            yield ws, script
        finally:
            ws.close()


def sources(answer) -> set[str]:
    return {Path(c.hit.source).name for c in answer.citations}


def test_a_two_hop_question_cites_passages_from_both_searches(agent) -> None:
    ws, script = agent
    script.behaviours.extend([FIRST, SECOND])
    script.reply = TWO_HOP_REPLY
    stream = ws.ask_stream(QUESTION, caller="alice")
    assert isinstance(stream, AgentStream)
    text = "".join(stream)
    answer = stream.answer
    assert answer is not None and text == answer.text == TWO_HOP_REPLY
    assert sources(answer) == {"payments.md", "ledger-team.md"}
    assert [Path(h.source).name for h in answer.hits] == ["payments.md", "ledger-team.md"]
    assert stream.prompt is not None and stream.prompt.hits == answer.hits
    assert [(s.tool, s.arguments.get("query"), s.passages) for s in answer.steps] == [
        ("search", "Who owns the Payments service?", [1]),
        ("search", "Who manages the Ledger team?", [2]),
        ("answer", None, [1, 2]),
    ]
    # Each step holds the tokens its model turn reported; they sum to the answer's usage,
    # to what the stand-in billed and to what the ledger charged alice.
    served = script.served
    assert [(s.prompt_tokens, s.completion_tokens) for s in answer.steps] == [
        (r.prompt_tokens, r.completion_tokens) for r in served
    ]
    assert answer.usage.prompt_tokens == sum(r.prompt_tokens for r in served)
    assert answer.usage.completion_tokens == sum(r.completion_tokens for r in served)
    rows = ws.ledger.rows()
    assert [r.key for r in rows] == ["alice"] * 3
    assert sum(r.prompt_tokens for r in rows) == answer.usage.prompt_tokens
    assert sum(r.completion_tokens for r in rows) == answer.usage.completion_tokens
    assert {r.purpose for r in rows} == {"agent"}
    assert answer.target == "openai:gpt-test" and len(answer.attempts) == 3
    assert not answer.warnings


def test_the_model_receives_the_numbered_passages_as_tool_results(agent) -> None:
    ws, script = agent
    script.behaviours.extend([FIRST, SECOND])
    script.reply = TWO_HOP_REPLY
    ws.ask(QUESTION)
    first, second, third = (s.body for s in script.served)
    assert [t["function"]["name"] for t in first["tools"]] == ["search", "fetch", "answer"]
    assert [m["role"] for m in first["messages"]] == ["system", "user"]
    called, result = second["messages"][-2:]
    assert called["tool_calls"][0]["function"] == {
        "name": "search",
        "arguments": '{"query": "Who owns the Payments service?", "k": 1}',
    }
    assert result["role"] == "tool" and result["tool_call_id"] == called["tool_calls"][0]["id"]
    assert result["content"].startswith("[1] Payments service (")
    assert "owned by the Ledger team" in result["content"]
    # Numbering runs on across steps: the second search's passage is [2].
    assert third["messages"][-1]["content"].startswith("[2] Ledger team (")


def test_a_passage_found_again_keeps_its_number(agent) -> None:
    ws, script = agent
    again = 'call:search:{"query": "Payments service owner team", "k": 1}'
    script.behaviours.extend([FIRST, again])
    script.reply = "The Ledger team owns it [1]."
    answer = ws.ask(QUESTION)
    assert [s.passages for s in answer.steps[:2]] == [[1], [1]]
    assert len(answer.hits) == 1
    assert "listed above" in script.served[2].body["messages"][-1]["content"]


def test_fetch_reads_the_passages_of_a_documents_around_one(agent) -> None:
    ws, script = agent
    script.behaviours.extend([FIRST, 'call:fetch:{"number": 1}'])
    script.reply = "The Ledger team owns the Payments service [1]."
    answer = ws.ask(QUESTION)
    fetched = answer.steps[1]
    assert (fetched.tool, fetched.arguments, fetched.error) == ("fetch", {"number": 1}, "")
    assert fetched.passages == [1]  # a one-chunk document: the passage itself
    assert "listed above" in script.served[2].body["messages"][-1]["content"]


def test_fetch_reads_only_the_hits_collection_and_what_the_caller_may_read(agent) -> None:
    """A document id names a document within its collection: passages another collection
    holds under the same id are not shown, nor those ``readable`` refuses."""
    ws, script = agent

    def passages(document_id: int) -> list:
        own = ws.document_passages(document_id)
        stranger = replace(own[0], collection="other", chunk_id=own[0].chunk_id + 10_000)
        return [*own, replace(stranger, text="The stranger's secret plan.")]

    script.behaviours.extend([FIRST, 'call:fetch:{"number": 1}'])
    script.reply = "The Ledger team owns the Payments service [1]."
    search = lambda query, k: ws.search(query, k)  # noqa: E731
    stream = AgentStream(QUESTION, Library(search, passages), ws.chat_model(), ws.settings)
    "".join(stream)
    assert stream.answer is not None and stream.answer.steps[1].error == ""
    assert "stranger" not in json.dumps([s.body for s in script.served])
    script.behaviours.extend([FIRST, 'call:fetch:{"number": 1}'])
    hidden = Library(search, passages, readable=lambda hit: False)
    stream = AgentStream(QUESTION, hidden, ws.chat_model(), ws.settings)
    "".join(stream)
    assert stream.answer is not None
    assert "no longer stored" in stream.answer.steps[1].error


def test_a_malformed_tool_call_is_an_error_result_and_the_loop_goes_on(agent) -> None:
    ws, script = agent
    script.behaviours.extend(['call:search:{"query": "Payments', FIRST])
    script.reply = "The Ledger team owns the Payments service [1]."
    answer = ws.ask(QUESTION)
    broken = answer.steps[0]
    assert broken.tool == "search" and broken.arguments == {} and broken.passages == []
    assert "not valid JSON" in broken.error
    told = script.served[1].body["messages"][-1]
    assert told["role"] == "tool" and told["content"].startswith("Error: the arguments are not")
    assert [s.tool for s in answer.steps] == ["search", "search", "answer"]
    assert sources(answer) == {"payments.md"}


def test_an_unknown_tool_is_an_error_result(agent) -> None:
    ws, script = agent
    script.behaviours.extend(['call:browse:{"url": "https://example.com"}', FIRST])
    script.reply = "The Ledger team owns the Payments service [1]."
    answer = ws.ask(QUESTION)
    assert answer.steps[0].error == "there is no tool 'browse'"
    assert answer.steps[0].arguments == {"url": "https://example.com"}
    assert script.served[1].body["messages"][-1]["content"] == "Error: there is no tool 'browse'"
    assert sources(answer) == {"payments.md"}


def test_a_failing_search_is_told_to_the_model(agent) -> None:
    ws, script = agent
    script.behaviours.append(FIRST)
    script.reply = "I don't know."

    def broken(query: str, k: int) -> list:
        raise RuntimeError("the index is being rebuilt")

    stream = AgentStream(
        QUESTION, Library(broken, ws.document_passages), ws.chat_model(), ws.settings
    )
    assert "".join(stream) == "I don't know."
    assert stream.answer is not None
    assert stream.answer.steps[0].error == "the index is being rebuilt"
    assert script.served[1].body["messages"][-1]["content"] == "Error: the index is being rebuilt"


def test_the_answer_tool_ends_the_loop(agent) -> None:
    ws, script = agent
    reply = json.dumps({"text": "The Ledger team owns it [1]. See also [7]."})
    script.behaviours.extend([FIRST, f"call:answer:{reply}"])
    answer = ws.ask(QUESTION)
    assert len(script.served) == 2
    assert answer.text == "The Ledger team owns it [1]. See also."  # [7] names no passage
    assert [s.tool for s in answer.steps] == ["search", "answer"]
    assert answer.steps[1].passages == [1]
    assert any("[7]" in w for w in answer.warnings)


def test_out_of_steps_it_answers_from_what_it_found_with_a_warning(agent) -> None:
    ws, script = agent
    script.behaviours.append(FIRST)  # then text: the stand-in's reply to any request
    script.reply = "The Ledger team owns the Payments service [1]."
    stepped = open_agent(ws.path, ws.settings.base_url, agent_steps=2)
    try:
        answer = stepped.ask(QUESTION)
    finally:
        stepped.close()
    assert len(script.served) == 2  # one search, then the last answer
    last = script.served[1].body
    assert "tools" not in last  # a single-shot call over the passages found
    assert last["messages"][-1]["content"].startswith("Sources:\n\n[1] Payments service")
    assert answer.text == "The Ledger team owns the Payments service [1]."
    assert sources(answer) == {"payments.md"}
    assert [s.tool for s in answer.steps] == ["search", "answer"]
    assert any("limit of 2 model turns (agent_steps)" in w for w in answer.warnings)
    assert answer.usage.prompt_tokens == sum(r.prompt_tokens for r in script.served)


def test_the_token_budget_bounds_the_loop(agent) -> None:
    ws, script = agent
    script.behaviours.extend([FIRST, SECOND, SECOND, SECOND])
    script.reply = "The Ledger team owns the Payments service [1]."
    budget = 2000  # three searches' worth, with room left for the last answer
    tight = open_agent(ws.path, ws.settings.base_url, agent_tokens=budget, answer_tokens=128)
    try:
        answer = tight.ask(QUESTION)
    finally:
        tight.close()
    assert 2 <= len(script.served) < 5  # stopped by tokens: the stand-in still called tools
    assert "tools" not in script.served[-1].body
    spent = answer.usage.prompt_tokens + answer.usage.completion_tokens
    assert spent <= budget
    assert any("token budget (agent_tokens = 2000)" in w for w in answer.warnings)


def test_with_no_budget_for_a_model_call_the_best_passage_is_quoted(agent) -> None:
    ws, script = agent
    tight = open_agent(ws.path, ws.settings.base_url, agent_tokens=100, answer_tokens=64)
    try:
        answer = tight.ask(QUESTION)
    finally:
        tight.close()
    assert script.served == []
    assert answer.extractive and answer.citations
    assert any("quoted instead" in w for w in answer.warnings)


def test_when_strict_checks_leave_nothing_the_best_passage_is_quoted(agent) -> None:
    ws, script = agent
    script.behaviours.append(FIRST)
    script.reply = "Bananas grow purple on the dark side of the moon [1]."
    strict = open_agent(ws.path, ws.settings.base_url, answer_check="strict")
    try:
        answer = strict.ask(QUESTION)
    finally:
        strict.close()
    assert answer.extractive and answer.text.startswith("From the sources:")
    assert "Bananas" not in answer.text and sources(answer) == {"payments.md"}
    assert any("quoted them instead" in w for w in answer.warnings)


def test_a_reader_who_leaves_between_turns_stops_the_loop(agent) -> None:
    """Cancelled while a tool runs: no further model turn, no last answer."""
    ws, script = agent
    script.behaviours.extend([FIRST, SECOND])
    stream: AgentStream | None = None

    def search_then_leave(query: str, k: int) -> list:
        assert stream is not None
        stream.cancel()  # the reader hangs up while the search runs
        return ws.search(query, k)

    stream = AgentStream(
        QUESTION, Library(search_then_leave, ws.document_passages), ws.chat_model(), ws.settings
    )
    assert "".join(stream) == ""
    assert len(script.served) == 1  # the first turn only
    assert stream.answer is not None and stream.answer.finish_reason == "cancelled"


def test_the_last_single_shot_answer_stops_with_the_agent(agent) -> None:
    """The last answer shares the agent's cancel event: a reader who leaves while it
    streams stops it at its next token."""
    ws, script = agent
    script.behaviours.append(FIRST)
    script.reply = " ".join(f"word{n}" for n in range(60))
    script.delay_per_chunk = 0.05
    stepped = open_agent(ws.path, ws.settings.base_url, agent_steps=2, answer_check="off")
    try:
        stream = stepped.ask_stream(QUESTION)
        deltas = iter(stream)
        first = next(deltas)
        stream.cancel()
        rest = list(deltas)
    finally:
        stepped.close()
    assert first.startswith("word0") and len(rest) <= 2
    last = script.served[-1]
    assert "tools" not in last.body and last.completion_tokens < 60
    assert stream.answer is not None


def test_an_answer_stream_takes_the_cancel_event_it_shares() -> None:
    import threading

    from citewise.providers.base import BaseChatModel

    class Stub(BaseChatModel):
        name, model_id, context_window = "stub", "stub", 4096
        capabilities = Capabilities(4096, tools=True)

    shared = threading.Event()
    stream = AnswerStream("Why?", [], Stub(), Settings.load(), cancelled=shared)
    assert not stream.cancelled
    shared.set()
    assert stream.cancelled


def test_a_provider_error_is_raised_as_it_is(agent) -> None:
    ws, script = agent
    script.behaviours.append("401")
    with pytest.raises(ProviderError, match="rejected the API key"):
        ws.ask(QUESTION)


def test_models_that_cannot_plan_fall_back_to_a_single_shot_answer() -> None:
    class NoTools(BaseChatModel):
        name, model_id = "stub", "no-tools"
        capabilities = Capabilities(4096)

    settings = Settings.load(mode="agent")
    assert "calls tools; no-tools answered single-shot" in single_shot_reason(NoTools(), settings)
    NoTools.capabilities = Capabilities(4096, tools=True, local=True)
    assert "can plan its searches" in single_shot_reason(NoTools(), settings)
    NoTools.capabilities = Capabilities(4096, tools=True)
    assert single_shot_reason(NoTools(), settings) == ""


def test_mode_and_agent_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="mode must be single or agent"):
        Settings.load(mode="agentic")
    with pytest.raises(ConfigError, match="agent_steps must be at least 2"):
        Settings.load(agent_steps=1)
    with pytest.raises(ConfigError, match="agent_tokens must be positive"):
        Settings.load(agent_tokens=0)
    assert Settings.load().mode == "single"


@pytest.mark.slow
def test_the_local_model_answers_single_shot_with_a_warning(ingested) -> None:
    ws, _ = ingested
    local = Workspace.open(ws.path, mode="agent")
    try:
        stream = local.ask_stream("How do I rotate the API keys?")
        assert isinstance(stream, AnswerStream) and not isinstance(stream, AgentStream)
        "".join(stream)
    finally:
        local.close()
    answer = stream.answer
    assert answer is not None and answer.citations and answer.steps == []
    assert any("the local model" in w and "single-shot" in w for w in answer.warnings)


def test_cli_ask_agent_verbose_prints_each_step(agent) -> None:
    ws, script = agent
    script.behaviours.extend([FIRST, SECOND])
    script.reply = TWO_HOP_REPLY
    args = ["-w", str(ws.path), "ask", "--agent", "--verbose", "--provider", "openai"]
    args += ["--base-url", ws.settings.base_url, "--model", "gpt-test", QUESTION]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert TWO_HOP_REPLY in result.output
    assert '1. search "Who owns the Payments service?" → passages [1] · ' in result.output
    assert '2. search "Who manages the Ledger team?" → passages [2] · ' in result.output
    assert "3. answer → passages [1, 2]" in result.output
    served = script.served[0]
    assert f"· {served.prompt_tokens} prompt + {served.completion_tokens} completion" in (
        result.output
    )


def test_cli_ask_agent_json_holds_the_steps(agent) -> None:
    ws, script = agent
    script.behaviours.extend([FIRST, SECOND])
    script.reply = TWO_HOP_REPLY
    args = ["-w", str(ws.path), "ask", "--agent", "--json", "--provider", "openai"]
    args += ["--base-url", ws.settings.base_url, "--model", "gpt-test", QUESTION]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    steps = json.loads(result.output)["steps"]
    assert [(s["tool"], s["passages"]) for s in steps] == [
        ("search", [1]),
        ("search", [2]),
        ("answer", [1, 2]),
    ]
