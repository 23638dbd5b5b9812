"""POST /v1/chat/completions, OpenAI-compatible: `model` = "agent:<id>"; the last user message is a turn."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse, StreamingResponse

from mnemo.gateway.deps import Ctx, Tenant
from mnemo.gateway.errors import ApiError, invalid
from mnemo.gateway.events import PAUSE_TYPES, is_final, usage_of
from mnemo.gateway.rest_agents import _submit
from mnemo.gateway.schemas import ChatCompletionRequest, MessageBody

router = APIRouter(prefix="/v1/chat", tags=["openai"])
AGENT_PREFIX = "agent:"


def _agent_of(model: str) -> str:
    if not model.startswith(AGENT_PREFIX) or len(model) == len(AGENT_PREFIX):
        raise invalid("model", 'model must name an agent: "agent:<id>"')
    return model[len(AGENT_PREFIX):]


def _last_user_text(body: ChatCompletionRequest) -> str:
    for message in reversed(body.messages):
        if message.role == "user":
            content = message.content
            if isinstance(content, list):
                content = " ".join(str(p.get("text", "")) for p in content if p.get("type", "text") == "text")
            if content:
                return content
    raise invalid("messages", "needs a user message with text content")


def _finish_reason(stop_reason: str) -> str:
    return {"max_steps": "length", "token_budget": "length", "context_overflow": "length"}.get(stop_reason,
                                                                                                "stop")


@router.post("/completions", summary="OpenAI-compatible chat with a stateful agent (model = agent:<id>)",
             responses={200: {"content": {"application/json": {}, "text/event-stream": {}}}})
async def chat_completions(body: ChatCompletionRequest, who: Tenant, ctx: Ctx,
                           idempotency_key: Annotated[str | None, Header()] = None) -> Any:
    agent_id = _agent_of(body.model)
    text = _last_user_text(body)
    turn = await _submit(ctx, who.tenant_id, agent_id, MessageBody(message=text), idempotency_key)
    completion_id = "chatcmpl-" + turn.turn_id.removeprefix("turn-")
    created = int(time.time())
    base = {"id": completion_id, "created": created, "model": body.model}

    if body.stream:
        async def chunks() -> AsyncIterator[str]:
            def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
                data = {**base, "object": "chat.completion.chunk",
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
                return f"data: {json.dumps(data)}\n\n"
            try:
                yield chunk({"role": "assistant", "content": ""})
                sent = False
                async for event in ctx.turns.events(turn, ctx.options.turn_timeout):
                    if event.type == "assistant_message":
                        yield chunk({"content": ("\n" if sent else "") + event.assistant_message.text})
                        sent = True
                final = turn.events[-1] if turn.events else None
                if final is not None and final.type == "turn_failed":
                    error = {"error": {"message": final.turn_failed.error or "the turn failed",
                                       "type": "turn_failed", "code": final.turn_failed.code or None}}
                    yield f"data: {json.dumps(error)}\n\n"
                else:
                    reason = final.turn_completed.stop_reason if final is not None else "timeout"
                    yield chunk({}, _finish_reason(reason), usage=_usage(turn.events))
                yield "data: [DONE]\n\n"
            finally:
                ctx.turns.close(turn)

        return StreamingResponse(chunks(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    try:
        async for _ in ctx.turns.events(turn, ctx.options.turn_timeout):
            pass
    finally:
        ctx.turns.close(turn)
    if turn.events and turn.events[-1].type in PAUSE_TYPES:
        raise ApiError(409, f"turn {turn.turn_id} waits on tool calls: answer them with "
                            f"/v1/agents/{agent_id}/tool-results or /approvals")
    if not turn.events or not is_final(turn.events[-1]):
        raise ApiError(504, f"turn {turn.turn_id} is still running; follow /v1/agents/{agent_id}/events")
    final = turn.events[-1]
    if final.type == "turn_failed":
        raise ApiError(502, f"the turn failed: {final.turn_failed.error}")
    content = "\n".join(e.assistant_message.text for e in turn.events if e.type == "assistant_message")
    return JSONResponse({**base, "object": "chat.completion",
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                      "finish_reason": _finish_reason(final.turn_completed.stop_reason)}],
                         "usage": _usage(turn.events)})


def _usage(events: list[Any]) -> dict[str, int]:
    u = usage_of(events)
    return {"prompt_tokens": u["prompt_tokens"], "completion_tokens": u["completion_tokens"],
            "total_tokens": u["total_tokens"]}
