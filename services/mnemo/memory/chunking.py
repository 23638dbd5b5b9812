"""Streaming text chunker: fixed-size chunks with overlap, cut on paragraph / sentence / word
boundaries where possible. Text is fed piece by piece; the whole document never sits in memory."""

from __future__ import annotations

import re
from collections.abc import Iterator

DEFAULT_CHUNK_CHARS = 1000
DEFAULT_OVERLAP_CHARS = 200
_SENTENCE_END = re.compile(r"[.!?][\"')\]]?\s")


class Chunker:
    """feed(text) / finish() yield chunks of at most `size` characters overlapping by ~`overlap`."""

    def __init__(self, size: int = DEFAULT_CHUNK_CHARS, overlap: int = DEFAULT_OVERLAP_CHARS) -> None:
        if size < 50:
            raise ValueError(f"chunk size must be at least 50 characters, got {size}")
        if overlap < 0 or overlap >= size // 2:
            raise ValueError(f"overlap must be between 0 and half the chunk size ({size // 2}), got {overlap}")
        self.size = size
        self.overlap = overlap
        self._buf = ""
        self._carried = 0  # leading characters of _buf already emitted (the overlap)

    def feed(self, text: str) -> Iterator[str]:
        self._buf += text
        while len(self._buf) > self.size:
            yield from self._emit(self._cut())

    def finish(self) -> Iterator[str]:
        if len(self._buf) > self._carried and self._buf[self._carried:].strip():
            chunk = self._buf.strip()
            if chunk:
                yield chunk
        self._buf = ""
        self._carried = 0

    def _cut(self) -> int:
        """Where to end the next chunk: the last paragraph, sentence or word end in its second half."""
        window = self._buf[:self.size]
        floor = max(self._carried + 1, self.size // 2)
        para = window.rfind("\n\n", floor)
        if para >= floor:
            return para + 2
        ends = [m.end() for m in _SENTENCE_END.finditer(window, floor)]
        if ends:
            return ends[-1]
        line = window.rfind("\n", floor)
        if line >= floor:
            return line + 1
        space = window.rfind(" ", floor)
        if space >= floor:
            return space + 1
        return self.size

    def _emit(self, cut: int) -> Iterator[str]:
        chunk = self._buf[:cut].strip()
        start = max(cut - self.overlap, 0)
        if self.overlap and start > 0:
            # Start the overlap at a sentence start when one is near, else on a word boundary.
            sentence = _SENTENCE_END.search(self._buf, start, cut)
            if sentence is not None and sentence.end() < cut - self.overlap // 4:
                start = sentence.end()
            else:
                space = self._buf.find(" ", start, cut)
                if space != -1:
                    start = space + 1
        else:
            start = cut
        self._buf = self._buf[start:]
        self._carried = cut - start
        if chunk:
            yield chunk
