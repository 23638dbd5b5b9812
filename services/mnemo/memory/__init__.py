"""The memory service: the only owner of agent state and memory (docs/architecture.md)."""
