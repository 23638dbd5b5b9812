"""`python -m mnemo.memory`: run the memory service as a process."""

from mnemo.common.runner import run_service
from mnemo.memory.server import MemoryService

if __name__ == "__main__":
    run_service("memory", MemoryService)
