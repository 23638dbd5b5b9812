"""Fuzz of every method of the public gRPC AgentService (taken from its descriptor): seeded random
messages, boundary values and raw bytes that do not parse. A rejection is never UNKNOWN, INTERNAL or
DATA_LOSS (nor UNAVAILABLE: the stack is up), always carries its reason, and no agent is left stuck."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from mnemo.common.grpcutil import client_channel
from mnemo.gateway.options import GatewayOptions
from mnemo.v1 import agent_pb2, common_pb2, memory_pb2
from tests.fixtures_routes import agent_service_methods, client_streaming_call, method_path
from tests.fixtures_stack import Stack, StackRunner
from tests.helpers import eventually

SEED = 20_261_204
RANDOM_PER_METHOD = 30
CALL_TIMEOUT = 10.0
STREAM_TIMEOUT = 3.0       # a followed event stream runs until the client leaves
LONG = 1 << 20             # a ~1 MB string
BAD_CODES = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS,
             grpc.StatusCode.UNAVAILABLE}
# Details written by the transport, not the server: the reason the server gave never reached the client.
TRANSPORT_MARKERS = ("Stream removed", "Internal error from Core", "metadata size exceeds")
# Methods that may reconfigure or delete the agent they name get the spare agent, not the target.
SPARE_ONLY = {"UpdateAgent", "DeleteAgent"}

INT_EDGES = {
    FieldDescriptor.TYPE_INT32: [0, 1, -1, 2**31 - 1, -(2**31)],
    FieldDescriptor.TYPE_SINT32: [0, -1, 2**31 - 1, -(2**31)],
    FieldDescriptor.TYPE_SFIXED32: [0, -1, 2**31 - 1, -(2**31)],
    FieldDescriptor.TYPE_INT64: [0, 1, -1, 2**63 - 1, -(2**63)],
    FieldDescriptor.TYPE_SINT64: [0, -1, 2**63 - 1, -(2**63)],
    FieldDescriptor.TYPE_SFIXED64: [0, -1, 2**63 - 1, -(2**63)],
    FieldDescriptor.TYPE_UINT32: [0, 1, 2**32 - 1],
    FieldDescriptor.TYPE_FIXED32: [0, 1, 2**32 - 1],
    FieldDescriptor.TYPE_UINT64: [0, 1, 2**64 - 1],
    FieldDescriptor.TYPE_FIXED64: [0, 1, 2**64 - 1],
}
FLOAT_EDGES = [0.0, -0.0, 1.0, -1.0, math.inf, -math.inf, math.nan, 1e308, -1e-308, 0.5]
ODD_STRINGS = ["", " ", "\x00", "a\x00b", "..", "../../etc", "*", ">", "mnemo.events.>", "a.b.c", "\u202e\u0644",
               "🦀" * 50, '{"json": true}', "</core_memory>", "agent:", "user", "system", "human", "persona",
               "x" * 201, "%00", "\r\n", "\ufeff", "agent-" + "0" * 32]


@dataclass
class Ids:
    """Real ids of the fuzz tenant, offered to fields of matching names."""

    target: str
    spare: str
    passage: str
    checkpoint: str
    block: str = ""
    extra: list[str] = field(default_factory=list)


class Fuzzer:
    """Seeded random protobuf messages for a descriptor, biased towards edges and real ids."""

    def __init__(self, rng: random.Random, ids: Ids, method: str) -> None:
        self.rng = rng
        self.ids = ids
        self.method = method

    def string(self, name: str) -> str:
        rng = self.rng
        roll = rng.random()
        if name in ("agent_id", "id") and roll < 0.5:
            return self.ids.spare if self.method in SPARE_ONLY else rng.choice([self.ids.target, self.ids.spare])
        if name == "passage_id" and roll < 0.5:
            return self.ids.passage
        if name == "checkpoint_id" and roll < 0.5:
            return self.ids.checkpoint
        if name == "block_id" and roll < 0.5 and self.ids.block:
            return self.ids.block
        if roll < 0.03:
            return "x" * LONG
        if roll < 0.45:
            return rng.choice(ODD_STRINGS)
        alphabet = "abcXYZ09_-. \x00\u00e9\u4e2d\U0001f600"
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))

    def scalar(self, f: Any) -> Any:  # a FieldDescriptor (upb's or the pure one)
        rng = self.rng
        t = f.type
        if t == FieldDescriptor.TYPE_STRING:
            return self.string(f.name)
        if t == FieldDescriptor.TYPE_BYTES:
            return bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 16, 300])))
        if t == FieldDescriptor.TYPE_BOOL:
            return rng.random() < 0.5
        if t in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
            value = rng.choice(FLOAT_EDGES)
            return value if t == FieldDescriptor.TYPE_DOUBLE or not abs(value) > 3e38 else math.inf
        if t == FieldDescriptor.TYPE_ENUM:
            return rng.choice([v.number for v in f.enum_type.values] + [999])
        edges = INT_EDGES[t]
        if rng.random() < 0.6:
            return rng.choice(edges)
        return rng.randint(min(edges), max(edges))

    def fill(self, msg: Message, depth: int = 0) -> Message:
        rng = self.rng
        for f in msg.DESCRIPTOR.fields:
            if rng.random() < 0.35:
                continue
            if f.message_type is not None and f.message_type.GetOptions().map_entry:
                target = getattr(msg, f.name)
                value_field = f.message_type.fields_by_name["value"]
                for _ in range(rng.randint(0, 3)):
                    key = self.scalar(f.message_type.fields_by_name["key"])
                    if value_field.message_type is not None:
                        if depth < 3:
                            self.fill(target[key], depth + 1)
                    else:
                        target[key] = self.scalar(value_field)
            elif f.is_repeated:
                target = getattr(msg, f.name)
                for _ in range(rng.choice([0, 1, 2, 3, 40])):
                    if f.message_type is not None:
                        if depth < 3:
                            self.fill(target.add(), depth + 1)
                    else:
                        target.append(self.scalar(f))
            elif f.message_type is not None:
                if depth < 3:
                    self.fill(getattr(msg, f.name), depth + 1)
            else:
                setattr(msg, f.name, self.scalar(f))
        return msg


def _boundary(descriptor: Descriptor, ids: Ids, method: str) -> Iterator[Message]:
    """The empty message, then every field at each of a few extremes (strings, ints, floats together)."""
    cls = GetMessageClass(descriptor)
    yield cls()
    agent = ids.spare if method in SPARE_ONLY else ids.target

    def extreme(msg: Message, pick: Callable[[Any], Any], depth: int = 0) -> Message:
        for f in msg.DESCRIPTOR.fields:
            if f.message_type is not None and f.message_type.GetOptions().map_entry:
                continue
            if f.message_type is not None:
                if depth < 2:
                    sub = getattr(msg, f.name).add() if f.is_repeated else getattr(msg, f.name)
                    extreme(sub, pick, depth + 1)
                continue
            value = pick(f)
            if value is None:
                continue
            if f.is_repeated:
                getattr(msg, f.name).extend([value, value])
            else:
                setattr(msg, f.name, value)
        return msg

    def strings(value: str, keep_ids: bool) -> Callable[[Any], Any]:
        def pick(f: Any) -> Any:
            if f.type == FieldDescriptor.TYPE_STRING:
                return agent if keep_ids and f.name == "agent_id" else value
            return None
        return pick

    def numbers(which: int) -> Callable[[Any], Any]:
        def pick(f: Any) -> Any:
            if f.type in INT_EDGES:
                edges = INT_EDGES[f.type]
                return edges[which % len(edges)] if which >= 0 else min(edges)
            if f.type == FieldDescriptor.TYPE_DOUBLE:
                return [math.nan, math.inf, -math.inf][which % 3]
            if f.type == FieldDescriptor.TYPE_STRING and f.name == "agent_id":
                return agent
            return None
        return pick

    for value in ("", "x" * LONG, "\x00" * 64):
        yield extreme(cls(), strings(value, keep_ids=True))
        yield extreme(cls(), strings(value, keep_ids=False))
    for which in (-1, 1, 2, 3, 4):
        yield extreme(cls(), numbers(which))


def _nested(depth: int) -> bytes:
    """Field 1 as a length-delimited message, `depth` times inside itself (past protobuf's limit of 100)."""
    data = b""
    for _ in range(depth):
        data = b"\x0a" + _varint(len(data)) + data
    return data


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


RAW_PAYLOADS = [
    b"\xff", b"\x08", b"\x0a\xff\xff\xff\xff\x0f", b"\x0a\x02\xc3\x28", b"\x12\x03\xed\xa0\x80", b"\x0b",
    b"\x0f", b"\x0a\x05abc", b"\x80" * 11, _nested(150), bytes(range(256)),
]


@dataclass
class Outcome:
    ok: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    bad: list[str] = field(default_factory=list)

    def record(self, method: str, what: str, err: grpc.aio.AioRpcError | None) -> None:
        if err is None:
            self.ok += 1
            return
        code = err.code()
        self.rejected[code.name] = self.rejected.get(code.name, 0) + 1
        details = err.details() or ""
        if code in BAD_CODES:
            self.bad.append(f"{method} [{what}]: {code.name} {details[:300]!r}")
        elif not details.strip():
            self.bad.append(f"{method} [{what}]: {code.name} without a reason")
        elif any(marker in details for marker in TRANSPORT_MARKERS):  # the server's reason was lost on the way
            self.bad.append(f"{method} [{what}]: {code.name} {details[:300]!r}")


@pytest.fixture(scope="module")
async def fuzz_stack(nats_url: str, scripted_llm_server: Any,
                     tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    options = GatewayOptions(local_bootstrap=False, rate_per_second=100_000, rate_burst=100_000,
                             turn_timeout=20.0, max_document_bytes=4 << 20)
    runner = StackRunner(nats_url, tmp_path_factory.mktemp("fuzz"), scripted_llm_server, options=options)
    yield await runner.start()
    await runner.stop()


async def _ids(stack: Stack) -> Ids:
    target = await stack.create_agent(name="fuzz-target", persona="P", human="H")
    spare = await stack.create_agent(name="fuzz-spare")
    async with stack.http() as http:
        r = await http.post(f"/v1/agents/{target['id']}/archival", json={"text": "a passage to fuzz"})
        passage = r.json()["ids"][0]
        r = await http.post(f"/v1/agents/{target['id']}/checkpoints", json={"name": "fuzz"})
        checkpoint = r.json()["id"]
        r = await http.post("/v1/blocks", json={"label": "fuzzed", "value": "a shared block to fuzz"})
        block = r.json()["id"]
    return Ids(target["id"], spare["id"], passage, checkpoint, block)


async def _call(channel: grpc.aio.Channel, method: MethodDescriptor, payload: Any, auth: Any,
                serialize: Callable[[Any], bytes] | None = None) -> None:
    """One call of `method` with `payload` (a message, raw bytes, or a list of them when the client
    streams); the whole answer is read. Raises AioRpcError on a non-OK status."""
    path = method_path(method)
    out = GetMessageClass(method.output_type).FromString
    ser = serialize or (lambda m: m.SerializeToString())
    if method.client_streaming:
        items = payload if isinstance(payload, list) else [payload]
        make = channel.stream_stream if method.server_streaming else channel.stream_unary
        await client_streaming_call(make(path, request_serializer=ser, response_deserializer=out), items,
                                    metadata=auth, timeout=CALL_TIMEOUT, server_streaming=method.server_streaming)
    elif method.server_streaming:
        follow = isinstance(payload, agent_pb2.StreamEventsRequest) and payload.follow
        call = channel.unary_stream(path, request_serializer=ser, response_deserializer=out)
        try:
            async for _ in call(payload, metadata=auth, timeout=STREAM_TIMEOUT if follow else CALL_TIMEOUT):
                pass
        except grpc.aio.AioRpcError as err:
            if not (follow and err.code() == grpc.StatusCode.DEADLINE_EXCEEDED):
                raise
    else:
        await channel.unary_unary(path, request_serializer=ser, response_deserializer=out)(
            payload, metadata=auth, timeout=CALL_TIMEOUT)


def _random_payload(fuzzer: Fuzzer, method: MethodDescriptor) -> Any:
    cls = GetMessageClass(method.input_type)
    msg = fuzzer.fill(cls())
    if isinstance(msg, agent_pb2.StreamEventsRequest) and fuzzer.rng.random() < 0.85:
        msg.follow = False  # following costs STREAM_TIMEOUT each
    if not method.client_streaming:
        return msg
    chunks = [msg, *(fuzzer.fill(cls()) for _ in range(fuzzer.rng.randint(0, 3)))]
    if isinstance(msg, agent_pb2.PublicDocumentChunk) and fuzzer.rng.random() < 0.5:
        chunks[0] = agent_pb2.PublicDocumentChunk(header=agent_pb2.PublicDocumentHeader(
            agent_id=fuzzer.ids.target, filename=fuzzer.string("filename"), content_type=fuzzer.string("kind")))
    return chunks


async def _not_stuck(stack: Stack, agent_id: str) -> None:
    """A normal turn of the agent reaches its final event (or pauses: a fuzzed tool rule may ask for an
    approval, which is the agent waiting by its configuration, not stuck)."""
    stub = stack.agent_stub()
    events = [e async for e in stub.SendMessage(agent_pb2.SendMessageRequest(agent_id=agent_id, message="ping"),
                                                metadata=stack.grpc_auth(), timeout=30.0)]
    assert events and events[-1].type in ("turn_completed", "turn_failed", "turn_paused"), [e.type for e in events]


async def test_every_method_survives_random_boundary_and_raw_input(fuzz_stack: Stack) -> None:
    ids = await _ids(fuzz_stack)
    auth = fuzz_stack.grpc_auth()
    rng = random.Random(SEED)
    outcome = Outcome()
    counts: dict[str, int] = {}
    channel = client_channel(fuzz_stack.grpc_address)
    try:
        for method in agent_service_methods():
            fuzzer = Fuzzer(rng, ids, method.name)
            cases: list[tuple[str, Any, Callable[[Any], bytes] | None]] = []
            cases += [("boundary", m if not method.client_streaming else [m], None)
                      for m in _boundary(method.input_type, ids, method.name)]
            cases += [("random", _random_payload(fuzzer, method), None) for _ in range(RANDOM_PER_METHOD)]
            cases += [("raw", raw, lambda b: b) for raw in RAW_PAYLOADS]
            if method.client_streaming:  # a valid first message, then garbage
                first = GetMessageClass(method.input_type)().SerializeToString()
                cases += [("raw-after-valid", [first, raw], lambda b: b) for raw in RAW_PAYLOADS[:4]]
            for what, payload, ser in cases:
                try:
                    await _call(channel, method, payload, auth, ser)
                except grpc.aio.AioRpcError as err:
                    outcome.record(method.name, what, err)
                else:
                    outcome.record(method.name, what, None)
            counts[method.name] = len(cases)
    finally:
        await channel.close()
    print(f"gRPC fuzz: {sum(counts.values())} calls over {len(counts)} methods; ok {outcome.ok}, "
          f"rejected {outcome.rejected}")
    assert set(counts) == {m.name for m in agent_service_methods()}
    assert not outcome.bad, "\n".join(outcome.bad[:40])
    await _not_stuck(fuzz_stack, ids.target)
    async with fuzz_stack.http() as http:
        if (await http.get(f"/v1/agents/{ids.spare}")).status_code == 200:
            await _not_stuck(fuzz_stack, ids.spare)


async def test_huge_fields_are_rejected_with_their_reason(fuzz_stack: Stack) -> None:
    """Fields past each limit (a message over the turn limit, a 3 MB block, a document past the limit)."""
    ids = await _ids(fuzz_stack)
    stub = fuzz_stack.agent_stub()
    auth = fuzz_stack.grpc_auth()
    limit = fuzz_stack.gateway.options.max_message_chars
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in stub.SendMessage(agent_pb2.SendMessageRequest(agent_id=ids.target, message="m" * (limit + 1)),
                                        metadata=auth, timeout=CALL_TIMEOUT):
            pass
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and str(limit) in (err.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.UpdateMemoryBlock(agent_pb2.UpdateMemoryBlockRequest(agent_id=ids.target, label="human",
                                                                        value="v" * (3 << 20)),
                                     metadata=auth, timeout=CALL_TIMEOUT)
    assert err.value.code() not in BAD_CODES and err.value.details()
    before = await stub.GetAgent(agent_pb2.GetAgentRequest(agent_id=ids.target), metadata=auth)
    document_limit = fuzz_stack.gateway.options.max_document_bytes

    async def chunks() -> AsyncIterator[agent_pb2.PublicDocumentChunk]:
        yield agent_pb2.PublicDocumentChunk(header=agent_pb2.PublicDocumentHeader(
            agent_id=ids.target, filename="huge.txt", content_type="text/plain"))
        for _ in range(document_limit // (1 << 20) + 2):
            yield agent_pb2.PublicDocumentChunk(data=b"All work and no play. " * 47662)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in stub.UploadDocument(chunks(), metadata=auth, timeout=60.0):
            pass
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and str(document_limit) in (err.value.details() or "")
    after = await stub.GetAgent(agent_pb2.GetAgentRequest(agent_id=ids.target), metadata=auth)
    assert after.counts.archival == before.counts.archival
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.InsertArchival(agent_pb2.PublicInsertArchivalRequest(
            agent_id=ids.target, passages=[memory_pb2.PassageInput(text="p" * (3 << 20))]),
            metadata=auth, timeout=CALL_TIMEOUT)
    assert err.value.code() not in BAD_CODES and err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:  # one message past what the commit log can hold
        await stub.ImportRecall(agent_pb2.PublicImportRecallRequest(
            agent_id=ids.target, messages=[common_pb2.Message(role="user", text="fine"),
                                           common_pb2.Message(role="user", text="r" * (5 << 20))]),
            metadata=auth, timeout=CALL_TIMEOUT)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "at most" in (err.value.details() or "")
    await asyncio.wait_for(_not_stuck(fuzz_stack, ids.target), 40.0)

    async def recall_matches_the_state() -> bool:  # the valid first message was not imported alone
        state = await stub.GetAgent(agent_pb2.GetAgentRequest(agent_id=ids.target), metadata=auth)
        found = await stub.SearchRecall(agent_pb2.PublicSearchRecallRequest(agent_id=ids.target), metadata=auth)
        return found.total == state.counts.recall
    await eventually(recall_matches_the_state, message="recall holds exactly the agent's messages")
