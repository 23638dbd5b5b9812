"""Persona / human / preset templates in the KV bucket `mnemo_templates`, key `<tenant>.<kind>.<name>`.

Shipped defaults (files in `defaults/`) are readable by every tenant; a tenant's own template of the
same name wins.
"""

from __future__ import annotations

from importlib import resources

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from mnemo.common import ids
from mnemo.common.errors import AlreadyExists, InvalidArgument, NotFound
from mnemo.common.natsutil import live_entries
from mnemo.memory.store import check_ref
from mnemo.v1 import common_pb2

KINDS = ("persona", "human", "preset")
DEFAULT_PERSONA = "companion"
DEFAULT_HUMAN = "basic"
DEFAULT_PRESET = "default"
_SHIPPED = {("persona", DEFAULT_PERSONA), ("human", DEFAULT_HUMAN), ("preset", DEFAULT_PRESET)}
MAX_TEMPLATE_CHARS = 100_000


def shipped(kind: str, name: str) -> common_pb2.Template | None:
    """A template shipped with Mnemo, or None."""
    if (kind, name) not in _SHIPPED:
        return None
    text = resources.files("mnemo.memory").joinpath("defaults", f"{kind}_{name}.txt").read_text("utf-8")
    return common_pb2.Template(kind=kind, name=name, text=text.strip())


def _check(kind: str, name: str | None = None) -> None:
    if kind not in KINDS:
        raise InvalidArgument(f"unknown template kind {kind!r}: one of {', '.join(KINDS)}")
    if name is not None and not ids.is_token(name):
        raise InvalidArgument(f"invalid template name {name!r}: 1-64 characters of [A-Za-z0-9_-]")


class TemplateStore:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def get(self, tenant_id: str, kind: str, name: str) -> common_pb2.Template:
        check_ref(tenant_id)
        _check(kind, name)
        try:
            entry = await self.kv.get(f"{tenant_id}.{kind}.{name}")
            if entry.value:
                return common_pb2.Template.FromString(entry.value)
        except KeyNotFoundError:
            pass
        found = shipped(kind, name)
        if found is None:
            raise NotFound(f"{kind} template {name!r} not found")
        return found

    async def list(self, tenant_id: str, kind: str = "") -> list[common_pb2.Template]:
        check_ref(tenant_id)
        if kind:
            _check(kind)
        by_key: dict[tuple[str, str], common_pb2.Template] = {}
        for k, n in sorted(_SHIPPED):
            if not kind or k == kind:
                by_key[(k, n)] = shipped(k, n)  # type: ignore[assignment]
        async for entry in live_entries(self.kv, f"{tenant_id}.{kind or '*'}.*"):  # each has a value
            t = common_pb2.Template.FromString(entry.value or b"")
            by_key[(t.kind, t.name)] = t
        return [by_key[k] for k in sorted(by_key)]

    async def put(self, tenant_id: str, template: common_pb2.Template,
                  create_only: bool = False) -> common_pb2.Template:
        check_ref(tenant_id)
        _check(template.kind, template.name)
        if len(template.text) > MAX_TEMPLATE_CHARS:
            raise InvalidArgument(
                f"template text is {len(template.text)} characters; the limit is {MAX_TEMPLATE_CHARS}")
        t = common_pb2.Template()
        t.CopyFrom(template)
        t.updated_at = ids.now_iso()
        key = f"{tenant_id}.{t.kind}.{t.name}"
        if create_only:
            if shipped(t.kind, t.name) is not None:
                raise AlreadyExists(f"{t.kind} template {t.name!r} already exists (shipped default)")
            try:
                await self.kv.create(key, t.SerializeToString())
            except KeyWrongLastSequenceError:
                raise AlreadyExists(f"{t.kind} template {t.name!r} already exists") from None
        else:
            await self.kv.put(key, t.SerializeToString())
        return t

    async def delete(self, tenant_id: str, kind: str, name: str) -> None:
        check_ref(tenant_id)
        _check(kind, name)
        key = f"{tenant_id}.{kind}.{name}"
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            entry = None
        if entry is None or not entry.value:
            if shipped(kind, name) is not None:
                raise InvalidArgument(f"{kind} template {name!r} is a shipped default and cannot be deleted")
            raise NotFound(f"{kind} template {name!r} not found")
        await self.kv.purge(key)
