"""Accepting a turn from either edge (REST, gRPC): the input rules, the ownership check, the submission.

Each edge keeps its own wording of a broken rule, both part of the API: REST answers 422 with
FastAPI's field errors (`ApiError.detail`), gRPC INVALID_ARGUMENT with one line (`ApiError.text`).
"""

from __future__ import annotations

from mnemo.common import tool_specs
from mnemo.common.errors import InvalidArgument
from mnemo.gateway.deps import GatewayContext
from mnemo.gateway.errors import invalid
from mnemo.gateway.turns import SubmittedTurn
from mnemo.v1 import common_pb2

ROLES = ("user", "system")
MAX_IDEMPOTENCY_KEY = 200
_KEY_OR_STEPS = f"idempotency_key: at most {MAX_IDEMPOTENCY_KEY} characters; max_steps: not negative"


def check_turn_input(message: str, max_chars: int, *, role: str = "user", max_steps: int = 0,
                     idempotency_key: str | None = None) -> None:
    """ApiError for the first rule the input of a turn breaks (None: no idempotency key)."""
    if not message:
        raise invalid("message", "must not be empty", "string_too_short", text="message: must not be empty")
    if len(message) > max_chars:
        raise invalid("message", f"message is longer than {max_chars} characters", "string_too_long",
                      text=f"message: longer than {max_chars} characters")
    if role not in ROLES:
        raise invalid("role", "must be user or system", text="role: must be user or system")
    if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
        raise invalid("Idempotency-Key", f"must be 1 to {MAX_IDEMPOTENCY_KEY} characters", text=_KEY_OR_STEPS)
    if max_steps < 0:
        raise invalid("max_steps", "must not be negative", text=_KEY_OR_STEPS)


def check_turn_tools(tools: list[common_pb2.ToolSpec]) -> None:
    """A turn's own tools are client-side tools with valid names and schemas."""
    try:
        tool_specs.check_tools(tools, kinds=("client",))
    except InvalidArgument as exc:
        raise invalid("tools", str(exc), text=f"tools: {exc}") from None


async def submit_turn(ctx: GatewayContext, tenant_id: str, agent_id: str, message: str, *, role: str = "user",
                      max_steps: int = 0, idempotency_key: str | None = None,
                      tools: list[common_pb2.ToolSpec] | None = None) -> SubmittedTurn:
    """Check the input, then the agent (404 for unknown and other tenants' agents), then submit."""
    check_turn_input(message, ctx.options.max_message_chars, role=role, max_steps=max_steps,
                     idempotency_key=idempotency_key)
    check_turn_tools(tools or [])
    await ctx.core.owned(tenant_id, agent_id)  # cached
    return await ctx.turns.submit(tenant_id, agent_id, message, role=role, max_steps=max_steps,
                                  idempotency_key=idempotency_key, tools=tools)
