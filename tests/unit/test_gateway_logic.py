"""Pure logic of the gateway: rate limiting, turn ids, event JSON, proto conversion, error mapping."""

from __future__ import annotations

import grpc
import pytest

from mnemo.common.ids import is_token
from mnemo.gateway.convert import public_agent, to_json
from mnemo.gateway.errors import HTTP_OF_GRPC, ApiError
from mnemo.gateway.events import event_json, stop_reason_of, usage_of
from mnemo.gateway.ratelimit import RateLimiter
from mnemo.gateway.schemas import AgentCreate, AgentUpdate, ArchivalInsert
from mnemo.gateway.tenants import hash_key, new_key
from mnemo.gateway.turns import turn_id_for
from mnemo.v1 import common_pb2


def test_token_bucket_allows_bursts_then_asks_to_wait() -> None:
    limiter = RateLimiter(rate=1.0, burst=3)
    assert [limiter.acquire("t1") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.acquire("t1")
    assert 0 < wait <= 1.0
    assert RateLimiter.retry_after_header(wait) == "1"
    assert limiter.acquire("t2") == 0.0  # buckets are per tenant


def test_turn_ids_from_idempotency_keys_are_scoped_and_stable() -> None:
    a = turn_id_for("t1", "agent-1", "key")
    assert a == turn_id_for("t1", "agent-1", "key")
    assert a != turn_id_for("t2", "agent-1", "key")
    assert a != turn_id_for("t1", "agent-2", "key")
    assert is_token(a) and is_token(turn_id_for("t1", "a", "weird key / with spaces"))
    assert turn_id_for("t1", "a", None) != turn_id_for("t1", "a", None)


def test_event_json_flattens_the_payload() -> None:
    event = common_pb2.Event(type="function_call", seq=7, turn_id="turn-1", agent_id="agent-1", step=2,
                             created_at="2024-01-01T00:00:00Z",
                             function_call=common_pb2.FunctionCall(name="archival_memory_search",
                                                                   arguments='{"query": "x"}', call_id="c1"))
    assert event_json(event) == {
        "type": "function_call", "seq": 7, "turn_id": "turn-1", "agent_id": "agent-1", "step": 2,
        "created_at": "2024-01-01T00:00:00Z", "name": "archival_memory_search",
        "arguments": '{"query": "x"}', "call_id": "c1"}
    done = common_pb2.Event(type="turn_completed", seq=9, turn_completed=common_pb2.TurnCompleted(
        stop_reason="max_steps", usage=common_pb2.UsageReport(prompt_tokens=10, completion_tokens=5,
                                                              total_tokens=15)))
    as_json = event_json(done)
    assert as_json["stop_reason"] == "max_steps" and as_json["usage"]["total_tokens"] == 15
    assert isinstance(as_json["usage"]["prompt_tokens"], int)
    assert stop_reason_of([event, done]) == "max_steps"
    assert usage_of([event, done])["total_tokens"] == 15


def test_usage_sums_usage_events_when_the_final_one_has_none() -> None:
    events = [common_pb2.Event(type="usage", usage=common_pb2.UsageReport(prompt_tokens=3, completion_tokens=1,
                                                                          total_tokens=4, model="m")),
              common_pb2.Event(type="usage", usage=common_pb2.UsageReport(prompt_tokens=5, completion_tokens=2,
                                                                          total_tokens=7, model="m")),
              common_pb2.Event(type="turn_failed", turn_failed=common_pb2.TurnFailed(error="boom"))]
    assert usage_of(events) == {"prompt_tokens": 8, "completion_tokens": 3, "total_tokens": 11, "model": "m"}
    assert stop_reason_of(events) == "error"


def test_public_agent_json() -> None:
    state = common_pb2.AgentState(
        config=common_pb2.AgentConfig(id="agent-1", tenant_id="secret-tenant", name="n", model="m",
                                      limits=common_pb2.AgentLimits(max_steps=4)),
        blocks=[common_pb2.MemoryBlock(label="persona", value="v", limit=2000)],
        recall_count=3, queue=[common_pb2.Message(id="m1")])
    data = to_json(public_agent(state))
    assert data["id"] == "agent-1" and "tenant_id" not in data
    assert data["limits"]["max_steps"] == 4 and data["counts"] == {"recall": 3, "archival": 0, "queue": 1}
    assert data["blocks"] == [{"label": "persona", "value": "v", "limit": 2000}]


def test_request_bodies_to_protos() -> None:
    req = AgentCreate(name="a", persona_name="companion", human="h", limits={"max_steps": 2}).to_proto()
    assert req.config.name == "a" and req.persona_name == "companion" and req.config.limits.max_steps == 2
    config, mask = AgentUpdate(name="b", limits={"keep_last_messages": 3}).to_proto()
    assert mask == ["limits", "name"] and config.limits.keep_last_messages == 3
    passages = ArchivalInsert(text="one", tags=["t"], passages=[{"text": "two"}]).to_proto()
    assert [p.text for p in passages] == ["one", "two"] and list(passages[0].tags) == ["t"]
    with pytest.raises(ValueError):
        AgentCreate(name="a", limits={"max_steps": -1})


def test_grpc_status_mapping() -> None:
    assert HTTP_OF_GRPC[grpc.StatusCode.NOT_FOUND] == 404
    assert HTTP_OF_GRPC[grpc.StatusCode.FAILED_PRECONDITION] == 409
    assert HTTP_OF_GRPC[grpc.StatusCode.RESOURCE_EXHAUSTED] == 429
    assert HTTP_OF_GRPC[grpc.StatusCode.UNAVAILABLE] == 503
    assert HTTP_OF_GRPC[grpc.StatusCode.DEADLINE_EXCEEDED] == 504
    assert ApiError(404, "x").grpc_code == grpc.StatusCode.NOT_FOUND
    assert ApiError(429, "x").grpc_code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_keys_are_random_and_hashed() -> None:
    a, b = new_key(), new_key()
    assert a != b and a.startswith("mk-") and len(a) >= 40
    assert hash_key(a) != a and len(hash_key(a)) == 64


def test_waiter_merges_history_in_sequence_order() -> None:
    from mnemo.gateway.events import TurnWaiter

    waiter = TurnWaiter("turn-1")
    live = [common_pb2.Event(type="turn_completed", seq=12), common_pb2.Event(type="usage", seq=11)]
    for event in live:
        waiter.put(event)
    history = [common_pb2.Event(type="assistant_message", seq=10), common_pb2.Event(type="usage", seq=11)]
    waiter.merge(history)
    waiter.put(common_pb2.Event(type="usage", seq=10))  # a late duplicate is dropped
    got = [waiter.queue.get_nowait().seq for _ in range(waiter.queue.qsize())]
    assert got == [10, 11, 12]
