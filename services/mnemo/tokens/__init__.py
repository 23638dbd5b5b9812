"""Token counting shared by the llm-proxy and the orchestrator (so that neither imports the other).

`counting` has the chat-request formula, `encodings` the offline tokenizers, `registry` what is known
about each model (its tokenizer among the rest). A process counts as the llm-proxy does once it has
called `configure` with the same providers file and local model.
"""

from __future__ import annotations

from pathlib import Path

from mnemo.tokens import registry
from mnemo.tokens.counting import (
    REPLY_PRIMING,
    count_chat_tokens,
    count_message,
    count_text,
    count_tools,
    prepare,
    tokenizer_name,
)
from mnemo.tokens.encodings import (
    default_local_model_path,
    encoding,
    register_local_vocab,
    set_default_local_vocab,
)

__all__ = [
    "REPLY_PRIMING",
    "configure",
    "count_chat_tokens",
    "count_message",
    "count_text",
    "count_tools",
    "default_local_model_path",
    "encoding",
    "prepare",
    "register_local_vocab",
    "tokenizer_name",
]


def configure(providers_file: Path | None, local_model_path: str | None) -> None:
    """Count as an llm-proxy given these settings: the models its providers file lists, and local
    models with its GGUF vocabulary."""
    if providers_file:
        registry.register_file(providers_file)
    set_default_local_vocab(local_model_path)
