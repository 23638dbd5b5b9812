"""Structured logging: JSON lines carrying the current trace and span ids. Never log secrets."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

from opentelemetry import trace

# Bearer tokens, API keys (mnemo and OpenAI-style) are masked wherever they appear in a message.
_SECRET_RE = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+|\b(sk|mk)-[A-Za-z0-9_-]{8,}")


def redact(text: str) -> str:
    """Mask bearer tokens and API keys in `text`."""
    return _SECRET_RE.sub(lambda m: (m.group(1) or "") + "[REDACTED]", text)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            out["trace_id"] = format(ctx.trace_id, "032x")
            out["span_id"] = format(ctx.span_id, "016x")
        for key in ("tenant_id", "agent_id", "turn_id"):
            if hasattr(record, key):
                out[key] = getattr(record, key)
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__(f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(service: str, level: str = "INFO", fmt: str = "json") -> None:
    """Configure the root logger for one service process (stderr)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if fmt == "json" else TextFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "openai", "elastic_transport", "nats", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
