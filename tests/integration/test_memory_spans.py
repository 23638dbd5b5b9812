"""Memory operations are traced: one span per operation with tenant, agent and result counts."""

from __future__ import annotations

from mnemo.v1 import common_pb2, memory_pb2
from tests.fixtures_memory import llm_service, memory_service, memory_stub  # noqa: F401
from tests.fixtures_observability import by_name, span_exporter  # noqa: F401


async def test_memory_spans(memory_stub, span_exporter):
    state = await memory_stub.CreateAgent(memory_pb2.CreateAgentRequest(tenant_id="sp"))
    ref = common_pb2.AgentRef(tenant_id="sp", agent_id=state.config.id)
    await memory_stub.InsertArchival(memory_pb2.InsertArchivalRequest(ref=ref, passages=[
        memory_pb2.PassageInput(text="alpha"), memory_pb2.PassageInput(text="beta")]))
    await memory_stub.SearchArchival(memory_pb2.SearchArchivalRequest(ref=ref, query="alpha"))
    spans = span_exporter.get_finished_spans()
    search = by_name(spans, "memory.search_archival")
    assert search.attributes["mnemo.tenant_id"] == "sp"
    assert search.attributes["mnemo.agent_id"] == state.config.id
    assert search.attributes["mnemo.result_count"] >= 1
    assert by_name(spans, "memory.insert_archival").attributes["mnemo.result_count"] == 2
    # The operation span is a child of the gRPC server span.
    server = by_name(spans, "mnemo.v1.MemoryService/SearchArchival")
    assert search.parent is not None and search.parent.span_id == server.context.span_id
