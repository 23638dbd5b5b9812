"""The orchestrator: the MemGPT agent loop (docs/architecture.md)."""
