"""Shared state of the REST routes and their auth dependencies (Bearer key -> tenant; admin key)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from nats.js import JetStreamContext
from opentelemetry import trace

from mnemo.common.config import Settings
from mnemo.gateway.core import Core
from mnemo.gateway.errors import ApiError
from mnemo.gateway.health import HealthChecker
from mnemo.gateway.memory_ops import MemoryOps
from mnemo.gateway.models import ModelLister
from mnemo.gateway.options import GatewayOptions
from mnemo.gateway.ratelimit import RateLimiter
from mnemo.gateway.tenants import Principal, TenantStore
from mnemo.gateway.tools import ToolOps
from mnemo.gateway.turns import TurnSubmitter

bearer = HTTPBearer(auto_error=False, description="an API key (mk-...) or, for /v1/admin, the admin key")


@dataclass
class GatewayContext:
    """Everything a request handler needs."""

    settings: Settings
    options: GatewayOptions
    core: Core
    turns: TurnSubmitter
    tenants: TenantStore
    limiter: RateLimiter
    health: HealthChecker
    js: JetStreamContext
    tools: ToolOps
    models: ModelLister | None = None   # None: no llm-proxy configured (GET /v1/models is 503)
    ops: MemoryOps = field(init=False)   # shared blocks, bulk deletes, consolidation requests

    def __post_init__(self) -> None:
        self.ops = MemoryOps(self.core, self.js)


def context_of(request: Request) -> GatewayContext:
    """The GatewayContext of the app serving `request`."""
    return request.app.state.gateway


async def gateway(request: Request) -> GatewayContext:
    # async on purpose: FastAPI runs a plain-def dependency in its thread pool on every request.
    return request.app.state.gateway


async def authenticate(ctx: GatewayContext, authorization: str | None) -> Principal:
    """The principal of an `Authorization: Bearer <key>` value, rate limited; ApiError otherwise."""
    if not authorization:
        raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>'",
                       headers={"WWW-Authenticate": "Bearer"})
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(401, "malformed Authorization header: expected 'Bearer <key>'",
                       headers={"WWW-Authenticate": "Bearer"})
    try:
        principal = await ctx.tenants.resolve(key.strip())
    except Exception as exc:  # the KV is unreachable: not the client's fault
        raise ApiError(503, f"cannot check the API key right now ({exc.__class__.__name__})") from exc
    if principal is None:
        raise ApiError(401, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    wait = ctx.limiter.acquire(principal.tenant_id, principal.limits)
    if wait > 0:
        raise ApiError(429, "rate limit exceeded for this tenant",
                       headers={"Retry-After": RateLimiter.retry_after_header(wait)})
    trace.get_current_span().set_attribute("mnemo.tenant_id", principal.tenant_id)
    return principal


async def require_tenant(request: Request,
                         creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Principal:
    header = f"{creds.scheme} {creds.credentials}" if creds else request.headers.get("authorization")
    return await authenticate(context_of(request), header)


def check_admin(ctx: GatewayContext, key: str | None) -> None:
    admin = ctx.settings.admin_key
    if not key:
        raise ApiError(401, "missing admin key", headers={"WWW-Authenticate": "Bearer"})
    if not admin or not hmac.compare_digest(key.encode(), admin.encode()):
        raise ApiError(403, "admin key required")


async def require_admin(request: Request,
                        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
    check_admin(context_of(request), creds.credentials if creds else None)


Tenant = Annotated[Principal, Depends(require_tenant)]
Ctx = Annotated[GatewayContext, Depends(gateway)]
