"""Secrets never in URLs or output (issue "production resilience", item 2).

Every URL or DSN setting refuses a credential anywhere in it, with a message that names
the setting and where the secret belongs, never the secret; every printer masks them;
``citewise init`` writes nothing unless the whole workspace could be made."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from citewise import ConfigError
from citewise.config import CONFIG_FILE, Settings, read_models
from citewise.secrets import RedactingFilter, redact_url, secrets_in
from citewise.storage import redacted
from citewise.workspace import Workspace, init_workspace
from conftest import CITEWISE

# (setting, value, the secret it carries). Each secret is unique, so a leak is found.
SECRET_URLS = [
    ("store", "postgresql://u:Sekrit01@db.example/app", "Sekrit01"),
    ("store", "postgres://u:Sekrit02@db.example:5432/app", "Sekrit02"),
    ("store", "POSTGRESQL://U:Sekrit03@DB.EXAMPLE/APP", "Sekrit03"),
    ("store", "postgresql://u:x%40Sekrit04@db.example/app", "Sekrit04"),  # encoded "@"
    ("store", "postgresql://u:x@Sekrit05@db.example/app", "Sekrit05"),  # raw "@"
    ("store", "postgresql://u:x/Sekrit06@db.example/app", "Sekrit06"),  # raw "/"
    ("store", "postgresql://u@db.example/app?password=Sekrit07", "Sekrit07"),
    ("store", "postgresql://u@db.example/app?sslmode=require&sslpassword=Sekrit08", "Sekrit08"),
    ("store", "postgresql://u@db.example/app?PassWord=Sekrit09", "Sekrit09"),
    ("store", "postgresql://u@db.example/app?SSLPASSWORD=Sekrit10", "Sekrit10"),
    ("store", "postgresql://u@db.example/app?pass%77ord=Sekrit11", "Sekrit11"),
    ("store", "postgresql://u@db.example/app?%70%61%73%73%77%6F%72%64=Sekrit12", "Sekrit12"),
    ("store", "postgresql://u@db.example/app?ssl%70assword=Sekrit13", "Sekrit13"),
    ("store", "postgresql:///app?host=/run/postgresql&password=Sekrit14", "Sekrit14"),
    ("store", "host=db.example dbname=app user=u password=Sekrit15", "Sekrit15"),
    ("store", "host=db.example password = 'Sekrit16 with spaces'", "Sekrit16"),
    ("store", "dbname=app sslpassword=Sekrit17 host=db.example", "Sekrit17"),
    ("ledger_url", "postgresql://u:Sekrit18@ledger.example/usage", "Sekrit18"),
    ("ledger_url", "postgresql://u@ledger.example/usage?password=Sekrit19", "Sekrit19"),
    ("redis_url", "redis://:Sekrit20@cache.example:6379/0", "Sekrit20"),
    ("redis_url", "redis://default:Sekrit21@cache.example:6379/0", "Sekrit21"),
    ("redis_url", "rediss://u:Sekrit22@cache.example:6380/0", "Sekrit22"),
    ("redis_url", "redis://cache.example:6379/0?password=Sekrit23", "Sekrit23"),
    ("redis_url", "unix:///run/redis.sock?db=0&password=Sekrit24", "Sekrit24"),
    ("redis_url", "unix://:Sekrit25@/run/redis.sock?db=0", "Sekrit25"),
    ("redis_url", "rediss://cache.example/0?ssl_password=Sekrit26", "Sekrit26"),
    ("redis_url", "Redis://cache.example/0?Password=Sekrit27", "Sekrit27"),
    ("base_url", "https://user:Sekrit28@llm.example/v1", "Sekrit28"),
    ("base_url", "https://llm.example/v1?api_key=Sekrit29", "Sekrit29"),
    ("base_url", "https://llm.example/v1?key=Sekrit30", "Sekrit30"),
]
WHERE_INSTEAD = {
    "store": "PGPASSWORD",
    "ledger_url": "PGPASSWORD",
    "redis_url": "REDIS_PASSWORD",
    "base_url": "api_key_env",
}
CLEAN_URLS = [
    ("store", "postgresql://u@db.example:5432/app?sslmode=require&passfile=/etc/pgpass"),
    ("store", "postgresql://db.example/app?sslkey=/etc/client.key&sslcert=/etc/client.crt"),
    ("store", "postgres:///app?host=/run/postgresql"),
    ("store", "postgresql://postgres:@/postgres?host=/tmp/pg"),  # "user:@": no password
    ("ledger_url", "postgresql://citewise@ledger.example/usage"),
    ("redis_url", "redis://cache.example:6379/0"),
    ("redis_url", "rediss://default@cache.example:6380/0?ssl_cert_reqs=required"),
    ("redis_url", "unix:///run/redis.sock?db=0"),
    ("base_url", "http://127.0.0.1:11434/v1"),
    ("base_url", "https://example.openai.azure.com/openai?api-version=2024-06-01"),
]
IDS = [f"{setting}-{secret}" for setting, _, secret in SECRET_URLS]


def citewise(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CITEWISE_")}
    return subprocess.run(
        [CITEWISE, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**base, **(env or {})},
    )


# -- refused when settings load ---------------------------------------------------------


@pytest.mark.parametrize(("setting", "url", "secret"), SECRET_URLS, ids=IDS)
def test_each_secret_bearing_url_is_refused_without_showing_the_secret(
    setting: str, url: str, secret: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.load(None, **{setting: url})
    message = str(caught.value)
    assert secret not in message
    assert message.startswith(f"{setting} holds a secret")
    assert WHERE_INSTEAD[setting] in message
    assert secrets_in(url)


@pytest.mark.parametrize(("setting", "url"), CLEAN_URLS)
def test_urls_without_secrets_load_and_print_unchanged(setting: str, url: str) -> None:
    assert getattr(Settings.load(None, **{setting: url}), setting) == url
    assert redact_url(url) == url
    assert secrets_in(url) == []


def test_refused_from_the_environment_and_from_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITEWISE_STORE", "postgresql://u@db/app?password=FromEnv1")
    with pytest.raises(ConfigError, match="store holds a secret") as caught:
        Settings.load(tmp_path)
    assert "FromEnv1" not in str(caught.value)
    monkeypatch.delenv("CITEWISE_STORE")
    (tmp_path / CONFIG_FILE).write_text('redis_url = "redis://:FromFile1@cache/0"\n')
    with pytest.raises(ConfigError, match="redis_url holds a secret") as caught:
        Settings.load(tmp_path)
    assert "FromFile1" not in str(caught.value)


def test_assistant_and_target_overrides_are_checked_too(tmp_path: Path) -> None:
    from citewise.config import read_assistants

    (tmp_path / CONFIG_FILE).write_text(
        '[assistants.support]\nbase_url = "https://u:Assist1@llm.example/v1"\n'
        '[targets."openai:gpt-4o-mini"]\nbase_url = "https://llm.example/v1?api_key=Target1"\n'
    )
    assistant = read_assistants(tmp_path)["support"]
    with pytest.raises(ConfigError, match="base_url holds a secret") as caught:
        assistant.settings(Settings.load(None))
    assert "Assist1" not in str(caught.value)
    with pytest.raises(ConfigError, match="base_url holds a secret") as caught:
        read_models(tmp_path)
    assert "Target1" not in str(caught.value)


def test_migrate_refuses_a_target_with_a_password(tmp_path: Path) -> None:
    with (
        Workspace.open(tmp_path / "ws") as workspace,
        pytest.raises(ConfigError, match="the target store holds a secret") as caught,
    ):
        workspace.migrate("postgresql://u@db/app?sslpassword=Migrate1")
    assert "Migrate1" not in str(caught.value)
    assert "store" not in (tmp_path / "ws" / CONFIG_FILE).read_text().replace("# store", "")


# -- masked wherever printed -------------------------------------------------------------


@pytest.mark.parametrize(("setting", "url", "secret"), SECRET_URLS, ids=IDS)
def test_redact_url_masks_each_secret_in_free_text(setting: str, url: str, secret: str) -> None:
    for text in (
        url,
        f"cannot connect to the store {url}: connection refused",
        f"unknown store {url!r}; use one of: postgresql, sqlite",
        f'{{"{setting}": "{url}", "status": "down"}}',
        f"{url}\n{url} (again)",
    ):
        masked = redact_url(text)
        assert secret not in masked, text
        assert "***" in masked
    assert secret not in redacted(url)


def test_redact_url_keeps_what_is_not_secret() -> None:
    text = (
        "store postgresql://u:pw@db.example:5432/app?sslmode=require&password=pw2&connect_timeout=5 "
        "is down; ledger host=ledger.example user=citewise password='a b' dbname=usage; "
        "key=support-bot tokens=42 https://example.com/docs?page=2"
    )
    masked = redact_url(text)
    assert masked == (
        "store postgresql://u:***@db.example:5432/app?sslmode=require&password=***&connect_timeout=5 "
        "is down; ledger host=ledger.example user=citewise password=*** dbname=usage; "
        "key=support-bot tokens=42 https://example.com/docs?page=2"
    )
    assert redact_url("") == "" and redact_url("no url here") == "no url here"


def test_log_records_and_tracebacks_are_masked() -> None:
    record = logging.LogRecord(
        "citewise.store",
        logging.WARNING,
        __file__,
        1,
        "the store %s cannot be reached: %s",
        ("postgresql://u:LogPw1@db/app", "refused"),
        None,
    )
    try:
        raise RuntimeError("connect to redis://:LogPw2@cache/0 failed")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    assert RedactingFilter().filter(record)
    text = logging.Formatter().format(record)
    assert "LogPw1" not in text and "LogPw2" not in text
    assert "postgresql://u:***@db/app" in text and "RuntimeError" in text


# -- init is all or nothing -------------------------------------------------------------


def test_init_workspace_leaves_nothing_when_the_store_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import citewise.workspace as workspace_module

    def broken(url: str, directory: Path) -> None:
        (directory / "citewise.db").write_bytes(b"half made")
        raise ConfigError("the store needs the pgvector extension")

    monkeypatch.setattr(workspace_module, "open_storage", broken)
    nested = tmp_path / "a" / "b" / "ws"
    with pytest.raises(ConfigError, match="pgvector"):
        init_workspace(nested, store="postgresql://u@db.example/app")
    assert not (tmp_path / "a").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="pgvector"):
        init_workspace(existing, store="postgresql://u@db.example/app")
    assert sorted(p.name for p in existing.iterdir()) == ["notes.txt"]


def test_init_workspace_refuses_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="store holds a secret"):
        init_workspace(tmp_path / "ws", store="postgresql://u:InitPw1@db.example/app")
    assert not (tmp_path / "ws").exists()
    init_workspace(tmp_path / "ws")  # a good workspace: a later refused init leaves it be
    before = (tmp_path / "ws" / CONFIG_FILE).read_text()
    with pytest.raises(ConfigError):
        init_workspace(tmp_path / "ws", store="postgresql://u@db.example/app?password=InitPw2")
    assert (tmp_path / "ws" / CONFIG_FILE).read_text() == before


# -- the real CLI -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:CliPw1@127.0.0.1:1/db",
        "postgresql://u@127.0.0.1:1/db?sslmode=disable&Password=CliPw1",
        "host=127.0.0.1 port=1 dbname=db password=CliPw1",
    ],
)
def test_cli_init_refuses_a_secret_and_leaves_nothing(tmp_path: Path, url: str) -> None:
    ws = tmp_path / "ws"
    result = citewise("-w", str(ws), "init", "--store", url)
    assert result.returncode != 0
    assert "CliPw1" not in result.stdout + result.stderr
    assert "store holds a secret" in result.stderr and "PGPASSWORD" in result.stderr
    assert not ws.exists()


def test_cli_failed_init_leaves_nothing(tmp_path: Path) -> None:
    """A store that cannot be reached (a closed loopback port): no workspace is left
    behind, and the password from PGPASSWORD is never printed."""
    ws = tmp_path / "ws"
    result = citewise(
        "-w",
        str(ws),
        "init",
        "--store",
        "postgresql://u@127.0.0.1:1/db",
        env={"PGPASSWORD": "EnvPw1", "PGCONNECT_TIMEOUT": "3"},
    )
    assert result.returncode != 0, result.stdout
    assert "EnvPw1" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert not ws.exists()
    ws.mkdir()  # an existing (empty) directory stays, and stays empty
    again = citewise("-w", str(ws), "init", "--store", "postgresql://u@127.0.0.1:1/db")
    assert again.returncode != 0
    assert list(ws.iterdir()) == []


def test_cli_config_and_doctor_never_print_a_secret_from_env_or_file(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    for command in ("config", "doctor", "status"):
        result = citewise(
            "-w", str(ws), command, env={"CITEWISE_REDIS_URL": "redis://:EnvPw2@cache:6379/0"}
        )
        assert result.returncode != 0, command
        assert "EnvPw2" not in result.stdout + result.stderr, command
        assert "redis_url holds a secret" in result.stderr and "REDIS_PASSWORD" in result.stderr
        assert not ws.exists(), command
    flag = citewise("-w", str(ws), "doctor", "--base-url", "https://u:FlagPw1@llm.example/v1")
    assert flag.returncode != 0 and "base_url holds a secret" in flag.stderr
    assert "FlagPw1" not in flag.stdout + flag.stderr and not ws.exists()
    assert citewise("-w", str(ws), "init").returncode == 0
    config = ws / CONFIG_FILE
    config.write_text(
        config.read_text() + '\nstore = "postgresql://u@db.example/app?sslpassword=FilePw1"\n'
    )
    before = config.read_text()
    for command in ("config", "doctor"):
        result = citewise("-w", str(ws), command)
        assert result.returncode != 0, command
        assert "FilePw1" not in result.stdout + result.stderr, command
        assert "store holds a secret" in result.stderr
    assert config.read_text() == before


def test_cli_init_with_a_reachable_store_writes_it(tmp_path: Path, postgres: str) -> None:
    from conftest import new_database

    url = new_database(postgres)
    ws = tmp_path / "ws"
    result = citewise("-w", str(ws), "init", "--store", url)
    assert result.returncode == 0, result.stderr
    assert Settings.load(ws).store == url


def test_cli_config_shows_clean_urls(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    result = citewise(
        "-w", str(ws), "config", env={"CITEWISE_REDIS_URL": "redis://cache.example:6379/0"}
    )
    assert result.returncode == 0, result.stderr
    assert "redis://cache.example:6379/0" in result.stdout
