"""REST: the console's views (context window, turn timelines, usage over time) and the console itself,
static files under /ui (no key needed to load it; every call it makes carries the key)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from mnemo.gateway.console_reads import MAX_TURNS, console_reads
from mnemo.gateway.convert import to_json
from mnemo.gateway.deps import Ctx, Tenant

UI_DIR = Path(__file__).with_name("ui")
# Everything the console loads comes from the gateway itself: no CDN, works offline.
UI_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                               "script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(prefix="/v1/agents", tags=["console"])


@router.get("/{agent_id}/context", summary="The context window of the agent's last step, by section",
            description="Tokens of the last model request by section (system instructions, function schemas, "
                        "memory metadata, core memory, summary, message queue) plus the reserved completion; "
                        "`total_tokens` is their sum, `warning_tokens` / `compaction_tokens` the prompt sizes "
                        "at which the memory-pressure alert and compaction start. `available` is false until "
                        "the agent has run a step.")
async def get_context_window(agent_id: str, who: Tenant, ctx: Ctx) -> dict[str, Any]:
    return to_json(await console_reads(ctx).context_window(who.tenant_id, agent_id))


@router.get("/{agent_id}/turns", summary="The agent's recent turns, newest first, with each step's timings")
async def list_turns(agent_id: str, who: Tenant, ctx: Ctx,
                     limit: Annotated[int, Query(ge=1, le=MAX_TURNS)] = 10) -> dict[str, Any]:
    return to_json(await console_reads(ctx).turns(who.tenant_id, agent_id, limit))


@router.get("/{agent_id}/turns/{turn_id}/steps", summary="One turn's steps: model latency, tokens, functions "
                                                         "and their durations, stop reason, trace id")
async def get_turn_steps(agent_id: str, turn_id: str, who: Tenant, ctx: Ctx) -> dict[str, Any]:
    return to_json(await console_reads(ctx).turn(who.tenant_id, agent_id, turn_id))


@router.get("/{agent_id}/usage", summary="The agent's token usage over time, in buckets, with totals per model")
async def get_usage(agent_id: str, who: Tenant, ctx: Ctx,
                    since: Annotated[str, Query(max_length=64, description="RFC 3339; default 24 hours ago")] = "",
                    bucket_seconds: Annotated[int, Query(ge=60, le=86_400)] = 3600) -> dict[str, Any]:
    return to_json(await console_reads(ctx).usage(who.tenant_id, agent_id, since, bucket_seconds))


class ConsoleFiles(StaticFiles):
    """The console's files, with headers that keep it to its own origin."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(UI_HEADERS)
        return response


def mount_console(app: FastAPI) -> None:
    """Serve the console at /ui/ (GET /ui redirects there)."""
    app.mount("/ui", ConsoleFiles(directory=UI_DIR, html=True), name="ui")
