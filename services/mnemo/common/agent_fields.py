"""Agent settings shared by services: which AgentConfig fields a user may change (the names allowed
in `UpdateAgentRequest.update_mask`: gateway and memory), and the consolidation defaults memory and
the orchestrator both apply."""

from __future__ import annotations

UPDATABLE: frozenset[str] = frozenset(
    {"name", "model", "context_window", "preset", "summarizer_model", "limits", "metadata",
     "tools", "tool_rules", "tool_timeout_seconds", "consolidation"})
# "tools" replaces the agent's client-side tools; tools attached from MCP servers stay (EditAgentTools).

# ConsolidationConfig.after_turns 0: a consolidation after this many completed turns.
CONSOLIDATION_AFTER_TURNS = 20
