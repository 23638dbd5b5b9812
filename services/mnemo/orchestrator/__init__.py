"""The orchestrator: the MemGPT agent loop (DESIGN.md §3, §4)."""
