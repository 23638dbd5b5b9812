"""Renders of a repeated message field that only grows at its end, reused from one call to the next.

An agent's queue comes whole with every step (in its state, then in the ChatRequest), and grows by a
few messages a step. Rendering it message by message (a cache lookup keyed by each message's bytes)
costs microseconds a message, which over a long conversation is most of a step's CPU. Here the
serialized bytes of the entries rendered last time are kept per key (an agent); when the new parent
message holds the same bytes at the same place, those entries are the same messages, so their
renders are reused and only the entries after them are rendered. Any other change (an edited or
removed message, messages evicted from the front) renders everything again.

Only the wire format is relied on: a message's entries of one repeated field are serialized together,
in order, after the fields with lower numbers (what upb's serializer does; checked while walking, and
anything unexpected renders everything again).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

R = TypeVar("R")
M = TypeVar("M")

_LEN = 2  # wire type of length-delimited fields (messages, strings, bytes)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _skip(data: bytes, pos: int, wire_type: int) -> int:
    """The offset after a field's value that starts at `pos`."""
    if wire_type == 0:
        return _varint(data, pos)[1]
    if wire_type == 1:
        return pos + 8
    if wire_type == _LEN:
        size, pos = _varint(data, pos)
        return pos + size
    if wire_type == 5:
        return pos + 4
    raise ValueError(f"unexpected wire type {wire_type}")


def entry_offset(data: bytes, field: int, index: int) -> int | None:
    """Offset of entry `index` of the repeated message field `field` in the serialized `data`, None
    when the field has no such entry."""
    pos, seen = 0, 0
    while pos < len(data):
        tag, after = _varint(data, pos)
        if tag >> 3 == field and tag & 7 == _LEN:
            if seen == index:
                return pos
            seen += 1
        elif seen:  # past the field's entries
            return None
        pos = _skip(data, after, tag & 7)
    return None


def _entries_end(data: bytes, pos: int, field: int, count: int) -> int | None:
    """The offset after `count` entries of `field` starting at `pos`; None if they are not there."""
    expected = field << 3 | _LEN
    for _ in range(count):
        if pos >= len(data):
            return None
        tag, after = _varint(data, pos)
        if tag != expected:
            return None
        pos = _skip(data, after, _LEN)
    return pos if pos <= len(data) else None


class GrowingFieldMemo(Generic[M, R]):
    """Per key, the renders of entries `skip`.. of repeated field `field`, and their bytes; at most
    `max_items` renders are kept over all keys (least recently used keys go first)."""

    def __init__(self, field: int, skip: int = 0, max_items: int = 50_000) -> None:
        self.field = field
        self.skip = skip
        self.max_items = max_items
        self._memo: OrderedDict[Hashable, tuple[bytes, list[R]]] = OrderedDict()
        self._items = 0
        self.reused = 0  # renders reused (figures, tests)

    def renders(self, key: Hashable, data: bytes, items: Sequence[M], render: Callable[[M], R]) -> list[R]:
        """The renders of `items[skip:]`, where `items` is the repeated field of the message whose
        serialization is `data` (render(item) for each, reusing what the key's last call rendered)."""
        count = len(items) - self.skip
        start = entry_offset(data, self.field, self.skip) if count > 0 else None
        if start is None:
            return [render(m) for m in items[self.skip:]]
        reused: list[R] = []
        pos = start
        known = self._memo.get(key)
        if known is not None and len(known[1]) <= count and data.startswith(known[0], start):
            reused, pos = known[1], start + len(known[0])
        end = _entries_end(data, pos, self.field, count - len(reused))
        if end is None:  # not laid out as expected: render everything, keep nothing
            self._forget(key)
            return [render(m) for m in items[self.skip:]]
        out = reused + [render(m) for m in items[self.skip + len(reused):]]
        self.reused += len(reused)
        self._keep(key, data[start:end], out)
        return out

    def _forget(self, key: Hashable) -> None:
        old = self._memo.pop(key, None)
        if old is not None:
            self._items -= len(old[1])

    def _keep(self, key: Hashable, prefix: bytes, renders: list[R]) -> None:
        self._forget(key)
        if len(renders) > self.max_items:
            return
        self._memo[key] = (prefix, renders)
        self._items += len(renders)
        while self._items > self.max_items:
            _, (_, dropped) = self._memo.popitem(last=False)
            self._items -= len(dropped)
