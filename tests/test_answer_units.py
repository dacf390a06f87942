"""Facts checked where the question's facts are, quotes chosen by unit, and refusals when
no passage answers: the cases a tiny model gets wrong on tables, rosters and task pages.

The passages are the shapes real exports have (a Markdown table, "Field: value" lines of
a Notion page, release notes with versions in headings); the sentences are the kind
SmolLM2-135M wrote over benchmarks/qa/facts (the right passage, the wrong row).
"""

from __future__ import annotations

from pathlib import Path

from citewise import Hit, Workspace
from citewise.answer_eval import normalize_answer
from citewise.grounding import (
    AnswerGuard,
    asked_kind,
    best_unit,
    extractive_answer,
    passage_units,
    relevant,
    unanswerable,
    within_tokens,
)


def hit(n: int, title: str, text: str, cosine: float = 0.6) -> Hit:
    return Hit(
        n, n, "default", f"/docs/{n}.md", title, text, 0, len(text), None, (), 1.0, cosine=cosine
    )


LIMITS = hit(
    1,
    "API rate limits",
    "## Limits per plan\n\n| Plan | Requests per minute | Burst |\n|---|---|---|\n"
    "| Free | 60 | 10 |\n| Team | 600 | 100 |\n| Enterprise | 3,000 | 500 |\n\n"
    "The burst is how many requests may arrive in the same second.",
)
ROSTER = hit(
    2,
    "On-call roster, April 2025",
    "| Week starting | Primary | Secondary |\n|---|---|---|\n"
    "| 7 April | Lena Vogt | Nate Martins |\n| 14 April | Sohrab Amin | Ines Duarte |\n"
    "| 21 April | Nate Martins | Lena Vogt |",
)
INCIDENT = hit(
    3,
    "Incident report: card payments failing (INC-0211)",
    "Date: 11 February 2025\nSeverity: SEV-2\nIncident commander: Lena Vogt\n\n## Timeline\n\n"
    "- 14:20 Incident declared; Lena Vogt takes command.\n- 15:31 Sohrab Amin rolled back "
    "the change CHG-7781.",
)
RELEASES = hit(
    4,
    "Ledgerly release notes",
    "## 4.2.0, released 3 February 2025\n\n### Fixed\n\n- Rounding error in totals (LED-1398)."
    "\n\n## 4.2.1, released 17 February 2025\n\n### Fixed\n\n"
    "- Login loop with single sign-on when the session cookie expired (LED-1471).",
)


def run(guard: AnswerGuard, text: str) -> str:
    return "".join(guard.check(text).text for _ in [0]).strip()


def test_units_read_table_rows_with_their_header_fields_and_headings_with_facts() -> None:
    rows = [u.text for u in passage_units(LIMITS)]
    assert "Plan: Team; Requests per minute: 600; Burst: 100" in rows
    assert all("---" not in row for row in rows)
    fields = [u.text for u in passage_units(INCIDENT)]
    assert "Incident commander: Lena Vogt" in fields  # a line of its own, not one run-on
    assert "Severity: SEV-2" in fields
    releases = passage_units(RELEASES)
    headings = [u.text for u in releases if u.heading]
    assert headings == ["4.2.0, released 3 February 2025", "4.2.1, released 17 February 2025"]
    loop = next(u for u in releases if "Login loop" in u.text)
    assert loop.section == "4.2.1, released 17 February 2025 › Fixed"


def test_the_quote_is_the_row_of_what_the_question_names() -> None:
    quoted = extractive_answer("How many requests per minute does the Team plan allow?", [LIMITS])
    assert quoted is not None and "Plan: Team; Requests per minute: 600" in quoted
    assert quoted.endswith("[1]")
    roster = extractive_answer(
        "Who is the secondary on-call in the week starting 21 April?", [ROSTER]
    )
    assert roster is not None and "Week starting: 21 April" in roster
    # The release a fix shipped in is in the headings above it: the quote says where.
    fix = extractive_answer("Which release fixed the single sign-on login loop?", [RELEASES])
    assert fix is not None and "4.2.1" in fix and "Login loop" in fix


def test_the_kind_of_fact_asked_chooses_between_units() -> None:
    assert asked_kind("Who was the incident commander?") == "person"
    assert asked_kind("When was 4.3.0 released?") == "date"
    assert asked_kind("Which change caused the incident?") == "identifier"
    assert asked_kind("How much did the pump cost?") == "number"
    assert asked_kind("Why did it fail?") == ""
    who = best_unit("Who was the incident commander for the card payments incident?", [INCIDENT])
    assert who is not None and who.unit.text == "Incident commander: Lena Vogt"
    change = extractive_answer("Which change was rolled back?", [INCIDENT])
    assert change is not None and "CHG-7781" in change


def test_a_number_from_another_row_is_dropped_in_strict_and_flagged_in_light() -> None:
    question = "How many requests per minute does the Team plan allow?"
    wrong = "The team plan allows 10 requests per minute. [1]"  # 10 is the Free plan's burst
    strict = AnswerGuard([LIMITS], question, strict=True)
    assert run(strict, wrong) == ""
    light = AnswerGuard([LIMITS], question, strict=False)
    assert run(light, wrong) == wrong
    assert any("10" in note for note in light.warnings())
    right = "The Team plan allows 600 requests per minute. [1]"
    assert run(AnswerGuard([LIMITS], question, strict=True), right) == right


def test_a_name_from_another_week_is_dropped() -> None:
    question = "Who is the primary on-call in the week starting 14 April?"
    guard = AnswerGuard([ROSTER], question, strict=True)
    assert (
        run(guard, "The primary on-call in the week starting 14 April is Nate Martins. [1]") == ""
    )
    right = "The primary on-call in the week starting 14 April is Sohrab Amin. [1]"
    assert run(AnswerGuard([ROSTER], question, strict=True), right) == right


def test_another_answer_of_the_kind_asked_than_the_answering_unit_is_dropped() -> None:
    # Sohrab Amin is in the passage (he rolled the change back), not its commander.
    question = "Who was the incident commander for the card payments incident?"
    guard = AnswerGuard([INCIDENT], question, strict=True)
    assert (
        run(guard, "The incident commander was Sohrab Amin, who rolled back the change. [1]") == ""
    )
    assert guard.contradicted
    assert any("another answer" in note for note in guard.warnings())
    right = "The incident commander was Lena Vogt, who declared the incident. [1]"
    assert run(AnswerGuard([INCIDENT], question, strict=True), right) == right


def test_a_sentence_repeating_the_questions_facts_must_cite_a_passage_stating_them() -> None:
    question = "Who is the primary on-call in the week starting 14 April?"
    guard = AnswerGuard([LIMITS, ROSTER], question, strict=True)
    shown = run(guard, "The week starting 14 April has a primary on-call from the roster. [1]")
    assert "[1]" not in shown  # the limits table says nothing of 14 April: re-pointed or dropped


def test_questions_naming_what_no_passage_names_are_unanswerable() -> None:
    reason = unanswerable("How many requests per minute does the Starter plan allow?", [LIMITS])
    assert "starter" in reason
    assert unanswerable("How many requests per minute does the Team plan allow?", [LIMITS]) == ""
    week = unanswerable("Who is the primary on-call in the week starting 2 June?", [ROSTER])
    assert week.startswith("no passage mentions")
    # Nothing the question names is missing, but the passages hold almost none of its words.
    far = unanswerable("How much does the company reimburse for a home office chair?", [ROSTER])
    assert "too little of the question" in far


def test_a_passage_naming_the_questions_code_is_relevant_at_any_cosine() -> None:
    spec = hit(
        5, "Spec sheet", "| | AP-200 | AP-300 |\n|---|---|---|\n| Weight | 5.9 kg | 8.4 kg |", 0.1
    )
    other = hit(6, "Spec sheet", "Both models measure PM2.5 with a laser sensor.", 0.1)
    kept = relevant("How heavy is the AP-300?", [spec, other], min_relevance=0.3)
    assert kept == [spec]
    assert relevant("How heavy is it?", [spec, other], min_relevance=0.3) == []


def test_answer_scoring_strips_unicode_punctuation() -> None:
    assert normalize_answer("From the sources: “Now 14.” [2]") == "from sources now 14"


def test_the_default_model_refuses_a_question_about_a_plan_no_document_has(
    tmp_path: Path,
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "limits.md").write_text(f"# {LIMITS.title}\n\n{LIMITS.text}\n")
    with Workspace.open(tmp_path / "ws") as ws:
        ws.ingest(docs)
        answer = ws.ask("How many requests per minute does the Starter plan allow?")
        assert answer.refused
        assert any("starter" in warning for warning in answer.warnings)
        team = ws.ask("How many requests per minute does the Team plan allow?")
        assert not team.refused and "600" in team.text
        assert team.citations and team.citations[0].hit.source.endswith("limits.md")


def test_a_question_comparing_two_rows_is_not_refused() -> None:
    # Each plan, or week, is on a row of its own: no one unit names both.
    assert unanswerable("What is the difference between the Free and Team plans?", [LIMITS]) == ""
    assert unanswerable("Compare the Free and Team plans' requests per minute.", [LIMITS]) == ""
    both = "Who is the primary on-call in the weeks starting 7 April and 14 April?"
    assert unanswerable(both, [ROSTER]) == ""
    # A plan no row names is still missing, whatever the question pairs it with.
    assert "starter" in unanswerable("Compare the Starter and Team plans.", [LIMITS])


def test_capitals_that_say_nothing_of_a_name_do_not_refuse() -> None:
    # Every word of a shouted or title-cased question is capitalised; so is an
    # imperative's first word before a name ("List Team …").
    shouted = "HOW MANY REQUESTS PER MINUTE DOES THE TEAM PLAN ALLOW?"
    assert unanswerable(shouted, [LIMITS]) == ""
    titled = "How Many Requests Per Minute Does The Team Plan Allow?"
    assert unanswerable(titled, [LIMITS]) == ""
    assert unanswerable("List Team plan requests per minute and burst.", [LIMITS]) == ""
    assert "starter" in unanswerable("Show Starter plan requests per minute.", [LIMITS])


def test_a_number_written_without_its_thousands_separator_is_supported() -> None:
    pump = hit(7, "Purchase log", "The replacement pump cost $1,200 and arrived on 3 March 2025.")
    question = "How much did the replacement pump cost?"
    for answer in ("The replacement pump cost 1200 dollars. [1]", "It cost $1,200. [1]"):
        assert run(AnswerGuard([pump], question, strict=True), answer) == answer


def test_a_long_heading_leaves_room_for_the_quote_within_max_tokens() -> None:
    heading = "## " + " ".join(f"part{i}" for i in range(60))
    limits = hit(1, "Limits", f"{heading}\n\nThe Team plan allows 600 requests per minute.")
    quoted = extractive_answer("How many requests per minute does the Team plan allow?", [limits])
    assert quoted is not None and "“The Team plan allows 600 requests per minute.” [1]" in quoted
    assert len(quoted) < 200  # the headings shortened, not 60 words of them
    shown, cut = within_tokens(quoted, 30, lambda text: len(text.split()))
    assert "600" in shown and not cut


def test_passages_only_naming_the_question_fill_the_slots_alike_ones_leave() -> None:
    # "Acme Corp" is on every page: the pages that only name it come before the one page
    # alike to the question in the search's order, and must not push it out of top_k.
    pages = [
        hit(n, f"Acme Corp news {n}", f"Acme Corp office news item {n}.", 0.05) for n in (1, 2, 3)
    ]
    refunds = hit(4, "Refunds", "Refunds are granted within 14 days of purchase.", 0.55)
    kept = relevant("What is Acme Corp's refund window?", [*pages, refunds], 0.3, limit=3)
    assert kept == [pages[0], pages[1], refunds]
