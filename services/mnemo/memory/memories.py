"""Recall search / import and archival insert / search / delete / counts (backend + embeddings)."""

from __future__ import annotations

from mnemo.common import ids
from mnemo.common.config import Settings
from mnemo.common.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from mnemo.memory.agents import Agents, paginate
from mnemo.memory.archival import ArchivalWriter, Inserted, to_passage
from mnemo.memory.dedup import ClaimBook
from mnemo.memory.llm_client import LLMClient
from mnemo.memory.recall import parse_range, to_message
from mnemo.memory.search.base import DimensionMismatch, SearchBackend
from mnemo.memory.steps import ROLES, fill_message
from mnemo.v1 import common_pb2, memory_pb2

__all__ = ["Memories", "to_passage"]

MAX_IMPORT = 10_000         # messages per ImportRecall call
MAX_PASSAGES = 1_000        # passages per InsertArchival call


class Memories:
    """Recall and archival memory of agents, over a search backend."""

    def __init__(self, agents: Agents, backend: SearchBackend | None, llm: LLMClient,
                 settings: Settings | None = None, claims: ClaimBook | None = None) -> None:
        self.agents = agents
        self._backend = backend
        self.llm = llm
        self._writer = None if backend is None else ArchivalWriter(settings or agents.settings, backend, claims,
                                                                   self._embed)

    @property
    def backend(self) -> SearchBackend:
        if self._backend is None:
            raise Unavailable("no search backend is configured (mnemo.memory.search.create_backend missing)")
        return self._backend

    @property
    def writer(self) -> ArchivalWriter:
        if self._writer is None:
            raise Unavailable("no search backend is configured (mnemo.memory.search.create_backend missing)")
        return self._writer

    async def _embed(self, state: common_pb2.AgentState, texts: list[str]) -> list[list[float]]:
        return await self.llm.embed(texts, model=state.config.embedding_model,
                                    expected_dim=state.config.embedding_dim,
                                    tenant_id=state.config.tenant_id, agent_id=state.config.id)

    # ---- recall ----

    async def search_recall(self, req: memory_pb2.SearchRecallRequest) -> memory_pb2.SearchRecallResponse:
        state = await self.agents.store.get(req.ref.tenant_id, req.ref.agent_id)
        page, size = paginate(req.page, req.page_size, 10)
        start, end = parse_range(req.start, req.end)
        if req.role and req.role not in ROLES:
            raise InvalidArgument(f"invalid role {req.role!r}: one of {', '.join(ROLES)}")
        query = req.query.strip()
        vector = (await self._embed(state, [query]))[0] if query else None
        try:
            found = await self.backend.search_messages(
                req.ref.tenant_id, req.ref.agent_id, query=query, vector=vector, start=start, end=end,
                role=req.role or None, offset=(page - 1) * size, limit=size)
        except DimensionMismatch as exc:
            raise FailedPrecondition(f"embedding dimension mismatch: {exc}") from None
        return memory_pb2.SearchRecallResponse(
            hits=[memory_pb2.RecallHit(message=to_message(h.doc), score=h.score) for h in found.hits],
            total=found.total, page=page, page_size=size)

    async def import_recall(self, req: memory_pb2.ImportRecallRequest) -> memory_pb2.ImportRecallResponse:
        """Bulk import through the commit log, so it is indexed like committed messages."""
        await self.agents.store.get(req.ref.tenant_id, req.ref.agent_id)
        if len(req.messages) > MAX_IMPORT:
            raise InvalidArgument(f"{len(req.messages)} messages in one import; the maximum is {MAX_IMPORT}")
        now = ids.now_iso()
        messages: list[common_pb2.Message] = []
        for i, m in enumerate(req.messages):
            if not m.text and not m.tool_calls:
                raise InvalidArgument(f"message {i} has no text")
            msg = common_pb2.Message()
            msg.CopyFrom(m)
            if msg.role not in ROLES:
                raise InvalidArgument(f"message {i}: invalid role {msg.role!r}: one of {', '.join(ROLES)}")
            fill_message(msg, now)
            self.agents.commitlog.check_size(msg, f"message {i}")
            messages.append(msg)
        await self.agents.commitlog.publish(req.ref.tenant_id, req.ref.agent_id, messages)

        def bump(state: common_pb2.AgentState) -> None:
            state.recall_count += len(messages)

        await self.agents.modify(req.ref.tenant_id, req.ref.agent_id, bump)
        return memory_pb2.ImportRecallResponse(imported=len(messages))

    # ---- archival ----

    async def insert_archival(self, req: memory_pb2.InsertArchivalRequest) -> memory_pb2.InsertArchivalResponse:
        state = await self.agents.store.get(req.ref.tenant_id, req.ref.agent_id)
        if not req.passages:
            raise InvalidArgument("no passages to insert")
        if len(req.passages) > MAX_PASSAGES:
            raise InvalidArgument(f"{len(req.passages)} passages in one call; the maximum is {MAX_PASSAGES}")
        return (await self.insert_passages(state, list(req.passages), dedup=req.dedup)).response()

    async def insert_passages(self, state: common_pb2.AgentState, passages: list[memory_pb2.PassageInput],
                              created_at: list[str] | None = None, dedup: str = "") -> Inserted:
        """Validate, deduplicate, embed and insert passages (searchable on return); `created_at` keeps
        imported times; `dedup` switches deduplication on or off for this call ("": the setting)."""
        return await self.writer.insert(state, passages, created_at, dedup)

    async def bulk_delete_archival(self, req: memory_pb2.BulkDeleteArchivalRequest,
                                   ) -> memory_pb2.BulkDeleteArchivalResponse:
        state = await self.agents.store.get(req.ref.tenant_id, req.ref.agent_id)
        return memory_pb2.BulkDeleteArchivalResponse(deleted=await self.writer.delete_where(state, req))

    async def find_duplicates(self, req: memory_pb2.FindArchivalDuplicatesRequest,
                              ) -> memory_pb2.FindArchivalDuplicatesResponse:
        state = await self.agents.store.get(req.ref.tenant_id, req.ref.agent_id)
        return await self.writer.duplicate_groups(state, req.min_similarity, req.limit)

    async def search_archival(self, req: memory_pb2.SearchArchivalRequest) -> memory_pb2.SearchArchivalResponse:
        state = await self.agents.store.get(req.ref.tenant_id, req.ref.agent_id)
        page, size = paginate(req.page, req.page_size, 10)
        query = req.query.strip()
        vector = (await self._embed(state, [query]))[0] if query else None
        try:
            found = await self.backend.search_passages(
                req.ref.tenant_id, req.ref.agent_id, query=query, vector=vector, tags=list(req.tags) or None,
                offset=(page - 1) * size, limit=size)
        except DimensionMismatch as exc:
            raise FailedPrecondition(f"embedding dimension mismatch: {exc}") from None
        return memory_pb2.SearchArchivalResponse(
            hits=[memory_pb2.ArchivalHit(passage=to_passage(h.doc), score=h.score) for h in found.hits],
            total=found.total, page=page, page_size=size)

    async def delete_archival(self, req: memory_pb2.DeleteArchivalRequest) -> None:
        await self.agents.store.get(req.ref.tenant_id, req.ref.agent_id)
        if not req.passage_id:
            raise InvalidArgument("passage_id is required")
        if not await self.backend.delete_passage(req.ref.tenant_id, req.ref.agent_id, req.passage_id):
            raise NotFound(f"passage {req.passage_id} not found")

    async def counts(self, tenant_id: str, agent_id: str) -> memory_pb2.MemoryCounts:
        state = await self.agents.store.get(tenant_id, agent_id)
        return memory_pb2.MemoryCounts(
            recall=await self.backend.count_messages(tenant_id, agent_id),
            archival=await self.backend.count_passages(tenant_id, agent_id),
            queue=len(state.queue))

