"""/v1/blocks: shared core-memory blocks of the tenant (attach them with `client.agents.attach_block`)."""

from __future__ import annotations

from typing import Any

from mnemo.client.models import BlockAgent, SharedBlock
from mnemo.client.resources import _clean, _Resource, many, one


class Blocks(_Resource):
    """Shared blocks: an edit through any attached agent (or here) is seen by all of them."""

    def create(self, label: str, value: str = "", limit: int | None = None) -> Any:
        return self._c._request("POST", "/v1/blocks", json=_clean({"label": label, "value": value, "limit": limit}),
                                cast=one(SharedBlock))

    def list(self, *, page: int | None = None, page_size: int | None = None) -> Any:
        return self._c._request("GET", "/v1/blocks", params=_clean({"page": page, "page_size": page_size}),
                                cast=many(SharedBlock, "blocks"))

    def get(self, block_id: str) -> Any:
        return self._c._request("GET", f"/v1/blocks/{block_id}", cast=one(SharedBlock))

    def update(self, block_id: str, *, value: str | None = None, limit: int | None = None) -> Any:
        return self._c._request("PATCH", f"/v1/blocks/{block_id}", json=_clean({"value": value, "limit": limit}),
                                cast=one(SharedBlock))

    def delete(self, block_id: str) -> Any:
        """Delete a block no agent is attached to (409 otherwise)."""
        return self._c._request("DELETE", f"/v1/blocks/{block_id}", cast=lambda _: None)

    def agents(self, block_id: str) -> Any:
        """The agents the block is attached to."""
        return self._c._request("GET", f"/v1/blocks/{block_id}/agents", cast=many(BlockAgent, "agents"))
