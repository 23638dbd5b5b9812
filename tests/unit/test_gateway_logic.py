"""Pure logic of the gateway: rate limiting, turn ids, event JSON, proto conversion, error mapping."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import TypeVar

import grpc
import pytest

from mnemo.common.errors import NotFound, ResourceExhausted
from mnemo.common.ids import is_token
from mnemo.gateway.convert import public_agent, to_json
from mnemo.gateway.errors import HTTP_OF_GRPC, ApiError
from mnemo.gateway.events import event_json, stop_reason_of, usage_of
from mnemo.gateway.ratelimit import UNLIMITED, RateLimiter, TenantLimits
from mnemo.gateway.schemas import AgentCreate, AgentUpdate, ArchivalInsert
from mnemo.gateway.tenants import hash_key, new_key
from mnemo.gateway.turns import turn_id_for
from mnemo.v1 import common_pb2

T = TypeVar("T")


def test_token_bucket_allows_bursts_then_asks_to_wait() -> None:
    limiter, limits = RateLimiter(), TenantLimits(rate_per_second=1.0, burst=3)
    assert [limiter.acquire("t1", limits) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.acquire("t1", limits)
    assert 0 < wait <= 1.0
    assert RateLimiter.retry_after_header(wait) == "1"
    assert limiter.acquire("t2", limits) == 0.0  # buckets are per tenant
    assert all(limiter.acquire("t3", UNLIMITED) == 0.0 for _ in range(10_000))  # rate 0: no limit


def test_a_429_from_an_internal_service_says_when_to_retry() -> None:
    err = ApiError.from_error(ResourceExhausted("tenant over its tokens per minute", retry_after=2.2))
    assert err.status == 429 and err.headers["Retry-After"] == "3"
    assert ApiError.from_error(ResourceExhausted("no hint")).headers["Retry-After"] == "1"
    assert "Retry-After" not in ApiError.from_error(NotFound("agent x")).headers


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
    assert data["blocks"] == [{"label": "persona", "value": "v", "limit": 2000, "shared_id": "", "shared_with": []}]


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


def test_domain_errors_map_to_http_statuses() -> None:
    from mnemo.common.errors import MnemoError, error_for

    expected = {"INVALID_ARGUMENT": 400, "OUT_OF_RANGE": 400, "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403,
                "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "FAILED_PRECONDITION": 409, "ABORTED": 409,
                "RESOURCE_EXHAUSTED": 429, "CANCELLED": 499, "UNIMPLEMENTED": 501, "UNAVAILABLE": 503,
                "DEADLINE_EXCEEDED": 504, "INTERNAL": 502, "UNKNOWN": 502, "DATA_LOSS": 502}
    for code, status in expected.items():
        err = ApiError.from_error(error_for(code, "why"), "the memory service")
        assert err.status == status, code
        if code == "UNAVAILABLE":
            assert err.detail == "the memory service is unavailable: why"
        else:
            assert err.detail == "why"
        # unmapped statuses travel on as UNAVAILABLE on the public gRPC API
        assert err.grpc_code == (grpc.StatusCode[code] if status != 502 else grpc.StatusCode.UNAVAILABLE)
    assert ApiError.from_error(MnemoError()).detail == "UNKNOWN"  # no details: the status name
    assert ApiError.from_error(error_for("UNAVAILABLE", "x")).detail == "an internal service is unavailable: x"


def test_turn_input_rules_keep_each_edge_wording() -> None:
    from mnemo.gateway.submit import check_turn_input

    def broken(**kwargs: object) -> ApiError:
        with pytest.raises(ApiError) as err:
            check_turn_input(**{"message": "hi", "max_chars": 5, **kwargs})  # type: ignore[arg-type]
        assert err.value.status == 422 and err.value.grpc_code == grpc.StatusCode.INVALID_ARGUMENT
        return err.value

    check_turn_input("hello", 5, role="system", max_steps=3, idempotency_key="k")
    long = broken(message="toolong")
    assert long.detail == [{"loc": ["body", "message"], "msg": "message is longer than 5 characters",
                            "type": "string_too_long"}]
    assert long.text == "message: longer than 5 characters"
    assert broken(message="").text == "message: must not be empty"
    assert broken(role="tool").text == "role: must be user or system"
    key = broken(idempotency_key="k" * 201)
    assert key.detail == [{"loc": ["body", "Idempotency-Key"], "msg": "must be 1 to 200 characters",
                           "type": "value_error"}]
    assert key.text == "idempotency_key: at most 200 characters; max_steps: not negative"
    assert broken(idempotency_key="").detail[0]["loc"] == ["body", "Idempotency-Key"]
    assert broken(max_steps=-1).text == key.text
    # the one-line form of any FastAPI-shaped detail
    assert ApiError(422, [{"loc": ["body", "a", "b"], "msg": "bad"}, "other"]).text == "a.b: bad; other"


async def _collect(gen: AsyncIterator[T]) -> list[T]:
    return [item async for item in gen]


async def test_events_of_one_turn_stop_at_its_final_event_and_close_the_source() -> None:
    from mnemo.gateway.events import events_of_turn

    closed = []

    async def source() -> AsyncGenerator[common_pb2.Event | None, None]:
        try:
            for event in [common_pb2.Event(type="usage", turn_id="t1", seq=1), None,
                          common_pb2.Event(type="usage", turn_id="t2", seq=2),
                          common_pb2.Event(type="turn_completed", turn_id="t1", seq=3),
                          common_pb2.Event(type="usage", turn_id="t1", seq=4)]:
                yield event
        finally:
            closed.append(True)

    got = await _collect(events_of_turn(source(), "t1"))
    assert [e.seq if e is not None else None for e in got] == [1, None, 3] and closed == [True]
    everything = await _collect(events_of_turn(source()))
    assert len(everything) == 5 and closed == [True, True]


async def test_turn_events_with_keepalives_as_sse_frames() -> None:
    from mnemo.gateway.events import TurnWaiter
    from mnemo.gateway.sse import KEEPALIVE, sse_frames
    from mnemo.gateway.turns import SubmittedTurn, TurnSubmitter

    submitter = TurnSubmitter(None, None)  # type: ignore[arg-type]  # following events needs no stream
    turn = SubmittedTurn("t1", "tenant", "agent", False, TurnWaiter("t1"))
    closed = []
    frames = sse_frames(submitter.events(turn, None, keepalive=0.01), on_close=lambda: closed.append(True))
    assert await anext(frames) == KEEPALIVE  # nothing for a while
    turn.waiter.put(common_pb2.Event(type="assistant_message", turn_id="t1", seq=5))
    turn.waiter.put(common_pb2.Event(type="turn_completed", turn_id="t1", seq=6))
    rest = await _collect(frames)
    assert next(f for f in rest if f != KEEPALIVE).startswith("id: 5\nevent: assistant_message\ndata: {")
    assert rest[-1].startswith("id: 6\nevent: turn_completed\n") and closed == [True]
    assert [e.seq for e in turn.events] == [5, 6]

    quiet = SubmittedTurn("t2", "tenant", "agent", False, TurnWaiter("t2"))
    assert await _collect(submitter.events(quiet, 0.01)) == []  # the timeout ends it, no keepalives
