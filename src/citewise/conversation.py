"""Follow-up questions → standalone questions, so retrieval sees what the user means.

"What port does it use?" retrieves nothing useful on its own. A capable model
rewrites it from the conversation; a tiny one cannot (SmolLM2-135M answers the
question instead of rewriting it), so there the earlier question is carried
along as context. A model rewrite that does not look like a question falls back
to the same.
"""

from __future__ import annotations

from collections.abc import Sequence

from .config import Settings
from .providers.base import ChatModel, Message, complete
from .providers.local import DEFAULT_LOCAL_MODEL

REWRITE_PROMPT = (
    "Rewrite the user's last question so it can be understood without the conversation. "
    "Replace pronouns with what they refer to. Reply with the rewritten question only."
)
MAX_HISTORY_TURNS = 6


def standalone_question(
    history: Sequence[Message],
    question: str,
    model: ChatModel | None,
    settings: Settings,
    caller: str = "",
    assistant: str = "",
) -> str:
    """The question to search for and answer, given the conversation before it."""
    earlier = [m.content.strip() for m in history if m.role == "user" and m.content.strip()]
    if not earlier:
        return question
    if model is not None and _use_model(settings):
        rewritten = _model_rewrite(history, question, model, caller, assistant)
        if rewritten:
            return rewritten
    return f'Follow-up to "{earlier[-1]}": {question}'


def _use_model(settings: Settings) -> bool:
    if settings.query_rewrite != "auto":
        return settings.query_rewrite == "model"
    return not (settings.provider == "local" and settings.model in ("", DEFAULT_LOCAL_MODEL))


def _model_rewrite(
    history: Sequence[Message], question: str, model: ChatModel, caller: str, assistant: str
) -> str | None:
    turns = [m for m in history if m.role in ("user", "assistant")][-MAX_HISTORY_TURNS:]
    conversation = "\n".join(f"{m.role}: {m.content.strip()}" for m in turns)
    prompt = f"Conversation:\n{conversation}\n\nLast question: {question}\n\nRewritten question:"
    messages = [Message("system", REWRITE_PROMPT), Message("user", prompt)]
    text = complete(
        model, messages, 96, 0.0, purpose="rewrite", caller=caller, assistant=assistant
    ).strip()
    return text if _looks_like_a_question(text, question) else None


def _looks_like_a_question(text: str, question: str) -> bool:
    return bool(text) and "\n" not in text and len(text) <= 3 * len(question) + 200
