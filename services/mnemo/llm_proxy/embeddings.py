"""Local embeddings: all-MiniLM-L6-v2 on onnxruntime + `tokenizers` (model files: `embedding_model`);
batched, mean pooling over the attention mask, L2-normalised, dim 384.

One model per process, whatever number of embedders use it: an ONNX session runs calls from several
threads at once, so interactive and background embedders share its weights and differ only in the
threads (and their priority) that call it.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import OrderedDict
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from mnemo.llm_proxy.embedding_model import Precision, runtime_model, tokenizer_file

MODEL_NAME = "all-minilm-l6-v2"
DIM = 384
MAX_TOKENS = 256
# Niceness of the threads running background work (recall indexing of committed messages): under load
# the turn hot path of every process on the machine gets the cores first.
BACKGROUND_NICE = 10
CACHE_SIZE = 4096  # texts whose vectors are kept (repeated queries, re-indexed messages)


def _lower_priority() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
    except (OSError, AttributeError):  # not permitted / not Linux: normal priority
        pass


class EmbeddingModel:
    """The ONNX session and tokenizer, loaded on first use. Each call runs on one thread (callers
    choose how many calls run at once); no memory arena, so a long text's activations are freed."""

    def __init__(self, precision: Precision = "int8", threads: int = 1) -> None:
        self.precision = precision
        self.threads = threads
        self._session: Any = None
        self._tokenizer: Any = None
        self._inputs: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def load(self) -> None:
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime as ort
            from tokenizers import Tokenizer

            path = runtime_model(self.precision)
            tok = Tokenizer.from_file(str(tokenizer_file()))
            tok.enable_truncation(max_length=MAX_TOKENS)
            tok.no_padding()  # texts are grouped by their token counts first, then padded per run
            opts = ort.SessionOptions()
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            opts.log_severity_level = 3
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
            opts.enable_cpu_mem_arena = False
            # No busy-waiting worker threads: they collapse when other processes share the cores.
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"],
                                           disabled_optimizers=DISABLED_OPTIMIZERS)
            self._inputs = tuple(i.name for i in session.get_inputs())
            self._tokenizer = tok
            self._session = session

    def count_tokens(self, texts: list[str]) -> int:
        return sum(len(t) for t in self.tokenize(texts))

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """The token ids of each text (truncated to MAX_TOKENS, not padded)."""
        self.load()
        return [e.ids for e in self._tokenizer.encode_batch(texts)]

    def run(self, texts: list[str]) -> tuple[np.ndarray, list[int]]:
        """Vectors of `texts` (one session run) and each text's token count."""
        return self.run_ids(self.tokenize(texts))

    def run_ids(self, token_ids: list[list[int]]) -> tuple[np.ndarray, list[int]]:
        """Vectors of tokenized texts (one session run, padded to the longest) and their token counts."""
        self.load()
        return session_vectors(self._session, self._inputs, token_ids), [len(t) for t in token_ids]


def session_vectors(session: Any, inputs: Collection[str], token_ids: list[list[int]]) -> np.ndarray:
    """Vectors of tokenized texts from one run of an ONNX `session` (whose input names are `inputs`):
    padded to the longest, mean-pooled over the attention mask, L2-normalised."""
    longest = max(len(t) for t in token_ids)
    ids = np.zeros((len(token_ids), longest), dtype=np.int64)
    mask = np.zeros((len(token_ids), longest), dtype=np.int64)
    for row, tokens in enumerate(token_ids):
        ids[row, :len(tokens)] = tokens
        mask[row, :len(tokens)] = 1
    feeds = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in inputs:
        feeds["token_type_ids"] = np.zeros_like(ids)
    hidden = session.run(None, feeds)[0]
    weights = mask[..., None].astype(np.float32)
    pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


# onnxruntime's fused SkipLayerNormalization kernel is slower on the CPU than the Add + LayerNormalization
# it replaces (12 of them in MiniLM-L6): without the fusion a short text costs 15-20 % less, with
# the same vectors. No other fusion made a difference either way (measured one by one).
DISABLED_OPTIMIZERS = ["SkipLayerNormFusion"]
MAX_RUN = 16            # texts per session run
TOKENS_PER_RUN = 512    # padded tokens per run
# A run costs about 0.8 ms whatever its size, plus ~0.07 ms per padded token (int8 model, one core),
# and more per token as runs grow (attention, cache): two texts of 8-16 tokens cost ~30 % less
# together than apart, two of 32 ~10 %, two of 64 or more nothing or extra. So only short texts run
# together, and only with texts of almost their length: padding a 12-token text to 24 costs more than
# the run it saves.
BATCHED_MAX_TOKENS = 48  # longer texts run alone
PAD_BUDGET = 8           # padded tokens a text may add to a run (its length over the run's longest, per text)


def runs_by_tokens(lengths: list[int], max_run: int = MAX_RUN, tokens_per_run: int = TOKENS_PER_RUN,
                   pad_budget: int = PAD_BUDGET) -> list[list[int]]:
    """Positions of texts with these token counts, grouped into session runs (shortest first)."""
    runs: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        n = lengths[i]
        fits = (current and n <= BATCHED_MAX_TOKENS and len(current) < max_run
                and (len(current) + 1) * n <= tokens_per_run and len(current) * (n - longest) <= pad_budget)
        if current and not fits:
            runs.append(current)
            current = []
        current.append(i)
        longest = n
    if current:
        runs.append(current)
    return runs


_models: dict[Precision, EmbeddingModel] = {}
_models_lock = threading.Lock()


def shared_model(precision: Precision = "int8") -> EmbeddingModel:
    """The process's model of that precision (its weights load once)."""
    with _models_lock:
        if precision not in _models:
            _models[precision] = EmbeddingModel(precision)
        return _models[precision]


class LocalEmbedder:
    """Vectors of texts on a shared `EmbeddingModel`: `embed(texts)` returns an (n, 384) float32 array;
    `embed_async` runs it on this embedder's own threads (at background priority when asked); vectors
    of recent texts are cached.

    Short texts of almost the same token count run together (`runs_by_tokens`): a run's fixed cost
    (some 450 graph nodes) dominates for them; longer texts, and texts that would pad a run, run
    alone. The int8 model quantizes activations per run, so a text's vector varies slightly with its
    run-mates (cosine >= 0.98 to the text run alone, as close as the int8 model is to the shipped one).
    """

    def __init__(self, model: EmbeddingModel | None = None, cache_size: int = CACHE_SIZE,
                 workers: int = 2, background: bool = False) -> None:
        self.model = model or shared_model()
        self.workers = workers
        self.background = background
        self._cache: OrderedDict[str, tuple[np.ndarray, int]] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def load(self) -> None:
        self.model.load()

    def count_tokens(self, texts: list[str]) -> int:
        return self.model.count_tokens(texts)

    def embed(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """Vectors of `texts` (in order) and the number of tokens processed."""
        self.load()
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32), 0
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        tokens = 0
        missing: dict[str, list[int]] = {}  # distinct uncached text -> its positions
        with self._cache_lock:
            for i, text in enumerate(texts):
                hit = self._cache.get(text)
                if hit is None:
                    missing.setdefault(text, []).append(i)
                else:
                    self._cache.move_to_end(text)
                    out[i] = hit[0]
                    tokens += hit[1]
        distinct = list(missing)
        token_ids = self.model.tokenize(distinct)
        for run_positions in runs_by_tokens([len(t) for t in token_ids]):
            run = [distinct[i] for i in run_positions]
            vecs, counts = self.model.run_ids([token_ids[i] for i in run_positions])
            with self._cache_lock:
                for text, vec, n in zip(run, vecs, counts, strict=True):
                    positions = missing[text]
                    out[positions] = vec
                    tokens += n * len(positions)
                    self._cache[text] = (vec, n)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return out, tokens

    async def embed_async(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """`embed` off the event loop, on this embedder's own threads."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self.workers, thread_name_prefix="embed-bg" if self.background else "embed",
                initializer=_lower_priority if self.background else None)
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.embed, texts)


_shared: LocalEmbedder | None = None
_background: LocalEmbedder | None = None


def shared_embedder(precision: Precision = "int8") -> LocalEmbedder:
    """The process's embedder for calls someone waits for (queries, documents)."""
    global _shared
    if _shared is None:
        _shared = LocalEmbedder(shared_model(precision))
    return _shared


def background_embedder(precision: Precision = "int8") -> LocalEmbedder:
    """The process's embedder for work nobody waits for (recall indexing): the same model, called
    from one thread at background priority, so that a batch never takes a core from the turns."""
    global _background
    if _background is None:
        _background = LocalEmbedder(shared_model(precision), workers=1, background=True)
    return _background
