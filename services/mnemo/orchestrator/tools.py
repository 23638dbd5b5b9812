"""The tools of one turn: the built-in functions, the agent's custom tools (client-side and MCP), the
turn's own client-side tools, and the agent's tool rules (docs/tools.md). Pure logic, no I/O."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from mnemo.common import tool_specs
from mnemo.orchestrator.functions import OPENAI_TOOLS, TOOLS, TOOLS_KEY, FunctionError, ParsedCall
from mnemo.v1 import common_pb2, llm_pb2


@dataclass(frozen=True)
class ToolSet:
    """What the model may call this turn, and the rules of those calls."""

    custom: dict[str, common_pb2.ToolSpec] = field(default_factory=dict)
    rules: dict[str, common_pb2.ToolRule] = field(default_factory=dict)
    llm_tools: list[llm_pb2.Tool] = field(default_factory=lambda: TOOLS)
    openai_tools: list[dict[str, Any]] = field(default_factory=lambda: OPENAI_TOOLS)
    key: str = TOOLS_KEY   # caches the token count of the tool schemas

    @property
    def run_first(self) -> list[str]:
        return [name for name, rule in self.rules.items() if rule.run_first]

    def tool_choice(self, first_call: bool) -> str:
        """`auto`, or the one tool a run_first rule asks for before any other call of the turn."""
        first = self.run_first
        if first_call and len(first) == 1:
            return first[0]
        return "required" if first_call and first else "auto"

    def rule_violation(self, name: str, called: list[str]) -> str | None:
        """Why a call of `name` breaks a rule, given the calls made before it this turn (None: it does not)."""
        first = self.run_first
        if first and not called and name not in first:
            return f"{' or '.join(first)} must be called first in a turn; call it now"
        rule = self.rules.get(name)
        if rule is not None and rule.max_calls_per_turn and called.count(name) >= rule.max_calls_per_turn:
            return (f"{name} may be called at most {rule.max_calls_per_turn} time(s) per turn; "
                    "continue without it")
        return None

    def needs_approval(self, name: str) -> bool:
        rule = self.rules.get(name)
        return rule is not None and rule.requires_approval

    def is_terminal(self, name: str) -> bool:
        rule = self.rules.get(name)
        return rule is not None and rule.terminal


BUILTIN_ONLY = ToolSet()


def tool_set(config: common_pb2.AgentConfig, turn_tools: list[common_pb2.ToolSpec] | None = None) -> ToolSet:
    """The turn's tools: the agent's, then the turn's own (which replace an agent tool of the same name)."""
    if not config.tools and not config.tool_rules and not turn_tools:
        return BUILTIN_ONLY
    holder = common_pb2.AgentConfig(tools=[*config.tools, *(turn_tools or ())], tool_rules=config.tool_rules)
    return _build(holder.SerializeToString(deterministic=True))


@lru_cache(maxsize=1024)
def _build(wire: bytes) -> ToolSet:
    """Built once per distinct set of tools and rules (cached by their wire bytes)."""
    holder = common_pb2.AgentConfig.FromString(wire)
    custom: dict[str, common_pb2.ToolSpec] = {spec.name: spec for spec in holder.tools}
    rules = {r.tool: r for r in holder.tool_rules}
    params = {name: s.parameters_json or tool_specs.DEFAULT_PARAMETERS for name, s in custom.items()}
    extra = [{"type": "function", "function": {"name": s.name, "description": s.description,
                                               "parameters": json.loads(params[s.name])}}
             for s in custom.values()]
    llm_extra = [llm_pb2.Tool(name=s.name, description=s.description, parameters_json=params[s.name])
                 for s in custom.values()]
    key = f"{TOOLS_KEY}+{hashlib.sha1(wire).hexdigest()[:16]}" if custom else TOOLS_KEY
    return ToolSet(custom=custom, rules=rules, llm_tools=[*TOOLS, *llm_extra],
                   openai_tools=[*OPENAI_TOOLS, *extra], key=key)


def parse_custom(call_id: str, spec: common_pb2.ToolSpec, arguments: str) -> ParsedCall:
    """Validate a custom tool's arguments against its JSON Schema; FunctionError with the reasons."""
    try:
        args = json.loads(arguments) if arguments.strip() else {}
    except json.JSONDecodeError as exc:
        raise FunctionError(f"arguments of {spec.name} are not valid JSON ({exc.msg} at position {exc.pos})") from None
    errors = tool_specs.argument_errors(spec.parameters_json, args)
    if errors:
        shown = "; ".join(errors[:5])
        raise FunctionError(f"arguments of {spec.name} do not match its schema: {shown}")
    return ParsedCall(call_id, spec.name, arguments, args if isinstance(args, dict) else {}, True)
