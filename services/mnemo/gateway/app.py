"""The FastAPI application: routers, error handlers, body limits, request spans and metrics."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from nats.errors import Error as NatsError
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mnemo.common import metrics, telemetry
from mnemo.common.errors import MnemoError
from mnemo.gateway import (
    rest_admin,
    rest_agents,
    rest_blocks,
    rest_console,
    rest_memory,
    rest_models,
    rest_openai,
    rest_tools,
)
from mnemo.gateway.deps import GatewayContext
from mnemo.gateway.errors import ApiError, BodyTooLarge
from mnemo.gateway.openapi_links import add_links

log = logging.getLogger(__name__)
tracer = trace.get_tracer("mnemo.gateway")

LARGE_BODY_SUFFIXES = ("/documents", "/v1/agents/import")


class BodyLimitMiddleware:
    """413 for bodies over the limit: by Content-Length up front, else while the body streams in."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            response = JSONResponse({"detail": f"request body is larger than {limit} bytes"}, status_code=413)
            await response(scope, receive, send)
            return
        received = 0
        exceeded = False

        async def limited() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge(limit)
            return message

        async def send_413_if_exceeded(message: Message) -> None:
            # Whatever a handler made of the interrupted body (FastAPI turns it into a 400),
            # the answer is 413.
            if exceeded and message["type"] == "http.response.start":
                body = json.dumps({"detail": f"request body is larger than {limit} bytes"}).encode()
                await send({"type": "http.response.start", "status": 413,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
            if exceeded and message["type"] == "http.response.body":
                return
            await send(message)

        await self.app(scope, limited, send_413_if_exceeded)


class TelemetryMiddleware:
    """A SERVER span per request (parent of everything the request causes) and HTTP_REQUESTS."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers") or []}
        status = 500
        started = time.perf_counter()
        with telemetry.span(f"{method} {scope['path']}", tracer="mnemo.gateway", parent=headers,
                            kind=SpanKind.SERVER,
                            attributes={"http.request.method": method, "url.path": scope["path"]}) as s:

            async def send_status(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await self.app(scope, receive, send_status)
            finally:
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                s.update_name(f"{method} {route}")
                s.set_attribute("http.route", route)
                s.set_attribute("http.response.status_code", status)
                agent_id = (scope.get("path_params") or {}).get("agent_id")
                if agent_id:
                    s.set_attribute("mnemo.agent_id", agent_id)
                if status >= 500:
                    s.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
                metrics.HTTP_REQUESTS.add(1, {"route": route, "method": method, "status": str(status)})
                metrics.HTTP_LATENCY.record(time.perf_counter() - started, {"route": route, "method": method})


def _error_body(exc: ApiError) -> dict[str, Any]:
    return {"detail": exc.detail}


def create_app(ctx: GatewayContext, nats: Any = None) -> FastAPI:
    """The REST API of one gateway process."""
    # telemetry: TelemetryMiddleware makes the request span; FastAPI's own would be a second root.
    app = FastAPI(title="Mnemo", version="0.1.0", telemetry={"tracing": False},
                  description="Stateful LLM agents with unbounded memory (MemGPT as services). "
                              "Every /v1 route needs `Authorization: Bearer <key>`.")
    app.state.gateway = ctx
    app.state.nats = nats

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(_error_body(exc), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        # FastAPI's own 422, as ASCII JSON: the rejected input it echoes may hold a lone surrogate
        # (JSON can escape it, UTF-8 cannot encode it), which would make the 422 a 500.
        body = json.dumps({"detail": jsonable_encoder(exc.errors())})
        return Response(body, status_code=422, media_type="application/json")

    @app.exception_handler(MnemoError)
    async def domain_error(request: Request, exc: MnemoError) -> JSONResponse:
        return await api_error(request, ApiError.from_error(exc))

    @app.exception_handler(NatsError)
    async def nats_error(request: Request, exc: NatsError) -> JSONResponse:
        log.warning("NATS error on %s %s: %s", request.method, request.url.path, exc.__class__.__name__)
        return JSONResponse({"detail": f"the message bus is unavailable ({exc.__class__.__name__})"},
                            status_code=503)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    app.include_router(rest_admin.health)
    app.include_router(rest_admin.admin)
    app.include_router(rest_tools.admin)
    # Routes are matched in order: the agents' (a sent message is most requests) come first. Memory's
    # POST /v1/agents/import after them is still found: no agents route takes that method and path.
    app.include_router(rest_agents.router)
    app.include_router(rest_memory.router)
    app.include_router(rest_tools.agents)
    app.include_router(rest_tools.servers)
    app.include_router(rest_blocks.router)
    app.include_router(rest_blocks.agents)
    app.include_router(rest_admin.template_router("persona"))
    app.include_router(rest_admin.template_router("human"))
    app.include_router(rest_openai.router)
    app.include_router(rest_models.router)
    app.include_router(rest_console.router)
    rest_console.mount_console(app)

    options = ctx.options

    def limit_for(path: str) -> int:
        return options.max_document_bytes if path.endswith(LARGE_BODY_SUFFIXES) else options.max_body_bytes

    app.add_middleware(BodyLimitMiddleware, limit_for=limit_for)
    app.add_middleware(TelemetryMiddleware)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_links(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
