"""The shared plumbing works against a real nats-server and a real gRPC server."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mnemo.common import subjects
from mnemo.common.grpcutil import GrpcServer, check_health
from mnemo.common.natsutil import connect, ensure_jetstream


async def test_jetstream_layout_is_idempotent(nats_url: str) -> None:
    nc = await connect(nats_url, "t")
    js = nc.jetstream()
    first = await ensure_jetstream(js)
    second = await ensure_jetstream(js)
    assert set(first) == set(second) == {subjects.KV_AGENTS, subjects.KV_LEASES, subjects.KV_TENANTS,
                                         subjects.KV_TEMPLATES, subjects.KV_CHECKPOINTS, subjects.KV_MCP_SERVERS,
                                         subjects.KV_BLOCKS, subjects.KV_PASSAGE_CLAIMS}
    info = await js.stream_info(subjects.TURNS_STREAM)
    assert info.config.retention == "workqueue" or getattr(info.config.retention, "value", None) == "workqueue"
    await nc.close()


async def test_grpc_server_health_and_reflection() -> None:
    server = GrpcServer("test", "127.0.0.1", 0)
    await server.start()
    try:
        assert await check_health(server.address)
        async with grpc.aio.insecure_channel(server.address) as ch:
            resp = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""))
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        await server.set_serving(False)
        assert not await check_health(server.address)
    finally:
        await server.stop(0)


def test_subject_tokens_refuse_separators_and_trailing_newlines() -> None:
    from mnemo.common.ids import is_token, new_id

    assert is_token(new_id("agent")) and is_token("local") and is_token("a" * 64)
    for bad in ["", "K\n", "a.b", "a b", "a*", "a>", "a" * 65, "ü"]:
        assert not is_token(bad), bad
