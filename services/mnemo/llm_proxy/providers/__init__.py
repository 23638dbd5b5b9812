"""Model providers: OpenAI-compatible endpoints (the `openai` SDK) and in-process llama.cpp."""

from mnemo.llm_proxy.providers.base import ChatCall, ChatResult, Provider

__all__ = ["ChatCall", "ChatResult", "Provider"]
