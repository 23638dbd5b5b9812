"""Health checks of the stack's processes, for `mnemo up`'s supervisor: each is an async callable
that answers whether its process serves (a TCP port open, the gRPC health service, an HTTP 200)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx

from mnemo.common.grpcutil import check_health

HealthCheck = Callable[[], Awaitable[bool]]


def tcp_health(host: str, port: int) -> HealthCheck:
    async def check() -> bool:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
        except (TimeoutError, OSError):
            return False
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
        return True

    return check


def grpc_health(target: str) -> HealthCheck:
    async def check() -> bool:
        try:
            return await check_health(target, timeout=1.0)
        except Exception:
            return False

    return check


def all_healthy(*checks: HealthCheck) -> HealthCheck:
    """Healthy when every check is."""
    async def check() -> bool:
        for one in checks:
            if not await one():
                return False
        return True
    return check


def http_health(url: str) -> HealthCheck:
    async def check() -> bool:
        try:
            async with httpx.AsyncClient(timeout=2.0) as client:
                resp = await client.get(url)
        except httpx.HTTPError:
            return False
        return resp.status_code == 200

    return check
