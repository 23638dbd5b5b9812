"""Mnemo: an open memory platform for LLM agents (MemGPT as event-driven services)."""

__version__ = "0.1.0"
