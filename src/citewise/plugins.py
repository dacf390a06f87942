"""One registration path: built-ins by import path, third parties by entry point.

Each kind of plug-in is a :class:`PluginGroup` typed by its contract: the Protocol that
what a name registers (a class, usually) satisfies - ``ChatModelFactory`` for providers,
``EmbedderFactory`` for embedder backends, ``ConnectorFactory`` for connectors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class PluginGroup(Generic[T]):
    """One kind of plug-in; ``T`` is its contract."""

    group: str  # the entry-point group third parties register under
    builtins: Mapping[str, str]  # name -> "module:attribute"
    kind: str  # what one is called in messages: provider, source, ...


def load_plugin(plugins: PluginGroup[T], name: str) -> T:
    """What is registered as ``name``: a built-in ``module:attribute`` or an entry point
    in the group."""
    target = plugins.builtins.get(name)
    if target is not None:
        module_name, _, attribute = target.partition(":")
        loaded = getattr(import_module(module_name), attribute)
    else:
        registered = {ep.name: ep for ep in entry_points(group=plugins.group)}
        if name not in registered:
            known = ", ".join(sorted({*plugins.builtins, *registered}))
            raise ConfigError(f"unknown {plugins.kind} {name!r}; known {plugins.kind}s: {known}")
        loaded = registered[name].load()
    # Imports are untyped (Any): what a name registers is trusted to satisfy the group's
    # contract, as registering it promises.
    factory: T = loaded
    return factory
