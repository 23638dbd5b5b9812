"""Settings for every service, read from `MNEMO_*` environment variables (pydantic-settings)."""

from __future__ import annotations

import json
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Configuration shared by all services. Each field maps to `MNEMO_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="MNEMO_", extra="ignore")

    home: Path = Field(default=Path("~/.mnemo"), description="data directory (NATS data, index, api_key)")
    host: str = "127.0.0.1"
    nats_url: str | None = Field(default=None, description="use an existing NATS server instead of starting one")

    # Ports
    http_port: int = 8283
    grpc_port: int = 50051
    memory_port: int = 50061
    llm_port: int = 50062
    orchestrator_port: int = 50063
    nats_port: int = 4233
    nats_monitor_port: int = Field(default=0, ge=0, le=65535,
                                   description="embedded nats-server's HTTP monitoring port (0 = off)")
    jetstream_replicas: int = Field(default=1, ge=1, le=5, description="JetStream replicas (3 on a cluster)")
    metrics_port: int = 0  # 0 = no Prometheus endpoint

    # Internal addresses (default: host + port)
    memory_addr: str | None = None
    llm_addr: str | None = None
    # Internal unary calls (orchestrator, gateway, memory -> memory, llm-proxy): over NATS
    # request-reply with gRPC as the fallback, or over gRPC only.
    rpc_transport: Literal["nats", "grpc"] = "nats"
    rpc_group: str = Field(default="default", pattern=r"^[A-Za-z0-9_-]{1,64}$",
                           description="services answering each other's NATS calls share this group")
    # Services in one process (the combined layout) call each other directly, before any transport.
    rpc_local: bool = False

    # Models
    default_model: str = "gpt-4o-mini"
    local_model_path: str | None = None
    embedding_model: str | None = None
    # The local embedder runs an int8 copy of its model (derived once, cached), or the file as shipped.
    local_embedding_precision: Literal["int8", "shipped"] = "int8"
    providers_file: Path | None = None

    # Search
    search_backend: Literal["embedded", "elasticsearch"] = "embedded"
    elasticsearch_url: str = "http://127.0.0.1:9200"
    elasticsearch_index_prefix: str = "mnemo"
    elasticsearch_hybrid: Literal["linear", "boosts", "client"] = Field(
        default="linear",
        description="how Elasticsearch fuses words and meaning: `linear` (one request, linear retriever, 8.18+), "
                    "`boosts` (one request, query + knn with boosts), `client` (two or three requests fused "
                    "here); a way the cluster refuses falls back to `client` (docs/search.md)")
    search_meaning_weight: float = Field(
        default=0.6, ge=0.0, le=1.0,
        description="hybrid search score = w x cosine + (1 - w) x scaled BM25: the weight of meaning against "
                    "words (0.6: facts asked in other words are found twice as often as at 0.5, for the "
                    "same LoCoMo recall; see bench/paraphrase_recall.py)")

    # Archival hygiene (memory)
    archival_dedup: bool = Field(default=True, description="a passage equal or near-identical to a stored one "
                                                           "is not stored again (its id is returned)")
    archival_dedup_similarity: float = Field(default=0.95, ge=0.0, le=1.0,
                                             description="near-identical: cosine at least this ...")
    archival_dedup_word_overlap: float = Field(default=0.7, ge=0.0, le=1.0,
                                               description="... and word overlap (Jaccard) at least this")
    archival_expiry_sweep: float = Field(default=60.0, gt=0.0,
                                         description="seconds between deletions of expired passages")
    recall_index_linger: float = Field(default=0.25, ge=0.0, le=5.0,
                                       description="seconds a small batch of committed messages waits for "
                                                   "more before recall indexing (0: index at once)")
    recall_index_defer: float = Field(default=2.0, ge=0.0, le=30.0,
                                      description="seconds recall indexing may wait while turns are backed up "
                                                  "(8 or more waiting or running), so that a burst gets the "
                                                  "cores (0: never wait)")

    # Gateway
    admin_key: str | None = None
    trace_url: str = Field(default="", max_length=2000,
                           description="the tracing UI's URL of one trace, `{trace_id}` standing for its id "
                                       "(the console links each step to it)")

    # `mnemo up`: the services in one process ("combined": in-process calls, one interpreter), the
    # gateway apart from the others ("core": memory, llm-proxy and the orchestrator in one process,
    # the gateway's HTTP work on another core) or one process each ("split": a crash or restart
    # touches one service); "auto": core with one orchestrator, split with more (`stack_layout`).
    layout: Literal["auto", "combined", "core", "split"] = "auto"

    # Orchestrator
    orchestrators: int = Field(default=1, ge=1, le=32, description="orchestrator replicas `mnemo up` runs")
    # Turns a replica runs at once. A turn holds its slot while the model answers, so the slots cap
    # throughput at slots / model latency: 64 held one replica to ~165 turns/s with a 200 ms model.
    orchestrator_concurrency: int = Field(default=256, ge=1, le=4096,
                                          description="turns an orchestrator replica runs at once")
    # Seconds before an unacked turn is redelivered: how long the turns of a replica that died wait.
    # A running turn refreshes it (a third of it, or of the lease TTL), so it need not cover a turn.
    orchestrator_ack_wait: float = 10.0
    orchestrator_lease_ttl: float = 10.0       # per-agent step lease, refreshed while a turn runs
    orchestrator_session_gap: float = 3600.0   # seconds of silence before a login event
    orchestrator_max_steps: int = 10
    orchestrator_max_tokens_per_turn: int = 200_000
    orchestrator_function_result_max_chars: int = 3000
    orchestrator_keep_last_messages: int = 4
    orchestrator_reserved_completion_tokens: int = 512
    orchestrator_loop_repeats: int = 3         # identical calls in one turn before loop_detected
    orchestrator_consolidation: bool = True    # run the memory consolidation consumer

    # Tools (docs/tools.md)
    tool_timeout: float = Field(default=600.0, gt=0, description="seconds a paused call waits (agent default)")
    mcp_call_timeout: float = Field(default=30.0, gt=0, description="seconds per MCP tool call (server default)")
    mcp_stdio_allow: str = Field(default="", description="comma-separated commands tenants may register as "
                                                         "stdio MCP servers; * = any (the admin key always may)")

    # Logging
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"

    # Process
    gc_gen0_threshold: int = Field(
        default=10_000, ge=0,
        description="allocations between young garbage collections of a service process (0: Python's 700)")

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser()

    @property
    def memory_target(self) -> str:
        return self.memory_addr or f"{self.host}:{self.memory_port}"

    @property
    def llm_target(self) -> str:
        return self.llm_addr or f"{self.host}:{self.llm_port}"

    @property
    def nats_servers(self) -> str:
        return self.nats_url or f"nats://{self.host}:{self.nats_port}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once: for entry points only (`run_service`, the CLI);
    everything else is given its settings."""
    return Settings()


def read_config_file(path: Path) -> dict[str, Any]:
    """A configuration file as a mapping: JSON or TOML by extension, YAML otherwise."""
    text = Path(path).expanduser().read_text()
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        data = json.loads(text)
    elif suffix == ".toml":
        data = tomllib.loads(text)
    else:
        data = yaml.safe_load(text)
    return data or {}
