"""Settings: one table, one precedence.

A setting's value comes from the first of these that has it (as pip, git, Docker and
twelve-factor apps do: an operator overrides a committed file from the environment):

1. an explicit argument (CLI flag or Python keyword),
2. a ``CITEWISE_<NAME>`` environment variable (a ``.env`` file in the current
   directory is read by the CLI, without replacing variables already set),
3. the workspace's ``citewise.toml``,
4. the default in :data:`SETTINGS`.

An empty value counts as unset at every level. Every environment variable citewise
reads is a row of :data:`SETTINGS` (``tests/test_config.py`` holds the code to it), so
``citewise config`` shows and documents it. Rows marked ``env_only`` belong to the
process, not to a workspace (where caches live, which workspace opens): they are read
from the environment alone, through :func:`setting_from_env`, and are neither
``citewise.toml`` keys nor :class:`Settings` fields.

Secrets never live here: a provider's key is read from the environment variable
named by ``api_key_env`` or from ``api_key_file``, which must lie outside the workspace.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar, cast

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_FILE = "citewise.toml"


def cache_dir() -> Path:
    """Where derived files (the int8 embedder, model checks) live: per user, outside
    every workspace; ``CITEWISE_CACHE_DIR`` moves it."""
    import platformdirs

    override = setting_from_env("cache_dir", str)
    return Path(override) if override else Path(platformdirs.user_cache_dir("citewise"))


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    # The process's, not a workspace's: read from CITEWISE_<NAME> alone (never from
    # citewise.toml), through setting_from_env; not a field of Settings.
    env_only: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "embedder", "all-MiniLM-L6-v2", "Embedding model for new collections (`citewise models`)."
    ),
    Setting("chunk_tokens", 200, "Most embedder tokens in one chunk."),
    Setting("chunk_overlap", 32, "Tokens a chunk repeats from the one before it."),
    Setting("provider", "local", "Chat provider: local, openai or anthropic."),
    Setting("model", "", "Chat model name; empty means the provider's default."),
    Setting("base_url", "", "Base URL of an OpenAI-compatible server (vLLM, Ollama, llama.cpp)."),
    Setting("api_key_env", "", "Environment variable holding the provider's API key."),
    Setting("api_key_file", "", "File holding the provider's API key (outside the workspace)."),
    Setting("context_window", 2048, "Tokens the chat model sees: prompt plus answer."),
    Setting("answer_tokens", 384, "Tokens reserved for the answer."),
    Setting("top_k", 5, "Most passages put into the prompt."),
    Setting(
        "fusion",
        "adaptive",
        "How keyword and vector rankings merge: adaptive (convex, weighted per query toward "
        "the surer ranking; measured best on SciFact and CISI), convex or rrf.",
    ),
    Setting(
        "dense_weight", 0.5, "Weight of the vector ranking in adaptive and convex fusion (0..1)."
    ),
    Setting("min_relevance", 0.3, "Least cosine similarity for a passage to count as relevant."),
    Setting(
        "ann_threshold",
        1_000_000,
        "Chunks in a collection above which vector search uses HNSW (exact below).",
    ),
    Setting(
        "sparse_threshold",
        50_000,
        "Chunks in a collection above which keyword search uses a bm25s index (FTS5 below).",
    ),
    Setting("temperature", 0.1, "Sampling temperature for answers."),
    Setting(
        "answer_check",
        "auto",
        "How answers are checked against their sources: strict (leave out unsupported "
        "sentences; quote the best passage when the first claim is unsupported), light "
        "(remove markers naming no source, stop loops), auto (strict for local models, "
        "light otherwise), off (the model's text as written), or quote (the best passage "
        "sentence, no generation).",
    ),
    Setting(
        "query_rewrite",
        "auto",
        "How a follow-up question becomes a standalone search query: model, keywords, "
        "or auto (keywords for the tiny default local model, the model otherwise).",
    ),
    Setting(
        "mode",
        "single",
        "How a question is answered: single (one search, then one model call over the best "
        "passages) or agent (the model searches, reads around passages and searches again "
        "before answering, for questions whose facts sit in several documents; needs a "
        "model that calls tools: the tiny local default answers single-shot).",
    ),
    Setting("agent_steps", 6, "Most model turns an answer in agent mode may take (at least 2)."),
    Setting(
        "agent_tokens",
        12000,
        "Most prompt plus completion tokens all the model turns of one agent-mode answer "
        "may spend; near it, the model answers from what it has found.",
    ),
    Setting(
        "system_messages",
        "instructions",
        "What the server does with an API client's system (or developer) messages: "
        "instructions (the model follows them as the user's further instructions, after "
        "citewise's rules on answering from the sources and citing them, which stay in "
        "force) or refuse (the request gets a 400 naming messages).",
    ),
    Setting(
        "sources_in_text",
        "off",
        "Whether the server's answers also list their sources at the end of the text "
        "(footnotes), for clients that show only the text (llm's streaming mode, plain chat "
        "UIs), or only in the response's citations and annotations (off).",
    ),
    Setting("max_upload_mb", 50, "Largest upload the server accepts in one request (MB)."),
    Setting(
        "max_document_mb",
        64,
        "Most text one document may extract to (MB); a larger one is named and skipped.",
    ),
    Setting("max_request_kb", 1024, "Largest JSON request body the server accepts (KB)."),
    Setting(
        "store",
        "",
        "Where the workspace's documents, chunks, vectors, keys and runs live: empty for the "
        "SQLite file in the workspace, or a PostgreSQL URL with pgvector shared by server "
        "replicas (password from PGPASSWORD or ~/.pgpass, never in the URL).",
    ),
    Setting(
        "ledger_url",
        "",
        "PostgreSQL URL for the usage ledger and budgets, shared by server replicas "
        "(password from PGPASSWORD or ~/.pgpass, never in the URL); empty: the workspace database.",
    ),
    Setting(
        "redis_url",
        "",
        "Redis URL for rate limits shared by server replicas (e.g. redis://127.0.0.1:6379/0; "
        "password from REDIS_PASSWORD, never in the URL); empty: limits per process.",
    ),
    Setting(
        "rate_limit_outage",
        "closed",
        "What keys with rate limits get while Redis (redis_url) cannot be reached: closed "
        "(refused with 503 and Retry-After) or open (served unlimited, logged and counted "
        "in citewise_dependency_unavailable_total).",
    ),
    Setting(
        "response_cache",
        "off",
        "Serve a repeated question from the response cache: exact (the same question, "
        "conversation, model, parameters, caller and retrieved passages at the same index "
        "generation; a re-ingest or delete misses) or off. Usually set per assistant.",
    ),
    Setting(
        "response_cache_ttl",
        86400,
        "Seconds a cached response is served (the workspace's, for every assistant).",
    ),
    Setting(
        "response_cache_entries",
        10000,
        "Most responses the cache keeps; the oldest go first (the workspace's).",
    ),
    Setting(
        "cors_origins",
        "",
        "Comma-separated origins whose browser apps may call the server's API "
        "(e.g. https://app.example.com); empty: same origin only.",
    ),
    Setting(
        "redact",
        "auto",
        "Mask sensitive data (redact_entities) in what is sent to a model or embedder, and put "
        "the values back in the answer: auto (every provider but the in-process local model), on "
        "or off. A target's own `redact` option in [targets] overrides it.",
    ),
    Setting(
        "redact_entities",
        "EMAIL,PHONE,CREDIT_CARD,IBAN,IP_ADDRESS,NATIONAL_ID,SECRET,PERSON,ORGANIZATION",
        "Kinds of sensitive data masked with placeholders (PERSON and ORGANIZATION need an "
        "installed spaCy model, redact_ner_model; `citewise doctor` says whether one loads).",
    ),
    Setting(
        "redact_block",
        "",
        "Kinds of sensitive data that refuse the request instead of being masked "
        "(e.g. SECRET,CREDIT_CARD).",
    ),
    Setting(
        "redact_phone_region",
        "US",
        "Country (ISO code) whose numbering plan reads phone numbers written without +code.",
    ),
    Setting(
        "redact_ner_model",
        "en_core_web_sm",
        "spaCy model that finds names of people and organisations, used when installed.",
    ),
    # Environment only: they belong to the process, not to one workspace.
    Setting(
        "workspace",
        "",
        "Workspace directory when no --workspace flag is given; empty: a per-user data "
        "directory (~/.local/share/citewise/default on Linux).",
        env_only=True,
    ),
    Setting(
        "cache_dir",
        "",
        "Per-user cache for derived files (the int8 embedder, model checks), outside every "
        "workspace; empty: the platform's user cache directory.",
        env_only=True,
    ),
    Setting(
        "model_dir",
        "",
        "Folder of catalogue embedders (<name>/model.onnx and tokenizer.json), tried before "
        "the packaged and Hugging Face Hub copies; empty: not used.",
        env_only=True,
    ),
    Setting(
        "whisper_model",
        "tiny.en",
        "faster-whisper model that transcribes audio and video (tiny.en is packaged; others "
        "are fetched from the Hugging Face Hub).",
        env_only=True,
    ),
    Setting(
        "whisper_beam",
        5,
        "Beam width when transcribing (1 decodes greedily: faster, less accurate).",
        env_only=True,
    ),
    Setting(
        "transcript_passage_seconds",
        20,
        "Seconds a passage of a recording or timed transcript lasts, about: cut at pauses "
        "and sentence ends, never longer than 1.5 times this unless one segment is "
        "(at least 5; files ingested before a change keep their passages).",
        env_only=True,
    ),
    Setting(
        "finetune_base",
        "",
        "Model that `citewise tune --finetune-embedder` starts from; empty: the packaged "
        "all-MiniLM-L6-v2 weights, else the Hub's.",
        env_only=True,
    ),
    Setting(
        "job_lease_seconds",
        30.0,
        "Seconds a server holds an ingest job between lease renewals; a stopped server's "
        "job is taken over after this.",
        env_only=True,
    ),
    Setting(
        "user",
        "",
        "User or key name that `citewise ask` and `citewise eval answers` charge model "
        "calls to when --as is not given (its budgets apply).",
        env_only=True,
    ),
    Setting(
        "raise_errors",
        False,
        "Let citewise's own errors end the CLI with a traceback instead of one line "
        "(as --debug does).",
        env_only=True,
    ),
)
_BY_NAME = {s.name: s for s in SETTINGS}
# The settings a workspace's citewise.toml may hold (the fields of Settings).
WORKSPACE_SETTINGS = tuple(s for s in SETTINGS if not s.env_only)
# Where a value came from, as `citewise config` shows it.
FROM_ARGUMENT, FROM_ENVIRONMENT, FROM_FILE, FROM_DEFAULT = (
    "argument",
    "environment",
    CONFIG_FILE,
    "default",
)
PRECEDENCE = (
    "Precedence: command-line flag or Python argument > CITEWISE_* environment variable "
    f"(or a .env file) > {CONFIG_FILE} in the workspace > default."
)


@dataclass(frozen=True)
class Settings:
    embedder: str
    chunk_tokens: int
    chunk_overlap: int
    provider: str
    model: str
    base_url: str
    api_key_env: str
    api_key_file: str
    context_window: int
    answer_tokens: int
    top_k: int
    fusion: str
    dense_weight: float
    min_relevance: float
    ann_threshold: int
    sparse_threshold: int
    temperature: float
    answer_check: str
    query_rewrite: str
    system_messages: str
    mode: str
    agent_steps: int
    agent_tokens: int
    sources_in_text: str
    max_upload_mb: int
    max_document_mb: int
    max_request_kb: int
    store: str
    ledger_url: str
    redis_url: str
    rate_limit_outage: str
    response_cache: str
    response_cache_ttl: int
    response_cache_entries: int
    cors_origins: str
    redact: str
    redact_entities: str
    redact_block: str
    redact_phone_region: str
    redact_ner_model: str

    @classmethod
    def load(cls, workspace: Path | None = None, **overrides: Any) -> Settings:
        file_values = read_config_file(workspace / CONFIG_FILE) if workspace else {}
        return cls.resolve(file_values, overrides)[0]

    @classmethod
    def resolve(
        cls, file_values: Mapping[str, Any], overrides: Mapping[str, Any]
    ) -> tuple[Settings, dict[str, str]]:
        """The settings from explicit arguments, the environment, a parsed
        ``citewise.toml`` and the defaults, first found wins; with where each value
        came from (``FROM_ARGUMENT``, ``FROM_ENVIRONMENT``, ``FROM_FILE``, ``FROM_DEFAULT``)."""
        refuse_unknown(overrides, "Settings")
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for setting in WORKSPACE_SETTINGS:
            candidates = (
                (FROM_ARGUMENT, overrides.get(setting.name)),
                (FROM_ENVIRONMENT, _from_env(setting)),
                (FROM_FILE, file_values.get(setting.name)),
            )
            source, raw = next(
                ((s, v) for s, v in candidates if v is not None and v != ""),
                (FROM_DEFAULT, None),
            )
            origin = env_var(setting.name) if source == FROM_ENVIRONMENT else source
            values[setting.name] = setting.default if raw is None else coerce(setting, raw, origin)
            sources[setting.name] = source
        settings = cls(**values)
        settings.validate()
        return settings, sources

    def validate(self) -> None:
        if self.fusion not in ("adaptive", "convex", "rrf"):
            raise ConfigError(f"fusion must be 'adaptive', 'convex' or 'rrf', not {self.fusion!r}")
        if not 0.0 <= self.dense_weight <= 1.0:
            raise ConfigError(f"dense_weight must lie in 0..1, not {self.dense_weight}")
        if self.chunk_overlap >= self.chunk_tokens:
            raise ConfigError("chunk_overlap must be smaller than chunk_tokens")
        if self.query_rewrite not in ("auto", "model", "keywords"):
            raise ConfigError(
                f"query_rewrite must be auto, model or keywords, not {self.query_rewrite!r}"
            )
        if self.system_messages not in ("instructions", "refuse"):
            raise ConfigError(
                f"system_messages must be instructions or refuse, not {self.system_messages!r}"
            )
        if self.sources_in_text not in ("off", "footnotes"):
            raise ConfigError(
                f"sources_in_text must be off or footnotes, not {self.sources_in_text!r}"
            )
        if self.answer_check not in ("auto", "strict", "light", "off", "quote"):
            raise ConfigError(
                f"answer_check must be auto, strict, light, off or quote, not {self.answer_check!r}"
            )
        if self.redact not in ("auto", "on", "off"):
            raise ConfigError(f"redact must be auto, on or off, not {self.redact!r}")
        from .redaction import kind_list  # an unknown kind fails here, naming the known ones

        kind_list(self.redact_entities), kind_list(self.redact_block)
        if self.mode not in ("single", "agent"):
            raise ConfigError(f"mode must be single or agent, not {self.mode!r}")
        if self.response_cache not in ("off", "exact"):
            raise ConfigError(f"response_cache must be off or exact, not {self.response_cache!r}")
        if self.response_cache_ttl <= 0 or self.response_cache_entries <= 0:
            raise ConfigError("response_cache_ttl and response_cache_entries must be positive")
        if self.agent_steps < 2:
            raise ConfigError(
                f"agent_steps must be at least 2 (a search, then the answer), not {self.agent_steps}"
            )
        if self.agent_tokens <= 0:
            raise ConfigError(f"agent_tokens must be positive, not {self.agent_tokens}")
        if self.store:
            check_database_url(self.store, "store", ("postgresql", "postgres"))
        if self.ledger_url:
            check_database_url(self.ledger_url, "ledger_url", ("postgresql", "postgres"))
        if self.redis_url:
            check_database_url(self.redis_url, "redis_url", ("redis", "rediss", "unix"))
        if self.base_url:
            check_service_url(self.base_url, "base_url")
        if self.rate_limit_outage not in ("closed", "open"):
            raise ConfigError(
                f"rate_limit_outage must be closed or open, not {self.rate_limit_outage!r}"
            )
        if self.answer_tokens >= self.context_window:
            raise ConfigError("answer_tokens must be smaller than context_window")

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def check_database_url(url: str, setting: str, schemes: tuple[str, ...]) -> None:
    """A database URL without a password (nor any other credential, anywhere in it):
    secrets stay out of the workspace's config and of everything citewise prints."""
    from urllib.parse import urlsplit

    from .secrets import POSTGRES_SECRETS, REDIS_SECRETS, check_no_secrets

    check_no_secrets(url, setting, POSTGRES_SECRETS if "postgresql" in schemes else REDIS_SECRETS)
    try:
        scheme = urlsplit(url).scheme
    except ValueError:
        scheme = ""
    if scheme not in schemes:
        raise ConfigError(f"{setting} must be a {schemes[0]}:// URL")


def check_service_url(url: str, setting: str) -> None:
    """An API server's URL (``base_url``) without a credential: keys come from
    ``api_key_env`` or ``api_key_file``."""
    from .secrets import API_SECRETS, check_no_secrets

    check_no_secrets(url, setting, API_SECRETS)


def env_var(name: str) -> str:
    """The environment variable of setting ``name``: ``CITEWISE_<NAME>``."""
    return f"CITEWISE_{name.upper()}"


def _from_env(setting: Setting) -> str | None:
    """The one place citewise reads a ``CITEWISE_*`` variable; empty counts as unset."""
    return os.environ.get(env_var(setting.name)) or None


_Value = TypeVar("_Value", str, int, float, bool)


def setting_from_env(name: str, kind: type[_Value]) -> _Value:
    """An environment-only setting (``env_only`` in :data:`SETTINGS`): its
    ``CITEWISE_<NAME>`` variable as ``kind``, else its default. Read when needed, never
    at import, so a test or a server started later sees the value of the moment."""
    setting = _BY_NAME[name]
    if not setting.env_only or type(setting.default) is not kind:
        raise TypeError(f"{name!r} is not an environment-only {kind.__name__} setting")
    raw = _from_env(setting)
    value = setting.default if raw is None else coerce(setting, raw, env_var(name))
    assert isinstance(value, kind)
    return cast(_Value, value)


def env_only_values() -> dict[str, tuple[Any, str]]:
    """Each environment-only setting's value and where it came from (``FROM_ENVIRONMENT``
    or ``FROM_DEFAULT``), for ``citewise config``."""
    values: dict[str, tuple[Any, str]] = {}
    for setting in SETTINGS:
        if setting.env_only:
            raw = _from_env(setting)
            values[setting.name] = (
                (setting.default, FROM_DEFAULT)
                if raw is None
                else (coerce(setting, raw, env_var(setting.name)), FROM_ENVIRONMENT)
            )
    return values


_TRUE, _FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off"})


def coerce(setting: Setting, raw: Any, origin: str = "") -> Any:
    """``raw`` (an argument, a TOML value or an environment string) as the type of the
    setting's default; ``origin`` names where it came from in the error."""
    kind = type(setting.default)
    where = f"{origin}: " if origin else ""
    if kind is bool and isinstance(raw, str):
        if raw.strip().lower() in _TRUE | _FALSE:
            return raw.strip().lower() in _TRUE
        raise ConfigError(f"{where}setting {setting.name!r} wants true or false, got {raw!r}")
    try:
        return kind(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{where}setting {setting.name!r} wants a {kind.__name__}, got {raw!r}"
        ) from exc


def read_config_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    refuse_unknown(data.keys() - {"assistants", "models", "targets"}, str(path))
    return data


def refuse_unknown(names: Collection[str], where: str) -> None:
    """Names that are no workspace setting, refused: a typo, or an environment-only
    setting that only ``CITEWISE_<NAME>`` sets."""
    workspace = {s.name for s in WORKSPACE_SETTINGS}
    env_only = sorted(env_var(n) for n in names if n in _BY_NAME and n not in workspace)
    if env_only:
        raise ConfigError(f"{where}: {', '.join(env_only)} can only be set in the environment")
    unknown = sorted(n for n in names if n not in _BY_NAME)
    if unknown:
        raise ConfigError(
            f"{where}: unknown setting(s) {', '.join(unknown)}; see `citewise config` for the list"
        )


@dataclass(frozen=True)
class Assistant:
    """What a server model name selects: a set of collections and a chat model."""

    name: str
    collections: tuple[str, ...] = ()  # empty: every collection the caller may read
    overrides: tuple[tuple[str, Any], ...] = ()  # settings such as provider, model, top_k

    def settings(self, base: Settings) -> Settings:
        values = base.as_dict() | dict(self.overrides)
        settings = Settings(**values)
        settings.validate()
        return settings


DEFAULT_ASSISTANT = "citewise"
# Settings an assistant's table may not override: they belong to something all share.
WORKSPACE_WIDE = frozenset({"response_cache_ttl", "response_cache_entries"})


def read_assistants(workspace: Path, data: Mapping[str, Any] | None = None) -> dict[str, Assistant]:
    """``[assistants.NAME]`` tables of ``citewise.toml`` (``data``: the file as
    :attr:`Workspace.config` parsed it when it opened; else read now), plus the default
    ``citewise``."""
    path = workspace / CONFIG_FILE
    tables = (read_config_file(path) if data is None else data).get("assistants", {})
    assistants = {DEFAULT_ASSISTANT: Assistant(DEFAULT_ASSISTANT)}
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [assistants.{name}] must be a table")
        collections = table.get("collections", [])
        if not isinstance(collections, list) or not all(isinstance(c, str) for c in collections):
            raise ConfigError(f"{path}: assistants.{name}.collections must be a list of names")
        overrides = []
        for key, raw in table.items():
            if key == "collections":
                continue
            if key not in _BY_NAME or _BY_NAME[key].env_only:
                raise ConfigError(f"{path}: assistants.{name} has unknown setting {key!r}")
            if key in WORKSPACE_WIDE:
                raise ConfigError(
                    f"{path}: assistants.{name}.{key} is the workspace's (one cache for every "
                    "assistant): set it at the top of the file"
                )
            overrides.append((key, coerce(_BY_NAME[key], raw)))
        assistants[name] = Assistant(name, tuple(collections), tuple(overrides))
    return assistants


@dataclass(frozen=True)
class ModelAlias:
    """``[models.NAME]``: a name that a ``model`` setting may use for a chain of targets."""

    name: str
    chain: tuple[str, ...]  # "provider:model", tried in order
    continue_after_first_token: bool = False
    fallback_on_caller_errors: bool = False
    # The circuit breaker of each target: open after this many transient failures in a
    # minute, probe again after the cool-down (seconds).
    breaker_failures: int = 5
    breaker_cooldown: float = 30.0


# ``[targets."provider:model"]``: per-target connection, limits and price (USD per
# million tokens).
TARGET_OPTIONS: dict[str, type] = {
    "base_url": str,
    "api_key_env": str,
    "api_key_file": str,
    "context_window": int,
    "connect_timeout": float,
    "first_token_timeout": float,
    "first_token_per_1k_prompt": float,
    "gap_timeout": float,
    "total_timeout": float,
    "queue_timeout": float,
    "max_retries": int,
    "redact": bool,
    "input_price": float,
    "output_price": float,
    "cached_input_price": float,
    "cache_write_input_price": float,
}


def read_models(
    workspace: Path | None, data: Mapping[str, Any] | None = None
) -> tuple[dict[str, ModelAlias], dict[str, dict[str, Any]]]:
    """The ``[models]`` aliases and ``[targets]`` options of ``citewise.toml`` (``data``:
    the file as :attr:`Workspace.config` parsed it when it opened; else read now)."""
    path = workspace / CONFIG_FILE if workspace is not None else Path(CONFIG_FILE)
    if data is None:
        data = read_config_file(path) if workspace is not None else {}
    aliases = {}
    for name, table in data.get("models", {}).items():
        chain = table.get("chain") if isinstance(table, dict) else None
        if (
            not isinstance(chain, list)
            or not chain
            or not all(isinstance(t, str) and ":" in t for t in chain)
        ):
            raise ConfigError(
                f'{path}: models.{name}.chain must list targets like "openai:gpt-4o-mini"'
            )
        options = {k: v for k, v in table.items() if k != "chain"}
        known = {f.name for f in fields(ModelAlias)} - {"name", "chain"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"{path}: models.{name} has unknown option(s) {', '.join(unknown)}")
        try:
            aliases[name] = ModelAlias(name, tuple(chain), **options)
        except TypeError as exc:
            raise ConfigError(f"{path}: models.{name}: {exc}") from exc
    targets: dict[str, dict[str, Any]] = {}
    for spec, table in data.get("targets", {}).items():
        if not isinstance(table, dict):
            raise ConfigError(f'{path}: [targets."{spec}"] must be a table')
        options = {}
        for key, raw in table.items():
            if key not in TARGET_OPTIONS:
                allowed = ", ".join(TARGET_OPTIONS)
                raise ConfigError(f"{path}: targets.{spec} has unknown option {key!r} ({allowed})")
            if TARGET_OPTIONS[key] is bool and not isinstance(raw, bool):
                raise ConfigError(f"{path}: targets.{spec}.{key} must be true or false")
            try:
                options[key] = TARGET_OPTIONS[key](raw)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{path}: targets.{spec}.{key} must be a number") from exc
            if key == "base_url":
                check_service_url(options[key], f"{path}: targets.{spec}.base_url")
        targets[spec] = options
    return aliases, targets


def set_config_value(path: Path, name: str, value: str) -> None:
    """Set one top-level string setting in a ``citewise.toml``, keeping every other line
    (and its comments) as it is."""
    line = f"{name} = {json.dumps(value)}"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    pattern = re.compile(rf"^\s*{re.escape(name)}\s*=")
    for i, existing in enumerate(lines):
        if pattern.match(existing):
            lines[i] = line
            break
    else:
        first_table = next(
            (i for i, x in enumerate(lines) if x.lstrip().startswith("[")), len(lines)
        )
        lines.insert(first_table, line)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def config_template() -> str:
    """The commented ``citewise.toml`` that ``citewise init`` writes."""
    lines = [
        "# citewise workspace settings. Uncomment to override the default;",
        "# a CITEWISE_<NAME> environment variable overrides this file.",
        "",
    ]
    for setting in WORKSPACE_SETTINGS:
        lines.append(f"# {setting.help}")
        lines.append(f"# {setting.name} = {_toml_literal(setting.default)}")
        lines.append("")
    return "\n".join(lines)


def _toml_literal(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)
