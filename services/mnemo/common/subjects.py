"""NATS subjects, JetStream streams and KV buckets (docs/architecture.md). One place for every name."""

from __future__ import annotations

TURNS_STREAM = "TURNS"
EVENTS_STREAM = "EVENTS"
MESSAGES_STREAM = "MESSAGES"  # commit log of every message: recall memory is indexed from it
USAGE_STREAM = "USAGE"
CONSOLIDATION_STREAM = "CONSOLIDATION"  # requests to consolidate an agent's memory (work queue)

KV_AGENTS = "mnemo_agents"
KV_LEASES = "mnemo_leases"
KV_TENANTS = "mnemo_tenants"
KV_TEMPLATES = "mnemo_templates"
KV_CHECKPOINTS = "mnemo_checkpoints"
KV_IDEMPOTENCY = "mnemo_idempotency"  # gateway: first acceptance of keyed turns (TTL = EVENTS retention)
KV_MCP_SERVERS = "mnemo_mcp_servers"  # MCP servers registered by tenants
KV_BLOCKS = "mnemo_blocks"  # shared core-memory blocks, `<tenant>.<block>`
KV_PASSAGE_CLAIMS = "mnemo_passage_claims"  # archival dedup: who stores a text, `<tenant>.<agent>.<hash>`

ORCHESTRATOR_CONSUMER = "orchestrator"
RECALL_INDEXER_CONSUMER = "recall-indexer"
CONSOLIDATOR_CONSUMER = "consolidator"


def turns_subject(tenant: str, agent: str) -> str:
    return f"mnemo.turns.{tenant}.{agent}"


def resume_subject(tenant: str, agent: str) -> str:
    """Resolutions of a paused turn's calls (results, approvals, timeouts): in TURNS, but apart from
    the agent's new turns, so that they never wait behind a turn that waits for them."""
    return f"mnemo.turns.{tenant}.{agent}.resume"


def events_subject(tenant: str, agent: str) -> str:
    return f"mnemo.events.{tenant}.{agent}"


def messages_subject(tenant: str, agent: str) -> str:
    return f"mnemo.messages.{tenant}.{agent}"


def consolidation_subject(tenant: str, agent: str) -> str:
    return f"mnemo.consolidate.{tenant}.{agent}"


def block_key(tenant: str, block: str) -> str:
    return f"{tenant}.{block}"


def usage_subject(tenant: str, agent: str) -> str:
    return f"mnemo.usage.{tenant}.{agent or '_'}"


def agent_key(tenant: str, agent: str) -> str:
    return f"{tenant}.{agent}"
