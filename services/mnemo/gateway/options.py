"""Gateway-only settings (`MNEMO_GATEWAY_*`): limits, timeouts, key cache, local bootstrap."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewayOptions(BaseSettings):
    """Limits and behaviour of the gateway. Each field maps to `MNEMO_GATEWAY_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="MNEMO_GATEWAY_", extra="ignore")

    max_body_bytes: int = 1 << 20            # JSON requests
    max_document_bytes: int = 64 << 20       # document uploads and agent imports
    max_message_chars: int = 32_000          # one user message
    # Default per-tenant limits (a tenant's own, set through the admin API, win; the local tenant of an
    # embedded stack has none unless given some). A rate of 0 means no limit.
    rate_per_second: float = 50.0            # token bucket refill
    rate_burst: int = 200                    # bucket size
    turn_timeout: float = 120.0              # POST /messages waits this long, then 202
    key_cache_ttl: float = 2.0               # seconds a resolved key is trusted without a KV read
    health_cache_ttl: float = 1.0
    local_bootstrap: bool = True             # ensure tenant "local" + $MNEMO_HOME/api_key on start
    sse_keepalive: float = 15.0
    # Seconds an idle HTTP connection stays open. Longer than client pools keep theirs (aiohttp 15 s,
    # load balancers 60 s): a server that closes first races a request sent on the connection at that
    # moment, which the client sees as a reset it may not retry (uvicorn's own default is 5 s).
    keep_alive: float = 75.0
