"""Export an agent to one JSON document and import it as a new agent.

Format `mnemo-agent/1`: {"format": "mnemo-agent/1", "state": <AgentState as JSON>, "recall": [<Message>...],
"archival": [<Passage>...]}. Vectors are not exported: the importer re-embeds and re-indexes
everything. Recall holds what the index has (messages committed moments before the export may not
be indexed yet).

Shared blocks are exported with their id and current value. An import re-links a shared block (the
new agent is attached to it) when it exists in the importing tenant, and otherwise copies it: the
new agent gets its own block with the exported value (another tenant never reaches the original).
Archival passages are deduplicated on import like any insert.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from google.protobuf.json_format import MessageToDict, ParseDict, ParseError

from mnemo.common import ids
from mnemo.common.errors import InvalidArgument, NotFound
from mnemo.common.tool_specs import check_rules, check_tools
from mnemo.memory.agents import Agents, public
from mnemo.memory.memories import Memories, to_passage
from mnemo.memory.recall import to_message
from mnemo.memory.search.base import Page
from mnemo.memory.steps import ROLES, close_open_calls, fill_message
from mnemo.memory.store import check_ref
from mnemo.v1 import common_pb2, memory_pb2

FORMAT = "mnemo-agent/1"
CHUNK_BYTES = 64 * 1024
PAGE = 100
MAX_IMPORT_BYTES = 512 << 20
IMPORT_BATCH = 256


def _json(msg: Any) -> str:
    return json.dumps(MessageToDict(msg, preserving_proto_field_name=True), ensure_ascii=False)


async def _array_items(fetch: Callable[[int], Awaitable[Page[Any]]],
                       convert: Callable[[Any], Any]) -> AsyncIterator[str]:
    """The items of a JSON array (comma-separated, without brackets): every hit of the pages
    `fetch(offset)` returns, newest first, converted to its proto message."""
    first = True
    offset = 0
    while True:
        page = await fetch(offset)
        for hit in page.hits:
            yield ("" if first else ", ") + _json(convert(hit.doc))
            first = False
        offset += len(page.hits)
        if not page.hits or offset >= page.total:
            break


def _check_shape(doc: dict[str, Any]) -> None:
    """InvalidArgument unless "state" is an object and "recall" and "archival" arrays of objects (ParseDict
    would read a string as an object of unknown fields: a passage per character, each empty)."""
    if not isinstance(doc.get("state") or {}, dict):
        raise InvalidArgument('malformed export: "state" must be an object')
    for name in ("recall", "archival"):
        items = doc.get(name) or []
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise InvalidArgument(f'malformed export: "{name}" must be an array of objects')


class Transfer:
    def __init__(self, agents: Agents, memories: Memories) -> None:
        self.agents = agents
        self.memories = memories

    async def export(self, ref: common_pb2.AgentRef) -> AsyncIterator[memory_pb2.DataChunk]:
        """The agent as one JSON document, streamed in chunks of ~64 KiB."""
        state = public(await self.agents.store.get(ref.tenant_id, ref.agent_id))
        await self.agents.resolve_shared(state)
        backend = self.memories.backend
        buf = [f'{{"format": "{FORMAT}", "state": {_json(state)}, "recall": [']
        size = len(buf[0])

        async def parts() -> AsyncIterator[str]:
            async for part in _array_items(lambda offset: backend.search_messages(
                    ref.tenant_id, ref.agent_id, offset=offset, limit=PAGE), to_message):
                yield part
            yield '], "archival": ['
            async for part in _array_items(lambda offset: backend.search_passages(
                    ref.tenant_id, ref.agent_id, offset=offset, limit=PAGE), to_passage):
                yield part
            yield "]}\n"

        async for part in parts():
            buf.append(part)
            size += len(part)
            if size >= CHUNK_BYTES:
                yield memory_pb2.DataChunk(data="".join(buf).encode("utf-8"))
                buf, size = [], 0
        if buf:
            yield memory_pb2.DataChunk(data="".join(buf).encode("utf-8"))

    async def _shared_blocks(self, state: common_pb2.AgentState) -> None:
        """Re-link the exported shared blocks that exist in the importing tenant, copy the others."""
        for b in state.blocks:
            del b.shared_with[:]
            if not b.shared_id:
                continue
            rec = None
            if self.agents.shared is not None and ids.is_token(b.shared_id):
                try:
                    rec = await self.agents.shared.get(state.config.tenant_id, b.shared_id)
                except NotFound:
                    rec = None
            if rec is not None and rec.label == b.label:
                b.value, b.limit = "", rec.limit
            else:
                b.shared_id = ""

    async def import_(self, chunks: AsyncIterator[memory_pb2.ImportChunk]) -> common_pb2.AgentState:
        """A new agent in the caller's tenant with the exported state, recall and archival."""
        tenant_id = ""
        total = 0
        with tempfile.SpooledTemporaryFile(max_size=8 << 20) as spool:
            async for chunk in chunks:
                if not tenant_id:
                    tenant_id = chunk.tenant_id
                total += len(chunk.data)
                if total > MAX_IMPORT_BYTES:
                    raise InvalidArgument(f"import larger than {MAX_IMPORT_BYTES} bytes")
                spool.write(chunk.data)
            check_ref(tenant_id)
            spool.seek(0)
            try:
                doc = json.load(spool)
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested too deep
                raise InvalidArgument(f"not a JSON document: {exc}") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            found = doc.get("format") if isinstance(doc, dict) else None
            raise InvalidArgument(f"not a {FORMAT} export (format: {found!r})")
        _check_shape(doc)
        try:
            state = ParseDict(doc.get("state") or {}, common_pb2.AgentState(), ignore_unknown_fields=True)
            recall = [ParseDict(m, common_pb2.Message(), ignore_unknown_fields=True) for m in doc.get("recall") or []]
            archival = [ParseDict(p, common_pb2.Passage(), ignore_unknown_fields=True)
                        for p in doc.get("archival") or []]
        except (ParseError, TypeError, AttributeError) as exc:
            raise InvalidArgument(f"malformed export: {exc}") from None

        now = ids.now_iso()
        for i, m in enumerate(recall):
            if m.role not in ROLES:
                raise InvalidArgument(f"malformed export: recall message with role {m.role!r}")
            fill_message(m, now)
            self.agents.commitlog.check_size(m, f"recall message {i}")
        state.config.id = ids.new_id("agent")
        state.config.tenant_id = tenant_id
        state.config.created_at = now
        state.revision = 0
        state.last_step_id = ""
        state.turn.Clear()
        recall.extend(close_open_calls(state, "not answered: the agent was exported while waiting for it"))
        del state.pending_events[:]
        del state.commit_outbox[:]
        check_tools(state.config.tools)
        check_rules(state.config.tool_rules)
        state.recall_count = len(recall)
        state.archival_count = len(archival)
        state.consolidation.Clear()
        await self._shared_blocks(state)
        created = await self.agents.store.create(state)
        if self.agents.shared is not None and any(b.shared_id for b in created.blocks):
            await self.agents.shared.relink(created)

        for i in range(0, len(recall), IMPORT_BATCH):
            await self.agents.commitlog.publish(tenant_id, created.config.id, recall[i:i + IMPORT_BATCH])
        for i in range(0, len(archival), IMPORT_BATCH):
            chosen = [p for p in archival[i:i + IMPORT_BATCH] if p.text.strip()]
            batch = [memory_pb2.PassageInput(id=p.id, text=p.text, tags=p.tags, source_id=p.source_id,
                                             position=p.position, metadata=p.metadata) for p in chosen]
            if batch:
                await self.memories.insert_passages(created, batch, [p.created_at for p in chosen])
        return public(created)
