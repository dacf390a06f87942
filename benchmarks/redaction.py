"""How well and how fast sensitive values are found before text leaves the machine.

    python benchmarks/redaction.py [--rounds 5] [--json FILE]

On ``benchmarks/data/redaction/labelled.jsonl`` (short e-mails, Slack messages, tickets,
logs, config snippets and notes written for this benchmark, with the character span of
every sensitive value; ``make_labelled.py`` beside it says what is labelled and why), the
detector of ``citewise.redaction`` with every kind it can find offline:

* **quality**, per kind and overall (micro): precision, recall and F1. A finding is right
  when it has the gold span's kind and covers at least half of the gold span's characters
  (each gold span is matched once); exact-span matches are counted too. Every miss and
  false alarm is listed.
* **latency** of ``Detector.find`` and of ``Vault.redact`` + ``restore`` per text (mean,
  p50/p95/p99 ms, and ms per 1,000 characters), over ``--rounds`` passes over the set
  after one warm-up pass (the recognizers' imports and compiled patterns are not timed);
* **a request**: five passages of about 1,000 characters each (texts of the set
  concatenated), redacted and restored as the router would: ms per request.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import Counter
from pathlib import Path

from _stats import latency_ms, measured_on
from citewise.redaction import KINDS, NAME_KINDS, RedactionPolicy, Vault, detector

HERE = Path(__file__).resolve().parent
LABELLED = HERE / "data" / "redaction" / "labelled.jsonl"
DEFAULT_JSON = HERE / "results" / "redaction.json"
PASSAGES, PASSAGE_CHARS = 5, 1000


def load(path: Path = LABELLED) -> list[dict]:
    return [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]


def overlap(a: dict, b: dict) -> int:
    return max(0, min(a["end"], b["end"]) - max(a["start"], b["start"]))


def score(rows: list[dict], found: list[list[dict]]) -> dict:
    """Per-kind and micro precision/recall/F1, with the misses and false alarms."""
    gold_n, found_n, right, exact = Counter(), Counter(), Counter(), Counter()
    misses, false_alarms = [], []
    for row, findings in zip(rows, found, strict=True):
        used: set[int] = set()
        for gold in row["spans"]:
            gold_n[gold["kind"]] += 1
        for finding in findings:
            found_n[finding["kind"]] += 1
            match = next(
                (
                    n
                    for n, gold in enumerate(row["spans"])
                    if n not in used
                    and gold["kind"] == finding["kind"]
                    and overlap(gold, finding) * 2 >= gold["end"] - gold["start"]
                ),
                None,
            )
            if match is None:
                false_alarms.append(described(row, finding))
                continue
            used.add(match)
            right[finding["kind"]] += 1
            gold = row["spans"][match]
            exact[finding["kind"]] += (gold["start"], gold["end"]) == (
                finding["start"],
                finding["end"],
            )
        for n, gold in enumerate(row["spans"]):
            if n not in used:
                misses.append(described(row, gold))
    kinds = sorted(gold_n.keys() | found_n.keys(), key=KINDS.index)
    per_kind = {k: prf(right[k], found_n[k], gold_n[k], exact[k]) for k in kinds}
    micro = prf(
        sum(right.values()), sum(found_n.values()), sum(gold_n.values()), sum(exact.values())
    )
    return {"per_kind": per_kind, "micro": micro, "misses": misses, "false_alarms": false_alarms}


def prf(right: int, found: int, gold: int, exact: int) -> dict:
    precision = right / found if found else 1.0
    recall = right / gold if gold else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "gold": gold,
        "found": found,
        "right": right,
        "exact": exact,
        "precision": round(precision, 3),
        "recall": round(recall, 3),
        "f1": round(f1, 3),
        "exact_recall": round(exact / gold, 3) if gold else 1.0,
    }


def described(row: dict, span: dict) -> str:
    value = row["text"][span["start"] : span["end"]].replace("\n", "⏎")
    if len(value) > 60:
        value = value[:57] + "..."
    return f"{row['id']} {span['kind']} {value!r}"


def timed(function, texts: list[str], rounds: int) -> dict:
    """Mean, p50/p95/p99 ms per text, and ms per 1,000 characters, over ``rounds`` passes."""
    per_text, total_ms, total_chars = [], 0.0, 0
    for _ in range(rounds):
        for text in texts:
            started = time.perf_counter()
            function(text)
            ms = (time.perf_counter() - started) * 1000
            per_text.append(ms)
            total_ms += ms
            total_chars += len(text)
    return {
        "mean": round(statistics.fmean(per_text), 3),
        **latency_ms(per_text, 3),
        "per_1000_chars": round(total_ms / total_chars * 1000, 3),
    }


def passages(texts: list[str]) -> list[str]:
    """Five passages of about 1,000 characters, the set's texts run together in order."""
    out, current = [], ""
    for text in texts:
        current += text + "\n\n"
        if len(current) >= PASSAGE_CHARS:
            out.append(current[:PASSAGE_CHARS])
            current = ""
            if len(out) == PASSAGES:
                break
    return out


def run(rounds: int) -> dict:
    policy = RedactionPolicy(frozenset(KINDS) - NAME_KINDS)
    found_by = detector(policy)
    rows = load()
    texts = [row["text"] for row in rows]
    found = [[vars(f) for f in found_by.find(text)] for text in texts]  # also the warm-up
    quality = score(rows, found)

    def redact_restore(text: str) -> None:
        vault = Vault(found_by)
        assert vault.restore(vault.redact(text)) == text

    redact_restore(texts[0])
    request = passages(texts)

    def one_request(_: str) -> None:
        vault = Vault(found_by)
        masked = [vault.redact(p) for p in request]
        assert [vault.restore(m) for m in masked] == request

    one_request("")
    latency = {
        "find": timed(found_by.find, texts, rounds),
        "redact+restore": timed(redact_restore, texts, rounds),
    }
    request_ms = timed(one_request, ["x" * sum(map(len, request))], rounds * 10)
    return {
        "set": {
            "texts": len(rows),
            "spans": sum(len(r["spans"]) for r in rows),
            "characters": sum(map(len, texts)),
            "by_source": dict(Counter(r["source"] for r in rows)),
        },
        "kinds": sorted(policy.kinds, key=KINDS.index),
        "not_detected": sorted(NAME_KINDS),  # names need a spaCy model, not installed here
        "quality": quality,
        "latency_ms": latency,
        "request": {
            "passages": len(request),
            "characters": sum(map(len, request)),
            "ms": {k: v for k, v in request_ms.items() if k != "per_1000_chars"},
            "runs": rounds * 10,
        },
        "rounds": rounds,
        "measured": measured_on(),
        # Other work on the machine shows in the latencies (not in the quality figures).
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args()
    report = run(args.rounds)
    s = report["set"]
    print(f"{s['texts']} texts, {s['spans']} labelled values, {s['characters']} characters")
    print(f"{'kind':14} {'gold':>5} {'found':>6} {'P':>6} {'R':>6} {'F1':>6} {'exact R':>8}")
    quality = report["quality"]
    for kind, r in [*quality["per_kind"].items(), ("micro", quality["micro"])]:
        print(
            f"{kind:14} {r['gold']:>5} {r['found']:>6} {r['precision']:>6.3f} "
            f"{r['recall']:>6.3f} {r['f1']:>6.3f} {r['exact_recall']:>8.3f}"
        )
    for label in ("misses", "false_alarms"):
        print(f"{label} ({len(quality[label])}):")
        for line in quality[label]:
            print(f"    {line}")
    for name, t in report["latency_ms"].items():
        print(
            f"{name:15} per text mean {t['mean']} ms, p95 {t['p95']} ms; "
            f"{t['per_1000_chars']} ms per 1,000 characters"
        )
    r = report["request"]
    print(
        f"request of {r['passages']} passages ({r['characters']} characters), redact + restore: "
        f"mean {r['ms']['mean']} ms, p95 {r['ms']['p95']} ms"
    )
    print(f"measured: {report['measured']}, load average {report['load_average_1min']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
