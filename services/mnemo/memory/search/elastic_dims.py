"""The vector dimension of each agent's recall and archival documents, recorded in `<prefix>-meta`.

The first write carrying vectors claims the dimension (create-only, so concurrent writers agree);
later writes and queries with another dimension raise DimensionMismatch before reaching an index.
"""

from __future__ import annotations

from elasticsearch import AsyncElasticsearch, NotFoundError

from mnemo.memory.search.base import batch_dim, check_dim
from mnemo.memory.search.elastic_docs import doc_key

KINDS = ("recall", "archival")


class AgentDims:
    """Dimension records in the index `meta_index`, cached once known."""

    def __init__(self, es: AsyncElasticsearch, meta_index: str) -> None:
        self.es = es
        self.meta_index = meta_index
        self._dims: dict[tuple[str, str, str], int | None] = {}

    async def get(self, tenant_id: str, agent_id: str, kind: str) -> int | None:
        """The dimension of the agent's `kind` vectors; None before any."""
        key = (tenant_id, agent_id, kind)
        if self._dims.get(key):
            return self._dims[key]
        try:
            doc = await self.es.get(index=self.meta_index, id=doc_key(tenant_id, agent_id, kind))
            dim = int(doc["_source"]["dim"])
        except NotFoundError:
            dim = None
        self._dims[key] = dim
        return dim

    async def claim(self, tenant_id: str, agent_id: str, kind: str, dims: set[int]) -> int | None:
        """The dimension after writing vectors of `dims`; DimensionMismatch if they disagree with it."""
        dim = batch_dim(dims)
        current = await self.get(tenant_id, agent_id, kind)
        if dim is None:
            return current
        if current is None:
            try:
                await self.es.index(index=self.meta_index, id=doc_key(tenant_id, agent_id, kind),
                                    document={"tenant_id": tenant_id, "agent_id": agent_id, "kind": kind,
                                              "dim": dim}, op_type="create", refresh="wait_for")
                current = dim
            except Exception as exc:  # another writer claimed it first: compare with theirs
                if "version_conflict" not in str(exc):
                    raise
                self._dims.pop((tenant_id, agent_id, kind), None)
                current = await self.get(tenant_id, agent_id, kind)
            self._dims[(tenant_id, agent_id, kind)] = current
        check_dim(dim, current, kind)
        return current

    def forget(self, tenant_id: str, agent_id: str) -> None:
        """Drop the cached dimensions of a deleted agent."""
        for kind in KINDS:
            self._dims.pop((tenant_id, agent_id, kind), None)
