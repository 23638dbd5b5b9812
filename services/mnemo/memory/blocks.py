"""Core-memory blocks: labelled text with a character limit. Pure functions over AgentState."""

from __future__ import annotations

import re

from mnemo.common.errors import FailedPrecondition, InvalidArgument, NotFound
from mnemo.v1 import common_pb2

DEFAULT_LIMIT = 2000
MAX_LIMIT = 100_000
_LABEL_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_label(label: str) -> None:
    if not _LABEL_RE.fullmatch(label):
        raise InvalidArgument(f"invalid block label {label!r}: 1-64 characters of [A-Za-z0-9_-]")


def check_limit(label: str, value: str, limit: int) -> None:
    """FailedPrecondition when `value` does not fit in `limit` characters."""
    if len(value) > limit:
        raise FailedPrecondition(
            f"block {label!r} would hold {len(value)} characters; its limit is {limit} "
            f"({len(value) - limit} over)")


def find_block(state: common_pb2.AgentState, label: str) -> common_pb2.MemoryBlock | None:
    return next((b for b in state.blocks if b.label == label), None)


def make_block(label: str, value: str, limit: int = 0) -> common_pb2.MemoryBlock:
    check_label(label)
    limit = limit or DEFAULT_LIMIT
    if limit < 0 or limit > MAX_LIMIT:
        raise InvalidArgument(f"block limit must be between 1 and {MAX_LIMIT}, got {limit}")
    check_limit(label, value, limit)
    return common_pb2.MemoryBlock(label=label, value=value, limit=limit)


def set_block(state: common_pb2.AgentState, new: common_pb2.MemoryBlock) -> common_pb2.MemoryBlock:
    """Replace (or add) a block with `new`; the existing limit is kept when `new.limit` is 0."""
    current = find_block(state, new.label)
    limit = new.limit or (current.limit if current is not None else DEFAULT_LIMIT)
    block = make_block(new.label, new.value, limit)
    if current is None:
        state.blocks.append(block)
        return state.blocks[-1]
    current.CopyFrom(block)
    return current


def edit_block(state: common_pb2.AgentState, label: str, op: str, value: str, old: str = "",
               limit: int = 0) -> common_pb2.MemoryBlock:
    """Apply a user edit: `set` (default, creates the block), `append`, or `replace` `old` by `value`."""
    op = op or "set"
    current = find_block(state, label)
    if op == "set":
        return set_block(state, common_pb2.MemoryBlock(label=label, value=value, limit=limit))
    if current is None:
        raise NotFound(f"block {label!r} not found")
    if op == "append":
        new_value = f"{current.value}\n{value}" if current.value else value
    elif op == "replace":
        if not old:
            raise InvalidArgument("replace needs the text to replace (old)")
        if old not in current.value:
            raise InvalidArgument(f"text to replace not found in block {label!r}: {old!r}")
        new_value = current.value.replace(old, value)
    else:
        raise InvalidArgument(f"unknown op {op!r}: set, append or replace")
    return set_block(state, common_pb2.MemoryBlock(label=label, value=new_value, limit=limit or current.limit))
