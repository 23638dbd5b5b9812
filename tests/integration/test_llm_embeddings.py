"""Local embeddings (all-MiniLM-L6-v2 int8 ONNX) and provider embeddings through the proxy."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from mnemo.llm_proxy import embeddings
from mnemo.v1 import llm_pb2
from tests.fixtures_llm import llm_service, llm_stub  # noqa: F401


async def test_local_embeddings_capture_meaning(llm_stub) -> None:
    texts = ["The cat sits on the mat.", "A kitten is resting on a rug.",
             "Quarterly revenue grew five percent.", "The company's sales rose this quarter."]
    resp = await llm_stub.Embed(llm_pb2.EmbedRequest(texts=texts, tenant_id="t1"))
    assert resp.model == "all-minilm-l6-v2" and resp.dim == 384 and len(resp.embeddings) == 4
    v = np.array([e.values for e in resp.embeddings])
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    sim = v @ v.T
    assert sim[0, 1] > sim[0, 2] + 0.3 and sim[0, 1] > sim[0, 3] + 0.3
    assert sim[2, 3] > sim[2, 0] + 0.3
    assert resp.usage.prompt_tokens > 0


async def test_batching_keeps_order(llm_stub) -> None:
    texts = [("word " * (i % 17)) + f"item {i}" for i in range(150)]
    resp = await llm_stub.Embed(llm_pb2.EmbedRequest(texts=texts))
    single = await llm_stub.Embed(llm_pb2.EmbedRequest(texts=[texts[77]]))
    assert np.allclose(resp.embeddings[77].values, single.embeddings[0].values, atol=1e-3)


async def test_background_priority_gives_the_same_vectors_on_its_own_session(llm_stub) -> None:
    texts = ["my sister Ana moved to Lisbon in May", "we talked about the cello recital"]
    fg = await llm_stub.Embed(llm_pb2.EmbedRequest(texts=texts, priority="interactive"))
    bg = await llm_stub.Embed(llm_pb2.EmbedRequest(texts=texts, priority="background"))
    assert np.allclose([e.values for e in fg.embeddings], [e.values for e in bg.embeddings], atol=1e-4)
    background = embeddings.background_embedder()
    assert background is not embeddings.shared_embedder() and background.threads == 1
    assert texts[0] in background._cache  # the background call ran there
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await llm_stub.Embed(llm_pb2.EmbedRequest(texts=texts, priority="urgent"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "priority" in err.value.details()


async def test_provider_embeddings_and_bad_model(llm_service, llm_stub) -> None:
    resp = await llm_stub.Embed(llm_pb2.EmbedRequest(model="text-embedding-3-small", texts=["a", "b"]))
    assert resp.model == "text-embedding-3-small" and resp.dim == 384 and len(resp.embeddings) == 2
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await llm_stub.Embed(llm_pb2.EmbedRequest(model="gpt-4o-mini", texts=["a"]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_model_file_checksum_is_verified() -> None:
    assert embeddings.sha256_of(embeddings.model_file()) == embeddings.MODEL_SHA256
