"""A scripted OpenAI-compatible HTTP server for tests and benchmarks.

Reached through the real `openai` SDK (base_url = `server.base_url`). Responses come from a script
(a queue of steps pushed by the test) or, when the script is empty, from a default policy: reply to
the last user message with a `send_message` tool call ("You said: ..."), or a short text for calls
without tools (summaries). Every request body is recorded.

Control from another process: POST /_script (JSON list of steps), GET /_requests, POST /_reset.

A step may name the requests it is for: {"for": "agent"} (requests with tools other than
consolidate_memory), "summarizer" (requests without tools) or "consolidation" (requests offering the
`consolidate_memory` tool; a step calling consolidate_memory is for them without saying so). A
request takes the first queued step meant for it; a step that names nothing is for agent and
summarizer requests alike. Without such a step a consolidation request gets
`default_consolidation`: each block's lines deduplicated and cut to the newest that fill 60 % of its
limit, the summary's repeated sentences dropped, every duplicate group merged into its oldest passage.

A step is a dict with any of:
  {"tool_call": {"name": "send_message", "arguments": {...} | "raw json text"}}
  {"tool_calls": [...]}                    several calls at once
  {"content": "text"}                      plain text (inner monologue, or a summary)
  {"error": {"status": 429, "body": {...}, "headers": {"retry-after": "1"}}}
  {"delay": 0.5}                           wait before answering (timeouts)
  {"raw": "text", "status": 200}           this body as it is (a provider answering nonsense)
  {"usage": {"prompt_tokens": 10, "completion_tokens": 5}}

Faults (`set_fault`, or POST /_fault {"mode": ..., "seconds": ...}): for some seconds every chat request
is answered badly, whatever the script says: "500" (a server error), "429" (rate limited, with
`Retry-After`), "hang" (no answer until the client gives up) or "cut" (the answer starts and the
connection closes mid-stream). `faulted` counts the requests answered so.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import socket
import threading
import time
import uuid
from collections import deque
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

EMBED_DIM = 384


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def user_text(messages: list[dict[str, Any]]) -> str:
    """The text of the last user message (unwrapping MemGPT-style JSON packing)."""
    for m in reversed(messages):
        if m.get("role") == "user":
            content = m.get("content") or ""
            if isinstance(content, list):
                content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            try:
                data = json.loads(content)
                if isinstance(data, dict) and "message" in data:
                    return str(data["message"])
            except (ValueError, TypeError):
                pass
            return str(content)
    return ""


def default_step(body: dict[str, Any]) -> dict[str, Any]:
    """What the model does with no script: answer through send_message, or summarize."""
    messages = body.get("messages", [])
    tools = body.get("tools") or body.get("functions")
    if not tools:
        return {"content": "Summary of earlier conversation: " + user_text(messages)[:200]}
    last = messages[-1] if messages else {}
    if last.get("role") in ("tool", "function"):
        # A function returned: finish without further heartbeat.
        return {"content": "Done."}
    return {"tool_call": {"name": "send_message",
                          "arguments": {"message": "You said: " + user_text(messages),
                                        "request_heartbeat": False}}}


CONSOLIDATE = "consolidate_memory"


def offers(body: dict[str, Any], name: str) -> bool:
    """Whether a request offers the tool `name`."""
    for tool in body.get("tools") or []:
        if (tool.get("function") or {}).get("name") == name:
            return True
    return False


def request_kind(body: dict[str, Any]) -> str:
    """consolidation, agent or summarizer (see the module docstring)."""
    if offers(body, CONSOLIDATE):
        return "consolidation"
    return "agent" if body.get("tools") or body.get("functions") else "summarizer"


def step_for(step: dict[str, Any], kind: str) -> bool:
    """Whether a queued step may answer a request of `kind`."""
    calls = step.get("tool_calls") or ([step["tool_call"]] if "tool_call" in step else [])
    meant = step.get("for") or ("consolidation" if any(c.get("name") == CONSOLIDATE for c in calls) else None)
    if meant is None:
        return kind != "consolidation"
    return meant == kind


def _dedupe(parts: list[str]) -> list[str]:
    """Parts without repeats (case and spacing aside), each kept at its last place."""
    seen: set[str] = set()
    out: list[str] = []
    for part in reversed(parts):
        key = " ".join(part.lower().split())
        if key and key not in seen:
            seen.add(key)
            out.append(part)
    return out[::-1]


def default_consolidation(body: dict[str, Any]) -> dict[str, Any]:
    """What the scripted model does with a consolidation request and no script (module docstring)."""
    try:
        task = json.loads(next(m["content"] for m in reversed(body.get("messages", [])) if m.get("role") == "user"))
    except (StopIteration, ValueError, TypeError):
        task = {}
    blocks = []
    for b in task.get("blocks") or []:
        kept: list[str] = []
        for line in reversed(_dedupe(b["value"].split("\n"))):
            if sum(len(x) + 1 for x in kept) + len(line) > 0.6 * b["limit"]:
                break
            kept.insert(0, line)
        blocks.append({"label": b["label"], "value": "\n".join(kept)})
    summary = task.get("summary") or ""
    if summary:
        summary = " ".join(_dedupe([s.strip() + "." for s in summary.split(".") if s.strip()]))
    merges = [{"keep_id": g["passages"][0]["id"], "drop_ids": [p["id"] for p in g["passages"][1:]]}
              for g in task.get("duplicates") or [] if len(g.get("passages") or []) > 1]
    return {"tool_call": {"name": CONSOLIDATE, "arguments": {"blocks": blocks, "summary": summary, "merges": merges}}}


def fake_embedding(text: str, dim: int = EMBED_DIM) -> list[float]:
    """Deterministic unit vector from a hash of the text."""
    out: list[float] = []
    seed = text.encode()
    i = 0
    while len(out) < dim:
        h = hashlib.sha256(seed + i.to_bytes(4, "little")).digest()
        out.extend((b - 127.5) / 127.5 for b in h)
        i += 1
    v = out[:dim]
    norm = sum(x * x for x in v) ** 0.5 or 1.0
    return [x / norm for x in v]


FAULT_MODES = ("500", "429", "hang", "cut")


class Fault:
    """A fault of the model endpoint: `mode` until `until` (time.monotonic())."""

    def __init__(self, mode: str, seconds: float, retry_after: float = 1.0) -> None:
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r}: one of {', '.join(FAULT_MODES)}")
        self.mode = mode
        self.until = time.monotonic() + seconds
        self.retry_after = retry_after

    @property
    def active(self) -> bool:
        return time.monotonic() < self.until


class _Cut(Exception):
    """Raised inside a response body: the server drops the connection mid-answer."""


class _QuietCuts(logging.Filter):
    """uvicorn logs an exception raised in a response body with its traceback: not for a _Cut."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _Cut))


logging.getLogger("uvicorn.error").addFilter(_QuietCuts())


class ScriptedLLM:
    """The server; `start()` runs it in a background thread on a free port."""

    def __init__(self, port: int | None = None, model: str = "gpt-4o-mini", latency: float = 0.0) -> None:
        self.port = port or _free_port()
        self.model = model
        self.latency = latency  # seconds every chat answer waits (a remote model's latency), unless scripted
        self.script: deque[dict[str, Any]] = deque()
        self.requests: list[dict[str, Any]] = []
        self.record = True
        self.fault: Fault | None = None
        self.faulted = 0
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = Starlette(routes=[
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
            Route("/v1/embeddings", self._embeddings, methods=["POST"]),
            Route("/v1/models", self._models, methods=["GET"]),
            Route("/_script", self._push_script, methods=["POST"]),
            Route("/_requests", self._get_requests, methods=["GET"]),
            Route("/_reset", self._reset, methods=["POST"]),
            Route("/_fault", self._set_fault, methods=["POST"]),
        ])

    # ---- control -------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def push(self, *steps: dict[str, Any]) -> None:
        with self._lock:
            self.script.extend(steps)

    def reset(self) -> None:
        with self._lock:
            self.script.clear()
            self.requests.clear()
            self.fault = None

    def set_fault(self, mode: str, seconds: float, retry_after: float = 1.0) -> None:
        """Answer every chat request with the fault `mode` for `seconds` (module docstring)."""
        self.fault = Fault(mode, seconds, retry_after)

    def clear_fault(self) -> None:
        self.fault = None

    def chat_requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if r.get("_path") == "chat"]

    def start(self) -> ScriptedLLM:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("scripted LLM did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server:
            self._server.should_exit = True
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> ScriptedLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- handlers ------------------------------------------------------------------------
    def _next_step(self, body: dict[str, Any]) -> dict[str, Any]:
        kind = request_kind(body)
        with self._lock:
            if self.record:
                self.requests.append({**body, "_path": "chat"})
            for i, step in enumerate(self.script):
                if step_for(step, kind):
                    del self.script[i]
                    return step
        return default_consolidation(body) if kind == "consolidation" else default_step(body)

    async def _chat(self, request: Request) -> Response:
        body = orjson.loads(await request.body())  # the stdlib's json costs ~1 ms per 250 KB body
        fault = self.fault
        if fault is not None and fault.active:
            self.faulted += 1
            return await self._faulty(fault, body)
        step = self._next_step({**body, "_authorization": request.headers.get("authorization", "")})
        if self.latency:
            await asyncio.sleep(self.latency)
        if step.get("delay"):
            await asyncio.sleep(float(step["delay"]))
        if "error" in step:
            err = step["error"]
            payload = err.get("body") or {"error": {"message": err.get("message", "scripted error"),
                                                    "type": err.get("type", "server_error"),
                                                    "code": err.get("code")}}
            return JSONResponse(payload, status_code=int(err.get("status", 500)),
                                headers=err.get("headers") or {})
        if "raw" in step:
            return Response(step["raw"], status_code=int(step.get("status", 200)), media_type="application/json")
        message: dict[str, Any] = {"role": "assistant", "content": step.get("content")}
        calls = step.get("tool_calls") or ([step["tool_call"]] if "tool_call" in step else [])
        tool_calls = []
        for call in calls:
            args = call.get("arguments", {})
            tool_calls.append({
                "id": call.get("id") or f"call_{uuid.uuid4().hex[:12]}",
                "type": "function",
                "function": {"name": call["name"],
                             "arguments": args if isinstance(args, str) else json.dumps(args)},
            })
        if tool_calls:
            message["tool_calls"] = tool_calls
        finish = "tool_calls" if tool_calls else "stop"
        messages = body.get("messages", [])
        # about four characters per token of the messages' compact JSON
        prompt_chars = len(orjson.dumps(messages)) if messages else 0
        usage = step.get("usage") or {"prompt_tokens": max(1, prompt_chars // 4),
                                      "completion_tokens": 8}
        usage = {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}
        created = int(time.time())
        cid = f"chatcmpl-{uuid.uuid4().hex[:16]}"
        model = body.get("model", self.model)
        if body.get("stream"):
            return StreamingResponse(self._stream(cid, created, model, message, finish, usage),
                                     media_type="text/event-stream")
        return JSONResponse({
            "id": cid, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
        })

    async def _stream(self, cid: str, created: int, model: str, message: dict[str, Any],
                      finish: str, usage: dict[str, Any]):  # type: ignore[no-untyped-def]
        def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> str:
            data = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}], **extra}
            return f"data: {json.dumps(data)}\n\n"

        yield chunk({"role": "assistant"})
        content = message.get("content") or ""
        for i in range(0, len(content), 8):
            yield chunk({"content": content[i:i + 8]})
        for idx, call in enumerate(message.get("tool_calls", [])):
            yield chunk({"tool_calls": [{"index": idx, "id": call["id"], "type": "function",
                                         "function": {"name": call["function"]["name"], "arguments": ""}}]})
            args = call["function"]["arguments"]
            for i in range(0, len(args), 16):
                yield chunk({"tool_calls": [{"index": idx, "function": {"arguments": args[i:i + 16]}}]})
        yield chunk({}, finish)
        last = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [],
                "usage": usage}
        yield f"data: {json.dumps(last)}\n\n"
        yield "data: [DONE]\n\n"

    async def _faulty(self, fault: Fault, body: dict[str, Any]) -> Response:
        if fault.mode == "hang":
            # Until the fault ends and a while after: any sane client timeout is shorter.
            await asyncio.sleep(max(0.0, fault.until - time.monotonic()) + 30.0)
            return JSONResponse({"error": {"message": "too late", "type": "server_error"}}, status_code=504)
        if fault.mode == "429":
            return JSONResponse({"error": {"message": "rate limited (scripted fault)", "type": "rate_limit_error",
                                           "code": "rate_limit_exceeded"}},
                                status_code=429, headers={"retry-after": f"{fault.retry_after:g}"})
        if fault.mode == "500":
            return JSONResponse({"error": {"message": "internal error (scripted fault)", "type": "server_error"}},
                                status_code=500)

        async def cut() -> Any:  # "cut": a valid start, then the connection is dropped
            if body.get("stream"):
                head = {"id": "chatcmpl-cut", "object": "chat.completion.chunk", "created": int(time.time()),
                        "model": body.get("model", self.model),
                        "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}
                yield f"data: {json.dumps(head)}\n\n".encode()
            else:
                yield b'{"id": "chatcmpl-cut", "object": "chat.completion", "choi'
            raise _Cut("scripted fault: connection closed mid-answer")

        headers = {} if body.get("stream") else {"content-length": "4096"}
        return StreamingResponse(cut(), media_type="text/event-stream" if body.get("stream") else "application/json",
                                 headers=headers)

    async def _set_fault(self, request: Request) -> Response:
        data = await request.json()
        self.set_fault(str(data["mode"]), float(data["seconds"]), float(data.get("retry_after", 1.0)))
        return JSONResponse({"ok": True})

    async def _embeddings(self, request: Request) -> Response:
        body = await request.json()
        with self._lock:
            if self.record:
                self.requests.append({**body, "_path": "embeddings"})
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        dim = int(body.get("dimensions") or EMBED_DIM)
        data = [{"object": "embedding", "index": i, "embedding": fake_embedding(str(t), dim)}
                for i, t in enumerate(texts)]
        tokens = sum(len(str(t).split()) for t in texts)
        return JSONResponse({"object": "list", "data": data, "model": body.get("model", "text-embedding-3-small"),
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [
            {"id": self.model, "object": "model", "created": 0, "owned_by": "scripted"}]})

    async def _push_script(self, request: Request) -> Response:
        steps = await request.json()
        self.push(*steps)
        return JSONResponse({"queued": len(self.script)})

    async def _get_requests(self, request: Request) -> Response:
        with self._lock:
            return JSONResponse(self.requests)

    async def _reset(self, request: Request) -> Response:
        self.reset()
        return JSONResponse({"ok": True})


if __name__ == "__main__":  # standalone: python -m tests.scripted_llm [port] [--latency-ms MS] [--no-record]
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int, nargs="?")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="every chat answer waits this long")
    parser.add_argument("--no-record", action="store_true", help="keep no request bodies (long benches)")
    args = parser.parse_args()
    srv = ScriptedLLM(args.port, latency=args.latency_ms / 1000)
    srv.record = not args.no_record
    config = uvicorn.Config(srv.app, host="127.0.0.1", port=srv.port, log_level="warning", lifespan="off")
    print(srv.base_url, flush=True)
    uvicorn.Server(config).run()
