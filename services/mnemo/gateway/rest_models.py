"""REST: the models agents can use (GET /v1/models)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from mnemo.gateway.convert import to_json
from mnemo.gateway.deps import Ctx, GatewayContext, Tenant
from mnemo.gateway.errors import ApiError

router = APIRouter(prefix="/v1/models", tags=["models"])


async def list_models_json(ctx: GatewayContext) -> dict[str, Any]:
    """{"models": [{"name", "provider", "context_window", "max_output_tokens", ...}], "default_model",
    "default_embedding_model"}."""
    if ctx.models is None:
        raise ApiError(503, "no llm-proxy is configured")
    return to_json(await ctx.models.list())


@router.get("", summary="List the models served by the llm-proxy, and the defaults")
async def list_models(who: Tenant, ctx: Ctx) -> dict[str, Any]:
    return await list_models_json(ctx)
