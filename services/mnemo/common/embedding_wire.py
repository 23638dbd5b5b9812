"""Embeddings on the wire (`mnemo.v1.Embedding`): as float lists, or packed as little-endian float32
bytes (`EmbedRequest.packed`), which both sides convert with one copy instead of one Python float
per number (recall indexing's vectors, ~1,500 numbers per message)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from mnemo.v1 import llm_pb2

F32 = np.dtype("<f4")


def to_embeddings(matrix: np.ndarray, packed: bool) -> list[llm_pb2.Embedding]:
    """One Embedding per row of `matrix` (n x dim)."""
    if packed:
        rows = np.ascontiguousarray(matrix, dtype=F32)
        return [llm_pb2.Embedding(values_f32=row.tobytes()) for row in rows]
    return [llm_pb2.Embedding(values=row) for row in np.asarray(matrix).tolist()]


def to_vectors(embeddings: Iterable[llm_pb2.Embedding]) -> list[np.ndarray]:
    """The float32 vector of each Embedding, packed or not (an older server answers with `values`)."""
    return [np.frombuffer(e.values_f32, dtype=F32) if e.values_f32 else np.asarray(e.values, dtype=np.float32)
            for e in embeddings]
