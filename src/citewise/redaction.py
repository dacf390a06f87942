"""Sensitive values masked before text leaves the machine, restored in what comes back.

A :class:`Detector` finds e-mail addresses, phone numbers, card numbers, IBANs, IP
addresses, national identity numbers and secrets with maintained libraries, offline:
``phonenumbers`` (Google's libphonenumber data), ``python-stdnum`` (the Luhn, IBAN and
national-id checksums) and ``detect-secrets`` (its patterns for cloud keys and tokens),
plus patterns of our own only for what those do not cover (e-mail, IP candidates, the
newer LLM API key formats, private-key blocks, ``password: …`` in prose). Names of people
and organisations come from a spaCy model when one is installed (``redact_ner_model``);
without one they are not masked, and ``citewise doctor`` says so.

A :class:`Vault` holds one request's placeholders: each value becomes ``<KIND_n>`` — the
same value the same placeholder throughout the request, so the model can still tell who
wrote to whom — and the originals come back in the answer, in streamed deltas (a
placeholder split across deltas is held back until it is whole, never shown half) and in
tool-call arguments (JSON-escaped). The router applies it per target (``redact``: on for
every provider but the in-process local model); a remote embedder masks the same kinds
with bare ``<KIND>`` markers. Any failure of detection refuses the request
(:class:`~citewise.errors.RedactionRefused`): nothing is ever sent unmasked.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from .errors import ConfigError, RedactionRefused
from .plugins import PluginGroup, load_plugin

if TYPE_CHECKING:
    from .config import Settings
    from .providers.base import ModelRequest

# Detection order breaks ties between overlapping findings of one length: a card number
# is a card number before it is a phone number.
KINDS = (
    "SECRET",
    "CREDIT_CARD",
    "IBAN",
    "NATIONAL_ID",
    "EMAIL",
    "IP_ADDRESS",
    "PHONE",
    "PERSON",
    "ORGANIZATION",
)
NAME_KINDS = frozenset({"PERSON", "ORGANIZATION"})


@dataclass(frozen=True)
class Finding:
    start: int
    end: int
    kind: str


@dataclass(frozen=True)
class RedactionPolicy:
    """What a request's text is searched for and what happens to it."""

    mask: frozenset[str]  # replaced by placeholders
    block: frozenset[str] = frozenset()  # the request is refused, naming the kind
    phone_region: str = "US"  # how numbers without a +country code are read
    ner_model: str = "en_core_web_sm"  # a spaCy model, used only when installed

    @classmethod
    def from_settings(cls, settings: Settings) -> RedactionPolicy:
        mask, block = kind_list(settings.redact_entities), kind_list(settings.redact_block)
        return cls(mask - block, block, settings.redact_phone_region, settings.redact_ner_model)

    @property
    def kinds(self) -> frozenset[str]:
        return self.mask | self.block


def masks(redact: str, override: bool | None, local: bool) -> bool:
    """Whether a target is sent masked text: its own ``redact`` option when set, else the
    ``redact`` setting (auto: every target that is not the in-process local model). The
    router, the remote embedder and ``citewise doctor`` all decide by this."""
    if override is not None:
        return override
    return redact == "on" or (redact == "auto" and not local)


def kind_list(text: str) -> frozenset[str]:
    """``"email, phone"`` → {"EMAIL", "PHONE"}; an unknown kind is a configuration error."""
    kinds = frozenset(k.strip().upper() for k in text.split(",") if k.strip())
    unknown = sorted(kinds - set(KINDS))
    if unknown:
        raise ConfigError(
            f"unknown kind(s) of sensitive data {', '.join(unknown)}; known: {', '.join(KINDS)}"
        )
    return kinds


# -- recognizers: one small class per kind, registered like every other plug-in ---------


class Recognizer(Protocol):
    kinds: frozenset[str]

    def find(self, text: str) -> Iterator[Finding]: ...


class RecognizerFactory(Protocol):
    def __call__(self, policy: RedactionPolicy, /) -> Recognizer: ...


BUILTIN_RECOGNIZERS = {
    "EMAIL": "citewise.redaction:EmailRecognizer",
    "PHONE": "citewise.redaction:PhoneRecognizer",
    "CREDIT_CARD": "citewise.redaction:CardRecognizer",
    "IBAN": "citewise.redaction:IbanRecognizer",
    "IP_ADDRESS": "citewise.redaction:IpRecognizer",
    "NATIONAL_ID": "citewise.redaction:NationalIdRecognizer",
    "SECRET": "citewise.redaction:SecretRecognizer",
    "PERSON": "citewise.redaction:NameRecognizer",
    "ORGANIZATION": "citewise.redaction:NameRecognizer",
}
RECOGNIZERS = PluginGroup[RecognizerFactory](
    "citewise.recognizers", BUILTIN_RECOGNIZERS, "recognizer"
)


class _Patterns:
    """Candidates by regular expression, kept when ``valid`` accepts them."""

    kind = ""
    patterns: tuple[re.Pattern[str], ...] = ()

    def __init__(self, policy: RedactionPolicy) -> None:
        self.kinds = frozenset({self.kind})

    def valid(self, candidate: str) -> bool:
        return True

    def find(self, text: str) -> Iterator[Finding]:
        for pattern in self.patterns:
            for match in pattern.finditer(text):
                if self.valid(match.group()):
                    yield Finding(match.start(), match.end(), self.kind)


class EmailRecognizer(_Patterns):
    kind = "EMAIL"
    patterns = (re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}(?![\w-])"),)
    # user:password@host in a URL is a password (SecretRecognizer), not an address.
    userinfo = re.compile(r"://[^\s/@]*:$")

    def find(self, text: str) -> Iterator[Finding]:
        for finding in super().find(text):
            if self.userinfo.search(text, max(0, finding.start - 200), finding.start):
                continue
            if text[finding.end : finding.end + 1] == ":" and re.match(
                r"[\w~./-]", text[finding.end + 1 : finding.end + 2]
            ):
                continue  # git@github.com:org/repo.git is a remote, not an address
            yield finding


class PhoneRecognizer:
    """libphonenumber's matcher: only numbers valid for their country's plan."""

    kinds = frozenset({"PHONE"})

    def __init__(self, policy: RedactionPolicy) -> None:
        import phonenumbers

        self._phonenumbers = phonenumbers
        self._region = policy.phone_region.upper()

    def find(self, text: str) -> Iterator[Finding]:
        leniency = self._phonenumbers.Leniency.VALID
        for match in self._phonenumbers.PhoneNumberMatcher(text, self._region, leniency):
            yield Finding(match.start, match.end, "PHONE")


class CardRecognizer(_Patterns):
    """13-19 digits (spaces or dashes between groups) passing the Luhn check."""

    kind = "CREDIT_CARD"
    patterns = (re.compile(r"(?<![\d-])[2-6]\d{3}(?:[ -]?\d){9,15}(?![\d-])"),)

    def valid(self, candidate: str) -> bool:
        from stdnum import luhn

        digits = re.sub(r"\D", "", candidate)
        return 13 <= len(digits) <= 19 and luhn.is_valid(digits)


class IbanRecognizer:
    """A country code, check digits and account, checked by ISO 13616's mod-97."""

    kinds = frozenset({"IBAN"})
    candidate = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")

    def __init__(self, policy: RedactionPolicy) -> None:
        from stdnum import iban

        self._iban = iban

    def find(self, text: str) -> Iterator[Finding]:
        for match in self.candidate.finditer(text):
            # The candidate may run on into the next capitalised word: the longest valid
            # prefix ending on a character of the account is the IBAN.
            value = match.group()
            for end in range(len(value), 14, -1):
                if value[end - 1] != " " and self._iban.is_valid(value[:end]):
                    yield Finding(match.start(), match.start() + end, "IBAN")
                    break


class IpRecognizer(_Patterns):
    kind = "IP_ADDRESS"
    patterns = (
        re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)"),  # "… 10.0.0.1."
        re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])"),
    )

    def valid(self, candidate: str) -> bool:
        try:
            address = ipaddress.ip_address(candidate)
        except ValueError:
            return False
        # "::" alone or a clock time is no address worth hiding.
        return not (address.version == 6 and candidate.count(":") < 3 and "::" not in candidate)

    def find(self, text: str) -> Iterator[Finding]:
        for pattern in self.patterns:
            for match in pattern.finditer(text):
                start, end = match.span()
                if text[end - 1] == ":" and not self.valid(text[start:end]):
                    end -= 1  # "connect to 2001:db8::1: refused": the colon is the prose's
                if self.valid(text[start:end]):
                    yield Finding(start, end, self.kind)


class NationalIdRecognizer:
    """Identity numbers whose checksum or rules python-stdnum knows: US SSN (written
    123-45-6789), Spanish DNI and NIE, Italian codice fiscale, French NIR."""

    kinds = frozenset({"NATIONAL_ID"})

    def __init__(self, policy: RedactionPolicy) -> None:
        from stdnum.es import dni, nie
        from stdnum.fr import nir
        from stdnum.it import codicefiscale
        from stdnum.us import ssn

        self._checks: tuple[tuple[re.Pattern[str], Any], ...] = (
            (re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])"), ssn),
            (re.compile(r"\b\d{8}-?[A-Z]\b"), dni),
            (re.compile(r"\b[XYZ]-?\d{7}-?[A-Z]\b"), nie),
            (re.compile(r"\b[A-Z]{6}\d{2}[A-Z]\d{2}[A-Z]\d{3}[A-Z]\b"), codicefiscale),
            (re.compile(r"\b[12] ?\d{2} ?\d{2} ?(?:\d{2}|2A|2B) ?\d{3} ?\d{3} ?\d{2}\b"), nir),
        )

    def find(self, text: str) -> Iterator[Finding]:
        for pattern, module in self._checks:
            for match in pattern.finditer(text):
                if module.is_valid(match.group()):
                    yield Finding(match.start(), match.end(), "NATIONAL_ID")


# Formats detect-secrets 1.5 does not know, and secrets written in prose.
_EXTRA_SECRETS = (
    # OpenAI (sk-, sk-proj-, sk-svcacct-) and Anthropic (sk-ant-api03-) keys.
    re.compile(r"\bsk-(?:[a-z]+-)*[A-Za-z0-9_-]{20,}"),
    re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),  # Google API keys
    re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"),  # Hugging Face tokens
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,}\b"),
    # Slack tokens in mixed case (detect-secrets' pattern stops at the first capital).
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{16,}\b"),  # Stripe, test keys too
    re.compile(
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
        r"(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)"
    ),
    re.compile(r"(?i)\bbearer\s+([A-Za-z0-9._~+/-]{20,}=*)"),
    # The value after a keyword (also the end of a key: db_password, signing_secret): after
    # ":", "=" or "is" on the same line, or right after the keyword when it has a digit
    # ("passcode 482913", not "password before Friday"); not a ${VAR} or {{ var }}.
    re.compile(
        r"(?i)(?:\b|(?<=_))(?:password|passwd|passwort|kennwort|contrase[ñn]a|mot de passe"
        r"|passcode|pwd|api[ _-]?key|secret(?:[_-]access[_-]key)?|token)\b[\"'`]?"
        r"(?:(?:[ \t]+(?:is|was))?[ \t]*[:=][ \t]*|[ \t]+(?:is|was)[ \t]+"
        r"|[ \t]+(?=[\"'`]?[^\s\"'`,;]*\d))"
        r"(?!\$\{|\{\{)[\"'`]?([^\s\"'`,;]{6,})"
    ),
)
_SECRET_EDGES = " \t\r\n\"'=:`"
_SECRET_ENDS = _SECRET_EDGES + ".,)"  # the end of a sentence is not part of the secret


class SecretRecognizer:
    """detect-secrets' own patterns (cloud keys, tokens, webhooks, private-key headers,
    passwords in URLs), without its entropy scans, which flag every word of prose."""

    kinds = frozenset({"SECRET"})

    def __init__(self, policy: RedactionPolicy) -> None:
        self._patterns = (*_detect_secrets_patterns(), *_EXTRA_SECRETS)

    def find(self, text: str) -> Iterator[Finding]:
        for pattern in self._patterns:
            for match in pattern.finditer(text):
                start, end = match.span()
                # A pattern whose first group is the secret (a password in a URL, the
                # value after a keyword) masks the group; a short group is a prefix
                # (ghp, xoxb) and the whole match is the secret.
                if match.lastindex and len(match.group(1) or "") >= 6:
                    start, end = match.span(1)
                while start < end and text[start] in _SECRET_EDGES:
                    start += 1
                while end > start and text[end - 1] in _SECRET_ENDS:
                    end -= 1
                if end - start >= 6 and not _only_placeholder(text[start:end]):
                    yield Finding(start, end, "SECRET")


def _only_placeholder(value: str) -> bool:
    return (
        PLACEHOLDER.fullmatch(value) is not None
        or value.lower() in _NOT_SECRETS
        or not value.strip("*•xX")  # already masked: "********", "xxxxxxxx"
    )


_NOT_SECRETS = frozenset(
    {"required", "expired", "invalid", "missing", "redacted", "changed", "changeme", "change_me"}
)


@functools.cache
def _detect_secrets_patterns() -> tuple[re.Pattern[str], ...]:
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.base import RegexBasedDetector

    patterns: list[re.Pattern[str]] = []
    plugin: Any
    for plugin in get_mapping_from_secret_type_to_class().values():
        if issubclass(plugin, RegexBasedDetector) and plugin.__name__ != "IPPublicDetector":
            patterns.extend(plugin().denylist)
    return tuple(patterns)


class NameRecognizer:
    """People and organisations by a spaCy model's entities (``redact_ner_model``)."""

    kinds = NAME_KINDS
    labels: ClassVar[dict[str, str]] = {"PERSON": "PERSON", "ORG": "ORGANIZATION"}

    def __init__(self, policy: RedactionPolicy) -> None:
        self._nlp = _spacy_model(policy.ner_model)

    def find(self, text: str) -> Iterator[Finding]:
        for entity in self._nlp(text).ents:
            kind = self.labels.get(entity.label_)
            if kind is not None:
                yield Finding(entity.start_char, entity.end_char, kind)


@functools.cache
def _spacy_model(name: str) -> Any:
    import spacy

    return spacy.load(name, exclude=["lemmatizer", "parser", "tagger", "attribute_ruler"])


def name_model_problem(name: str) -> str | None:
    """Why names cannot be found (None: the model loads)."""
    try:
        _spacy_model(name)
    except ImportError:
        return "spaCy is not installed (pip install 'citewise[names]', then a spaCy model such as en_core_web_sm)"
    except OSError:
        return f"the spaCy model {name!r} is not installed"
    except Exception as exc:  # a broken install: reported, never raised from doctor
        return f"the spaCy model {name!r} does not load: {exc!r}"
    return None


# -- detection --------------------------------------------------------------------------


class Detector:
    """The recognizers a policy needs; :meth:`find` gives non-overlapping findings."""

    def __init__(self, policy: RedactionPolicy) -> None:
        self.policy = policy
        self.recognizers: list[Recognizer] = []
        self.missing: dict[str, str] = {}  # kind -> why it is not detected
        made: set[str] = set()
        for kind in KINDS:
            if kind not in policy.kinds:
                continue
            if kind in NAME_KINDS and (problem := name_model_problem(policy.ner_model)):
                self.missing[kind] = problem
                continue
            factory_name = BUILTIN_RECOGNIZERS.get(kind, kind)
            if factory_name in made:
                continue
            made.add(factory_name)
            self.recognizers.append(load_plugin(RECOGNIZERS, kind)(policy))

    def find(self, text: str) -> list[Finding]:
        """Findings of the policy's kinds, longest first where they overlap. Any error
        refuses (fail closed); so does a kind the policy blocks but cannot detect."""
        for kind in self.policy.block & self.missing.keys():
            raise RedactionRefused(
                f"{kind} must be blocked but cannot be detected: {self.missing[kind]}; "
                "the request was not sent",
                reason="detector",
            )
        if not text:
            return []
        try:
            found = [
                f for r in self.recognizers for f in r.find(text) if f.kind in self.policy.kinds
            ]
        except Exception as exc:
            raise RedactionRefused(
                f"finding sensitive data failed ({type(exc).__name__}: {exc}); "
                "the request was not sent",
                reason="detector",
            ) from exc
        rank = {kind: n for n, kind in enumerate(KINDS)}
        found.sort(key=lambda f: (f.start, -(f.end - f.start), rank[f.kind]))
        kept: list[Finding] = []
        for finding in found:
            if kept and finding.start < kept[-1].end:
                continue  # inside (or across) a longer or earlier one
            kept.append(finding)
        return kept

    def mask(self, text: str) -> str:
        """``text`` with each finding replaced by ``<KIND>``: what a remote embedder gets
        (the vector cannot give a value back, so nothing is numbered)."""
        return _replaced(text, self.find(text), lambda f: f"<{f.kind}>")


@functools.cache
def detector(policy: RedactionPolicy) -> Detector:
    """The policy's detector; one whose recognizers cannot be made refuses (fail closed),
    never a provider error that another target or a retry would answer."""
    try:
        return Detector(policy)
    except RedactionRefused:
        raise
    except Exception as exc:
        raise RedactionRefused(
            f"the recognizers could not be loaded ({type(exc).__name__}: {exc}); "
            "the request was not sent",
            reason="detector",
        ) from exc


def _replaced(text: str, findings: Sequence[Finding], placeholder: Any) -> str:
    parts, at = [], 0
    for finding in findings:
        parts.append(text[at : finding.start])
        parts.append(placeholder(finding))
        at = finding.end
    parts.append(text[at:])
    return "".join(parts)


# -- one request's placeholders ---------------------------------------------------------

PLACEHOLDER = re.compile(r"<([A-Z_]+)_(\d+)>")


class Vault:
    """The placeholders of one request, both ways."""

    def __init__(self, detector: Detector) -> None:
        self._detector = detector
        self._placeholders: dict[tuple[str, str], str] = {}  # (kind, value) -> <KIND_n>
        self._values: dict[str, str] = {}  # <KIND_n> -> value
        self.counts: Counter[str] = Counter()  # distinct values masked, per kind

    def redact(self, text: str) -> str:
        findings = self._detector.find(text)
        blocked = sorted({f.kind for f in findings} & self._detector.policy.block)
        if blocked:
            raise RedactionRefused(
                f"the request holds {', '.join(blocked)}, which this workspace never sends "
                "to this model (redact_block); the request was not sent",
                reason="blocked",
            )
        return _replaced(text, findings, lambda f: self._placeholder(f.kind, text[f.start : f.end]))

    def _placeholder(self, kind: str, value: str) -> str:
        key = (kind, value)
        if key not in self._placeholders:
            self.counts[kind] += 1
            placeholder = f"<{kind}_{self.counts[kind]}>"
            self._placeholders[key] = placeholder
            self._values[placeholder] = value
        return self._placeholders[key]

    @property
    def placeholders(self) -> frozenset[str]:
        return frozenset(self._values)

    def restore(self, text: str, json_string: bool = False) -> str:
        """The originals back in ``text``; ``json_string``: inside JSON text (tool-call
        arguments), escaped as a JSON string's characters."""

        def original(match: re.Match[str]) -> str:
            value = self._values.get(match.group())
            if value is None:
                return match.group()
            return json.dumps(value)[1:-1] if json_string else value

        return PLACEHOLDER.sub(original, text) if self._values else text

    def restorer(self, json_string: bool = False) -> StreamRestorer:
        return StreamRestorer(self, json_string)

    def summary(self) -> str:
        """For the ledger: ``"EMAIL:2,SECRET:1"`` (counts, never values)."""
        return ",".join(f"{kind}:{n}" for kind, n in sorted(self.counts.items()))


class StreamRestorer:
    """Restores a stream of text pieces: the end of a piece that could be the start of a
    placeholder waits for the next piece, so a placeholder is never shown half."""

    def __init__(self, vault: Vault, json_string: bool = False) -> None:
        self._vault = vault
        self._json = json_string
        self._held = ""

    def feed(self, text: str) -> str:
        held = self._held + text
        cut = held.rfind("<")
        if cut >= 0:
            tail = held[cut:]
            if ">" not in tail and any(p.startswith(tail) for p in self._vault.placeholders):
                self._held = tail
                return self._vault.restore(held[:cut], self._json)
        self._held = ""
        return self._vault.restore(held, self._json)

    def flush(self) -> str:
        rest, self._held = self._held, ""
        return self._vault.restore(rest, self._json)


def redact_request(request: ModelRequest, vault: Vault) -> ModelRequest:
    """``request`` as it may leave the machine: every turn's text and every tool call's
    arguments masked (the system prompt holds the passages)."""
    messages = tuple(
        replace(
            message,
            content=vault.redact(message.content),
            tool_calls=tuple(
                replace(call, arguments=vault.redact(call.arguments)) for call in message.tool_calls
            ),
        )
        for message in request.messages
    )
    schema = request.output_schema
    return replace(
        request,
        messages=messages,
        # What a client sends besides turns leaves the machine too: stop sequences (a
        # masked value is written as its placeholder, so that is what stops it), tools,
        # the JSON schema.
        stop=tuple(vault.redact(s) for s in request.stop),
        tools=tuple(
            replace(
                tool,
                description=vault.redact(tool.description),
                parameters=_redacted_json(tool.parameters, vault),
            )
            for tool in request.tools
        ),
        output_schema=None
        if schema is None
        else replace(schema, schema=_redacted_json(schema.schema, vault)),
    )


def _redacted_json(value: Any, vault: Vault) -> Any:
    """A JSON value with every string's sensitive values masked."""
    if isinstance(value, str):
        return vault.redact(value)
    if isinstance(value, list):
        return [_redacted_json(v, vault) for v in value]
    if isinstance(value, dict):
        return {k: _redacted_json(v, vault) for k, v in value.items()}
    return value
