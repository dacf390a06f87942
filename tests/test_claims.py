"""Numbers, identifiers and names checked against the passage an answer cites
(``claims.py``, ``grounding.py``), and a quoted replacement held to the caller's
``max_tokens``.

The wrong answers are the kind users reported: a number that shares every other word
with its passage ("80 euros" for "eight hundred and fifty euros"), a rate limit the
passage does not give, a name from another row of a task table. End to end, the model is
the OpenAI STAND-IN (``standins.py``) scripted to say exactly that; ingestion,
retrieval, the checks and the server are the real ones.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from citewise import Hit, Workspace
from citewise.claims import Claims, claims, stated
from citewise.grounding import AnswerGuard, segments, within_tokens
from citewise.server import create_app
from conftest import LiveServer
from standins import Script, stand_in

DOCUMENTS = {
    "limits.md": "# Rate limits\n\nThe API allows 20,000 tokens per minute for each key. "
    "Requests beyond the limit get HTTP 429 and a Retry-After header.\n",
    "pump.md": "# Workshop meeting\n\nThe quote for the water pump is eight hundred and "
    "fifty euros. Marc orders the pump on Monday.\n",
    "define-target-audience.md": "# Define target audience\n\nAssignee: Sohrab Amin. "
    "Status: in progress. This task defines who the spring campaign speaks to.\n",
    "write-press-release.md": "# Write press release\n\nAssignee: Nate Martins. "
    "Status: done. This task writes the press release for the spring campaign.\n",
}


def hit(n: int, text: str, title: str = "") -> Hit:
    return Hit(
        n, n, "default", f"/docs/{n}.md", title or f"Doc {n}", text, 0, len(text), None, (), 1.0
    )


def run(guard: AnswerGuard, text: str) -> str:
    shown = []
    for segment in segments([text[i : i + 4] for i in range(0, len(text), 4)]):
        verdict = guard.check(segment)
        if verdict.stop:
            break
        shown.append(verdict.text)
    return "".join(shown).strip()


@pytest.mark.parametrize(
    ("sentence", "numbers", "identifiers", "names"),
    [
        ("The quote for the water pump is 80 euros. [1]", {80}, set(), set()),
        ("It is eight hundred and fifty euros.", {850}, set(), set()),
        ("The Lyon budget is four hundred and twenty thousand euros.", {420_000}, set(), {"lyon"}),
        (
            "It allows 20,000 tokens and 2.5 million a day, or 5%.",
            {20_000, 2_500_000, 5},
            set(),
            set(),
        ),
        ("1. Keys rotate on March 3, 2024 at 10:30. [2]", {3, 2024, 10, 30}, set(), set()),
        (
            "Error E1042 is fixed in v2.3.1; mail ops@example.com.",
            set(),
            {"e1042", "v2.3.1", "ops@example.com"},
            set(),
        ),
        ("Nate Martins [4]", set(), set(), {"nate", "martins"}),
        ("One of the options is the first one.", set(), set(), set()),
        ("Rotate keys nightly in the 3rd week, on 20GB disks.", {20}, set(), set()),
        ("Cut by a fifth, 2.5x faster, on Mondays.", {2.5}, set(), set()),
        (
            "Ines Duarte’s budget, in Ledgerly v4.2.1.",
            set(),
            {"v4.2.1"},
            {"ines", "duarte", "ledgerly"},
        ),
    ],
)
def test_claims_are_read_as_a_reader_would(
    sentence: str, numbers: set[float], identifiers: set[str], names: set[str]
) -> None:
    assert claims(sentence) == Claims(frozenset(numbers), frozenset(identifiers), frozenset(names))


def test_a_passage_states_numbers_however_written() -> None:
    passage = stated(
        "Released 2024-03-03 as v2.3.1 (E1042). Budget: 1.5 million. Twenty people came. "
        "Ledgerly v4.2.1 followed."
    )
    for sentence in [
        "It was released on March 3, 2024. [1]",
        "Error 1042 shipped in v2.3.1. [1]",
        "The budget is 1,500,000. [1]",
        "20 people came. [1]",
        "Ledgerly 4.2.1 and v2.3.1 shipped on the 3rd. [1]",
    ]:
        assert not passage.lacks(claims(sentence)), sentence
    assert passage.lacks(claims("It was released on March 9, 2024.")).numbers == {9}


def test_strict_drops_a_wrong_number_that_shares_every_other_word() -> None:
    pump = hit(1, "The quote for the water pump is eight hundred and fifty euros.")
    budget = hit(2, "The Lyon budget is four hundred and twenty thousand euros this year.")
    question = "How much is the quote for the water pump?"

    guard = AnswerGuard([pump, budget], question, strict=True)
    assert run(guard, "The quote for the water pump is 80 euros. [1]") == ""
    assert "80" in " ".join(guard.warnings())
    guard = AnswerGuard([pump, budget], question, strict=True)
    right = "The quote for the water pump is 850 euros. [1]"
    assert run(guard, right) == right and guard.warnings() == []

    guard = AnswerGuard([pump, budget], "What is the Lyon budget this year?", strict=True)
    assert run(guard, "The Lyon budget this year is 400 euros. [2]") == ""


def test_strict_repoints_a_fact_at_the_passage_that_states_it() -> None:
    limits = hit(1, "The API allows 20,000 tokens per minute for each key of the API.")
    old = hit(2, "The API allowed 5,000 tokens per minute for each key of the API in 2023.")
    guard = AnswerGuard([old, limits], "How many tokens per minute does the API allow?", True)
    shown = run(guard, "The API allows 20,000 tokens per minute for each key. [1]")
    assert shown == "The API allows 20,000 tokens per minute for each key. [2]"
    assert guard.repointed == 1


def test_strict_drops_a_name_from_another_row_of_the_table() -> None:
    rows = [
        hit(1, "Assignee: Sohrab Amin. Status: in progress.", "Define target audience"),
        hit(2, "Assignee: Nate Martins. Status: done.", "Write press release"),
    ]
    question = "Who is the assignee of Define target audience?"
    guard = AnswerGuard(rows, question, strict=True)
    assert run(guard, "The assignee is Nate Martins. [2]") == ""
    assert guard.off_topic
    guard = AnswerGuard(rows, question, strict=True)
    assert run(guard, "The assignee is Sohrab Amin. [1]") == "The assignee is Sohrab Amin. [1]"


def test_light_keeps_the_sentence_and_flags_the_fact() -> None:
    limits = hit(1, "The API allows 20,000 tokens per minute for each key.")
    guard = AnswerGuard([limits], "What are the rate limits?", strict=False)
    wrong = "The API allows 2,500 tokens per minute for each key. [1]"
    assert run(guard, wrong) == wrong
    (note,) = [w for w in guard.warnings() if "does not" in w]
    assert "2500" in note


def test_a_quote_is_cut_at_a_word_boundary_with_its_marker() -> None:
    quote = "From the sources: “The API allows 20,000 tokens per minute for each key.” [1]"
    count = lambda text: len(text.split())  # noqa: E731 - one token a word, to read the cut
    assert within_tokens(quote, 100, count) == (quote, False)
    text, cut = within_tokens(quote, 6, count)
    assert cut and text == "From the sources: “The API…” [1]" and count(text) <= 6
    assert within_tokens(quote, 1, count) == ("From…", True)


# -- end to end --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("claims")
    (root / "docs").mkdir()
    for name, text in DOCUMENTS.items():
        (root / "docs" / name).write_text(text, encoding="utf-8")
    with Workspace.open(root / "ws") as ws:
        assert ws.ingest([root / "docs"]).added == len(DOCUMENTS)
    return root / "ws"


@pytest.fixture
def remote(corpus: Path, tmp_path: Path) -> Iterator[tuple[Path, str, Script]]:
    """(a copy of the corpus, the URL of an OpenAI STAND-IN, its script)."""
    shutil.copytree(corpus, tmp_path / "ws")
    with stand_in("openai") as (url, script):
        yield tmp_path / "ws", url, script


def open_remote(path: Path, url: str, **settings: object) -> Workspace:
    return Workspace.open(path, provider="openai", base_url=url, model="gpt-test", **settings)


def cited(answer) -> set[str]:
    return {Path(c.hit.source).name for c in answer.citations}


def test_a_wrong_rate_limit_never_reaches_the_reader(remote: tuple[Path, str, Script]) -> None:
    path, url, script = remote
    script.reply = "The API allows 60 requests per minute and 2,500 tokens per minute. [1]"
    with open_remote(path, url, answer_check="strict") as ws:
        answer = ws.ask("What are the rate limits of the API?")
        streamed = "".join(ws.ask_stream("What are the rate limits of the API?"))
    for text in (answer.text, streamed):
        assert "2,500" not in text and "60" not in text
        assert "20,000 tokens per minute" in text  # the passage, quoted instead
    assert answer.extractive and cited(answer) == {"limits.md"}
    assert any("2500" in w for w in answer.warnings)


def test_the_right_number_in_words_or_digits_is_kept(remote: tuple[Path, str, Script]) -> None:
    path, url, script = remote
    question = "How much is the quote for the water pump?"
    with open_remote(path, url, answer_check="strict") as ws:
        script.reply = "The quote for the water pump is 80 euros. [1]"
        wrong = ws.ask(question)
        script.reply = "The quote for the water pump is 850 euros. [1]"
        right = ws.ask(question)
    assert "80 euros" not in wrong.text and "eight hundred and fifty" in wrong.text
    assert right.text == "The quote for the water pump is 850 euros. [1]"
    assert not right.extractive and cited(right) == {"pump.md"}


def test_light_checking_flags_what_it_keeps(remote: tuple[Path, str, Script]) -> None:
    path, url, script = remote
    script.reply = "The quote for the water pump is 80 euros. [1]"
    with open_remote(path, url, answer_check="light") as ws:
        answer = ws.ask("How much is the quote for the water pump?")
    assert answer.text == script.reply
    assert any("80" in w and "does not" in w for w in answer.warnings)


def test_a_name_from_another_task_is_replaced_by_the_right_row(
    remote: tuple[Path, str, Script],
) -> None:
    path, url, script = remote
    question = "Who is the assignee of Define target audience?"
    with open_remote(path, url, answer_check="strict") as ws:
        hits = ws.search(question, 4)
        number = 1 + [Path(h.source).name for h in hits].index("write-press-release.md")
        script.reply = f"The assignee of the task is Nate Martins. [{number}]"
        answer = ws.ask(question)
    assert "Nate Martins" not in answer.text and "Sohrab Amin" in answer.text
    assert cited(answer) == {"define-target-audience.md"}


@pytest.mark.parametrize("max_tokens", [6, 200])
def test_the_quote_keeps_to_max_tokens(remote: tuple[Path, str, Script], max_tokens: int) -> None:
    """Through the server, as the report came: the strict check's quote replaced an
    unsupported answer and ignored the client's ``max_tokens``."""
    path, url, script = remote
    script.reply = "The API allows 60 requests per minute and 2,500 tokens per minute. [1]"
    with open_remote(path, url, answer_check="strict") as ws:
        with LiveServer(create_app(ws, auth=False)) as live:
            body = {
                "model": "citewise",
                "messages": [{"role": "user", "content": "What are the rate limits of the API?"}],
                "max_tokens": max_tokens,
            }
            reply = httpx.post(f"{live.url}/v1/chat/completions", json=body, timeout=60).json()
        count = ws.chat_model().count_tokens
    (choice,) = reply["choices"]
    text = choice["message"]["content"]
    assert "2,500" not in text and count(text) <= max_tokens
    if max_tokens < 20:
        assert choice["finish_reason"] == "length" and text.endswith("…” [1]"), text
    else:
        assert choice["finish_reason"] == "stop" and "20,000 tokens per minute" in text
