"""`python -m mnemo.cli.combined`: the services of `mnemo up`'s combined and core layouts in one process.

Memory and llm-proxy start first, then the orchestrator (unless `--no-orchestrator`: replicas run as
processes of their own) and the gateway (unless `--no-gateway`: the core layout runs it as a process
of its own). They call each other in-process (`Settings.rpc_local`), and
share one interpreter, one embedding model and one set of caches; turns and events still go through
JetStream, so durability and every other promise are those of the split layout.
"""

from __future__ import annotations

import sys

from mnemo.common.config import get_settings
from mnemo.common.runner import Factory, run_services


def waves(with_orchestrator: bool, with_gateway: bool = True) -> list[list[tuple[str, Factory]]]:
    from mnemo.gateway.server import GatewayService
    from mnemo.llm_proxy.server import LlmProxyService
    from mnemo.memory.server import MemoryService
    from mnemo.orchestrator.server import OrchestratorService

    second: list[tuple[str, Factory]] = [("gateway", GatewayService)] if with_gateway else []
    if with_orchestrator:
        second.insert(0, ("orchestrator", OrchestratorService))
    return [[("memory", MemoryService), ("llm_proxy", LlmProxyService)], second]


def main(argv: list[str]) -> None:
    settings = get_settings().model_copy(update={"rpc_local": True})
    run_services("services", waves("--no-orchestrator" not in argv, "--no-gateway" not in argv), settings=settings)


if __name__ == "__main__":
    main(sys.argv[1:])
