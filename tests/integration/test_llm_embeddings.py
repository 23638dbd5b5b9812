"""Local embeddings (all-MiniLM-L6-v2 int8 ONNX) and provider embeddings through the proxy."""

from __future__ import annotations

import os

import grpc
import numpy as np
import pytest

from mnemo.common import embedding_wire
from mnemo.llm_proxy import embedding_model, embeddings
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


async def test_many_texts_keep_their_order_and_vectors(llm_stub) -> None:
    texts = [("word " * (i % 17)) + f"item {i}" for i in range(150)]
    resp = await llm_stub.Embed(llm_pb2.EmbedRequest(texts=texts))
    single = await llm_stub.Embed(llm_pb2.EmbedRequest(texts=[texts[77]]))
    # Texts run in batches: a text's vector is (almost) the one it has alone, and stays in its place.
    together, alone = np.array(resp.embeddings[77].values), np.array(single.embeddings[0].values)
    assert together @ alone > 0.97
    assert all(np.array(resp.embeddings[i].values) @ alone < together @ alone for i in (0, 76, 78, 149))


def test_runs_put_together_only_short_texts_of_almost_the_same_length() -> None:
    lengths = [12, 24, 13, 14, 200, 40, 41, 60, 60] + [5] * 20
    runs = embeddings.runs_by_tokens(lengths, max_run=16, tokens_per_run=512, pad_budget=8)
    assert sorted(i for r in runs for i in r) == list(range(len(lengths)))
    for run in runs:
        longest = max(lengths[i] for i in run)
        assert len(run) <= 16 and len(run) * longest <= 512
        if len(run) > 1:  # batched: short, and padding within the budget
            assert longest <= embeddings.BATCHED_MAX_TOKENS
            assert sum(longest - lengths[i] for i in run) <= 8
    assert sorted(len(r) for r in runs if lengths[r[0]] == 5) == [4, 16]
    assert [0, 2, 3] in runs              # 12, 13, 14 tokens: one run
    assert [1] in runs and [4] in runs    # 24 would pad 12-14 by 10 each; 200 runs alone
    assert [7] in runs and [8] in runs    # 60 > BATCHED_MAX_TOKENS: alone, even beside its twin


def test_grouping_leaves_each_text_its_own_vector_and_token_count() -> None:
    model = embeddings.EmbeddingModel("int8")
    texts = ["hi", "a medium sized sentence about nothing much at all", "hi there"]
    _, counts = model.run(texts)
    assert counts == [len(t) for t in model.tokenize(texts)] and counts[0] < counts[1]
    embedder = embeddings.LocalEmbedder(model, cache_size=0)
    grouped, tokens = embedder.embed(texts)
    assert tokens == sum(counts)
    alone = np.array([model.run([text])[0][0] for text in texts])
    similarity = grouped @ alone.T   # the int8 model quantizes per run: run-mates move a vector a little
    for i in range(len(texts)):
        assert similarity[i, i] > 0.95 and similarity[i, i] == similarity[i].max()


async def test_background_priority_gives_the_same_vectors_on_the_same_model(llm_stub) -> None:
    texts = ["my sister Ana moved to Lisbon in May", "we talked about the cello recital"]
    fg = await llm_stub.Embed(llm_pb2.EmbedRequest(texts=texts, priority="interactive"))
    bg = await llm_stub.Embed(llm_pb2.EmbedRequest(texts=texts, priority="background"))
    assert np.allclose([e.values for e in fg.embeddings], [e.values for e in bg.embeddings], atol=1e-4)
    background, interactive = embeddings.background_embedder(), embeddings.shared_embedder()
    assert background is not interactive and background.workers == 1 and background.background
    assert background.model is interactive.model  # one set of weights per process
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


@pytest.mark.parametrize("model", ["", "text-embedding-3-small"])  # the local model, a provider's
async def test_packed_vectors_are_the_float_values_as_float32_bytes(llm_service, llm_stub, model) -> None:
    texts = ["my sister Ana moved to Lisbon in May", "we talked about the cello recital"]
    plain = await llm_stub.Embed(llm_pb2.EmbedRequest(model=model, texts=texts))
    packed = await llm_stub.Embed(llm_pb2.EmbedRequest(model=model, texts=texts, packed=True))
    assert packed.dim == plain.dim and len(packed.embeddings) == 2
    for p, v in zip(packed.embeddings, plain.embeddings, strict=True):
        assert not p.values and len(p.values_f32) == 4 * plain.dim and not v.values_f32
        assert np.array_equal(np.frombuffer(p.values_f32, dtype="<f4"), np.array(v.values, dtype=np.float32))
    # Either answer reads back as the same vectors (a server that ignores `packed` sends values).
    assert all(np.array_equal(a, b) for a, b in zip(embedding_wire.to_vectors(packed.embeddings),
                                                    embedding_wire.to_vectors(plain.embeddings), strict=True))


def test_model_file_checksum_is_verified(tmp_path, monkeypatch) -> None:
    assert embedding_model.sha256_of(embedding_model.source_model()) == embedding_model.SOURCE_SHA256
    tampered = tmp_path / "model.onnx"
    tampered.write_bytes(b"not the model")
    monkeypatch.setattr(embedding_model, "source_model", lambda: tampered)
    with pytest.raises(RuntimeError, match="refusing to run it"):
        embedding_model.runtime_model("int8")


def test_int8_model_is_derived_once_and_stays_close_to_the_shipped_one() -> None:
    import onnxruntime

    path = embedding_model.runtime_model("int8")
    assert path == embedding_model.derived_path(onnxruntime.__version__) and path.exists()
    assert embedding_model.runtime_model("int8") == path  # cached: the checksum beside it matches
    texts = ["My dog is a beagle called Biscuit.", "We moved to Lisbon in May and I started the cello.",
             "What is the capital of France?"]
    fast, _ = embeddings.EmbeddingModel("int8").run(texts)
    shipped, _ = embeddings.EmbeddingModel("shipped").run(texts)
    cosines = (fast * shipped).sum(axis=1)
    assert cosines.min() > 0.98, cosines


def test_a_tampered_int8_copy_is_derived_again(tmp_path, monkeypatch) -> None:
    import onnxruntime

    monkeypatch.setenv("MNEMO_CACHE_DIR", str(tmp_path))
    first = embedding_model.runtime_model("int8")
    assert first.is_relative_to(tmp_path)
    good = first.read_bytes()
    first.write_bytes(good[:1000])
    again = embedding_model.runtime_model("int8")
    assert again == embedding_model.derived_path(onnxruntime.__version__) and again.read_bytes() == good


def test_setup_prepares_the_int8_copy_that_the_embedder_then_finds(tmp_path) -> None:
    """`make setup` runs the module: the machine's copy exists before the first `mnemo up`."""
    import subprocess
    import sys

    import onnxruntime

    env = {**os.environ, "MNEMO_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "mnemo.llm_proxy.embedding_model"], env=env,
                          capture_output=True, text=True, timeout=300, check=True)
    derived = tmp_path / "models" / embedding_model.derived_path(onnxruntime.__version__).name
    assert derived.exists() and str(derived) in done.stdout
    stamp = derived.stat().st_mtime_ns
    subprocess.run([sys.executable, "-m", "mnemo.llm_proxy.embedding_model"], env=env, timeout=300, check=True)
    assert derived.stat().st_mtime_ns == stamp  # found, not derived again


def test_token_counts_of_texts_of_different_lengths_count_no_padding() -> None:
    """Regression: the tokenizer padded a batch to its longest text, and the padding was counted."""
    model = embeddings.EmbeddingModel("int8")
    short, long = "hi", "a medium sized sentence about nothing much at all"
    assert model.count_tokens([short, long]) == model.count_tokens([short]) + model.count_tokens([long])
    assert model.count_tokens([short]) < model.count_tokens([long])


def test_the_derived_model_runs_each_attention_and_gelu_as_one_operator() -> None:
    import collections

    import onnx
    import onnxruntime

    embedding_model.runtime_model("int8")
    ops = collections.Counter(n.op_type for n in onnx.load(
        str(embedding_model.derived_path(onnxruntime.__version__))).graph.node)
    assert ops["MultiHeadAttention"] == 6 and ops["Gelu"] == 6
    assert ops["Softmax"] == ops["Erf"] == ops["Transpose"] == 0


def test_a_rewritten_graph_whose_vectors_differ_is_not_kept(tmp_path, monkeypatch) -> None:
    """If the fused graph's vectors are not the unfused graph's, the unfused copy is what is derived."""
    import collections

    import onnx

    from mnemo.llm_proxy import embedding_graph

    real_fuse = embedding_graph.fuse

    def wrong_fuse(model):  # type: ignore[no-untyped-def]
        fused = real_fuse(model)
        for node in model.graph.node:
            if node.op_type == "MultiHeadAttention":
                node.attribute[0].i = 6   # num_heads: a loadable graph with other vectors
        return fused

    monkeypatch.setattr(embedding_graph, "fuse", wrong_fuse)
    target = tmp_path / "model.onnx"
    embedding_model.derive(embedding_model.checked_source(), target)
    ops = collections.Counter(n.op_type for n in onnx.load(str(target)).graph.node)
    assert ops["MultiHeadAttention"] == 0 and ops["MatMulInteger"] == 36
    assert (tmp_path / "model.onnx.sha256").read_text().strip() == embedding_model.sha256_of(target)


def test_fusing_a_fused_graph_changes_nothing() -> None:
    import onnx
    import onnxruntime

    from mnemo.llm_proxy import embedding_graph

    embedding_model.runtime_model("int8")
    model = onnx.load(str(embedding_model.derived_path(onnxruntime.__version__)))
    before = model.SerializeToString()
    assert embedding_graph.fuse(model) == (0, 0)
    assert model.SerializeToString() == before
