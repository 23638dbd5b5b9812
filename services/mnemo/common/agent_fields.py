"""The UpdateAgent contract between the gateway and the memory service: which AgentConfig fields a
user may change (the names allowed in `UpdateAgentRequest.update_mask`)."""

from __future__ import annotations

UPDATABLE: frozenset[str] = frozenset(
    {"name", "model", "context_window", "preset", "summarizer_model", "limits", "metadata", "consolidation"})
