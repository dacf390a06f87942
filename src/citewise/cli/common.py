from __future__ import annotations

import json
import sys
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from ..workspace import Workspace

# Piped output is for grep and scripts: never wrapped at rich's 80-column default.
console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
errors = Console(
    stderr=True, highlight=False, soft_wrap=True, width=None if sys.stderr.isatty() else 200
)

# Flags that override settings for one command (see `citewise config`).
MODEL_OPTIONS = (
    click.option("--provider", help="Chat provider: local, openai or anthropic."),
    click.option("--model", help="Chat model (a name, or a .gguf path for local)."),
    click.option("--base-url", help="Base URL of an OpenAI-compatible server."),
    click.option("--context-window", type=int, help="Tokens the model sees (prompt + answer)."),
)


def model_options(function: Any) -> Any:
    for option in reversed(MODEL_OPTIONS):
        function = option(function)
    return function


class Context:
    def __init__(self, workspace: str | None) -> None:
        self.workspace_dir = Path(workspace) if workspace else None
        self._workspace: Workspace | None = None

    def workspace(self, **overrides: Any) -> Workspace:
        if self._workspace is None:
            settings = {k: v for k, v in overrides.items() if v is not None}
            self._workspace = Workspace.open(self.workspace_dir, **settings)
        return self._workspace

    def close(self) -> None:
        if self._workspace is not None:
            self._workspace.close()


def to_json(value: Any) -> str:
    def default(obj: Any) -> Any:
        if is_dataclass(obj) and not isinstance(obj, type):
            return asdict(obj)
        if isinstance(obj, Path):
            return str(obj)
        raise TypeError(type(obj).__name__)

    return json.dumps(
        asdict(value) if is_dataclass(value) and not isinstance(value, type) else value,
        default=default,
        indent=2,
    )


def esc(value: object) -> str:
    """Any text that is not ours (document text, titles, paths, sources, errors, hints,
    names given on the command line) as it must go into a rich markup string: shown
    verbatim, never read as markup ("[/bold]" crashed, "[audio]" vanished)."""
    return escape(str(value))


def one_line(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
