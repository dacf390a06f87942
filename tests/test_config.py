from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from citewise import ConfigError, Workspace
from citewise.config import (
    CONFIG_FILE,
    SETTINGS,
    WORKSPACE_SETTINGS,
    Settings,
    config_template,
    env_var,
    setting_from_env,
)

CITEWISE = str(Path(sys.executable).with_name("citewise"))


def test_precedence_argument_environment_file_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CITEWISE_TOP_K", raising=False)
    assert Settings.load(tmp_path).top_k == 5
    (tmp_path / CONFIG_FILE).write_text("top_k = 9\n")
    assert Settings.load(tmp_path).top_k == 9
    monkeypatch.setenv("CITEWISE_TOP_K", "7")  # the environment overrides the file
    assert Settings.load(tmp_path).top_k == 7
    assert Settings.load(tmp_path, top_k=11).top_k == 11  # an argument beats both
    monkeypatch.setenv("CITEWISE_TOP_K", "")  # empty counts as unset
    assert Settings.load(tmp_path).top_k == 9
    _, sources = Settings.resolve({"top_k": 9, "fusion": "rrf"}, {"model": "m"})
    assert (sources["top_k"], sources["fusion"], sources["model"]) == (
        CONFIG_FILE,
        CONFIG_FILE,
        "argument",
    )
    assert sources["embedder"] == "default"


def test_invalid_settings_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / CONFIG_FILE).write_text("top_kk = 3\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        Settings.load(tmp_path)
    (tmp_path / CONFIG_FILE).write_text("top_k = \n")
    with pytest.raises(ConfigError, match=CONFIG_FILE):
        Settings.load(tmp_path)
    monkeypatch.setenv("CITEWISE_CONTEXT_WINDOW", "big")
    with pytest.raises(ConfigError, match="context_window"):
        Settings.load(None)
    monkeypatch.delenv("CITEWISE_CONTEXT_WINDOW")
    with pytest.raises(ConfigError, match="fusion must be 'adaptive', 'convex' or 'rrf'"):
        Settings.load(None, fusion="avg")


def test_template_documents_every_setting() -> None:
    template = config_template()
    for setting in WORKSPACE_SETTINGS:
        assert f"# {setting.name} = " in template
        assert setting.help in template
    for setting in SETTINGS:
        if setting.env_only:  # no key of the file: the template does not offer it
            assert f"# {setting.name} = " not in template


def test_docs_document_every_setting_and_command() -> None:
    # The settings page is generated from SETTINGS (`make docs`); the commands page is prose.
    docs = Path(__file__).parents[1] / "docs"
    settings = (docs / "reference" / "settings.md").read_text(encoding="utf-8")
    for setting in SETTINGS:
        assert f"`{setting.name}`" in settings, f"{setting.name}: run `make docs`"
    commands = (docs / "guide" / "commands.md").read_text(encoding="utf-8")
    from citewise.cli import cli

    for name in cli.commands:
        assert f"citewise {name}" in commands, name


# -- the environment overrides the workspace file; an argument beats both -----------------


def config_rows(*args: str, cwd: Path, env: dict[str, str]) -> dict[str, dict[str, object]]:
    """`citewise config --json`, run as a user runs it: {setting: its row}."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CITEWISE_")}
    result = subprocess.run(
        [CITEWISE, *args, "config", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**clean, **env},
    )
    assert result.returncode == 0, result.stderr
    return {row["setting"]: row for row in json.loads(result.stdout)}


def test_the_environment_overrides_the_workspace_file_and_an_argument_beats_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for setting in SETTINGS:
        monkeypatch.delenv(env_var(setting.name), raising=False)
    ws = tmp_path / "ws"
    Workspace.open(ws).close()  # a real workspace: its database and commented citewise.toml
    config = ws / CONFIG_FILE
    config.write_text(config.read_text() + 'top_k = 9\nfusion = "rrf"\n')
    with Workspace.open(ws) as opened:
        assert (opened.settings.top_k, opened.sources["top_k"]) == (9, CONFIG_FILE)
    monkeypatch.setenv("CITEWISE_TOP_K", "7")
    with Workspace.open(ws) as opened:
        assert (opened.settings.top_k, opened.sources["top_k"]) == (7, "environment")
        assert (opened.settings.fusion, opened.sources["fusion"]) == ("rrf", CONFIG_FILE)
        assert (opened.settings.model, opened.sources["model"]) == ("", "default")
    with Workspace.open(ws, top_k=11) as opened:
        assert (opened.settings.top_k, opened.sources["top_k"]) == (11, "argument")

    def shown(rows: dict[str, dict[str, object]], name: str) -> tuple[object, object]:
        return rows[name]["value"], rows[name]["source"]

    rows = config_rows("-w", str(ws), cwd=tmp_path, env={"CITEWISE_TOP_K": "7"})
    assert shown(rows, "top_k") == (7, "environment")
    assert shown(rows, "fusion") == ("rrf", CONFIG_FILE)
    assert shown(rows, "embedder") == ("all-MiniLM-L6-v2", "default")
    assert shown(config_rows("-w", str(ws), cwd=tmp_path, env={}), "top_k") == (9, CONFIG_FILE)
    # A .env file in the current directory is environment too, and never replaces a
    # variable already set.
    (tmp_path / ".env").write_text("CITEWISE_TOP_K=3\nCITEWISE_WHISPER_BEAM=2\n")
    rows = config_rows("-w", str(ws), cwd=tmp_path, env={})
    assert shown(rows, "top_k") == (3, "environment")
    assert shown(rows, "whisper_beam") == (2, "environment")
    assert rows["whisper_beam"]["env_only"] is True
    rows = config_rows("-w", str(ws), cwd=tmp_path, env={"CITEWISE_TOP_K": "7"})
    assert shown(rows, "top_k") == (7, "environment")
    # The --workspace flag, an argument, beats CITEWISE_WORKSPACE.
    other = tmp_path / "other"
    rows = config_rows(cwd=tmp_path, env={"CITEWISE_WORKSPACE": str(ws)})
    assert shown(rows, "workspace") == (str(ws), "environment")
    assert shown(rows, "fusion") == ("rrf", CONFIG_FILE)
    rows = config_rows("-w", str(other), cwd=tmp_path, env={"CITEWISE_WORKSPACE": str(ws)})
    assert shown(rows, "workspace") == (str(other), "argument")
    assert shown(rows, "fusion") == ("adaptive", "default")


def test_environment_only_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for setting in SETTINGS:
        assert setting.help and type(setting.default) in (str, int, float, bool), setting.name
    monkeypatch.delenv("CITEWISE_JOB_LEASE_SECONDS", raising=False)
    assert setting_from_env("job_lease_seconds", float) == 30.0
    monkeypatch.setenv("CITEWISE_JOB_LEASE_SECONDS", "3")  # read at the call, not at import
    assert setting_from_env("job_lease_seconds", float) == 3.0
    monkeypatch.setenv("CITEWISE_JOB_LEASE_SECONDS", "soon")
    with pytest.raises(ConfigError, match="CITEWISE_JOB_LEASE_SECONDS"):
        setting_from_env("job_lease_seconds", float)
    for raw, expected in (("1", True), ("true", True), ("0", False), ("off", False)):
        monkeypatch.setenv("CITEWISE_RAISE_ERRORS", raw)
        assert setting_from_env("raise_errors", bool) is expected
    with pytest.raises(TypeError):
        setting_from_env("top_k", int)  # a workspace setting: Settings reads it
    with pytest.raises(TypeError):
        setting_from_env("whisper_beam", str)
    # Never a key of citewise.toml nor a Settings argument.
    (tmp_path / CONFIG_FILE).write_text('cache_dir = "/elsewhere"\n')
    with pytest.raises(ConfigError, match="CITEWISE_CACHE_DIR can only be set in the environ"):
        Settings.load(tmp_path)
    with pytest.raises(ConfigError, match="CITEWISE_CACHE_DIR can only be set in the environ"):
        Settings.load(None, cache_dir="/elsewhere")
    with pytest.raises(ConfigError, match="unknown setting"):
        Settings.load(None, top_kk=3)
    # The table's defaults are the ones the code falls back to.
    from citewise.parsers import audio

    assert setting_from_env("whisper_beam", int) == audio.DEFAULT_BEAM
    monkeypatch.delenv("CITEWISE_WHISPER_MODEL", raising=False)
    assert audio.model_name() == audio.DEFAULT_MODEL


# -- every environment variable the code reads is a setting ------------------------------
# In the manner of datasette's test_docs.py: the names are found in the source, so a new
# os.environ.get("CITEWISE_X") without a SETTINGS row fails here, naming where it is.

SRC = Path(__file__).parents[1] / "src" / "citewise"

# Environment variables citewise's own code reads that are not settings, and why.
# Secrets never are: they stay out of citewise.toml and everything citewise prints.
NOT_SETTINGS = {
    "OPENAI_API_KEY": "secret: the OpenAI key when api_key_env and api_key_file name none "
    "(the openai provider and embedder, through resolve_api_key)",
    "ANTHROPIC_API_KEY": "secret: the Anthropic key, likewise (the anthropic provider)",
    "REDIS_PASSWORD": "secret: the Redis password, never part of redis_url (server/ratelimit.py)",
    "OPENAI_BASE_URL": "the openai SDK's standard variable: the embedder's server when no "
    "base_url is configured for it (embedders/openai.py)",
}
# Read by libraries on their own, out of this scan's sight, and not settings either:
# PGPASSWORD and PGPASSFILE (libpq: the store's and the ledger's password), OPENAI_BASE_URL
# (also the openai SDK's, when base_url is empty), HF_* (huggingface_hub: model downloads) and
# XDG_* (platformdirs: the default workspace and cache directories).

# Reads whose variable name is no literal, by (file, function): where the name comes from.
INDIRECT = {
    ("config.py", "_from_env"): "env_var(setting.name): a row of SETTINGS",
    ("providers/base.py", "resolve_api_key"): "the api_key_env setting's value, or the "
    "provider's default variable: a literal at each call, checked as a read",
    ("cli/serving.py", "mcp_command"): "--key-env NAME: the variable holding the API key "
    "`citewise mcp` serves as (a secret, so never a setting `citewise config` would show)",
}


@dataclass(frozen=True)
class Read:
    name: str | None  # the variable's name; None when it is no literal
    how: str  # environ (os.environ / getenv), envvar (click), setting_from_env, ...
    file: str  # relative to src/citewise
    line: int
    function: str  # the enclosing function; "" at module level, i.e. at import

    @property
    def variable(self) -> str | None:
        """The environment variable read: a setting's name maps through env_var()."""
        if self.name is None or self.how not in ("setting_from_env", "env_var"):
            return self.name
        return env_var(self.name)

    def __str__(self) -> str:
        return f"{self.file}:{self.line} ({self.how})"


def _is_environ(node: ast.AST) -> bool:
    if isinstance(node, ast.Attribute):
        return node.attr == "environ" and isinstance(node.value, ast.Name)
    return isinstance(node, ast.Name) and node.id == "environ"


class _Scan(ast.NodeVisitor):
    def __init__(self, file: str) -> None:
        self.file = file
        self.functions = [""]  # the enclosing function, innermost last; "": module level
        self.reads: list[Read] = []

    def _scope(self, node: ast.AST) -> None:
        self.functions.append(getattr(node, "name", "<lambda>"))
        self.generic_visit(node)
        self.functions.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _scope

    def _read(self, how: str, node: ast.expr, argument: ast.AST | None) -> None:
        literal = argument.value if isinstance(argument, ast.Constant) else None
        name = literal if isinstance(literal, str) else None
        self.reads.append(Read(name, how, self.file, node.lineno, self.functions[-1]))

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        first = node.args[0] if node.args else None
        if isinstance(func, ast.Attribute) and _is_environ(func.value) and called == "get":
            self._read("environ", node, first)
        elif called in ("getenv", "setting_from_env"):
            self._read("environ" if called == "getenv" else called, node, first)
        elif called == "env_var" and isinstance(first, ast.Constant):
            self._read("env_var", node, first)
        elif called == "resolve_api_key" and len(node.args) > 1:
            self._read("resolve_api_key", node, node.args[1])
        for keyword in node.keywords:
            if keyword.arg == "envvar":
                self._read("envvar", node, keyword.value)
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if _is_environ(node.value) and isinstance(node.ctx, ast.Load):
            self._read("environ", node, node.slice)
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        if any(isinstance(op, ast.In | ast.NotIn) for op in node.ops) and any(
            _is_environ(c) for c in node.comparators
        ):
            self._read("environ", node, node.left)
        self.generic_visit(node)


def _reads() -> list[Read]:
    reads: list[Read] = []
    for path in sorted(SRC.rglob("*.py")):
        scan = _Scan(path.relative_to(SRC).as_posix())
        scan.visit(ast.parse(path.read_text(encoding="utf-8")))
        reads += scan.reads
    return reads


READS = _reads()
SETTING_VARIABLES = {env_var(s.name): s for s in SETTINGS}


@pytest.mark.parametrize("variable", sorted({r.variable for r in READS if r.variable}))
def test_every_environment_variable_the_code_reads_is_a_setting(variable: str) -> None:
    where = ", ".join(str(r) for r in READS if r.variable == variable)
    assert variable in SETTING_VARIABLES or variable in NOT_SETTINGS, (
        f"{variable} is read ({where}) but is no row of SETTINGS in src/citewise/config.py: "
        "add one (env_only=True if it belongs to the process, not a workspace) and read it "
        "through Settings or setting_from_env; a secret or a standard variable goes on "
        "NOT_SETTINGS here, with the reason"
    )


def test_settings_are_read_through_one_function_and_when_needed() -> None:
    assert READS, "the scan found no environment reads at all"
    for read in READS:
        assert read.function, f"{read}: read at import; read it when it is needed"
        if read.name is None:
            if read.how != "env_var":
                assert (read.file, read.function) in INDIRECT, (
                    f"{read}: the variable's name is no literal"
                )
            continue
        if read.how in ("environ", "envvar"):
            # A CITEWISE_* variable is a setting: Settings or setting_from_env reads it.
            assert not read.name.startswith("CITEWISE_"), (
                f"{read}: {read.name} read directly; use setting_from_env"
            )
        if read.how == "setting_from_env":
            setting = SETTING_VARIABLES.get(env_var(read.name))
            assert setting is not None and setting.env_only, (
                f"{read}: {read.name} is no environment-only setting"
            )
        if read.how == "resolve_api_key":
            assert read.name in NOT_SETTINGS, f"{read}: {read.name} is not on NOT_SETTINGS"
    # The lists here stay true: every entry still read, every environment-only row used.
    variables = {r.variable for r in READS}
    assert set(NOT_SETTINGS) <= variables, set(NOT_SETTINGS) - variables
    assert set(INDIRECT) <= {(r.file, r.function) for r in READS if r.name is None}
    unread = [
        s.name
        for s in SETTINGS
        if s.env_only and not any(r.how == "setting_from_env" and r.name == s.name for r in READS)
    ]
    assert not unread, f"environment-only settings nothing reads: {unread}"
