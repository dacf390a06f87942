"""Model aliases → a chain of targets, with retries, timeouts, circuit breakers and fallback.

Every chat model call in citewise goes through a :class:`Router` (a chain of one target
when nothing else is configured), so the ledger and budgets see every call:

- **Retries** with exponential backoff and jitter on transient errors (connection,
  timeout, 429, 5xx, a broken stream), honouring the provider's ``Retry-After`` — unless
  it asks for longer than ``max_retry_wait``, when the next target is the better bet.
- **Timeouts**, each its own: connect (the SDK's), first token (for a local model scaled
  by the prompt's length: a silent start is prompt processing, not a hang), the gap
  between tokens, and the whole response.
- **Circuit breaker** per target: after ``failures`` transient failures within ``window``
  seconds the target is skipped for ``cooldown`` seconds, then one call probes it
  (half-open). It works with a single target too: an outage costs one fast error, not
  a full round of dead tries per request.
- **Fallback** to the next target on transient errors and timeouts before the first
  token. After it, only with ``continue_after_first_token`` and only for prose: the
  text so far goes to the next target as the start of its answer. Never for tool calls.
  The caller's faults (invalid request, context length, auth) fail at once and say so.

Each call tried is an :class:`Attempt`; the final :class:`Finished` event lists them,
and the ledger (``ledger.py``) records one row per attempt.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import hashlib
import json
import logging
import queue
import random
import threading
import time
import weakref
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field, fields, is_dataclass, replace
from datetime import datetime, timezone
from typing import Any

from ..errors import CALLER_KINDS, CitewiseError, ProviderError, RedactionRefused
from ..ledger import Ledger, LedgerRow, iso, new_call_id
from ..redaction import RedactionPolicy, Vault, detector, masks, redact_request
from ..storage.response_cache import CacheEntry, ResponseCache
from .base import (
    Admitted,
    Capabilities,
    ChatModel,
    Event,
    EventStream,
    Finished,
    Message,
    ModelRequest,
    TextDelta,
    TokenUsage,
    ToolCallDelta,
    refuse_unsupported,
    request_tokens,
)
from .turns import reader_gone_when

log = logging.getLogger("citewise.router")
# How a target without prefill is asked to go on from another's broken-off answer.
CONTINUE_PROMPT = (
    "Your previous message was cut off. Continue it exactly where it stopped, "
    "without repeating any of it."
)


@dataclass(frozen=True)
class Price:
    """USD per million tokens; ``None`` when no price is configured (remote targets)."""

    input: float | None = None
    output: float | None = None
    cached_input: float | None = None  # prompt tokens read from the provider's prompt cache
    cache_write_input: float | None = None  # prompt tokens written to it (Anthropic's)

    @property
    def known(self) -> bool:
        return self.input is not None and self.output is not None

    def cost(self, usage: TokenUsage) -> float | None:
        """Fresh prompt tokens at the input price, cache reads and cache writes at their
        own prices (the input price when unset), completion tokens at the output price."""
        if not self.known:
            return None
        assert self.input is not None and self.output is not None
        cached_rate = self.input if self.cached_input is None else self.cached_input
        write_rate = self.input if self.cache_write_input is None else self.cache_write_input
        fresh = usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens
        return (
            fresh * self.input
            + usage.cached_tokens * cached_rate
            + usage.cache_write_tokens * write_rate
            + usage.completion_tokens * self.output
        ) / 1_000_000


FREE = Price(0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Target:
    """One provider and model a chain may call, with its own limits and price."""

    spec: str  # "openai:gpt-4o-mini"
    provider: str
    model: str
    base_url: str = ""
    api_key_env: str = ""
    api_key_file: str = ""
    context_window: int | None = None  # None: the workspace's setting
    connect_timeout: float = 10.0
    first_token_timeout: float = 30.0
    # Local models: added to the first-token timeout per 1,000 prompt tokens.
    first_token_per_1k_prompt: float = 0.0
    gap_timeout: float = 30.0
    total_timeout: float = 600.0
    # A model that serves one request at a time (local): longest wait for a turn. Waiting
    # is queueing, not the provider failing: it never counts against the first-token
    # timeout or the circuit breaker; past it the request is refused as "busy" (503).
    queue_timeout: float = 120.0
    max_retries: int = 2
    price: Price = field(default_factory=Price)
    # Mask sensitive data in what this target is sent (redaction.py); None: the
    # workspace's ``redact`` setting decides (auto: every provider but the local model).
    redact: bool | None = None

    def first_token_deadline(self, prompt_tokens: int) -> float:
        return self.first_token_timeout + self.first_token_per_1k_prompt * prompt_tokens / 1000


@dataclass(frozen=True)
class Policy:
    continue_after_first_token: bool = False
    fallback_on_caller_errors: bool = False
    backoff_base: float = 0.5  # seconds; doubles per retry, with jitter
    max_retry_wait: float = 20.0  # a longer Retry-After moves on to the next target
    breaker_failures: int = 5
    breaker_window: float = 60.0
    breaker_cooldown: float = 30.0


@dataclass(frozen=True)
class Attempt:
    """One call to one target, as the ledger records it."""

    target: str
    provider: str
    model: str
    status: str  # ok | error | timeout | busy | circuit_open | cancelled
    usage: TokenUsage = field(default_factory=TokenUsage)
    cost_usd: float | None = 0.0
    latency_s: float = 0.0
    first_token_s: float | None = None
    error: str | None = None
    kind: str | None = None  # the ProviderError kind when it failed
    queue_s: float = 0.0  # waiting for a turn at a one-request-at-a-time model
    redacted: str = ""  # kinds and counts of values masked ("EMAIL:2"), never the values


@dataclass
class _Sent:
    """What the reader has already received in this response."""

    text: list[str] = field(default_factory=list)
    tool_calls: bool = False

    @property
    def anything(self) -> bool:
        return bool(self.text) or self.tool_calls


class CircuitBreaker:
    """Closed → open after ``failures`` transient failures within ``window`` s → after
    ``cooldown`` s one probe call (half-open) → closed on success, open again on failure."""

    def __init__(
        self,
        failures: int,
        window: float,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures, self.window, self.cooldown, self.clock = failures, window, cooldown, clock
        self._recent: list[float] = []
        self._opened_at: float | None = None
        self._probing = False
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        with self._lock:
            return self._state(self.clock())

    def _state(self, now: float) -> str:
        if self._opened_at is None:
            return "closed"
        return "half_open" if now - self._opened_at >= self.cooldown else "open"

    def allow(self) -> str | None:
        """``"call"`` (closed), ``"probe"`` (the one call let through half-open), or None."""
        with self._lock:
            state = self._state(self.clock())
            if state == "closed":
                return "call"
            if state == "half_open" and not self._probing:
                self._probing = True  # one caller probes; the others still skip the target
                return "probe"
            return None

    def succeeded(self) -> None:
        with self._lock:
            self._recent.clear()
            self._opened_at, self._probing = None, False

    def failed(self) -> None:
        with self._lock:
            now = self.clock()
            if self._probing or self._opened_at is not None:
                self._opened_at, self._probing = now, False  # the probe failed: open again
                return
            self._recent = [t for t in self._recent if now - t < self.window] + [now]
            if len(self._recent) >= self.failures:
                self._opened_at = now

    def released(self, permit: str) -> None:
        """A call that ended without a verdict (the caller left, its own fault); if it was
        the probe, the next caller may probe."""
        if permit == "probe":
            with self._lock:
                self._probing = False


# Breakers are per process and per target, shared by every router that calls it.
_breakers: dict[tuple[str, str], CircuitBreaker] = {}
_breakers_lock = threading.Lock()


def breaker_for(target: Target, policy: Policy) -> CircuitBreaker:
    with _breakers_lock:
        key = (target.spec, target.base_url)
        if key not in _breakers:
            _breakers[key] = CircuitBreaker(
                policy.breaker_failures, policy.breaker_window, policy.breaker_cooldown
            )
        return _breakers[key]


class Router:
    """A :class:`ChatModel` over a chain of targets (see the module docstring)."""

    name = "router"

    def __init__(
        self,
        alias: str,
        chain: Sequence[Target],
        load: Callable[[Target], ChatModel],
        policy: Policy = Policy(),
        context_window: int = 2048,
        sleep: Callable[[float], None] = time.sleep,
        redaction: RedactionPolicy | None = None,
        redact: str = "auto",
    ) -> None:
        if not chain:
            raise ValueError("a model chain needs at least one target")
        self.alias = alias
        self.chain = tuple(chain)
        self.policy = policy
        self._load = load
        self._models: dict[str, ChatModel] = {}
        self._models_lock = threading.Lock()
        self._sleep = sleep
        self.context_window = min(t.context_window or context_window for t in self.chain)
        self.ledger: Ledger | None = None  # set by the workspace: every call is recorded
        # Set by the workspace: requests with ``cache`` set are answered from it when they
        # can be, and their finished responses kept in it (a ledger is needed too).
        self.response_cache: ResponseCache | None = None
        # What is masked before a request leaves the machine, and for which targets:
        # auto (those that are not local), on, off; a target's own ``redact`` wins.
        self.redaction = redaction
        self.redact = redact

    # -- counting: with the first target's tokenizer (prompts are built for it) ---------

    def model(self, target: Target) -> ChatModel:
        with self._models_lock:
            if target.spec not in self._models:
                self._models[target.spec] = self._load(target)
            return self._models[target.spec]

    def _loaded(self, target: Target) -> ChatModel:
        """The target's model; one that cannot load (no key, no model file) is unavailable,
        and the chain moves on to the next target."""
        try:
            return self.model(target)
        except ProviderError as exc:
            raise ProviderError(str(exc), kind="unavailable") from exc
        except CitewiseError as exc:
            raise ProviderError(f"{target.spec} cannot be used: {exc}", kind="unavailable") from exc

    @property
    def model_id(self) -> str:
        """The first target's model, as its provider names it (a GGUF file's stem)."""
        return self.primary.model_id

    @property
    def primary(self) -> ChatModel:
        """The first target that loads: prompts are counted with its tokenizer and answers
        checked for its kind. (If the first cannot load — no key, no model — the chain
        still works from the next.)"""
        first_error: CitewiseError | None = None
        for target in self.chain:
            try:
                return self.model(target)
            except CitewiseError as exc:
                first_error = first_error or exc
        assert first_error is not None
        raise first_error

    @property
    def capabilities(self) -> Capabilities:
        return replace(self.primary.capabilities, context_window=self.context_window)

    def count_tokens(self, text: str) -> int:
        return self.primary.count_tokens(text)

    def count_messages(self, messages: Sequence[Message]) -> int:
        return self.primary.count_messages(messages)

    def truncate(self, text: str, max_tokens: int) -> str:
        return self.primary.truncate(text, max_tokens)

    # -- calls ---------------------------------------------------------------------------

    def generate(self, request: ModelRequest) -> EventStream:
        """The response's events. With a ledger, the budget is reserved here, before the
        first event is asked for: a refused call raises BudgetExceeded at once (a server
        can still answer 429 instead of starting a stream)."""
        if self.ledger is None:
            return self._route(request, [])
        cache = self.response_cache if request.cache else None
        if cache is None:
            return ChargedResponse(self, request, self.ledger)
        key = self.cache_key(request)
        try:
            entry = cache.get(key)
        except Exception:  # a cache that cannot be read is a miss, never a failed call
            log.exception("the response cache could not be read; the model is asked")
            entry = None
        if entry is not None:
            return ReplayedResponse(self, request, self.ledger, entry)
        return ChargedResponse(self, request, self.ledger, (cache, key))

    def with_redaction(self, redaction: RedactionPolicy | None, redact: str) -> Router:
        """This router masking by ``redaction`` (an assistant's own policy); the loaded
        models, ledger and response cache are shared."""
        if (redaction, redact) == (self.redaction, self.redact):
            return self
        other = copy.copy(self)
        other.redaction, other.redact = redaction, redact
        return other

    def cache_key(self, request: ModelRequest) -> str:
        """The response cache's key of ``request``: sha256 over the canonical JSON of the
        router's alias and chain and every field of the request that reaches a provider
        or says who asks (caller, assistant, purpose, the retrieval's ``cache_scope``)."""
        body = {
            "version": 1,
            "alias": self.alias,
            "chain": [[t.spec, t.base_url, t.redact] for t in self.chain],
            "redaction": [self.redact, repr(self.redaction)],
            "request": {
                f.name: _plain(getattr(request, f.name))
                for f in fields(request)
                if f.name not in ("cancelled", "cache")
            },
        }
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=repr)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def reserve(self, request: ModelRequest) -> Any:
        """Hold one attempt's worst case against the caller's budgets (or refuse)."""
        assert self.ledger is not None
        tokens, usd = self.worst_case(request)
        return self.ledger.reserve(request.caller, request.assistant, tokens, usd)

    def worst_case(self, request: ModelRequest) -> tuple[int, float | None]:
        """Tokens and USD a call may cost at most: its prompt (tool calls and the tools'
        definitions included) plus ``max_tokens``, at the dearest target of the chain
        (None: a target has no price)."""
        prompt = request_tokens(self, request.messages, request.tools)
        usage = TokenUsage(prompt, request.max_tokens)
        costs = [t.price.cost(usage) for t in self.chain]
        usd = None if any(c is None for c in costs) else max(c or 0.0 for c in costs)
        return prompt + request.max_tokens, usd

    def ledger_rows(self, request: ModelRequest, attempts: Sequence[Attempt]) -> list[LedgerRow]:
        call_id, at = new_call_id(), iso(datetime.now(timezone.utc))
        rows = []
        for number, a in enumerate(attempts, start=1):
            u = a.usage
            rows.append(
                LedgerRow(
                    call_id=call_id,
                    attempt=number,
                    at=at,
                    key=request.caller,
                    assistant=request.assistant,
                    purpose=request.purpose,
                    alias=self.alias,
                    target=a.target,
                    provider=a.provider,
                    model=a.model,
                    prompt_tokens=u.prompt_tokens,
                    completion_tokens=u.completion_tokens,
                    cached_tokens=u.cached_tokens,
                    cache_write_tokens=u.cache_write_tokens,
                    estimated=u.estimated,
                    cost_usd=a.cost_usd,
                    latency_s=a.latency_s,
                    first_token_s=a.first_token_s,
                    status=a.status,
                    error=a.error,
                    redacted=a.redacted,
                )
            )
        return rows

    def _route(
        self,
        request: ModelRequest,
        attempts: list[Attempt],
        before_another_call: Callable[[], None] | None = None,
    ) -> Generator[Event, None, None]:
        """Try the chain; ``before_another_call`` runs before every call after the first
        (a retry or a fallback costs again: the budget holds another worst case)."""
        started = time.monotonic()
        sent = _Sent()
        last_error: ProviderError | None = None
        calls = 0
        for target in self.chain:
            for retry in range(target.max_retries + 1):
                if calls and before_another_call is not None:
                    before_another_call()
                permit = breaker_for(target, self.policy).allow()
                if permit is None:  # asked before each call: a failed probe is not retried
                    attempts.append(
                        Attempt(
                            target.spec,
                            target.provider,
                            target.model,
                            "circuit_open",
                            error="circuit open after failures",
                        )
                    )
                    last_error = last_error or ProviderError(
                        f"{target.spec} is skipped after repeated failures (circuit open)",
                        kind="server",
                    )
                    break
                calls += 1
                outcome = yield from self._attempt(target, request, sent, attempts, permit)
                if isinstance(outcome, Finished):
                    yield replace(
                        outcome,
                        target=target.spec,
                        attempts=tuple(attempts),
                        total_s=time.monotonic() - started,
                    )
                    return
                last_error = outcome
                if not self._may_continue(outcome, sent, request):
                    raise self._failure(outcome, attempts)
                wait = None if sent.anything else self._backoff(retry, outcome)
                if wait is None or retry == target.max_retries:
                    break  # on to the next target
                self._sleep(wait)
        assert last_error is not None
        raise self._failure(last_error, attempts)

    def _continued(self, request: ModelRequest, sent: _Sent, model: ChatModel) -> ModelRequest:
        """After a break mid-answer, the next target continues the text already sent: as a
        prefill where the API continues one (Anthropic), otherwise asked to go on. Either
        way it may write only what ``max_tokens`` has left."""
        if not sent.text:
            return request
        partial = "".join(sent.text)
        messages = [*request.messages, Message("assistant", partial)]
        if not model.capabilities.prefill:
            messages.append(Message("user", CONTINUE_PROMPT))
        left = max(1, request.max_tokens - model.count_tokens(partial))
        return replace(request, messages=tuple(messages), max_tokens=left)

    def _attempt(
        self,
        target: Target,
        request: ModelRequest,
        sent: _Sent,
        attempts: list[Attempt],
        permit: str,
    ) -> Generator[Event, None, Finished | ProviderError]:
        """One call; yields its events and returns its Finished event or its error."""
        breaker = breaker_for(target, self.policy)
        started = time.monotonic()
        first: float | None = None
        text: list[str] = []
        status = "cancelled"  # until it ends one way or the other (the reader may leave)
        error: ProviderError | None = None
        finished: Finished | None = None
        repeat = _RepeatGuard("".join(sent.text))
        queued = 0.0
        vault: Vault | None = None
        refusal: RedactionRefused | None = None
        try:
            model = self._loaded(target)
            # Every target, plug-ins included: an option it cannot honour is refused,
            # never dropped on the way to a fallback.
            refuse_unsupported(request, model.capabilities, target.spec)
            refuse_tools(request, model.capabilities, target.spec)
            request = self._continued(request, sent, model)
            vault = self._vault(target, model)
            if vault is not None:  # what leaves the machine is masked; the reader gets it back
                request = redact_request(request, vault)
            deadline = target.first_token_deadline(model.count_messages(request.messages))
            queue_s = target.queue_timeout if model.capabilities.queues else None
            events = watched(
                model.generate(request),
                deadline,
                target.gap_timeout,
                target.total_timeout,
                target.spec,
                queue_s,
                request.cancelled,
            )
            json_text = request.output_schema is not None  # values go back JSON-escaped
            for event in events if vault is None else restored(events, vault, json_text):
                if isinstance(event, Admitted):
                    queued = event.waited_s
                    started = time.monotonic()  # latency and first token count from here
                    continue
                if isinstance(event, Finished):
                    finished = event
                    continue
                if first is None:
                    first = time.monotonic() - started
                if isinstance(event, TextDelta):
                    text.append(event.text)
                    event = TextDelta(repeat.new_text(event.text))
                    if not event.text:
                        continue
                    sent.text.append(event.text)
                elif isinstance(event, ToolCallDelta):
                    sent.tool_calls = True
                yield event
            if finished is None:
                raise ProviderError(f"{target.spec} ended without a final event", kind="stream")
            if rest := repeat.rest():
                sent.text.append(rest)
                yield TextDelta(rest)
            status = "ok"
        except ProviderError as exc:
            error = exc
            status = {"timeout": "timeout", "busy": "busy", "cancelled": "cancelled"}.get(
                exc.kind, "error"
            )
        except RedactionRefused as exc:  # fail closed: no other target either
            status = "refused"
            refusal = exc
            raise
        except Exception as exc:  # a loader or provider bug fails this target only
            error, status = ProviderError(f"{target.spec} failed: {exc!r}", kind="server"), "error"
        finally:
            if finished is not None:
                usage = finished.usage
            elif error is not None and error.usage is not None:  # counted before it broke
                usage = error.usage
            else:
                usage = self._estimate(target, request, "".join(text))
            if status == "ok":
                breaker.succeeded()
            elif error is not None and error.transient:
                breaker.failed()
            else:
                breaker.released(permit)
            attempts.append(
                Attempt(
                    target.spec,
                    target.provider,
                    target.model,
                    status,
                    usage,
                    target.price.cost(usage),
                    time.monotonic() - started,
                    first,
                    str(error or refusal) if error or refusal else None,
                    None if error is None else error.kind.value,
                    queued,
                    "" if vault is None else vault.summary(),
                )
            )
        if finished is not None:
            return replace(finished, first_token_s=first, queue_s=queued)
        assert error is not None
        return error

    def _vault(self, target: Target, model: ChatModel) -> Vault | None:
        """This call's placeholders, when what ``target`` is sent must be masked."""
        if self.redaction is None:
            return None
        if not masks(self.redact, target.redact, model.capabilities.local):
            return None
        return Vault(detector(self.redaction))

    def _estimate(self, target: Target, request: ModelRequest, text: str) -> TokenUsage:
        """What a call that gave no count used: nothing before its first token (APIs do not
        bill a failed request), else the prompt and the text that arrived."""
        if not text:
            return TokenUsage(estimated=True)
        try:
            model = self.model(target)
            return TokenUsage(
                request_tokens(model, request.messages, request.tools),
                model.count_tokens(text) if text else 0,
                estimated=True,
            )
        except Exception:
            return TokenUsage(estimated=True)

    def _may_continue(self, error: ProviderError, sent: _Sent, request: ModelRequest) -> bool:
        if error.kind == "cancelled":
            return False  # nobody is waiting for an answer any more
        if error.kind in CALLER_KINDS:
            return self.policy.fallback_on_caller_errors and error.kind != "auth"
        if sent.tool_calls or (sent.text and request.output_schema is not None):
            return False  # a half-made tool call or JSON value cannot be resumed elsewhere
        if sent.text:
            return self.policy.continue_after_first_token
        return True

    def _backoff(self, retry: int, error: ProviderError) -> float | None:
        """Seconds to wait before retrying the same target; None: move on instead."""
        if error.kind in ("timeout", "unavailable", "busy") or error.kind in CALLER_KINDS:
            return None  # a slow target stays slow: the next one answers sooner
        if error.retry_after is not None:
            return error.retry_after if error.retry_after <= self.policy.max_retry_wait else None
        return self.policy.backoff_base * (2.0**retry) * (0.5 + random.random() / 2)

    def _failure(self, error: ProviderError, attempts: list[Attempt]) -> ProviderError:
        tried = ", ".join(f"{a.target} ({a.status})" for a in attempts)
        message = str(error)
        if error.kind in CALLER_KINDS:
            message += " - the request itself was refused, so no other target was tried"
        elif len(attempts) > 1:
            message += f" - tried: {tried}"
        failure = ProviderError(
            message, error.kind, error.status, error.retry_after, param=error.param
        )
        failure.attempts = tuple(attempts)
        return failure


def restored(
    events: Iterator[Event], vault: Vault, json_text: bool = False
) -> Generator[Event, None, None]:
    """A masked request's response with the originals back: in the text, across delta
    boundaries (a placeholder is held back until whole), and in each tool call's JSON
    arguments. What is held is let out before the final event."""
    text = vault.restorer(json_string=json_text)
    arguments: dict[int, Any] = {}
    for event in events:
        if isinstance(event, TextDelta):
            piece = text.feed(event.text)
            if piece:
                yield TextDelta(piece)
            continue
        if isinstance(event, ToolCallDelta):
            restorer = arguments.setdefault(event.index, vault.restorer(json_string=True))
            yield replace(event, arguments=restorer.feed(event.arguments))
            continue
        if isinstance(event, Finished):
            if rest := text.flush():
                yield TextDelta(rest)
            for index, restorer in arguments.items():
                if rest := restorer.flush():
                    yield ToolCallDelta(index, arguments=rest)
        yield event


def refuse_tools(request: ModelRequest, capabilities: Capabilities, where: str) -> None:
    """A target that cannot call tools refuses a request that brings some: sent on
    without them, its answer would read as if the client had offered none."""
    if request.tools and not capabilities.tools:
        raise ProviderError(
            f"{where} cannot call tools; send the request without 'tools' or route it "
            "to a model that calls them",
            kind="invalid_request",
            param="tools",
        )


class ChargedResponse(Iterator[Event]):
    """A response whose budget holds are settled exactly once, into the ledger, with every
    attempt's real usage: when it ends, fails, is closed early, or is dropped unread.

    The first hold is taken here, before any event is asked for (a refused call raises
    BudgetExceeded at once); each retry or fallback holds another worst case first."""

    def __init__(
        self,
        router: Router,
        request: ModelRequest,
        ledger: Ledger,
        cache: tuple[ResponseCache, str] | None = None,
    ) -> None:
        """``cache``: the response cache and this request's key there, a miss: the
        response is kept in it if it finishes (stop or tool calls)."""
        self._router, self._request, self._ledger = router, request, ledger
        self._holds = [router.reserve(request)]
        self.attempts: list[Attempt] = []
        self._events = router._route(request, self.attempts, self._hold_another)
        self._settled = False
        self._lock = threading.Lock()
        self._cache = cache
        self.cache = "" if cache is None else "miss"
        self._text: list[str] = []
        self._calls = _CallRecorder()

    def _hold_another(self) -> None:
        self._holds.append(self._router.reserve(self._request))

    def __next__(self) -> Event:
        try:
            event = next(self._events)
        except StopIteration:
            self._settle()
            raise
        except BaseException:
            self._settle(quietly=True)  # the call's own error is the one to report
            raise
        if self._cache is not None:
            if isinstance(event, TextDelta):
                self._text.append(event.text)
            elif isinstance(event, ToolCallDelta):
                self._calls.add(event)
            elif isinstance(event, Finished):
                event = replace(event, cache="miss")
                self._keep(event)
        return event

    def _keep(self, finished: Finished) -> None:
        """Keep a finished response in the response cache: one cut short (length), stopped
        or failed never is. A cache that cannot be written costs the next caller a call,
        not this one its answer."""
        assert self._cache is not None
        if finished.finish_reason not in ("stop", "tool_calls"):
            return
        cache, key = self._cache
        u = finished.usage
        cost = sum((a.cost_usd or 0.0) for a in self.attempts)
        unpriced = any(a.cost_usd is None for a in self.attempts)
        entry = CacheEntry(
            key,
            "".join(self._text),
            self._calls.calls(),
            finished.finish_reason,
            finished.provider,
            finished.model,
            finished.target,
            u.prompt_tokens,
            u.completion_tokens,
            u.cached_tokens,
            u.cache_write_tokens,
            None if unpriced else cost,
        )
        try:
            cache.put(entry)
        except Exception:
            log.exception("the response cache could not keep a response")

    def close(self) -> None:
        self._events.close()  # a running attempt is recorded as cancelled
        self._settle()

    def _settle(self, quietly: bool = False) -> None:
        with self._lock:
            if self._settled:
                return
            try:
                rows = self._router.ledger_rows(self._request, self.attempts)
                self._ledger.settle(self._holds, rows)
            except Exception:
                log.exception(
                    "the usage ledger could not record a call; its budget hold "
                    "stays until it expires"
                )
                if not quietly:
                    raise
                return
            self._settled = True

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


class _CallRecorder:
    """Tool-call deltas joined into whole calls (id, name, arguments), by index."""

    def __init__(self) -> None:
        self._calls: dict[int, list[str]] = {}

    def add(self, delta: ToolCallDelta) -> None:
        call = self._calls.setdefault(delta.index, ["", "", ""])
        call[0] = call[0] or delta.id or ""
        call[1] = call[1] or delta.name or ""
        call[2] += delta.arguments

    def calls(self) -> tuple[tuple[str, str, str], ...]:
        return tuple((c[0], c[1], c[2]) for _, c in sorted(self._calls.items()))


REPLAY_PIECE = 24  # characters per text delta when a cached response is replayed


class ReplayedResponse(Iterator[Event]):
    """A response from the response cache, replayed as a stream: its text in pieces, its
    tool calls, then a Finished with no usage (no call was made; ``cache`` "hit"). No
    budget is held; one ledger row records the hit, costing nothing and saving what the
    call it repeats had cost."""

    def __init__(
        self, router: Router, request: ModelRequest, ledger: Ledger, entry: CacheEntry
    ) -> None:
        self._router, self._request, self._ledger, self._entry = router, request, ledger, entry
        self.attempts: list[Attempt] = []
        self.cache = "hit"
        self._started = time.monotonic()
        self._first: float | None = None
        self._events = self._replay()
        self._done = False
        self._settled = False
        self._lock = threading.Lock()

    def _replay(self) -> Generator[Event, None, None]:
        entry = self._entry
        text = entry.text
        for start in range(0, len(text), REPLAY_PIECE):
            yield TextDelta(text[start : start + REPLAY_PIECE])
        for index, (call_id, name, arguments) in enumerate(entry.tool_calls):
            yield ToolCallDelta(index, call_id or None, name or None)
            if arguments:
                yield ToolCallDelta(index, arguments=arguments)
        self._done = True
        yield Finished(
            TokenUsage(),
            entry.finish_reason,
            entry.provider,
            entry.model,
            target=entry.target,
            first_token_s=self._first,
            total_s=time.monotonic() - self._started,
            cache="hit",
        )

    def __next__(self) -> Event:
        try:
            event = next(self._events)
        except StopIteration:
            self._settle()
            raise
        if self._first is None:
            self._first = time.monotonic() - self._started
        return event

    def close(self) -> None:
        self._events.close()
        self._settle()

    def _settle(self) -> None:
        with self._lock:
            if self._settled:
                return
            self._settled = True
            entry, request = self._entry, self._request
            row = LedgerRow(
                call_id=new_call_id(),
                attempt=1,
                at=iso(datetime.now(timezone.utc)),
                key=request.caller,
                assistant=request.assistant,
                purpose=request.purpose,
                alias=self._router.alias,
                target=entry.target,
                provider=entry.provider,
                model=entry.model,
                prompt_tokens=0,
                completion_tokens=0,
                cached_tokens=0,
                estimated=False,
                cost_usd=0.0,
                latency_s=time.monotonic() - self._started,
                first_token_s=self._first,
                status="ok" if self._done else "cancelled",
                cache_hit=True,
                saved_usd=entry.cost_usd,
            )
            self._ledger.settle([], [row])

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def _plain(value: Any) -> Any:
    """A request field as JSON: dataclasses (messages, tools, schemas) as dicts, tuples
    as lists, frozensets sorted."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, frozenset | set):
        return sorted(_plain(v) for v in value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


class _RepeatGuard:
    """A continuation must not repeat what the reader has: a model asked to go on often
    starts its answer over. Text is held back while it could still be that repeat."""

    def __init__(self, sent: str) -> None:
        self.sent = sent.lstrip()
        self.buffer = ""
        self.decided = not self.sent

    def new_text(self, text: str) -> str:
        if self.decided:
            return text
        self.buffer += text
        head = self.buffer.lstrip()
        if self.sent.startswith(head):
            return ""  # so far the same words: wait
        self.decided = True
        if head.startswith(self.sent):  # it started over: keep what follows the repeat
            rest = head[len(self.sent) :]
            return rest.lstrip() if self.sent[-1:].isspace() else rest
        return self.buffer

    def rest(self) -> str:
        """At the end: text still held back that was not a repeat after all."""
        if self.decided:
            return ""
        self.decided = True
        return "" if self.sent.startswith(self.buffer.lstrip()) else self.buffer


# Model workers still running. A reader that leaves early stops its worker at the next event,
# but not at once; a process that then exits tore llama.cpp's buffers down under a worker
# still decoding and crashed (SIGSEGV in `citewise ask`, 1 exit in 12 on an AMX Xeon).
_workers: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
EXIT_WAIT_SECONDS = 10.0  # a local model stops within a token; a hung remote one is let go


@atexit.register
def _wait_for_model_workers() -> None:
    deadline = time.monotonic() + EXIT_WAIT_SECONDS
    for worker in list(_workers):
        worker.join(timeout=max(deadline - time.monotonic(), 0.0))


CANCEL_POLL_S = 0.1  # how often a request waiting for its turn looks whether its caller left


def watched(
    events: Iterator[Event],
    first_token_s: float,
    gap_s: float,
    total_s: float,
    target: str,
    queue_s: float | None = None,
    cancelled: threading.Event | None = None,
) -> Iterator[Event]:
    """``events`` read in a worker thread, so the time to the first event, between events
    and in all can be bounded. Closing this stops the worker at its next event (a local
    model frees its turn there).

    With ``queue_s``, the model queues requests: it yields :class:`Admitted` when this
    one's turn comes, at most ``queue_s`` seconds from now, and every other clock starts
    then — waiting in line is not the provider being slow. ``cancelled`` set while it
    waits (the caller hung up) ends the wait at once: the request never runs."""
    inbox: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=256)
    stop = threading.Event()

    def hand_over(kind: str, item: Any) -> bool:
        """Queue ``item`` unless the reader has left (never block on a full queue)."""
        while not stop.is_set():
            try:
                inbox.put((kind, item), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            with reader_gone_when(stop):  # a request still waiting for its turn leaves the line
                for event in events:
                    if not hand_over("event", event):
                        return
            hand_over("end", None)
        except BaseException as exc:  # handed to the reader
            hand_over("error", exc)
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=pump, name=f"citewise-model-{target}", daemon=True)
    _workers.add(worker)
    worker.start()
    started = time.monotonic()
    seen = False
    waiting = queue_s is not None
    try:
        while True:
            elapsed = time.monotonic() - started
            left = total_s - elapsed
            wait = (
                (queue_s or 0.0) - elapsed
                if waiting
                else min(gap_s if seen else first_token_s, left)
            )
            if waiting and cancelled is not None:
                wait = min(wait, CANCEL_POLL_S)  # a caller that leaves leaves the line
            try:
                kind, item = inbox.get(timeout=max(wait, 0.0))
            except queue.Empty:
                if waiting and cancelled is not None and cancelled.is_set():
                    raise ProviderError(
                        f"{target}: the caller left while it waited for its turn",
                        kind="cancelled",
                    ) from None
                if waiting and time.monotonic() - started < (queue_s or 0.0):
                    continue  # polled for a cancel; still in line
                if waiting:
                    raise ProviderError(
                        f"{target} is busy: no turn within {queue_s:g} s (it serves one "
                        "request at a time); retry shortly",
                        kind="busy",
                        retry_after=5.0,
                    ) from None
                what = (
                    f"no token for {gap_s:g} s"
                    if seen and wait < left
                    else f"no first token within {first_token_s:g} s"
                    if not seen
                    else f"no complete answer within {total_s:g} s"
                )
                raise ProviderError(f"{target} timed out: {what}", kind="timeout") from None
            if kind == "end":
                return
            if kind == "error":
                raise item
            if isinstance(item, Admitted):
                waiting, started = False, time.monotonic()
            else:
                waiting, seen = False, True
            yield item
    finally:
        stop.set()
