"""`python -m mnemo.gateway`: run the gateway as a process."""

from mnemo.common.runner import run_service
from mnemo.gateway.server import GatewayService

if __name__ == "__main__":
    run_service("gateway", GatewayService)
