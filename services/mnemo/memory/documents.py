"""Document ingestion into archival memory: text, Markdown and PDF, streamed.

Text and Markdown are decoded and chunked as bytes arrive; PDF is spooled to a temporary file (a PDF
can only be parsed with random access) and read page by page. Chunks are embedded and inserted in
batches as they are produced, so a document of tens of MB never sits whole in memory.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import mimetypes
import tempfile
from collections.abc import AsyncIterator
from typing import IO, TYPE_CHECKING

from mnemo.common import ids
from mnemo.common.errors import InvalidArgument
from mnemo.memory.chunking import DEFAULT_CHUNK_CHARS, DEFAULT_OVERLAP_CHARS, Chunker
from mnemo.memory.memories import Memories
from mnemo.memory.search.base import PassageFilter
from mnemo.memory.store import check_ref
from mnemo.v1 import common_pb2, memory_pb2

if TYPE_CHECKING:
    from pypdf import PdfReader

log = logging.getLogger(__name__)

INSERT_BATCH = 32                  # passages per embed + insert
UNDO_BATCH = 1000                  # passage ids per delete when an unfinished document is taken back
MAX_DOCUMENT_BYTES = 1 << 30       # 1 GiB
MAX_CHUNK_CHARS = 20_000
PROGRESS_EVERY_BYTES = 1 << 20     # progress while a PDF is being received
TEXT_TYPES = ("text/plain", "text/markdown")
PDF = "application/pdf"


def content_type_of(header: memory_pb2.DocumentHeader) -> str:
    ctype = (header.content_type or "").split(";")[0].strip().lower()
    if not ctype:
        name = header.filename.lower()
        if name.endswith((".md", ".markdown")):
            ctype = "text/markdown"
        elif name.endswith(".pdf"):
            ctype = PDF
        else:
            ctype = mimetypes.guess_type(name)[0] or "text/plain"
    if ctype == "text/x-markdown":
        ctype = "text/markdown"
    if ctype not in (*TEXT_TYPES, PDF):
        raise InvalidArgument(f"unsupported content type {ctype!r}: text/plain, text/markdown or application/pdf")
    return ctype


class DocumentIngest:
    """One IngestDocument call: header first, then bytes; yields progress."""

    def __init__(self, memories: Memories) -> None:
        self.memories = memories
        self.ref: common_pb2.AgentRef | None = None

    async def run(self, chunks: AsyncIterator[memory_pb2.DocumentChunk]) -> AsyncIterator[memory_pb2.IngestProgress]:
        first = await anext(aiter(chunks), None)
        if first is None or not first.HasField("header"):
            raise InvalidArgument("the first message must carry the document header")
        header = first.header
        self.ref = header.ref
        check_ref(header.ref.tenant_id, header.ref.agent_id)
        state = await self.memories.agents.store.get(header.ref.tenant_id, header.ref.agent_id)
        ctype = content_type_of(header)
        size = header.chunk_chars or DEFAULT_CHUNK_CHARS
        overlap = header.overlap_chars or min(DEFAULT_OVERLAP_CHARS, size // 5)
        if size > MAX_CHUNK_CHARS:
            raise InvalidArgument(f"chunk_chars must be at most {MAX_CHUNK_CHARS}")
        try:
            chunker = Chunker(size, overlap)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None
        source_id = header.source_id or ids.new_id("doc")
        if len(source_id) > 100:
            raise InvalidArgument("source_id longer than 100 characters")
        batcher = _Batcher(self.memories, state, header, ctype, source_id)
        try:
            if ctype == PDF:
                async for progress in self._pdf(chunks, chunker, batcher):
                    yield progress
            else:
                decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
                async for data in _data(chunks, batcher):
                    for text in chunker.feed(decoder.decode(data)):
                        batcher.add(text)
                    if batcher.full():
                        yield await batcher.flush()
                for text in chunker.feed(decoder.decode(b"", final=True)):
                    batcher.add(text)
            for text in chunker.finish():
                batcher.add(text)
            await batcher.flush()
        except BaseException:
            # A document that did not arrive whole (too large, the upload cut, a bad part, the call
            # cancelled) leaves none of its passages behind, even a batch whose insert was under way.
            await asyncio.shield(asyncio.ensure_future(batcher.undo()))
            raise
        done = batcher.progress()
        done.done = True
        yield done

    async def _pdf(self, chunks: AsyncIterator[memory_pb2.DocumentChunk], chunker: Chunker,
                   batcher: _Batcher) -> AsyncIterator[memory_pb2.IngestProgress]:
        with tempfile.TemporaryFile(prefix="mnemo-doc-", suffix=".pdf") as spool:
            last_report = 0
            async for data in _data(chunks, batcher):
                await asyncio.to_thread(spool.write, data)
                if batcher.bytes_read - last_report >= PROGRESS_EVERY_BYTES:
                    last_report = batcher.bytes_read
                    yield batcher.progress()
            spool.flush()
            pages = _PdfPages(spool)
            await asyncio.to_thread(pages.open)
            while True:
                text = await asyncio.to_thread(pages.next_text)
                if text is None:
                    break
                for piece in chunker.feed(text + "\n\n"):
                    batcher.add(piece)
                if batcher.full():
                    yield await batcher.flush()


async def _data(chunks: AsyncIterator[memory_pb2.DocumentChunk], batcher: _Batcher) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        if chunk.HasField("header"):
            raise InvalidArgument("only the first message may carry a header")
        batcher.bytes_read += len(chunk.data)
        if batcher.bytes_read > MAX_DOCUMENT_BYTES:
            raise InvalidArgument(f"document larger than {MAX_DOCUMENT_BYTES} bytes")
        yield chunk.data


class _PdfPages:
    """Text of a spooled PDF, one page at a time (pypdf reads pages lazily)."""

    def __init__(self, spool: IO[bytes]) -> None:
        self.spool = spool
        self.reader: PdfReader | None = None
        self.index = 0

    def open(self) -> None:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError

        self.spool.seek(0)
        try:
            self.reader = reader = PdfReader(self.spool)
            _ = len(reader.pages)
        except (PdfReadError, ValueError, OSError) as exc:
            raise InvalidArgument(f"not a readable PDF: {exc}") from None

    def next_text(self) -> str | None:
        assert self.reader is not None
        if self.index >= len(self.reader.pages):
            return None
        page = self.reader.pages[self.index]
        self.index += 1
        try:
            return page.extract_text() or ""
        except Exception as exc:
            log.warning("pdf page %d: no text (%s)", self.index, exc)
            return ""


class _Batcher:
    """Collects chunks and inserts them as passages in batches."""

    def __init__(self, memories: Memories, state: common_pb2.AgentState, header: memory_pb2.DocumentHeader,
                 ctype: str, source_id: str) -> None:
        self.memories = memories
        self.state = state
        self.header = header
        self.ctype = ctype
        self.source_id = source_id
        self.pending: list[memory_pb2.PassageInput] = []
        self.position = 0
        self.inserted = 0
        self.started = 0   # passages whose insert began (some may be in the index though it failed)
        self.bytes_read = 0

    def add(self, text: str) -> None:
        meta = {"content_type": self.ctype}
        if self.header.filename:
            meta["filename"] = self.header.filename
        self.pending.append(memory_pb2.PassageInput(
            id=f"{self.source_id}-{self.position}", text=text, tags=self.header.tags, source_id=self.source_id,
            position=self.position, metadata=meta))
        self.position += 1

    def full(self) -> bool:
        return len(self.pending) >= INSERT_BATCH

    async def flush(self) -> memory_pb2.IngestProgress:
        while self.pending:
            batch, self.pending = self.pending[:INSERT_BATCH], self.pending[INSERT_BATCH:]
            self.started += len(batch)
            # A document's chunks are its parts, in order (read back by position, deleted by source):
            # they are never merged with one another or with other passages.
            await self.memories.insert_passages(self.state, batch, dedup="off")
            self.inserted += len(batch)
        return self.progress()

    async def undo(self) -> None:
        """Delete the passages this ingestion inserted or began to insert: by source when the source
        id is this ingestion's own, else by id (a caller's source may hold passages of before)."""
        if not self.started:
            return
        ref = self.header.ref
        backend = self.memories.backend
        try:
            if not self.header.source_id:
                await backend.delete_passages(ref.tenant_id, ref.agent_id, PassageFilter(source_id=self.source_id))
                return
            for first in range(0, self.started, UNDO_BATCH):
                ids = [f"{self.source_id}-{i}" for i in range(first, min(first + UNDO_BATCH, self.started))]
                await backend.delete_passages(ref.tenant_id, ref.agent_id, PassageFilter(ids=ids))
        except Exception as exc:
            log.warning("passages of the unfinished document %s not deleted: %s", self.source_id, exc)

    def progress(self) -> memory_pb2.IngestProgress:
        return memory_pb2.IngestProgress(source_id=self.source_id, bytes_read=self.bytes_read,
                                         passages=self.inserted)
