"""Grounded structured output (``Workspace.extract``, ``citewise extract``): the real local
model constrained by the wrapped schema's grammar, and the labelled OpenAI stand-in
(tests/standins.py) for replies a grammar would never let through: invalid JSON, values
breaking the schema, citations of passages that are not in the prompt."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
from pydantic import BaseModel, Field, field_validator

from citewise import ProviderError, Workspace
from citewise.errors import ExtractionFailed
from citewise.extraction import Extraction
from conftest import CITEWISE
from standins import Script, stand_in

BACKUPS_QUESTION = "When do backups run and how long are they kept?"
# Bounded strings: the grammar holds a tiny model to a short value.
BACKUPS = {
    "title": "backups",
    "type": "object",
    "properties": {
        "schedule": {"type": "string", "maxLength": 40},
        "retention": {"type": "string", "maxLength": 20},
    },
    "required": ["schedule", "retention"],
    "additionalProperties": False,
}
# What a remote model that follows the wrapped schema answers, citing passage 1.
VALID = json.dumps(
    {
        "schedule": {"value": "nightly at 02:00 UTC", "citations": [1]},
        "retention": {"value": "30 days", "citations": [1]},
    }
)


class Replies(Script):
    """The stand-in's script with one reply per chat request, in order; the last repeats."""

    def __init__(self, *replies: str) -> None:
        super().__init__()
        self.replies = list(replies)

    @property
    def reply(self) -> str:  # read once the request is recorded: len(served) is its number
        return self.replies[min(len(self.served), len(self.replies)) - 1]

    @reply.setter
    def reply(self, value: str) -> None:
        pass  # Script's own default, set by its __init__: the replies above stand instead


@pytest.fixture
def remote(
    ingested_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Workspace, Replies]]:
    """The ingested corpus, answered by the OpenAI stand-in."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    shutil.copytree(ingested_template / "ws", tmp_path / "ws")
    script = Replies(VALID)
    with (
        stand_in("openai", script) as (url, _),
        Workspace.open(tmp_path / "ws", provider="openai", base_url=url, model="gpt-test") as ws,
    ):
        yield ws, script


def assert_grounded(ws: Workspace, extraction: Extraction, fields: list[str]) -> None:
    """Every field cites passages of the prompt, each with a quote from that passage."""
    assert list(extraction.citations) == fields
    for citations in extraction.citations.values():
        assert citations
        for citation in citations:
            assert 1 <= citation.number <= len(extraction.hits)
            assert citation.hit is extraction.hits[citation.number - 1]
            assert citation.quote and citation.quote in citation.hit.text
            document = ws.store.document_text(citation.hit.document_id)
            assert document[citation.quote_start : citation.quote_end] == citation.quote
            assert citation.hit in extraction.sources
    cited = {c.number for cs in extraction.citations.values() for c in cs}
    assert extraction.sources == [extraction.hits[n - 1] for n in sorted(cited)]


# -- the real local model ------------------------------------------------------------


@pytest.mark.slow
def test_local_extraction_is_valid_against_the_schema_and_every_field_is_cited(
    ingested,
) -> None:
    ws, _ = ingested
    extraction = ws.extract(BACKUPS_QUESTION, BACKUPS, caller="alice")
    jsonschema.validate(extraction.data, BACKUPS)
    assert not extraction.refused and extraction.target == "local:smollm2-135m"
    assert_grounded(ws, extraction, ["schedule", "retention"])
    assert any(Path(hit.source).name == "guide.md" for hit in extraction.hits)
    rows = ws.ledger.rows()
    assert [(r.purpose, r.key) for r in rows] == [("extract", "alice")] * extraction.tries
    assert sum(r.completion_tokens for r in rows) == extraction.usage.completion_tokens > 0


class Parking(BaseModel):
    level: str = Field(max_length=30)


@pytest.mark.slow
def test_local_extraction_into_a_pydantic_model(ingested) -> None:
    ws, _ = ingested
    extraction = ws.extract("Where do visitors park?", Parking)
    assert isinstance(extraction.obj, Parking)
    assert extraction.data == {"level": extraction.obj.level}
    assert_grounded(ws, extraction, ["level"])


@pytest.mark.slow
def test_a_schema_the_local_grammar_cannot_follow_is_refused_naming_it(ingested) -> None:
    ws, _ = ingested
    schema = {"title": "parking", "type": "object", "properties": {"level": {"not": {}}}}
    with pytest.raises(ProviderError, match="cannot follow the JSON schema 'parking'") as caught:
        ws.extract("Where do visitors park?", schema)
    assert caught.value.kind == "invalid_request" and caught.value.param == "response_format"


# -- the OpenAI stand-in: what a grammar never lets through --------------------------


def test_the_model_gets_the_wrapped_schema_and_its_fields_are_unwrapped(remote) -> None:
    ws, script = remote
    extraction = ws.extract(BACKUPS_QUESTION, BACKUPS)
    assert extraction.data == {"schedule": "nightly at 02:00 UTC", "retention": "30 days"}
    assert extraction.tries == 1 and extraction.target == "openai:gpt-test"
    assert_grounded(ws, extraction, ["schedule", "retention"])
    quote = extraction.citations["schedule"][0].quote
    assert quote == "Backups run nightly at 02:00 UTC and are kept for 30 days."
    (served,) = script.served
    sent = served.body["response_format"]["json_schema"]
    assert sent["name"] == "backups"
    wrapped = sent["schema"]["properties"]["schedule"]
    assert wrapped["properties"]["value"] == BACKUPS["properties"]["schedule"]
    numbers = list(range(1, len(extraction.hits) + 1))
    assert wrapped["properties"]["citations"]["items"] == {"enum": numbers}
    assert wrapped["required"] == ["value", "citations"]
    prompt = served.body["messages"][-1]["content"]
    assert "[1] Deployment guide" in prompt and BACKUPS_QUESTION in prompt


def test_an_invalid_reply_is_retried_with_its_problem(remote) -> None:
    ws, script = remote
    script.replies = ["Backups run nightly.", VALID]
    extraction = ws.extract(BACKUPS_QUESTION, BACKUPS)
    assert extraction.data["retention"] == "30 days" and extraction.tries == 2
    first, second = script.served
    assert "not valid" not in first.body["messages"][-1]["content"]
    assert "Your previous reply was not valid: not JSON" in second.body["messages"][-1]["content"]
    assert extraction.usage.completion_tokens == first.completion_tokens + second.completion_tokens
    assert [row.purpose for row in ws.ledger.rows()] == ["extract", "extract"]


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        ("Backups run nightly.", "not JSON"),
        (
            '{"schedule": {"value": "nightly", "citations": [1]}, '
            '"retention": {"value": 30, "citations": [1]}}',
            "at retention/value: 30 is not of type 'string'",
        ),
        (
            '{"schedule": {"value": "nightly", "citations": [99]}, '
            '"retention": {"value": "30 days", "citations": [1]}}',
            "at schedule/citations/0: 99 is not one of",
        ),
        (
            '{"schedule": {"value": "nightly", "citations": []}, '
            '"retention": {"value": "30 days", "citations": [1]}}',
            "at schedule/citations: [] should be non-empty",
        ),
    ],
)
def test_a_reply_that_stays_invalid_fails_with_the_raw_reply(remote, reply, problem) -> None:
    ws, script = remote
    script.replies = [reply]
    with pytest.raises(ExtractionFailed, match="in 3 tries") as caught:
        ws.extract(BACKUPS_QUESTION, BACKUPS)
    assert caught.value.raw == reply
    assert problem in caught.value.problem and problem in str(caught.value)
    assert "'backups'" in str(caught.value)
    assert len(script.served) == 3  # the first reply and two retries


def test_the_unwrapped_data_is_held_to_the_whole_user_schema(remote) -> None:
    ws, script = remote
    # Fields that are each optional, but one at least: only the unwrapped value shows it.
    optional = {**BACKUPS, "required": [], "minProperties": 1}
    script.replies = ["{}"]
    with pytest.raises(ExtractionFailed, match=r"at the top level: \{\} should be non-empty"):
        ws.extract(BACKUPS_QUESTION, optional, retries=0)


def test_extraction_failed_is_a_bad_gateway_to_api_clients() -> None:
    from citewise.server.errors import from_citewise

    error = from_citewise(ExtractionFailed("gave no value", raw="{", problem="not JSON"))
    assert (error.status, error.code) == (502, "upstream_error")


class Schedule(BaseModel):
    time: str
    zone: str


class Backup(BaseModel):
    schedule: Schedule  # a nested model: a "$ref" into the schema's "$defs"
    retention_days: int

    @field_validator("retention_days")
    @classmethod
    def at_least_a_week(cls, days: int) -> int:
        if days < 7:
            raise ValueError("backups are kept at least a week")
        return days


def test_a_pydantic_class_is_validated_by_its_own_validators_too(remote) -> None:
    ws, script = remote
    schedule = {"value": {"time": "02:00", "zone": "UTC"}, "citations": [1]}
    script.replies = [
        json.dumps({"schedule": schedule, "retention_days": {"value": 3, "citations": [1]}}),
        json.dumps({"schedule": schedule, "retention_days": {"value": 30, "citations": [1]}}),
    ]
    extraction = ws.extract(BACKUPS_QUESTION, Backup)
    assert extraction.obj == Backup(schedule=Schedule(time="02:00", zone="UTC"), retention_days=30)
    assert extraction.tries == 2
    retry = script.served[1].body["messages"][-1]["content"]
    assert "at retention_days: Value error, backups are kept at least a week" in retry
    assert "$defs" in script.served[0].body["response_format"]["json_schema"]["schema"]


def test_a_schema_that_is_no_object_is_wrapped_whole(remote) -> None:
    ws, script = remote
    script.replies = ['{"value": {"value": "level P2", "citations": [1]}}']
    extraction = ws.extract("Where do visitors park?", {"type": "string", "maxLength": 20})
    assert extraction.data == "level P2"
    assert_grounded(ws, extraction, ["value"])
    assert "P2" in extraction.citations["value"][0].quote


def test_nothing_relevant_returns_no_data_without_calling_the_model(remote) -> None:
    ws, script = remote
    extraction = ws.extract("What is the melting point of tungsten in kelvin?", BACKUPS)
    assert extraction.refused and extraction.data is None and extraction.citations == {}
    assert "nothing in your documents was relevant" in extraction.warnings[0]
    assert script.served == [] and extraction.tries == 0


def test_to_dict_has_the_documented_shape(remote) -> None:
    ws, _ = remote
    shaped = json.loads(ws.extract(BACKUPS_QUESTION, BACKUPS).to_json())
    assert shaped["data"] == {"schedule": "nightly at 02:00 UTC", "retention": "30 days"}
    (citation,) = shaped["citations"]["retention"]
    assert set(citation) == {
        "number",
        "title",
        "source",
        "url",
        "location",
        "quote",
        "quote_start",
        "quote_end",
    }
    assert citation["number"] == 1 and citation["source"].endswith("guide.md")
    assert shaped["usage"]["completion_tokens"] > 0 and shaped["target"] == "openai:gpt-test"


def test_an_invalid_json_schema_is_refused_before_any_call(remote) -> None:
    from citewise.errors import InvalidInput

    ws, script = remote
    with pytest.raises(InvalidInput, match="invalid JSON schema 'extraction'"):
        ws.extract(BACKUPS_QUESTION, {"type": "objekt"})
    assert script.served == []


# -- the command ------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CITEWISE, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OPENAI_API_KEY": "sk-test"},
    )


def test_cli_extracts_with_a_schema_file(ingested_template: Path, tmp_path: Path) -> None:
    shutil.copytree(ingested_template / "ws", tmp_path / "ws")
    schema = tmp_path / "backups.json"
    schema.write_text(json.dumps({k: v for k, v in BACKUPS.items() if k != "title"}))
    with stand_in("openai", Replies(VALID)) as (url, script):
        model = ["--provider", "openai", "--base-url", url, "--model", "gpt-test"]
        ws = ["-w", str(tmp_path / "ws")]
        shown = run_cli(*ws, "extract", BACKUPS_QUESTION, "--schema", str(schema), *model)
        assert shown.returncode == 0, shown.stderr
        data, sources = shown.stdout.split("\nSources\n")
        assert json.loads(data) == {"schedule": "nightly at 02:00 UTC", "retention": "30 days"}
        assert sources.startswith("schedule:\n  [1] Deployment guide — ")
        assert "“Backups run nightly at 02:00 UTC and are kept for 30 days.”" in sources
        # The file's name names the schema when it has no title.
        assert script.served[0].body["response_format"]["json_schema"]["name"] == "backups"

        inline = json.dumps(BACKUPS)
        as_json = run_cli(*ws, "extract", BACKUPS_QUESTION, "--schema", inline, "--json", *model)
        assert as_json.returncode == 0, as_json.stderr
        whole = json.loads(as_json.stdout)
        assert whole["data"]["retention"] == "30 days"
        assert whole["citations"]["retention"][0]["quote"].startswith("Backups run nightly")

        script.replies, script.served[:] = ["not JSON"], []
        failed = run_cli(
            *ws, "extract", BACKUPS_QUESTION, "--schema", inline, "--retries", "0", *model
        )
        assert failed.returncode == 1 and len(script.served) == 1
        assert "gave no value valid against the schema 'backups' in 1 try" in failed.stderr


def test_cli_names_a_missing_or_broken_schema_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    result = run_cli("-w", str(tmp_path / "ws"), "extract", "anything", "--schema", str(missing))
    assert result.returncode == 2
    assert f"no such schema file: {missing}" in result.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{"type": "object",')
    result = run_cli("-w", str(tmp_path / "ws"), "extract", "anything", "--schema", str(broken))
    assert result.returncode == 2 and f"{broken} is not JSON" in result.stderr
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"type": "objekt"}')
    result = run_cli("-w", str(tmp_path / "ws"), "extract", "anything", "--schema", str(wrong))
    assert result.returncode == 2 and f"invalid JSON schema '{wrong}'" in result.stderr
    assert not (tmp_path / "ws").exists()  # refused before the workspace was opened
