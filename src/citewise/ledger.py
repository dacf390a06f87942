"""The usage ledger and budgets: one row per model call, and limits that hold under load.

Every call the router makes (answers, follow-up rewrites, judges, checks — failed
attempts and fallbacks too) becomes a :class:`LedgerRow` with the tokens the provider
reported, the cost from the configured price table, latency and status.

Budgets cap what a key or an assistant may spend per day or month, in USD or tokens.
They are enforced with reservations: before a call, the worst case (prompt tokens plus
``max_tokens``, at the dearest target of the chain) is held in the same transaction that
checks ``spent + held + worst case <= limit``; after the call, one transaction deletes
the hold and writes the ledger rows with the real usage. So concurrent first requests
cannot overspend (each sees the others' holds), and the ledger and the budget never
disagree. Anything that goes wrong here refuses the call (fail closed).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol, TypeVar

from .errors import BudgetExceeded, CitewiseError, ConfigError, LedgerUnavailable

log = logging.getLogger("citewise.budgets")
T = TypeVar("T")
METRICS = ("usd", "tokens")
PERIODS = ("day", "month")
SUBJECT_KINDS = ("key", "assistant")
GROUPS = ("key", "model", "day", "assistant", "purpose")
HOLD_TTL = timedelta(hours=1)  # a hold left by a crashed process stops counting after this


@dataclass(frozen=True)
class BudgetRule:
    kind: str  # key | assistant
    subject: str  # the key's or the assistant's name
    metric: str  # usd | tokens
    period: str  # day | month (UTC)
    amount: float
    hard: bool = True  # soft: the call goes ahead and the overrun is reported

    def describe(self) -> str:
        amount = f"${self.amount:g}" if self.metric == "usd" else f"{self.amount:,.0f} tokens"
        adjective = {"day": "daily", "month": "monthly"}[self.period]
        return f"the {adjective} budget of {self.kind} '{self.subject}' ({amount})"


@dataclass(frozen=True)
class Hold:
    id: str
    key: str
    assistant: str
    usd: float
    tokens: int
    expires_at: str


@dataclass(frozen=True)
class LedgerRow:
    call_id: str  # one response; a fallback's attempts share it
    attempt: int
    at: str
    key: str
    assistant: str
    purpose: str
    alias: str
    target: str
    provider: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    estimated: bool
    cost_usd: float | None
    latency_s: float
    first_token_s: float | None
    status: str
    error: str | None = None
    cache_hit: bool = False
    # Values of each kind masked before the request left the machine ("EMAIL:2,SECRET:1";
    # never the values themselves): redaction.py.
    redacted: str = ""
    # A response served from the response cache: what the call it repeats had cost.
    saved_usd: float | None = None
    # Prompt tokens the provider wrote to its prompt cache (Anthropic bills them apart).
    cache_write_tokens: int = 0


class LedgerStore(Protocol):
    """What a storage backend provides for the ledger (``ledger_store.py``: SQLite)."""

    def reserve(
        self,
        hold: Hold,
        since: dict[str, str],
        decide: Callable[[list[tuple[BudgetRule, float]]], BudgetRule | None],
    ) -> BudgetRule | None:
        """In one transaction: the budgets of the hold's key and assistant with what each
        has spent and holds since its period's start; ``decide`` returns the one that
        refuses the call (nothing is held then, and it is returned) or None (the hold is
        stored)."""
        ...

    def settle(self, hold_ids: Sequence[str], rows: Sequence[LedgerRow]) -> None:
        """In one transaction: drop the holds and write the rows."""
        ...

    def rows(self, since: str | None = None, key: str | None = None) -> list[LedgerRow]: ...

    def summary(
        self, group_by: str, since: str | None = None, key: str | None = None
    ) -> list[dict[str, Any]]: ...

    def last_calls(self) -> dict[str, str]: ...

    def set_budget(self, rule: BudgetRule) -> None: ...

    def remove_budget(self, kind: str, subject: str, metric: str, period: str) -> bool: ...

    def budgets(self) -> list[BudgetRule]: ...

    def ping(self) -> str:
        """Raises when the ledger's database cannot be reached."""
        ...


def period_start(period: str, now: datetime) -> datetime:
    day = now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return day if period == "day" else day.replace(day=1)


def period_end(period: str, now: datetime) -> datetime:
    start = period_start(period, now)
    if period == "day":
        return start + timedelta(days=1)
    return (start + timedelta(days=32)).replace(day=1)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


class Ledger:
    def __init__(
        self, store: LedgerStore, clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
    ) -> None:
        self.store = store
        self.clock = clock
        # Called with each settled call's rows (the server's Prometheus counters).
        self.listeners: list[Callable[[Sequence[LedgerRow]], None]] = []

    def ping(self) -> str:
        return self._read(self.store.ping)

    def _read(self, read: Callable[[], T]) -> T:
        """A read of the ledger's database; its outage is :class:`LedgerUnavailable` (503),
        the driver's words (hosts, users) going to the log only."""
        try:
            return read()
        except CitewiseError:
            raise
        except Exception as exc:
            log.warning("the usage ledger cannot be read: %s", exc)
            raise LedgerUnavailable("the usage ledger cannot be read; retry shortly") from exc

    def reserve(self, key: str, assistant: str, tokens: int, usd: float | None) -> Hold:
        """Hold the call's worst case against every budget that applies, or refuse it."""
        now = self.clock()
        hold = Hold(uuid.uuid4().hex, key, assistant, usd or 0.0, tokens, iso(now + HOLD_TTL))
        since = {p: iso(period_start(p, now)) for p in PERIODS} | {"now": iso(now)}
        soft: list[str] = []

        def decide(used: list[tuple[BudgetRule, float]]) -> BudgetRule | None:
            soft.clear()
            for rule, spent in used:
                if rule.metric == "usd" and usd is None:
                    if rule.hard:
                        return rule  # fail closed: a cost we cannot price cannot be allowed
                    continue
                need = hold.usd if rule.metric == "usd" else hold.tokens
                if spent + need > rule.amount + 1e-12:
                    if rule.hard:
                        return rule
                    soft.append(rule.describe())
            return None

        try:
            refused = self.store.reserve(hold, since, decide)
        except BudgetExceeded:
            raise
        except Exception as exc:  # fail closed: no ledger, no call
            # The driver's message names hosts and users: the log has it, the caller not.
            log.warning("the usage ledger cannot be written: %s", exc)
            raise LedgerUnavailable(
                "the usage ledger cannot be written, so the call is refused; retry shortly"
            ) from exc
        if refused is not None:
            raise self._exceeded(refused, usd, now)
        for budget in soft:
            log.warning(
                "soft budget exceeded: %s (key %r, assistant %r); the call goes ahead",
                budget,
                key,
                assistant,
            )
        return hold

    def _exceeded(self, rule: BudgetRule, usd: float | None, now: datetime) -> BudgetExceeded:
        resets = iso(period_end(rule.period, now))[:19] + "Z"
        if rule.metric == "usd" and usd is None:
            message = (
                f"{rule.describe()} is in USD, but a model in this chain has no price "
                f"configured, so the call's cost cannot be bounded; set input_price and "
                f"output_price for it in citewise.toml"
            )
        else:
            message = f"This call would exceed {rule.describe()}; it resets at {resets}"
        return BudgetExceeded(message, rule.describe(), resets)

    def settle(self, holds: Sequence[Hold], rows: Sequence[LedgerRow]) -> None:
        """Replace the call's holds by its rows (real usage), in one transaction."""
        try:
            self.store.settle([hold.id for hold in holds], rows)
        except Exception as exc:
            log.warning("the usage ledger could not record a call: %s", exc)
            raise LedgerUnavailable("the usage ledger could not record the call") from exc
        for listener in self.listeners:
            listener(rows)

    # -- reading ---------------------------------------------------------------------

    def summary(
        self, group_by: str = "key", since: str | None = None, key: str | None = None
    ) -> list[dict[str, Any]]:
        """Calls, tokens and cost grouped by key, model, day, assistant or purpose."""
        if group_by not in GROUPS:
            raise ConfigError(f"usage groups by {', '.join(GROUPS)}, not {group_by!r}")
        return self._read(lambda: self.store.summary(group_by, since, key))

    def rows(self, since: str | None = None, key: str | None = None) -> list[LedgerRow]:
        return self._read(lambda: self.store.rows(since, key))

    def budgets(self) -> list[BudgetRule]:
        return self._read(self.store.budgets)

    def last_calls(self) -> dict[str, str]:
        """Each key's latest call, by key name."""
        return self._read(self.store.last_calls)

    def remove_budget(self, kind: str, subject: str, metric: str, period: str) -> bool:
        return self.store.remove_budget(kind, subject, metric, period)

    def set_budget(self, rule: BudgetRule) -> None:
        if rule.kind not in SUBJECT_KINDS or rule.metric not in METRICS:
            raise ConfigError("a budget is for a key or an assistant, in usd or tokens")
        if rule.period not in PERIODS:
            raise ConfigError("a budget's period is day or month")
        if not rule.amount > 0:
            raise ConfigError("a budget's amount must be positive")
        self.store.set_budget(rule)


def new_call_id() -> str:
    return uuid.uuid4().hex
