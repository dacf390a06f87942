"""One registration path: built-ins by import path, third parties by entry point."""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points

from .errors import ConfigError


def load_plugin(group: str, builtins: dict[str, str], name: str, kind: str) -> type:
    """The class registered as ``name``: a built-in ``module:Class`` or an entry point in ``group``."""
    target = builtins.get(name)
    if target is not None:
        module_name, _, class_name = target.partition(":")
        return getattr(import_module(module_name), class_name)
    plugins = {ep.name: ep for ep in entry_points(group=group)}
    if name not in plugins:
        known = ", ".join(sorted({*builtins, *plugins}))
        raise ConfigError(f"unknown {kind} {name!r}; known {kind}s: {known}")
    return plugins[name].load()
