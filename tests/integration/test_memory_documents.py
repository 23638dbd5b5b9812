"""Document ingestion through the memory gRPC API: text, Markdown, PDF, progress, chunk overlap."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from mnemo.v1 import common_pb2, memory_pb2
from tests.fixtures_memory import llm_service, memory_service, memory_stub  # noqa: F401
from tests.helpers import eventually

Ref = common_pb2.AgentRef


def make_pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF with one line of Helvetica text per page."""
    objects: list[bytes] = []
    n = len(pages)
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode())
    font_id = 3 + 2 * n
    for i, text in enumerate(pages):
        content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
                       f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode())
        objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


async def ingest(stub, header: memory_pb2.DocumentHeader, data: bytes, piece: int = 4096):  # type: ignore[no-untyped-def]
    async def requests():  # type: ignore[no-untyped-def]
        yield memory_pb2.DocumentChunk(header=header)
        for i in range(0, len(data), piece):
            yield memory_pb2.DocumentChunk(data=data[i:i + piece])
    return [p async for p in stub.IngestDocument(requests())]


async def new_ref(stub) -> Ref:  # type: ignore[no-untyped-def]
    state = await stub.CreateAgent(memory_pb2.CreateAgentRequest(tenant_id="docs"))
    return Ref(tenant_id="docs", agent_id=state.config.id)


async def test_text_document_chunks_with_overlap_and_progress(memory_stub):
    ref = await new_ref(memory_stub)
    paragraphs = [f"Paragraph {i} mentions marker{i}x. " + " ".join(f"The keeper counted wave {j}." for j in range(3))
                  for i in range(80)]
    text = "\n\n".join(paragraphs)
    progress = await ingest(memory_stub, memory_pb2.DocumentHeader(ref=ref, filename="notes.txt", tags=["doc"],
                                                                   chunk_chars=200, overlap_chars=40),
                            text.encode(), piece=500)
    assert progress[-1].done and progress[-1].source_id.startswith("doc-")
    assert len(progress) > 2  # progress while it runs, not only at the end
    assert [p.passages for p in progress] == sorted(p.passages for p in progress)
    assert progress[-1].bytes_read == len(text.encode())
    total = progress[-1].passages
    assert total >= len(text) // 200
    listed = await memory_stub.SearchArchival(memory_pb2.SearchArchivalRequest(ref=ref, page_size=100, tags=["doc"]))
    assert listed.total == total
    passages = sorted((h.passage for h in listed.hits), key=lambda p: p.position)
    assert [p.position for p in passages] == list(range(total))
    assert all(p.source_id == progress[-1].source_id and len(p.text) <= 200 for p in passages)
    assert passages[0].metadata["filename"] == "notes.txt"
    # Consecutive chunks overlap.
    assert passages[1].text.split("\n")[0][:20] in passages[0].text
    hit = await memory_stub.SearchArchival(memory_pb2.SearchArchivalRequest(ref=ref, query="marker42x"))
    assert "marker42x" in hit.hits[0].passage.text


async def test_markdown_and_custom_chunk_size(memory_stub):
    ref = await new_ref(memory_stub)
    md = "# Recipes\n\n## Pancakes\n\nMix flour, eggs and milk. Fry in butter.\n\n## Soup\n\nBoil leeks and potatoes.\n"
    progress = await ingest(memory_stub, memory_pb2.DocumentHeader(
        ref=ref, filename="recipes.md", source_id="recipes", chunk_chars=60, overlap_chars=10), md.encode(), piece=7)
    assert progress[-1].done and progress[-1].source_id == "recipes" and progress[-1].passages >= 2
    hit = await memory_stub.SearchArchival(memory_pb2.SearchArchivalRequest(ref=ref, query="leeks potatoes"))
    assert "leeks" in hit.hits[0].passage.text
    assert hit.hits[0].passage.metadata["content_type"] == "text/markdown"


async def test_pdf_document(memory_stub):
    ref = await new_ref(memory_stub)
    pdf = make_pdf([f"Page {i} talks about the migratory habits of arctic terns number {i}" for i in range(5)])
    progress = await ingest(memory_stub, memory_pb2.DocumentHeader(ref=ref, filename="terns.pdf"), pdf, piece=100)
    assert progress[-1].done and progress[-1].passages >= 1
    hit = await memory_stub.SearchArchival(memory_pb2.SearchArchivalRequest(ref=ref, query="arctic terns"))
    assert "arctic terns" in hit.hits[0].passage.text


async def test_bad_documents(memory_stub):
    ref = await new_ref(memory_stub)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ingest(memory_stub, memory_pb2.DocumentHeader(ref=ref, filename="x.pdf"), b"not a pdf at all")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "PDF" in err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ingest(memory_stub, memory_pb2.DocumentHeader(ref=ref, filename="x.png", content_type="image/png"), b"x")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ingest(memory_stub, memory_pb2.DocumentHeader(ref=Ref(tenant_id="other", agent_id=ref.agent_id),
                                                            filename="a.txt"), b"hello")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND

    async def no_header():  # type: ignore[no-untyped-def]
        yield memory_pb2.DocumentChunk(data=b"hello")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        _ = [p async for p in memory_stub.IngestDocument(no_header())]
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_document_cut_short_leaves_none_of_its_passages(memory_stub):
    """Regression: a streamed upload stopped over the size limit (or cut, or cancelled) left the
    batches already inserted in archival memory."""
    ref = await new_ref(memory_stub)
    header = memory_pb2.DocumentHeader(ref=ref, filename="cut.txt", chunk_chars=200, overlap_chars=0)
    stalled = asyncio.Event()

    async def requests():  # type: ignore[no-untyped-def]
        yield memory_pb2.DocumentChunk(header=header)
        yield memory_pb2.DocumentChunk(data=(("word " * 39 + "\n") * 400).encode())
        await stalled.wait()  # the rest of the upload never comes

    call = memory_stub.IngestDocument(requests())
    async for progress in call:
        if progress.passages:
            break
    assert (await memory_stub.GetContext(ref)).archival_count > 0  # batches are in the index
    call.cancel()

    async def none_left() -> bool:
        return (await memory_stub.GetContext(ref)).archival_count == 0
    await eventually(none_left, timeout=10, message="the cut document's passages are still there")
