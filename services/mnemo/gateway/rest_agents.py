"""REST: agents CRUD, turns (wait / SSE), event replay, queue editing."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse, StreamingResponse
from opentelemetry import trace

from mnemo.gateway.convert import to_json
from mnemo.gateway.deps import Ctx, GatewayContext, Tenant
from mnemo.gateway.events import ends_wait, event_json, events_of_turn, replay, stop_reason_of, usage_of
from mnemo.gateway.schemas import AgentCreate, AgentUpdate, MessageBody, PopBody, RewriteBody
from mnemo.gateway.sse import sse_response
from mnemo.gateway.submit import submit_turn
from mnemo.gateway.turns import SubmittedTurn

router = APIRouter(prefix="/v1/agents", tags=["agents"])


class TurnResultResponse(JSONResponse):
    """A turn's result, encoded by orjson (the reply to every message sent and waited for; the same
    compact UTF-8 JSON as JSONResponse, several times faster)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


@router.post("", status_code=201, summary="Create an agent")
async def create_agent(body: AgentCreate, who: Tenant, ctx: Ctx) -> dict[str, Any]:
    return to_json(await ctx.core.create_agent(who.tenant_id, body.to_proto()))


@router.get("", summary="List agents (paginated)")
async def list_agents(who: Tenant, ctx: Ctx, page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
                      page_size: Annotated[int, Query(ge=1, le=100)] = 50) -> dict[str, Any]:
    resp = await ctx.core.list_agents(who.tenant_id, page, page_size)
    return {"agents": [to_json(a) for a in ctx.core.list_view(resp)], "total": resp.total,
            "page": resp.page or page, "page_size": resp.page_size or page_size}


@router.get("/{agent_id}", summary="Get an agent")
async def get_agent(agent_id: str, who: Tenant, ctx: Ctx) -> dict[str, Any]:
    return to_json(await ctx.core.get_agent(who.tenant_id, agent_id))


@router.patch("/{agent_id}", summary="Update an agent's configuration")
async def update_agent(agent_id: str, body: AgentUpdate, who: Tenant, ctx: Ctx) -> dict[str, Any]:
    config, mask = body.to_proto()
    return to_json(await ctx.core.update_agent(who.tenant_id, agent_id, config, mask))


@router.delete("/{agent_id}", status_code=204, summary="Delete an agent and all its memory")
async def delete_agent(agent_id: str, who: Tenant, ctx: Ctx) -> Response:
    await ctx.core.delete_agent(who.tenant_id, agent_id)
    return Response(status_code=204)


# ---- turns --------------------------------------------------------------------------------------

async def _submit(ctx: GatewayContext, tenant_id: str, agent_id: str, body: MessageBody,
                  idempotency_key: str | None) -> SubmittedTurn:
    turn = await submit_turn(ctx, tenant_id, agent_id, body.message, role=body.role, max_steps=body.max_steps,
                             idempotency_key=idempotency_key, tools=body.tool_specs())
    span = trace.get_current_span()
    span.set_attribute("mnemo.agent_id", agent_id)
    span.set_attribute("mnemo.turn_id", turn.turn_id)
    return turn


def turn_result(turn: SubmittedTurn) -> dict[str, Any]:
    return {"turn_id": turn.turn_id, "stop_reason": stop_reason_of(turn.events),
            "events": [event_json(e) for e in turn.events], "usage": usage_of(turn.events)}


async def wait_result(ctx: GatewayContext, turn: SubmittedTurn) -> JSONResponse:
    """The turn's events until it ends or pauses (stop_reason "paused"); 202 after `turn_timeout`."""
    try:
        async for _ in ctx.turns.events(turn, ctx.options.turn_timeout):
            pass
    finally:
        ctx.turns.close(turn)
    result = turn_result(turn)
    if not turn.events or not ends_wait(turn.events[-1]):
        return TurnResultResponse({**result, "status": "running"}, status_code=202)
    return TurnResultResponse(result)


@router.post("/{agent_id}/messages", summary="Send a message and wait for the turn (to end or pause)",
             responses={202: {"description": "the turn is still running: follow /events"}})
async def send_message(agent_id: str, body: MessageBody, who: Tenant, ctx: Ctx,
                       idempotency_key: Annotated[str | None, Header()] = None) -> JSONResponse:
    return await wait_result(ctx, await _submit(ctx, who.tenant_id, agent_id, body, idempotency_key))


@router.post("/{agent_id}/messages/stream", summary="Send a message; the turn's events as SSE",
             response_class=StreamingResponse,
             responses={200: {"content": {"text/event-stream": {}}}})
async def stream_message(agent_id: str, body: MessageBody, who: Tenant, ctx: Ctx,
                         idempotency_key: Annotated[str | None, Header()] = None) -> StreamingResponse:
    turn = await _submit(ctx, who.tenant_id, agent_id, body, idempotency_key)
    return sse_response(ctx.turns.events(turn, None, keepalive=ctx.options.sse_keepalive),
                        headers={"X-Turn-Id": turn.turn_id}, on_close=lambda: ctx.turns.close(turn))


@router.get("/{agent_id}/events", summary="Events after a sequence number (resume); follow=true for SSE",
            responses={200: {"content": {"application/json": {}, "text/event-stream": {}}}})
async def agent_events(agent_id: str, who: Tenant, ctx: Ctx,
                       after: Annotated[int, Query(ge=0)] = 0,
                       follow: bool = False,
                       turn_id: Annotated[str | None, Query(max_length=200)] = None,
                       last_event_id: Annotated[str | None, Header()] = None,
                       accept: Annotated[str | None, Header()] = None) -> Response:
    await ctx.core.get_state(who.tenant_id, agent_id)
    if last_event_id and last_event_id.strip().isdigit():
        after = max(after, int(last_event_id.strip()))
    sse = follow or "text/event-stream" in (accept or "")
    events = replay(ctx.js, who.tenant_id, agent_id, after=after, follow=follow,
                    idle_timeout=ctx.options.sse_keepalive if follow else 5.0)
    if not sse:
        out = [event_json(e) async for e in events if e is not None and (not turn_id or e.turn_id == turn_id)]
        return JSONResponse({"events": out})
    return sse_response(events_of_turn(events, turn_id or ""))


# ---- queue editing (CLI /pop, /rewrite) -------------------------------------------------------------

@router.post("/{agent_id}/messages/pop", summary="Remove the last messages from the agent's queue")
async def pop_messages(agent_id: str, body: PopBody, who: Tenant, ctx: Ctx) -> dict[str, Any]:
    resp = await ctx.core.pop_messages(who.tenant_id, agent_id, body.count)
    return to_json(resp)


@router.post("/{agent_id}/messages/rewrite", summary="Rewrite the agent's last reply (or one message)")
async def rewrite_message(agent_id: str, body: RewriteBody, who: Tenant, ctx: Ctx) -> dict[str, Any]:
    return to_json(await ctx.core.rewrite_message(who.tenant_id, agent_id, body.text, body.message_id or ""))
