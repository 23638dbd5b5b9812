"""`python -m mnemo.llm_proxy`: run the llm-proxy as a process."""

from mnemo.common.runner import run_service
from mnemo.llm_proxy.server import LlmProxyService

if __name__ == "__main__":
    run_service("llm_proxy", LlmProxyService)
