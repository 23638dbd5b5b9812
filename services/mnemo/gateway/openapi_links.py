"""OpenAPI links from each route that creates a resource to the routes that take its id.

A `POST` answered with 201 on a collection path (`/v1/agents`, `/v1/agents/{agent_id}/checkpoints`)
creates one resource; every operation under that path with the next segment a parameter
(`/v1/agents/{agent_id}/...`) gets a link from the creator's 201 response, the new id taken from the
response body and the collection's own parameters from the creator's request. Derived from the
route table, so a new route is linked without anyone remembering to: clients (and stateful API
fuzzers) follow them to reach real resources instead of ids that do not exist.
"""

from __future__ import annotations

import re
from typing import Any

_PARAM = re.compile(r"^\{(\w+)\}$")
METHODS = ("get", "put", "post", "patch", "delete")
# Creators whose 201 body is not one resource with an `id` (a list of passages, a document's load).
NOT_SINGLE = ("/archival", "/documents", "/import")


def _pointer(param: str) -> str:
    """Where the new resource's id is in the creator's response: templates are named, the rest have ids."""
    return "$response.body#/name" if param == "name" else "$response.body#/id"


def creators(paths: dict[str, Any]) -> list[str]:
    """Collection paths with a `POST` that answers 201 with one resource."""
    return [path for path, ops in paths.items()
            if "201" in ops.get("post", {}).get("responses", {})
            and not _PARAM.match(path.rsplit("/", 1)[-1]) and not path.endswith(NOT_SINGLE)]


def links_of(paths: dict[str, Any], collection: str) -> dict[str, Any]:
    """The links of `collection`'s creator: one per operation that takes the created id."""
    own = re.findall(r"\{(\w+)\}", collection)
    links: dict[str, Any] = {}
    prefix = collection + "/"
    for path, ops in paths.items():
        if not path.startswith(prefix):
            continue
        match = _PARAM.match(path[len(prefix):].split("/", 1)[0])
        if match is None:
            continue
        param = match.group(1)
        for method in METHODS:
            op = ops.get(method)
            if op is None or "operationId" not in op:
                continue
            parameters = {name: f"$request.path.{name}" for name in own}
            parameters[param] = _pointer(param)
            links[op["operationId"]] = {"operationId": op["operationId"], "parameters": parameters}
    return links


def add_links(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with the links of every creator added to its 201 response (in place, and returned)."""
    paths = schema.get("paths", {})
    for collection in creators(paths):
        links = links_of(paths, collection)
        if links:
            paths[collection]["post"]["responses"]["201"].setdefault("links", {}).update(links)
    return schema
