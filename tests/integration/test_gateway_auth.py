"""Tenants, keys, isolation and limits of the gateway over the real stack."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from mnemo.common.config import Settings
from mnemo.gateway.options import GatewayOptions
from mnemo.gateway.server import GatewayService
from tests.fixtures_stack import ADMIN_KEY, Stack, module_stack  # noqa: F401


async def test_requests_need_a_valid_key(module_stack: Stack) -> None:
    async with module_stack.http(api_key="") as http:
        r = await http.get("/v1/agents")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    for bad in ("mk-not-a-real-key", "garbage", ADMIN_KEY):
        async with module_stack.http(api_key=bad) as http:
            assert (await http.get("/v1/agents")).status_code == 401
    async with httpx.AsyncClient(base_url=module_stack.base_url,
                                 headers={"Authorization": "Basic abc"}) as http:
        assert (await http.get("/v1/agents")).status_code == 401


async def test_admin_routes_and_key_revocation(module_stack: Stack) -> None:
    async with module_stack.http() as tenant_http:  # a tenant key is not an admin key
        assert (await tenant_http.post("/v1/admin/tenants", json={"name": "x"})).status_code == 403
    async with module_stack.http(api_key=ADMIN_KEY) as admin:
        assert (await admin.post("/v1/admin/tenants", json={})).status_code == 422
        r = await admin.post("/v1/admin/tenants", json={"name": "acme"})
        assert r.status_code == 201 and r.json()["id"]
        tenant_id = r.json()["id"]
        r = await admin.post(f"/v1/admin/tenants/{tenant_id}/keys", json={})
        assert r.status_code == 201
        key, key_id = r.json()["key"], r.json()["id"]
        assert key.startswith("mk-") and len(key) > 40
        assert (await admin.post("/v1/admin/tenants/tenant-nope/keys", json={})).status_code == 404

        async with module_stack.http(api_key=key) as http:
            assert (await http.get("/v1/agents")).status_code == 200
            assert (await admin.delete(f"/v1/admin/keys/{key_id}")).status_code == 204
            assert (await http.get("/v1/agents")).status_code == 401
        assert (await admin.delete(f"/v1/admin/keys/{key_id}")).status_code == 404
    # The key is stored only hashed.
    kv = module_stack.gateway.context.tenants.kv
    names = await _all_keys(kv)
    assert any(n.startswith("hash.") for n in names) and any(n.startswith("tenant.") for n in names)
    for name in names:
        entry = await kv.get(name)
        assert key.encode() not in (entry.value or b"")


async def _all_keys(kv) -> list[str]:  # type: ignore[no-untyped-def]
    """kv.keys(), which raises NoKeysError when its watcher times out on a loaded machine: retried."""
    from nats.js.errors import NoKeysError

    for attempt in range(5):
        try:
            return await kv.keys()
        except NoKeysError:
            if attempt == 4:
                raise
    return []


async def test_tenant_isolation_matrix(module_stack: Stack) -> None:
    """Every agent-scoped route with another tenant's key is 404, and nothing changes."""
    owner = await module_stack.create_agent(name="owned", persona="P", human="H")
    agent_id = owner["id"]
    async with module_stack.http() as http:
        r = await http.post(f"/v1/agents/{agent_id}/archival", json={"text": "secret passage"})
        passage_id = r.json()["ids"][0]
        events_before = (await http.get(f"/v1/agents/{agent_id}/events")).json()["events"]
    other = await module_stack.new_tenant("intruder")
    base = f"/v1/agents/{agent_id}"
    routes: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", base, {}),
        ("PATCH", base, {"json": {"name": "pwned"}}),
        ("DELETE", base, {}),
        ("POST", f"{base}/messages", {"json": {"message": "hi"}}),
        ("POST", f"{base}/messages/stream", {"json": {"message": "hi"}}),
        ("GET", f"{base}/events", {"params": {"after": 0}}),
        ("GET", f"{base}/events", {"params": {"follow": "true"}}),
        ("POST", f"{base}/messages/pop", {"json": {"count": 1}}),
        ("POST", f"{base}/messages/rewrite", {"json": {"text": "pwned"}}),
        ("GET", f"{base}/memory", {}),
        ("GET", f"{base}/memory/human", {}),
        ("PUT", f"{base}/memory/human", {"json": {"value": "pwned"}}),
        ("GET", f"{base}/recall", {"params": {"query": "x"}}),
        ("POST", f"{base}/recall", {"json": {"messages": [{"role": "user", "text": "pwned"}]}}),
        ("GET", f"{base}/archival", {}),
        ("POST", f"{base}/archival", {"json": {"text": "pwned"}}),
        ("DELETE", f"{base}/archival/{passage_id}", {}),
        ("POST", f"{base}/documents", {"files": {"file": ("x.txt", b"pwned", "text/plain")}}),
        ("POST", f"{base}/documents", {"params": {"filename": "x.txt"}, "content": b"pwned"}),
        ("POST", f"{base}/checkpoints", {"json": {"name": "x"}}),
        ("GET", f"{base}/checkpoints", {}),
        ("POST", f"{base}/checkpoints/any/restore", {}),
        ("GET", f"{base}/export", {}),
        ("POST", "/v1/chat/completions", {"json": {"model": f"agent:{agent_id}",
                                                    "messages": [{"role": "user", "content": "hi"}]}}),
    ]
    async with module_stack.http(api_key=other.api_key) as intruder:
        for method, url, kwargs in routes:
            r = await intruder.request(method, url, **kwargs)
            assert r.status_code == 404, (method, url, r.status_code, r.text)
            assert "secret" not in r.text
        listed = (await intruder.get("/v1/agents")).json()
        assert agent_id not in [a["id"] for a in listed["agents"]]

    async with module_stack.http() as http:
        agent = (await http.get(base)).json()
        assert agent["name"] == "owned"
        assert {b["label"]: b["value"] for b in agent["blocks"]} == {"persona": "P", "human": "H"}
        hits = (await http.get(f"{base}/archival")).json()["hits"]
        assert [h["passage"]["text"] for h in hits] == ["secret passage"]
        assert (await http.get(f"{base}/events")).json()["events"] == events_before
        assert agent["counts"]["queue"] == owner["counts"]["queue"]


async def test_body_and_message_limits(module_stack: Stack) -> None:
    agent_id = (await module_stack.create_agent())["id"]
    limit = module_stack.gateway.options.max_body_bytes
    async with module_stack.http() as http:
        r = await http.post(f"/v1/agents/{agent_id}/archival", json={"text": "x" * (limit + 10)})
        assert r.status_code == 413

        async def chunked() -> Any:  # no Content-Length: counted while streaming
            for _ in range(limit // 65536 + 2):
                yield b"x" * 65536
        r = await http.post(f"/v1/agents/{agent_id}/archival", content=chunked(),
                            headers={"Content-Type": "application/json"})
        assert r.status_code == 413

        too_long = "y" * (module_stack.gateway.options.max_message_chars + 1)
        r = await http.post(f"/v1/agents/{agent_id}/messages", json={"message": too_long})
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["body", "message"]


async def test_rate_limit_429_with_retry_after(module_stack: Stack, nats_url: str, tmp_path: Path) -> None:
    gateway = GatewayService(Settings(nats_url=nats_url, home=tmp_path, http_port=0, grpc_port=0),
                             memory_target=module_stack.memory.address,
                             options=GatewayOptions(rate_per_second=0.2, rate_burst=3, local_bootstrap=False))
    await gateway.start()
    try:
        async with httpx.AsyncClient(base_url=gateway.base_url,
                                     headers={"Authorization": f"Bearer {module_stack.api_key}"}) as http:
            statuses = [(await http.get("/v1/agents")).status_code for _ in range(3)]
            assert statuses == [200, 200, 200]
            r = await http.get("/v1/agents")
            assert r.status_code == 429
            assert int(r.headers["retry-after"]) >= 1
            # Another tenant has its own bucket.
            other = await module_stack.new_tenant()
            r = await http.get("/v1/agents", headers={"Authorization": f"Bearer {other.api_key}"})
            assert r.status_code == 200
    finally:
        await gateway.stop()


async def test_limits_per_tenant_set_by_the_admin_and_none_for_the_local_tenant(
        module_stack: Stack, nats_url: str, tmp_path: Path) -> None:
    gateway = GatewayService(Settings(nats_url=nats_url, home=tmp_path, http_port=0, grpc_port=0, admin_key=ADMIN_KEY),
                             memory_target=module_stack.memory.address,
                             options=GatewayOptions(rate_per_second=0.2, rate_burst=2, local_bootstrap=True,
                                                    key_cache_ttl=0.0))
    await gateway.start()
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    try:
        local_key = (tmp_path / "api_key").read_text().strip()
        async with httpx.AsyncClient(base_url=gateway.base_url) as http:
            # The embedded stack's own tenant is not throttled by the defaults (nobody shares it).
            statuses = {(await http.get("/v1/agents", headers={"Authorization": f"Bearer {local_key}"})).status_code
                        for _ in range(20)}
            assert statuses == {200}
            assert (await http.get("/v1/admin/tenants/local", headers=admin)).json()["limits"] == {
                "rate_per_second": 0.0, "burst": 1, "source": "local"}
            # Another tenant gets the defaults, then its own limits from the admin.
            other = await module_stack.new_tenant()
            mine = {"Authorization": f"Bearer {other.api_key}"}
            assert [(await http.get("/v1/agents", headers=mine)).status_code for _ in range(3)] == [200, 200, 429]
            r = await http.put(f"/v1/admin/tenants/{other.id}/limits", headers=admin,
                               json={"rate_per_second": 1000, "burst": 50})
            assert r.status_code == 200 and r.json()["limits"]["source"] == "tenant"
            assert {(await http.get("/v1/agents", headers=mine)).status_code for _ in range(30)} == {200}
            # The local tenant can be limited too; a null rate puts a tenant back on the defaults.
            r = await http.put("/v1/admin/tenants/local/limits", headers=admin,
                               json={"rate_per_second": 0.5, "burst": 1})
            assert r.json()["limits"] == {"rate_per_second": 0.5, "burst": 1, "source": "tenant"}
            local = {"Authorization": f"Bearer {local_key}"}
            first, second = (await http.get("/v1/agents", headers=local)), (await http.get("/v1/agents", headers=local))
            assert first.status_code == 200 and second.status_code == 429 and int(second.headers["retry-after"]) >= 1
            r = await http.put("/v1/admin/tenants/local/limits", headers=admin, json={"rate_per_second": None})
            assert r.json()["limits"]["source"] == "local"
            # Bad bodies and unknown tenants are refused with a reason; tenant keys cannot do this.
            assert (await http.put("/v1/admin/tenants/local/limits", headers=admin,
                                   json={"rate_per_second": -1})).status_code == 422
            assert (await http.put("/v1/admin/tenants/nope/limits", headers=admin,
                                   json={"rate_per_second": 1})).status_code == 404
            assert (await http.get("/v1/admin/tenants/local", headers=local)).status_code == 403
    finally:
        await gateway.stop()


async def test_local_bootstrap_writes_a_private_key(module_stack: Stack, nats_url: str, tmp_path: Path) -> None:
    def make() -> GatewayService:
        return GatewayService(Settings(nats_url=nats_url, home=tmp_path, http_port=0, grpc_port=0,
                                       admin_key=ADMIN_KEY),
                              memory_target=module_stack.memory.address,
                              options=GatewayOptions(local_bootstrap=True))
    key_file = tmp_path / "api_key"
    gateway = make()
    await gateway.start()
    try:
        key = key_file.read_text().strip()
        assert key.startswith("mk-") and oct(os.stat(key_file).st_mode & 0o777) == "0o600"
        async with httpx.AsyncClient(base_url=gateway.base_url, headers={"Authorization": f"Bearer {key}"}) as http:
            assert (await http.get("/v1/agents")).status_code == 200
    finally:
        await gateway.stop()
    gateway = make()  # a restart keeps a valid key
    await gateway.start()
    try:
        assert key_file.read_text().strip() == key
    finally:
        await gateway.stop()
    key_file.write_text("mk-revoked-or-bogus\n")  # an invalid key is replaced
    gateway = make()
    await gateway.start()
    try:
        fresh = key_file.read_text().strip()
        assert fresh != key and fresh != "mk-revoked-or-bogus"
        assert await gateway.context.tenants.resolve(fresh) is not None
    finally:
        await gateway.stop()


async def test_keys_never_logged(module_stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with module_stack.http() as http:
        await http.get("/v1/agents")
        await http.get("/v1/agents/agent-nope")
        await http.post("/v1/agents", json={"bad": 1})
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert module_stack.api_key not in text


async def test_document_and_import_size_limit(module_stack: Stack, nats_url: str, tmp_path: Path) -> None:
    gateway = GatewayService(Settings(nats_url=nats_url, home=tmp_path, http_port=0, grpc_port=0),
                             memory_target=module_stack.memory.address,
                             options=GatewayOptions(max_document_bytes=4096, local_bootstrap=False))
    await gateway.start()
    try:
        agent_id = (await module_stack.create_agent())["id"]
        async with httpx.AsyncClient(base_url=gateway.base_url,
                                     headers={"Authorization": f"Bearer {module_stack.api_key}"}) as http:
            r = await http.post(f"/v1/agents/{agent_id}/documents",
                                files={"file": ("big.txt", b"a" * 10_000, "text/plain")})
            assert r.status_code == 413

            async def streamed() -> Any:  # no Content-Length: stopped while streaming to memory
                for _ in range(10):
                    yield b"word " * 200
            r = await http.post(f"/v1/agents/{agent_id}/documents", params={"filename": "big.txt"},
                                content=streamed(), headers={"Content-Type": "text/plain"})
            assert r.status_code == 413, r.text
            r = await http.post("/v1/agents/import", content=streamed(), headers={"Content-Type": "application/json"})
            assert r.status_code == 413, r.text
            r = await http.post(f"/v1/agents/{agent_id}/documents", params={"filename": "small.txt"},
                                content=b"small enough", headers={"Content-Type": "text/plain"})
            assert r.status_code == 201, r.text
    finally:
        await gateway.stop()
