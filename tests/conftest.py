"""Fixtures: a real nats-server per test session, a scripted OpenAI-compatible model."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.helpers import NatsServer
from tests.scripted_llm import ScriptedLLM

# Never let a test reach a real provider or a developer's own config.
for _var in [k for k in os.environ if k.startswith(("MNEMO_", "OPENAI_"))]:
    if _var not in ("MNEMO_TEST_ES_URL", "MNEMO_CHAOS_SIZE", "MNEMO_CHAOS_REPORT"):
        os.environ.pop(_var, None)
os.environ.setdefault("OTEL_TRACES_EXPORTER", "none")
os.environ["TIKTOKEN_CACHE_DIR"] = ""  # tiktoken must never download


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """One real nats-server (JetStream) for the session, on a free port."""
    server = NatsServer(tmp_path_factory.mktemp("nats")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def nats_url(nats_server: NatsServer) -> str:
    return nats_server.url


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server of this test alone (for restart and durability tests)."""
    server = NatsServer(tmp_path / "nats").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def scripted_llm_server() -> Iterator[ScriptedLLM]:
    server = ScriptedLLM().start()
    yield server
    server.stop()


@pytest.fixture
def scripted_llm(scripted_llm_server: ScriptedLLM) -> Iterator[ScriptedLLM]:
    """The scripted model, with an empty script and no recorded requests."""
    scripted_llm_server.reset()
    yield scripted_llm_server
    scripted_llm_server.reset()


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[object]:
    """A connected NATS client with every stream and KV bucket ensured."""
    from mnemo.common.natsutil import connect, ensure_jetstream

    client = await connect(nats_url, "tests")
    await ensure_jetstream(client.jetstream())
    yield client
    await client.drain()
