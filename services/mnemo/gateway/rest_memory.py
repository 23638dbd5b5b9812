"""REST: core memory, recall, archival, documents, checkpoints, export / import (issue 3's routes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.datastructures import UploadFile

from mnemo.gateway.convert import to_json
from mnemo.gateway.deps import Ctx, Tenant
from mnemo.gateway.errors import ApiError
from mnemo.gateway.schemas import ArchivalInsert, BlockUpdate, CheckpointCreate, RecallImport

router = APIRouter(prefix="/v1/agents", tags=["memory"])

CHUNK = 256 * 1024
Page = Annotated[int, Query(ge=1, le=1_000_000)]
PageSize = Annotated[int, Query(ge=1, le=100)]


@router.get("/{agent_id}/memory", summary="Core memory: blocks, summary, counts")
async def get_memory(agent_id: str, who: Tenant, ctx: Ctx) -> dict[str, Any]:
    return to_json(await ctx.core.core_memory(who.tenant_id, agent_id))


@router.get("/{agent_id}/memory/{label}", summary="One core-memory block")
async def get_block(agent_id: str, label: str, who: Tenant, ctx: Ctx) -> dict[str, Any]:
    return to_json(await ctx.core.get_block(who.tenant_id, agent_id, label))


@router.put("/{agent_id}/memory/{label}", summary="Set a core-memory block's value")
async def put_block(agent_id: str, label: str, body: BlockUpdate, who: Tenant, ctx: Ctx) -> dict[str, Any]:
    return to_json(await ctx.core.set_block(who.tenant_id, agent_id, label, body.value, body.limit))


@router.get("/{agent_id}/recall", summary="Search recall memory (text and/or date range)")
async def search_recall(agent_id: str, who: Tenant, ctx: Ctx,
                        query: Annotated[str, Query(max_length=2000)] = "",
                        start: Annotated[str, Query(max_length=64)] = "",
                        end: Annotated[str, Query(max_length=64)] = "",
                        role: Annotated[str, Query(max_length=32)] = "",
                        page: Page = 1, page_size: PageSize = 20) -> dict[str, Any]:
    resp = await ctx.core.search_recall(who.tenant_id, agent_id, query=query, start=start, end=end, role=role,
                                        page=page, page_size=page_size)
    return to_json(resp)


@router.post("/{agent_id}/recall", summary="Import conversation history into recall memory")
async def import_recall(agent_id: str, body: RecallImport, who: Tenant, ctx: Ctx) -> dict[str, Any]:
    return to_json(await ctx.core.import_recall(who.tenant_id, agent_id, body.to_proto()))


@router.get("/{agent_id}/archival", summary="Search archival memory (hybrid), or list it")
async def search_archival(agent_id: str, who: Tenant, ctx: Ctx,
                          query: Annotated[str, Query(max_length=2000)] = "",
                          tags: Annotated[list[str] | None, Query(max_length=50)] = None,
                          page: Page = 1, page_size: PageSize = 20) -> dict[str, Any]:
    resp = await ctx.core.search_archival(who.tenant_id, agent_id, query=query, tags=tags, page=page,
                                          page_size=page_size)
    return to_json(resp)


@router.post("/{agent_id}/archival", status_code=201, summary="Insert passages into archival memory")
async def insert_archival(agent_id: str, body: ArchivalInsert, who: Tenant, ctx: Ctx) -> dict[str, Any]:
    passages = body.to_proto()
    if not passages:
        raise ApiError(422, [{"loc": ["body", "text"], "msg": "give `text` or `passages`", "type": "missing"}])
    return to_json(await ctx.core.insert_archival(who.tenant_id, agent_id, passages, body.dedup or ""))


@router.delete("/{agent_id}/archival", summary="Delete the passages matching a filter; how many",
               description="Every filter given must match: `tags` (all of them), `start` / `end` (creation "
                           "time, RFC 3339 or YYYY-MM-DD, inclusive), `source_id` (a document), `ids`. "
                           "At least one filter is required.")
async def bulk_delete_archival(agent_id: str, who: Tenant, ctx: Ctx,
                               tags: Annotated[list[str] | None, Query(max_length=50)] = None,
                               start: Annotated[str, Query(max_length=64)] = "",
                               end: Annotated[str, Query(max_length=64)] = "",
                               source_id: Annotated[str, Query(max_length=200)] = "",
                               ids: Annotated[list[str] | None, Query(max_length=1000)] = None) -> dict[str, Any]:
    return to_json(await ctx.ops.bulk_delete_archival(who.tenant_id, agent_id, tags=tags or [], start=start, end=end,
                                                      source_id=source_id, passage_ids=ids or []))


@router.delete("/{agent_id}/archival/{passage_id}", status_code=204, summary="Delete a passage")
async def delete_archival(agent_id: str, passage_id: str, who: Tenant, ctx: Ctx) -> Response:
    await ctx.core.delete_archival(who.tenant_id, agent_id, passage_id)
    return Response(status_code=204)


async def _upload_chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while True:
        piece = await upload.read(CHUNK)
        if not piece:
            return
        yield piece


@router.post("/{agent_id}/documents", status_code=201, summary="Load a document into archival memory",
             description="multipart/form-data with a `file` part, or the raw bytes as the body with "
                         "`?filename=`. Text, Markdown and PDF.",
             openapi_extra={"requestBody": {"content": {
                 "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
                     "file": {"type": "string", "format": "binary"}}}},
                 "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
async def upload_document(agent_id: str, request: Request, who: Tenant, ctx: Ctx,
                          filename: Annotated[str, Query(max_length=255)] = "",
                          tags: Annotated[list[str] | None, Query(max_length=50)] = None) -> dict[str, Any]:
    await ctx.core.get_state(who.tenant_id, agent_id)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=10)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(422, [{"loc": ["body", "file"], "msg": "a `file` part is required", "type": "missing"}])
        name = filename or upload.filename or "document.txt"
        kind = upload.content_type if upload.content_type not in (None, "application/octet-stream") else ""
        try:
            progress = await ctx.core.ingest_document(who.tenant_id, agent_id, name, kind or "", tags or [],
                                                      _upload_chunks(upload))
        finally:
            await form.close()
    else:
        if not filename:
            raise ApiError(422, [{"loc": ["query", "filename"], "msg": "required with a raw body",
                                  "type": "missing"}])
        kind = content_type.split(";")[0].strip()
        if kind in ("application/octet-stream", "application/x-www-form-urlencoded"):
            kind = ""
        progress = await ctx.core.ingest_document(who.tenant_id, agent_id, filename, kind, tags or [],
                                                  request.stream())
    return to_json(progress)


@router.post("/{agent_id}/checkpoints", status_code=201, summary="Save a checkpoint of the agent")
async def create_checkpoint(agent_id: str, who: Tenant, ctx: Ctx,
                            body: CheckpointCreate | None = None) -> dict[str, Any]:
    name = body.name if body and body.name else ""
    return to_json(await ctx.core.create_checkpoint(who.tenant_id, agent_id, name))


@router.get("/{agent_id}/checkpoints", summary="List the agent's checkpoints")
async def list_checkpoints(agent_id: str, who: Tenant, ctx: Ctx) -> dict[str, Any]:
    return to_json(await ctx.core.list_checkpoints(who.tenant_id, agent_id))


@router.post("/{agent_id}/checkpoints/{checkpoint_id}/restore", summary="Restore a checkpoint")
async def restore_checkpoint(agent_id: str, checkpoint_id: str, who: Tenant, ctx: Ctx) -> dict[str, Any]:
    return to_json(await ctx.core.restore_checkpoint(who.tenant_id, agent_id, checkpoint_id))


@router.get("/{agent_id}/export", summary="Export the agent (state, recall, archival) as JSON",
            response_class=StreamingResponse, responses={200: {"content": {"application/json": {}}}})
async def export_agent(agent_id: str, who: Tenant, ctx: Ctx) -> StreamingResponse:
    data = await ctx.core.export_agent(who.tenant_id, agent_id)
    return StreamingResponse(data, media_type="application/json",
                             headers={"Content-Disposition": f'attachment; filename="{agent_id}.json"'})


@router.post("/import", status_code=201, summary="Create an agent from an export",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": {"type": "object"}}}}})
async def import_agent(request: Request, who: Tenant, ctx: Ctx) -> dict[str, Any]:
    return to_json(await ctx.core.import_agent(who.tenant_id, request.stream()))
