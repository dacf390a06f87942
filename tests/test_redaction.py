"""Sensitive values found offline, masked with placeholders and restored: the real
recognizers (phonenumbers, python-stdnum, detect-secrets and citewise's own patterns) on
realistic sentences, the vault's placeholders both ways, streams cut anywhere, and the
labelled set of ``benchmarks/data/redaction/`` held to a floor of precision and recall."""

from __future__ import annotations

import itertools
import json
import random
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from citewise.errors import RedactionRefused
from citewise.redaction import (
    KINDS,
    NAME_KINDS,
    Detector,
    Finding,
    RedactionPolicy,
    Vault,
    detector,
    name_model_problem,
)

LABELLED = Path(__file__).parent.parent / "benchmarks" / "data" / "redaction" / "labelled.jsonl"
ALL = RedactionPolicy(frozenset(KINDS) - NAME_KINDS)
PEM = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACBzZXJ2ZXIta2V5LWZvci10ZXN0cy1vbmx5LW5vdC1yZWFsAAAAAAAAAAA=\n"
    "-----END OPENSSH PRIVATE KEY-----"
)


def found(text: str) -> list[tuple[str, str]]:
    return [(f.kind, text[f.start : f.end]) for f in detector(ALL).find(text)]


# -- each kind, in sentences as people write them -----------------------------------------

POSITIVES = [
    (
        "Please send the signed NDA to anna.berg@northwind-traders.com by Friday.",
        "EMAIL",
        "anna.berg@northwind-traders.com",
    ),
    (
        'from: "Billing" <billing+eu@kestrel-logistics.co.uk>',
        "EMAIL",
        "billing+eu@kestrel-logistics.co.uk",
    ),
    ("If anything is unclear, call me on +44 20 7946 0958 tomorrow.", "PHONE", "+44 20 7946 0958"),
    ("Our US desk is (415) 867-2390, Mon-Fri.", "PHONE", "(415) 867-2390"),
    ("Bei Fragen erreichen Sie mich unter +49 30 901820.", "PHONE", "+49 30 901820"),
    (
        "The full number she read out was 4111 1111 1111 1111, exp 09/27.",
        "CREDIT_CARD",
        "4111 1111 1111 1111",
    ),
    ("charge failed card=5555-5555-5555-4444 amount=19.99", "CREDIT_CARD", "5555-5555-5555-4444"),
    ("Refund the Amex 3782 822463 10005 please.", "CREDIT_CARD", "3782 822463 10005"),
    ("Nouvel IBAN : DE89 3704 0044 0532 0130 00. Merci !", "IBAN", "DE89 3704 0044 0532 0130 00"),
    ("Please wire the deposit to GB82WEST12345698765432.", "IBAN", "GB82WEST12345698765432"),
    ("the db is at 10.20.4.17 port 5432", "IP_ADDRESS", "10.20.4.17"),
    ("Client IP 203.0.113.42. Browser: Chrome 121.0.6167.85.", "IP_ADDRESS", "203.0.113.42"),
    (
        "tunnel up local=2001:db8:85a3::8a2e:370:7334 remote=peer-2",
        "IP_ADDRESS",
        "2001:db8:85a3::8a2e:370:7334",
    ),
    ("connect to 2001:db8::1: connection refused", "IP_ADDRESS", "2001:db8::1"),
    ("Per our call, the applicant's SSN is 536-90-4412.", "NATIONAL_ID", "536-90-4412"),
    ("datos del nuevo empleado: DNI 12345678Z, empieza el lunes", "NATIONAL_ID", "12345678Z"),
    ("NIE de la becaria: X1234567L; pendiente de alta.", "NATIONAL_ID", "X1234567L"),
    ("We have RSSMRA85T10A562S on file as your codice fiscale.", "NATIONAL_ID", "RSSMRA85T10A562S"),
    ("Numéro de sécurité sociale : 2 95 10 99 126 111 93.", "NATIONAL_ID", "2 95 10 99 126 111 93"),
    (
        "I pasted it in #general by mistake: AKIAQ4XW5GJ7MZK2LT3P sorry",
        "SECRET",
        "AKIAQ4XW5GJ7MZK2LT3P",
    ),
    (
        "ERROR sync failed (token=ghp_R4nd0mT0k3nV4lu3F0rT3st1ngOnly000012)",
        "SECRET",
        "ghp_R4nd0mT0k3nV4lu3F0rT3st1ngOnly000012",
    ),
    (
        "Username: dwalsh, temporary password: Tq7#vLp2xR9w. Change it at first login.",
        "SECRET",
        "Tq7#vLp2xR9w",
    ),
    (
        "connecting to postgres://orders_svc:u8Hq2mZr5Lx@db-primary.internal:5432/orders",
        "SECRET",
        "u8Hq2mZr5Lx",
    ),
    ("Zugang fürs Testsystem: Benutzer admin, Passwort: Sommer2024!x", "SECRET", "Sommer2024!x"),
    (
        "[default]\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYzq8vN3kR7p\n",
        "SECRET",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzq8vN3kR7p",
    ),
    ("Dial-in +1 646 558 8656, passcode 482913.", "SECRET", "482913"),
    (f"the deploy key, delete after import:\n\n{PEM}\n\nThanks", "SECRET", PEM),
]


@pytest.mark.parametrize(("text", "kind", "value"), POSITIVES)
def test_each_kind_is_found_in_realistic_sentences(text: str, kind: str, value: str) -> None:
    assert (kind, value) in found(text)


NEGATIVES = [
    "Reminder: reset your password before Friday; token rotation happens every 30 days.",
    "Secret Santa draw is on Friday, the secret engine is kv-v2, and the password is the same as last time.",
    'environment:\n  POSTGRES_PASSWORD: ${POSTGRES_PASSWORD}\n  API_KEY: "{{ api_key }}"',
    "API_KEY=\nAPI_SECRET=changeme\nPASSWORD_MIN_LENGTH=12\npassword: ********",
    "Build 2024.03.15-rc2, ticket JIRA-1234, commit 9f2c1e7, total $1,249.00 on 2024-03-15 at 14:30.",
    "MAC 00:1A:2B:3C:4D:5E, uuid 123e4567-e89b-12d3-a456-426614174000, at 14:22:07 (v2.14.3)",
    "Order 4921 8830 1276 5544 shipped; card ending 4242, BIN 411111, CVC 123.",
    "OID 1.3.6.1.4.1.311, ISBN 978-3-16-148410-0, DOI 10.1000/182, RFC 7519 §4.1",
    "Postcodes 10115, 28013 and 75008; SW1A 1AA; CA 94105; employee number 004417.",
    "@channel ping @anna about PR !2231; headcount 42 → 47; cost per seat €18.75/month",
    "Tracking 1Z999AA10123456784, order 112-4837261-9920135, meeting ID 812 4471 9905",
    f"sha256:{'9b2c4f1e0a7d3c5b' * 4} and commit {'a3f9c2e1b7' * 4}",
]


@pytest.mark.parametrize("text", NEGATIVES)
def test_hard_negatives_are_not_flagged(text: str) -> None:
    assert found(text) == []


def test_overlapping_findings_become_one() -> None:
    # The e-mail's domain holds an IP address; a keyword's value is also a card number.
    text = "write to anna.berg@10.0.0.1.nip.io; token=4111111111111111"
    raw = [f for r in detector(ALL).recognizers for f in r.find(text)]
    assert len(raw) > len(detector(ALL).find(text))  # the recognizers did overlap
    assert found(text) == [
        ("EMAIL", "anna.berg@10.0.0.1.nip.io"),
        ("SECRET", "4111111111111111"),
    ]
    spans = [(f.start, f.end) for f in detector(ALL).find(text)]
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))


# -- placeholders -------------------------------------------------------------------------


def test_same_value_same_placeholder_different_values_different_numbers() -> None:
    vault = Vault(detector(ALL))
    text = (
        "From anna@northwind.com to bob@kestrel.de, cc anna@northwind.com; "
        "db 10.0.3.12, replica 10.0.3.13, primary again 10.0.3.12"
    )
    masked = vault.redact(text)
    assert masked == (
        "From <EMAIL_1> to <EMAIL_2>, cc <EMAIL_1>; "
        "db <IP_ADDRESS_1>, replica <IP_ADDRESS_2>, primary again <IP_ADDRESS_1>"
    )
    # The numbering goes on across the turns of one request.
    assert vault.redact("and carol@helix.bio, not anna@northwind.com") == (
        "and <EMAIL_3>, not <EMAIL_1>"
    )
    assert vault.summary() == "EMAIL:3,IP_ADDRESS:2"
    assert vault.restore(masked) == text


VALUES = [
    "anna.berg@northwind-traders.com",
    "k.nakamura@example.co.jp",
    "+44 20 7946 0958",
    "(415) 867-2390",
    "4111 1111 1111 1111",
    "3782 822463 10005",
    "DE89 3704 0044 0532 0130 00",
    "GB82WEST12345698765432",
    "10.20.4.17",
    "2001:db8:85a3::8a2e:370:7334",
    "536-90-4412",
    "X1234567L",
    "RSSMRA85T10A562S",
    "AKIAQ4XW5GJ7MZK2LT3P",
    "ghp_R4nd0mT0k3nV4lu3F0rT3st1ngOnly000012",
]
WORDS = [
    "B",
    "Dana",
    "Friday",
    "about",
    "and",
    "at",
    "before",
    "check",
    "customers",
    "for",
    "in",
    "invoice",
    "lunch",
    "meet",
    "noon",
    "notes",
    "ok",
    "on",
    "please",
    "release",
    "room",
    "sent",
    "thanks",
    "the",
    "was",
    "we",
    "with",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(WORDS),
            st.one_of(st.sampled_from(WORDS), st.sampled_from(VALUES)),
            st.sampled_from([" ", ", ", ". ", "\n", " - ", "; ", ": "]),
        ),
        min_size=1,
        max_size=15,
    )
)
def test_restore_undoes_redact(parts: list[tuple[str, str, str]]) -> None:
    # Each value after a word: libphonenumber reads "+44 20 7946 0958 4111 ..." or
    # "+44 20 7946 0958, X1234567L" (x: an extension) as one candidate and finds no valid
    # number in it (a known limit, in the benchmark's notes).
    text = "".join(f"{word} {part}{separator}" for word, part, separator in parts)
    vault = Vault(detector(ALL))
    masked = vault.redact(text)
    assert vault.restore(masked) == text
    for value in {part for _, part, _ in parts} & set(VALUES):
        assert value not in masked


# -- streams --------------------------------------------------------------------------------

STREAM_TEXT = (
    "Sure: write to anna.berg@northwind-traders.com (or k.nakamura@example.co.jp), call "
    "+44 20 7946 0958, and if a < b use 10.20.4.17 — the key AKIAQ4XW5GJ7MZK2LT3P is revoked."
)
# A whole placeholder left unrestored, or one cut before its ">" at the end of a piece.
UNFINISHED = re.compile(r"<[A-Z_0-9]*(?:>|$)")


def streamed(vault: Vault, pieces: list[str]) -> list[str]:
    restorer = vault.restorer()
    out = [restorer.feed(piece) for piece in pieces]
    out.append(restorer.flush())
    return out


def test_a_stream_cut_anywhere_is_restored_whole() -> None:
    vault = Vault(detector(ALL))
    masked = vault.redact(STREAM_TEXT)
    assert masked.count("<") == 6  # five placeholders and the "<" of the prose
    for cut in range(len(masked) + 1):
        out = streamed(vault, [masked[:cut], masked[cut:]])
        assert "".join(out) == STREAM_TEXT, cut
        assert not any(UNFINISHED.search(piece) for piece in out), (cut, out)


def test_a_stream_of_small_pieces_is_restored_whole() -> None:
    vault = Vault(detector(ALL))
    masked = vault.redact(STREAM_TEXT)
    rng = random.Random(7)
    for _ in range(200):
        pieces, at = [], 0
        while at < len(masked):
            size = rng.randint(1, 5)
            pieces.append(masked[at : at + size])
            at += size
        out = streamed(vault, pieces)
        assert "".join(out) == STREAM_TEXT
        assert not any(UNFINISHED.search(piece) for piece in out), out


# -- tool-call arguments ----------------------------------------------------------------------


def test_values_come_back_into_json_strings_escaped() -> None:
    vault = Vault(detector(ALL))
    prompt = f"use password: Ab\\cd9xYz and this key:\n{PEM}"
    masked = vault.redact(prompt)
    assert "Ab\\cd9xYz" not in masked and "PRIVATE KEY" not in masked
    password, key = sorted(vault.placeholders)
    arguments = json.dumps({"password": password, "key": key, "note": 'say "hi"'})
    restored = vault.restore(arguments, json_string=True)
    assert json.loads(restored) == {"password": "Ab\\cd9xYz", "key": PEM, "note": 'say "hi"'}
    # The same arguments streamed in pieces.
    restorer = vault.restorer(json_string=True)
    pieces = [arguments[i : i + 3] for i in range(0, len(arguments), 3)]
    assert json.loads("".join([*map(restorer.feed, pieces), restorer.flush()])) == json.loads(
        restored
    )


def test_tool_call_arguments_are_masked_as_json_and_restored() -> None:
    vault = Vault(detector(ALL))
    arguments = json.dumps({"to": "anna.berg@northwind-traders.com", "ip": "10.20.4.17"})
    masked = vault.redact(arguments)
    assert json.loads(masked) == {"to": "<EMAIL_1>", "ip": "<IP_ADDRESS_1>"}
    assert json.loads(vault.restore(masked, json_string=True)) == json.loads(arguments)


# -- refusals ------------------------------------------------------------------------------------


def test_a_blocked_kind_refuses_naming_the_kind_not_the_value() -> None:
    policy = RedactionPolicy(frozenset({"EMAIL"}), block=frozenset({"CREDIT_CARD"}))
    vault = Vault(Detector(policy))
    assert vault.redact("mail anna@northwind.com") == "mail <EMAIL_1>"
    with pytest.raises(RedactionRefused) as refused:
        vault.redact("mail anna@northwind.com the card 4111 1111 1111 1111 please")
    assert refused.value.reason == "blocked"
    message = str(refused.value)
    assert "CREDIT_CARD" in message
    assert "4111" not in message and "anna" not in message


def test_a_failing_recognizer_refuses_the_request() -> None:
    class Broken:
        kinds = frozenset({"EMAIL"})

        def find(self, text: str) -> list[Finding]:
            raise RuntimeError("recognizer crashed")

    failing = Detector(RedactionPolicy(frozenset({"EMAIL", "PHONE"})))
    failing.recognizers.append(Broken())
    with pytest.raises(RedactionRefused) as refused:
        Vault(failing).redact("call +44 20 7946 0958 or mail anna@northwind.com")
    assert refused.value.reason == "detector"
    assert "anna@northwind.com" not in str(refused.value)
    with pytest.raises(RedactionRefused):
        failing.mask("anything at all")


@pytest.mark.skipif(name_model_problem("en_core_web_sm") is None, reason="a spaCy model loads")
def test_a_blocked_kind_that_cannot_be_detected_refuses() -> None:
    policy = RedactionPolicy(frozenset({"EMAIL"}), block=frozenset({"PERSON"}))
    with pytest.raises(RedactionRefused) as refused:
        Detector(policy).find("hello")
    assert refused.value.reason == "detector"
    assert "PERSON" in str(refused.value)


def test_mask_gives_bare_kind_markers() -> None:
    text = (
        "Mail anna@northwind.com from 10.0.3.12, card 4111 1111 1111 1111, again anna@northwind.com"
    )
    assert detector(ALL).mask(text) == (
        "Mail <EMAIL> from <IP_ADDRESS>, card <CREDIT_CARD>, again <EMAIL>"
    )


# -- the labelled set ------------------------------------------------------------------------------


def test_the_labelled_set_is_found_with_high_precision_and_recall() -> None:
    rows = [json.loads(line) for line in LABELLED.open(encoding="utf-8") if line.strip()]
    assert len(rows) >= 120
    gold = found_n = right = 0
    for row in rows:
        spans, used = row["spans"], set()
        gold += len(spans)
        for finding in detector(ALL).find(row["text"]):
            found_n += 1
            for n, span in enumerate(spans):
                covered = min(span["end"], finding.end) - max(span["start"], finding.start)
                if (
                    n not in used
                    and span["kind"] == finding.kind
                    and 2 * covered >= span["end"] - span["start"]
                ):
                    used.add(n)
                    right += 1
                    break
    # Measured 0.982 / 0.965 (benchmarks/results/redaction.json).
    assert right / found_n >= 0.96, (right, found_n)
    assert right / gold >= 0.94, (right, gold)
