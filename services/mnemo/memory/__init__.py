"""The memory service: the only owner of agent state and memory (DESIGN.md §2, §5)."""
