"""REST: tenants and keys (admin), persona / human templates, health and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from mnemo.gateway.convert import to_json
from mnemo.gateway.deps import Ctx, Tenant, require_admin
from mnemo.gateway.errors import ApiError
from mnemo.gateway.ratelimit import TenantLimits
from mnemo.gateway.schemas import TemplateCreate, TemplateUpdate, TenantCreate, TenantLimitsBody
from mnemo.gateway.tenants import KeyNotFound, TenantNotFound

admin = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)])
health = APIRouter(tags=["health"])


@admin.post("/tenants", status_code=201, summary="Create a tenant")
async def create_tenant(body: TenantCreate, ctx: Ctx) -> dict[str, Any]:
    return await ctx.tenants.create_tenant(body.name)


@admin.get("/tenants/{tenant_id}", summary="A tenant, with the rate limits in force")
async def get_tenant(tenant_id: str, ctx: Ctx) -> dict[str, Any]:
    try:
        return ctx.tenants.describe(await ctx.tenants.get_tenant(tenant_id))
    except TenantNotFound:
        raise ApiError(404, f"tenant {tenant_id!r} not found") from None


@admin.put("/tenants/{tenant_id}/limits", summary="Set a tenant's rate limits (null: the defaults)")
async def set_tenant_limits(tenant_id: str, body: TenantLimitsBody, ctx: Ctx) -> dict[str, Any]:
    limits = None if body.rate_per_second is None else TenantLimits(body.rate_per_second, body.burst)
    try:
        return ctx.tenants.describe(await ctx.tenants.set_limits(tenant_id, limits))
    except TenantNotFound:
        raise ApiError(404, f"tenant {tenant_id!r} not found") from None


@admin.post("/tenants/{tenant_id}/keys", status_code=201, summary="Create an API key for a tenant")
async def create_key(tenant_id: str, ctx: Ctx) -> dict[str, Any]:
    try:
        key, record = await ctx.tenants.create_key(tenant_id)
    except TenantNotFound:
        raise ApiError(404, f"tenant {tenant_id!r} not found") from None
    return {"key": key, "id": record["id"], "tenant_id": tenant_id, "created_at": record["created_at"]}


@admin.delete("/keys/{key_id}", status_code=204, summary="Revoke an API key")
async def revoke_key(key_id: str, ctx: Ctx) -> Response:
    try:
        await ctx.tenants.revoke_key(key_id)
    except KeyNotFound:
        raise ApiError(404, f"key {key_id!r} not found") from None
    return Response(status_code=204)


def template_router(kind: str) -> APIRouter:
    """/v1/personas or /v1/humans: the tenant's templates of one kind."""
    router = APIRouter(prefix=f"/v1/{kind}s", tags=[f"{kind}s"])

    @router.get("", summary=f"List {kind}s", name=f"list_{kind}s")
    async def list_templates(who: Tenant, ctx: Ctx) -> dict[str, Any]:
        resp = await ctx.core.list_templates(who.tenant_id, kind)
        return {"templates": [to_json(t) for t in resp.templates]}

    @router.get("/{name}", summary=f"Get a {kind}", name=f"get_{kind}")
    async def get_template(name: str, who: Tenant, ctx: Ctx) -> dict[str, Any]:
        return to_json(await ctx.core.get_template(who.tenant_id, kind, name))

    @router.post("", status_code=201, summary=f"Create a {kind}", name=f"create_{kind}")
    async def create_template(body: TemplateCreate, who: Tenant, ctx: Ctx) -> dict[str, Any]:
        return to_json(await ctx.core.put_template(who.tenant_id, kind, body.name, body.text, True))

    @router.put("/{name}", summary=f"Create or replace a {kind}", name=f"update_{kind}")
    async def update_template(name: str, body: TemplateUpdate, who: Tenant, ctx: Ctx) -> dict[str, Any]:
        return to_json(await ctx.core.put_template(who.tenant_id, kind, name, body.text, False))

    @router.delete("/{name}", status_code=204, summary=f"Delete a {kind}", name=f"delete_{kind}")
    async def delete_template(name: str, who: Tenant, ctx: Ctx) -> Response:
        await ctx.core.delete_template(who.tenant_id, kind, name)
        return Response(status_code=204)

    return router


@health.get("/healthz", summary="200 when every service of the stack is ready")
async def healthz(ctx: Ctx) -> JSONResponse:
    status = await ctx.health.check()
    status = {"gateway": ctx.turns.hub.running, **status}
    failing = sorted(name for name, ok in status.items() if not ok)
    body: dict[str, Any] = {"status": "ok" if not failing else "unavailable", "services": status}
    if failing:
        body["failing"] = failing
    return JSONResponse(body, status_code=503 if failing else 200)


@health.get("/readyz", summary="200 when the gateway itself can serve")
async def readyz(request: Request, ctx: Ctx) -> JSONResponse:
    nc = request.app.state.nats
    ready = bool(nc is not None and nc.is_connected and ctx.turns.hub.running)
    return JSONResponse({"status": "ok" if ready else "unavailable"}, status_code=200 if ready else 503)

