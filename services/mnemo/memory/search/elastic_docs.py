"""The documents the Elasticsearch backend stores: index mappings, `_id`s, and `_source` <-> doc."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from mnemo.memory.search.base import PassageDoc, RecallDoc
from mnemo.memory.search.text import date_words

_COMMON = {
    "tenant_id": {"type": "keyword"},
    "agent_id": {"type": "keyword"},
    "doc_id": {"type": "keyword"},
    "text": {"type": "text", "analyzer": "standard"},
    "created_at": {"type": "date"},
}
RECALL_FIELDS = {
    **_COMMON,
    "role": {"type": "keyword"},
    "context": {"type": "text", "analyzer": "standard"},
    "auto_context": {"type": "boolean"},
    "dates": {"type": "text", "analyzer": "standard"},
    "turn_id": {"type": "keyword"},
    "extra": {"type": "object", "enabled": False},
}
ARCHIVAL_FIELDS = {
    **_COMMON,
    "tags": {"type": "keyword"},
    "source_id": {"type": "keyword"},
    "position": {"type": "integer"},
    "metadata": {"type": "object", "enabled": False},
    "expires_at": {"type": "date"},
}
META_FIELDS = {"tenant_id": {"type": "keyword"}, "agent_id": {"type": "keyword"},
               "kind": {"type": "keyword"}, "dim": {"type": "integer"}}


def iso(when: datetime) -> str:
    """`when` as stored (UTC ISO 8601; a naive time is taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat()


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def doc_key(tenant_id: str, agent_id: str, doc_id: str) -> str:
    """The Elasticsearch _id: unique per tenant and agent (ids are only unique within an agent)."""
    key = f"{tenant_id}/{agent_id}/{doc_id}"
    return key if len(key.encode()) <= 500 else hashlib.sha256(key.encode()).hexdigest()


def recall_source(d: RecallDoc, context: str) -> dict[str, Any]:
    """The `_source` of a message (without its vector); `context` is its own or the derived one."""
    return {"tenant_id": d.tenant_id, "agent_id": d.agent_id, "doc_id": d.id, "role": d.role,
            "text": d.text, "context": context, "auto_context": not d.context,
            "dates": date_words(d.created_at), "created_at": iso(d.created_at),
            "turn_id": d.turn_id, "extra": d.extra}


def passage_source(d: PassageDoc) -> dict[str, Any]:
    """The `_source` of a passage (without its vector)."""
    src = {"tenant_id": d.tenant_id, "agent_id": d.agent_id, "doc_id": d.id, "text": d.text,
           "created_at": iso(d.created_at), "tags": list(d.tags), "source_id": d.source_id,
           "position": d.position, "metadata": d.metadata}
    if d.expires_at is not None:
        src["expires_at"] = iso(d.expires_at)
    return src


def recall_doc(src: dict[str, Any]) -> RecallDoc:
    return RecallDoc(id=src["doc_id"], tenant_id=src["tenant_id"], agent_id=src["agent_id"],
                     role=src["role"], text=src["text"], created_at=parse_time(src["created_at"]),
                     turn_id=src.get("turn_id", ""), extra=src.get("extra") or {},
                     context="" if src.get("auto_context") else src.get("context", ""))


def passage_doc(src: dict[str, Any]) -> PassageDoc:
    return PassageDoc(id=src["doc_id"], tenant_id=src["tenant_id"], agent_id=src["agent_id"],
                      text=src["text"], created_at=parse_time(src["created_at"]), tags=src.get("tags") or [],
                      source_id=src.get("source_id", ""), position=int(src.get("position", 0)),
                      metadata=src.get("metadata") or {},
                      expires_at=parse_time(src["expires_at"]) if src.get("expires_at") else None)
