"""The check ``citewise doctor`` runs on each target of a chain, shared with the operator
console's "Test this target" (``POST /v1/admin/models/test``): the target is loaded and
asked directly — no fallback hides it failing — with a tiny prompt.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..config import Settings, read_models
from ..cpu import cpu_summary
from ..errors import CitewiseError
from .base import Message, complete
from .router import Target


def chain_targets(workspace: Any, settings: Settings | None = None) -> list[Target]:
    """Every target the configured model may call: an alias's whole chain, or the one
    provider:model the settings name (``settings``: the workspace's by default)."""
    from . import make_target

    settings = settings or workspace.settings
    aliases, options = read_models(workspace.path, workspace.config)
    alias = aliases.get(settings.model)
    specs = list(alias.chain) if alias else [f"{settings.provider}:{settings.model}"]
    return [make_target(spec, settings, options) for spec in specs]


def target_check(
    workspace: Any,
    target: Target,
    settings: Settings | None = None,
    note: Callable[[str], None] | None = None,
) -> str:
    """Load ``target`` and ask it to say OK; what answered, or a :class:`CitewiseError`
    naming why not. A local model generates in a child process first (``note`` hears
    how that went)."""
    if target.provider == "local":
        found = local_generation_check(target.model)
        if note is not None:
            note(found)
    router = workspace.chat_model(settings)
    try:
        model = router.model(target)
    except CitewiseError:
        raise
    except Exception as exc:  # a provider's own error on load: named, not a traceback
        raise CitewiseError(f"{target.spec} does not load: {exc}") from exc
    reply = complete(model, [Message("user", "Say OK.")], 4, 0.0, purpose="check")
    return f"{model.model_id} answers ({reply.strip()[:20]!r})"


def local_generation_check(model: str) -> str:
    """llama.cpp generates in a child process first, so a crash is reported, not suffered."""
    from .llama_probe import explain, llama_version, probe_until_it_works
    from .local import model_file

    path = model_file(model)  # the file the provider loads (the Q8_0 copy for the default)
    results = probe_until_it_works(path)
    working = results[-1]
    if not working.ok:
        raise CitewiseError(explain(path, results))
    repacking = "on" if working.use_extra_bufts else "off"
    note = " (it crashed with repacking on)" if len(results) > 1 else ""
    return (
        f"llama.cpp on {cpu_summary()}: generates {working.tokens_per_s:.0f} tokens/s in a "
        f"child process, weight repacking {repacking}{note}; llama-cpp-python {llama_version()}"
    )
