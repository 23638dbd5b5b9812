from mnemo.common.runner import run_service
from mnemo.orchestrator.server import OrchestratorService

if __name__ == "__main__":
    run_service("orchestrator", OrchestratorService)
