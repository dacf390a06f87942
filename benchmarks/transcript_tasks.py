"""`citewise transcript chapters` and `classify`, measured on labelled meetings.

    python benchmarks/transcript_tasks.py [--json FILE]

Three meetings written here, four topics each, two to five turns a topic (42 passages,
each 20 seconds), with the topic of every turn known. Chapters are scored with Pk (Beeferman
et al., 1999: how often two passages k apart are wrongly put in the same or different
chapters; lower is better, 0 is perfect) and exact boundary F1, against evenly spaced
chapters as the baseline. Classification is scored by accuracy against the topic labels:
by embedding similarity (the default with a local model), by the local model constrained
to the labels (SmolLM2-135M, a grammar), and by always answering the first label.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from citewise import Workspace
from citewise.transcripts import Passage, Transcript, classify, topic_boundaries

MEETINGS = {
    "all hands": {
        "engineering": [
            "The database migration finished on Tuesday and query latency dropped by half.",
            "We still have flaky integration tests in the payments service that block merges.",
            "Next sprint the platform team moves the build pipeline to the new runners.",
            "Code review turnaround is two days on average, and we want it under one.",
            "The on-call rotation gets a third person so nobody is paged two weeks in a row.",
        ],
        "sales": [
            "We closed three enterprise deals this month, the largest with a logistics company.",
            "The pipeline for next quarter looks strong, mostly renewals and upsells.",
            "Two prospects asked for on-premise installs, which we do not offer yet.",
        ],
        "hiring": [
            "We are interviewing for two backend engineers and a product designer.",
            "Please refer friends; the referral bonus doubled until the end of the year.",
        ],
        "office": [
            "The office kitchen gets a new coffee machine and the fridge is cleaned on Fridays.",
            "Desk booking moves to the new app, so reserve your seat before you come in.",
            "The heating on the third floor is fixed and the meeting rooms have new screens.",
            "Bicycle parking in the basement is full, so a second rack arrives next week.",
        ],
    },
    "product review": {
        "search": [
            "Customers want search to find documents by their title and by phrases inside them.",
            "The new ranking puts recent documents first, and relevance went up in our tests.",
        ],
        "mobile app": [
            "The phone app crashes on older Android devices when it opens large files.",
            "Offline mode for the iPhone app ships next month with synced folders.",
            "Push notifications in the mobile app were too frequent, so we batch them now.",
            "The tablet layout of the app was redesigned for landscape screens.",
            "App store reviews of the mobile version went from three to four stars.",
        ],
        "pricing": [
            "The price of the team plan goes up by two dollars per seat in January.",
            "Annual billing gets a fifteen percent discount compared with monthly payments.",
            "Existing customers keep their current price for a year after the change.",
        ],
        "security": [
            "Single sign-on is now available for every company account with an identity provider.",
            "We rotated the encryption keys and passed the external penetration test.",
            "Two-factor authentication becomes mandatory for administrators next week.",
            "Audit logs now record every login and every change to user permissions.",
        ],
    },
    "city council": {
        "roads": [
            "The bridge on Main Street closes for repairs in April and traffic is diverted.",
            "Potholes on the ring road will be filled before the winter frost sets in.",
            "New bicycle lanes are planned along the river between the station and the park.",
            "Street lights on the old town roads are replaced with LED lamps.",
        ],
        "schools": [
            "The primary school needs two new classrooms because enrolment keeps rising.",
            "Teachers asked for more funding for books and science equipment.",
        ],
        "parks": [
            "The playground in the central park gets new swings and a soft floor.",
            "Volunteers will plant two hundred trees along the lake in the autumn.",
            "Dogs must be kept on a lead near the pond during the bird nesting season.",
            "The park toilets reopen after the renovation, with a new water fountain.",
            "A summer concert series will be held on the lawn beside the rose garden.",
        ],
        "taxes": [
            "Property tax rises by one percent to pay for the bridge repairs.",
            "Small shops can apply for a tax break if they hire local apprentices.",
            "The council publishes the full budget and the tax rates online next week.",
        ],
    },
}
TURN_SECONDS = 20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Workspace.open(Path(tmp) / "ws") as ws:
        embedder, model = ws.embedder(), ws.chat_model()
        results = {
            "chapters": chapter_scores(embedder),
            "classify": classify_scores(embedder, model),
            "model": f"local:{model.model_id}",
            "embedder": embedder.model_id,
        }
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


def transcript_of(name: str) -> tuple[Transcript, list[str]]:
    passages, topics = [], []
    for topic, turns in MEETINGS[name].items():
        for said in turns:
            n = len(passages)
            passages.append(Passage(n + 1, n * TURN_SECONDS, (n + 1) * TURN_SECONDS, None, said))
            topics.append(topic)
    return Transcript(name, name, tuple(passages), media=False), topics


def chapter_scores(embedder) -> dict:
    scores: dict[str, list[tuple[float, float]]] = {
        "tiling": [],
        "tiling, true count": [],
        "evenly spaced, true count": [],
    }
    seconds = 0.0
    for name in MEETINGS:
        transcript, topics = transcript_of(name)
        truth = [i for i in range(1, len(topics)) if topics[i] != topics[i - 1]]
        starts = [p.start for p in transcript.passages]
        started = time.perf_counter()
        vectors = embedder.embed([p.text for p in transcript.passages])
        found = topic_boundaries(vectors, starts, transcript.passages[-1].end, min_seconds=40)
        seconds += time.perf_counter() - started
        count = len(truth) + 1
        forced = topic_boundaries(vectors, starts, transcript.passages[-1].end, count, 40)
        even = [round(len(topics) * k / count) for k in range(1, count)]
        for method, cuts in (
            ("tiling", found),
            ("tiling, true count", forced),
            ("evenly spaced, true count", even),
        ):
            scores[method].append((pk(truth, cuts, len(topics)), f1(truth, cuts)))
    summary = {
        m: {
            "pk": round(float(np.mean([s[0] for s in v])), 3),
            "boundary_f1": round(float(np.mean([s[1] for s in v])), 3),
        }
        for m, v in scores.items()
    }
    summary["tiling"]["seconds_per_passage"] = round(
        seconds / sum(len(v) for m in MEETINGS.values() for v in m.values()), 4
    )
    return summary


def classify_scores(embedder, model) -> dict:
    right: dict[str, int] = {"embeddings": 0, "model": 0, "first label": 0}
    seconds: dict[str, float] = {"embeddings": 0.0, "model": 0.0}
    total = 0
    for name in MEETINGS:
        transcript, topics = transcript_of(name)
        labels = list(MEETINGS[name])
        for method in ("embeddings", "model"):
            started = time.perf_counter()
            labelled, _ = classify(transcript, labels, embedder, model, method)
            seconds[method] += time.perf_counter() - started
            right[method] += sum(x.label == t for x, t in zip(labelled, topics, strict=True))
        right["first label"] += sum(t == labels[0] for t in topics)
        total += len(topics)
    return {
        m: {
            "accuracy": round(r / total, 3),
            **({"seconds_per_passage": round(seconds[m] / total, 4)} if m in seconds else {}),
        }
        for m, r in right.items()
    } | {"passages": total}


def pk(truth: list[int], found: list[int], n: int) -> float:
    """Beeferman's Pk with k half the mean true chapter length."""
    k = max(1, round(n / (len(truth) + 1) / 2))

    def chapter(cuts: list[int], i: int) -> int:
        return sum(1 for c in cuts if c <= i)

    errors = sum(
        (chapter(truth, i) == chapter(truth, i + k)) != (chapter(found, i) == chapter(found, i + k))
        for i in range(n - k)
    )
    return errors / (n - k)


def f1(truth: list[int], found: list[int]) -> float:
    hits = len(set(truth) & set(found))
    if not hits:
        return 0.0
    precision, recall = hits / len(found), hits / len(truth)
    return 2 * precision * recall / (precision + recall)


if __name__ == "__main__":
    main()
