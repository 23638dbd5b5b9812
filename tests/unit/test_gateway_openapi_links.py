"""OpenAPI links: every route that takes a created resource's id is linked from its creator."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

from mnemo.gateway.app import create_app
from mnemo.gateway.openapi_links import add_links
from mnemo.gateway.options import GatewayOptions


def schema() -> dict[str, Any]:
    return create_app(SimpleNamespace(options=GatewayOptions())).openapi()  # type: ignore[arg-type]


def linked_operations(spec: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for ops in spec["paths"].values():
        for link in ops.get("post", {}).get("responses", {}).get("201", {}).get("links", {}).values():
            out.add(link["operationId"])
    return out


def test_every_operation_on_an_agent_is_linked_from_agent_creation() -> None:
    spec = schema()
    linked = linked_operations(spec)
    on_agents = {op["operationId"] for path, ops in spec["paths"].items() if path.startswith("/v1/agents/{agent_id}")
                 for op in ops.values() if isinstance(op, dict) and "operationId" in op}
    assert on_agents and on_agents <= linked


def test_links_take_the_new_id_from_the_body_and_the_parent_ids_from_the_request() -> None:
    spec = schema()
    links = spec["paths"]["/v1/agents/{agent_id}/checkpoints"]["post"]["responses"]["201"]["links"]
    (restore,) = [link for op_id, link in links.items() if op_id.startswith("restore_checkpoint")]
    assert restore["parameters"] == {"agent_id": "$request.path.agent_id", "checkpoint_id": "$response.body#/id"}
    personas = spec["paths"]["/v1/personas"]["post"]["responses"]["201"]["links"]
    assert all(link["parameters"] == {"name": "$response.body#/name"} for link in personas.values())


def test_a_new_route_under_a_collection_is_linked_without_a_table() -> None:
    spec: dict[str, Any] = {"paths": {
        "/v1/things": {"post": {"operationId": "create", "responses": {"201": {}}}},
        "/v1/things/{thing_id}/parts": {"get": {"operationId": "parts", "responses": {"200": {}}}},
        "/v1/other/{x}": {"get": {"operationId": "other", "responses": {"200": {}}}},
    }}
    add_links(spec)
    assert spec["paths"]["/v1/things"]["post"]["responses"]["201"]["links"] == {
        "parts": {"operationId": "parts", "parameters": {"thing_id": "$response.body#/id"}}}


def test_every_path_parameter_of_the_public_api_is_either_linked_or_not_created_by_a_route() -> None:
    spec = schema()
    linked_params = {param for ops in spec["paths"].values()
                     for link in ops.get("post", {}).get("responses", {}).get("201", {}).get("links", {}).values()
                     for param in link["parameters"]}
    params = {p for path in spec["paths"] for p in re.findall(r"\{(\w+)\}", path)}
    # ids no route creates as one resource with a 201: a core memory label (made with the agent), a turn
    # (a message's 200/202), a passage (archival inserts answer a list), an API key (its secret is shown once)
    assert params - linked_params == {"label", "turn_id", "passage_id", "key_id"}
