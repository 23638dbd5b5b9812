"""Executing the agent's functions against its in-memory core memory and the memory service."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from mnemo.common import ids
from mnemo.common.errors import Conflict, ContextOverflow, FailedPrecondition, InvalidArgument, NotFound
from mnemo.common.ports import MemoryPort
from mnemo.orchestrator import packing
from mnemo.orchestrator.context import DEFAULT_BLOCK_LIMIT
from mnemo.orchestrator.functions import FunctionError, ParsedCall
from mnemo.v1 import common_pb2, memory_pb2

RECALL_PAGE_SIZE = 5
ARCHIVAL_PAGE_SIZE = 5
# Memory-service errors that describe a bad call by the agent (fed back to it as a Failed result).
_AGENT_ERRORS = (InvalidArgument, NotFound, ContextOverflow, FailedPrecondition)


@dataclass
class StepMemory:
    """Core-memory blocks of the agent as edited during one step."""

    blocks: list[common_pb2.MemoryBlock]
    changed: set[str] = field(default_factory=set)
    archival_inserted: int = 0

    def block(self, label: str) -> common_pb2.MemoryBlock:
        for b in self.blocks:
            if b.label == label:
                return b
        labels = ", ".join(b.label for b in self.blocks) or "none"
        raise FunctionError(f"no core memory block labelled {label!r}; blocks: {labels}")

    def set_value(self, label: str, value: str) -> None:
        b = self.block(label)
        limit = b.limit or DEFAULT_BLOCK_LIMIT
        if len(value) > limit:
            raise FunctionError(
                f"edit failed: block {label!r} would hold {len(value)} characters, over its limit of "
                f"{limit}; shorten it first (core_memory_replace) or store the text in archival memory")
        b.value = value
        self.changed.add(label)

    def changed_blocks(self) -> list[common_pb2.MemoryBlock]:
        return [b for b in self.blocks if b.label in self.changed]


def truncate(text: str, max_chars: int, next_hint: str) -> str:
    """Cut a result to the size budget with a note saying how to see the rest."""
    if len(text) <= max_chars:
        return text
    note = f"\n[result truncated to {max_chars} characters; {next_hint}]"
    return text[: max(0, max_chars - len(note))] + note


class ToolRunner(Protocol):
    """Runs the agent's server-side custom tools (mnemo.orchestrator.mcp_client.McpTools)."""

    async def call(self, tenant_id: str, spec: common_pb2.ToolSpec, args: dict[str, Any], max_chars: int) -> str:
        """The tool's result text (cut to `max_chars`); FunctionError when it fails."""
        ...


class FunctionExecutor:
    """Runs the memory functions and the server-side custom tools of one agent step; send_message and
    pause_heartbeats are handled by the step loop."""

    def __init__(self, memory: MemoryPort, ref: common_pb2.AgentRef,
                 step_id: str, mem: StepMemory, max_chars: int, tools: ToolRunner | None = None) -> None:
        self.memory = memory
        self.ref = ref
        self.step_id = step_id
        self.mem = mem
        self.max_chars = max_chars
        self.tools = tools

    async def run_tool(self, spec: common_pb2.ToolSpec, args: dict[str, Any]) -> str:
        """A custom tool that runs on the server side (an MCP server's)."""
        if spec.kind != "mcp" or self.tools is None:
            raise FunctionError(f"{spec.name} cannot be run here")
        return await self.tools.call(self.ref.tenant_id, spec, args, self.max_chars)

    async def run(self, call: ParsedCall, call_index: int) -> str:
        try:
            return await getattr(self, "_" + call.name)(call.args, call_index)
        except _AGENT_ERRORS as exc:
            raise FunctionError(f"{call.name} failed: {exc}") from None

    # ---- core memory ----
    async def _core_memory_append(self, args: dict, call_index: int) -> str:
        b = self.mem.block(args["label"])
        content = args["content"]
        if b.shared_id:
            await self._edit_shared(b, call_index, "append", content)
        else:
            self.mem.set_value(b.label, f"{b.value}\n{content}" if b.value else content)
        return f"appended to {b.label} ({len(b.value)}/{b.limit or DEFAULT_BLOCK_LIMIT} characters)"

    async def _core_memory_replace(self, args: dict, call_index: int) -> str:
        b = self.mem.block(args["label"])
        old, new = args["old_content"], args["new_content"]
        if not old:
            raise FunctionError("old_content must not be empty")
        if b.shared_id:  # the block's current value decides (another agent may have changed it)
            await self._edit_shared(b, call_index, "replace", new, old)
        else:
            if old not in b.value:
                raise FunctionError(f"old_content not found in block {b.label!r}; copy the exact text to replace")
            self.mem.set_value(b.label, b.value.replace(old, new))
        return f"replaced in {b.label} ({len(b.value)}/{b.limit or DEFAULT_BLOCK_LIMIT} characters)"

    async def _edit_shared(self, b: common_pb2.MemoryBlock, call_index: int, op: str, value: str,
                           old: str = "") -> None:
        """Edit a shared block at once (every agent sharing it sees it from its next step); the edit's
        id is the step's and the call's, so a step redone after a lost commit applies it once."""
        try:
            rec = await self.memory.UpdateSharedBlock(memory_pb2.UpdateSharedBlockRequest(
                ref=memory_pb2.SharedBlockRef(tenant_id=self.ref.tenant_id, block_id=b.shared_id),
                agent_id=self.ref.agent_id, edit_id=f"{self.ref.agent_id}/{self.step_id}:{call_index}", op=op,
                value=value, old=old))
        except Conflict:
            raise FunctionError(f"block {b.label!r} is shared and kept changing under other writers; "
                                "call the function again") from None
        b.value, b.limit = rec.value, rec.limit

    # ---- recall ----
    async def _conversation_search(self, args: dict, _: int) -> str:
        page = args.get("page", 0)
        resp = await self.memory.SearchRecall(memory_pb2.SearchRecallRequest(
            ref=self.ref, query=args["query"], page=page + 1, page_size=RECALL_PAGE_SIZE))
        return self._recall_result(resp, page, f"query {args['query']!r}")

    async def _conversation_search_date(self, args: dict, _: int) -> str:
        page = args.get("page", 0)
        for key in ("start_date", "end_date"):
            try:
                ids.parse_time(args[key])
            except ValueError:
                raise FunctionError(f"{key} {args[key]!r} is not a date: use YYYY-MM-DD") from None
        resp = await self.memory.SearchRecall(memory_pb2.SearchRecallRequest(
            ref=self.ref, start=args["start_date"], end=args["end_date"], page=page + 1,
            page_size=RECALL_PAGE_SIZE))
        return self._recall_result(resp, page, f"dates {args['start_date']}..{args['end_date']}")

    def _recall_result(self, resp: memory_pb2.SearchRecallResponse, page: int, what: str) -> str:
        lines = []
        for hit in resp.hits:
            m = hit.message
            text = m.text
            if m.role == "assistant" and m.tool_calls:
                text = (text + " " if text else "") + " ".join(f"[{c.name} {c.arguments}]" for c in m.tool_calls)
            lines.append(f"- [{packing.friendly_time(m.created_at)}] {m.role}: {text}")
        return self._paged(lines, resp.total, page, RECALL_PAGE_SIZE, what)

    # ---- archival ----
    async def _archival_memory_insert(self, args: dict, call_index: int) -> str:
        passage_id = f"{self.step_id}:{call_index}".replace(":", "-")
        resp = await self.memory.InsertArchival(memory_pb2.InsertArchivalRequest(
            ref=self.ref, passages=[memory_pb2.PassageInput(id=passage_id, text=args["content"])]))
        if resp.duplicate and resp.duplicate[0] and resp.ids[0] != passage_id:
            return f"already in archival memory (id {resp.ids[0]}): not stored twice"
        self.mem.archival_inserted += 1
        return f"stored in archival memory (id {passage_id})"

    async def _archival_memory_search(self, args: dict, _: int) -> str:
        page = args.get("page", 0)
        resp = await self.memory.SearchArchival(memory_pb2.SearchArchivalRequest(
            ref=self.ref, query=args["query"], page=page + 1, page_size=ARCHIVAL_PAGE_SIZE))
        lines = [f"- [{packing.friendly_time(h.passage.created_at)}] {h.passage.text}" for h in resp.hits]
        return self._paged(lines, resp.total, page, ARCHIVAL_PAGE_SIZE, f"query {args['query']!r}")

    def _paged(self, lines: list[str], total: int, page: int, page_size: int, what: str) -> str:
        pages = max(1, -(-total // page_size))
        if not lines:
            return f"no results for {what} on page {page} ({total} results in all)"
        head = f"showing {len(lines)} of {total} results for {what} (page {page} of 0..{pages - 1})"
        more = page + 1 < pages
        hint = (f"call again with page={page + 1} for the next page" if more
                else "narrow the query to see less per result")
        body = truncate(head + "\n" + "\n".join(lines), self.max_chars, hint)
        if more and "[result truncated" not in body:
            body += f"\n[more results: call again with page={page + 1}]"
        return body
