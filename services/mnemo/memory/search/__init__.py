"""Search backends for recall and archival memory, behind one interface (`SearchBackend`).

`create_backend(settings)` picks one by `MNEMO_SEARCH_BACKEND`: `embedded` (default; SQLite FTS5 +
in-memory vectors on local disk, no server) or `elasticsearch` (`MNEMO_ELASTICSEARCH_URL`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mnemo.memory.search.base import DimensionMismatch, Hit, Page, PassageDoc, PassageFilter, RecallDoc, SearchBackend
from mnemo.memory.search.text import neighbour_context, recall_index_text

if TYPE_CHECKING:
    from mnemo.common.config import Settings

__all__ = ["DimensionMismatch", "Hit", "Page", "PassageDoc", "PassageFilter", "RecallDoc", "SearchBackend",
           "create_backend", "neighbour_context", "recall_index_text"]


def create_backend(settings: Settings) -> SearchBackend:
    """The backend `settings.search_backend` names (call `await backend.start()` before use)."""
    if settings.search_backend == "elasticsearch":
        from mnemo.memory.search.elastic import ElasticsearchBackend

        return ElasticsearchBackend(settings.elasticsearch_url, settings.elasticsearch_index_prefix,
                                    meaning_weight=settings.search_meaning_weight,
                                    hybrid=settings.elasticsearch_hybrid)
    from mnemo.memory.search.embedded import EmbeddedBackend

    return EmbeddedBackend(settings.home_dir / "index", meaning_weight=settings.search_meaning_weight)
