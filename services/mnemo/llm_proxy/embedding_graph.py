"""Graph rewrites of the derived embedding model: fewer, larger operators for onnxruntime to run.

The shipped all-MiniLM-L6-v2 is a torch export whose every self-attention is ~30 small operators
(reshapes, transposes, slices, the mask arithmetic, softmax, a NaN guard) and whose every GELU is five
(Div, Erf, Add, Mul, Mul). onnxruntime's own fusions do not recognise either form, and with texts of
10-40 tokens the cost of running that many operators is a large part of a text's embedding. Each
attention becomes one `com.microsoft.MultiHeadAttention` (the attention mask as its key padding mask)
and each GELU one `com.microsoft.Gelu`; the vectors stay the same (checked by `derive` before the
rewritten model is kept). A block that does not have the expected form is left as it is.

Needs the `onnx` package: run only where the model is derived (a child process), never in a service.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

KEY_PADDING_MASK = "mnemo_key_padding_mask"
MS_DOMAIN = "com.microsoft"


class _Graph:
    """Producer and consumer lookups over a graph's nodes."""

    def __init__(self, graph: Any) -> None:
        from onnx import numpy_helper

        self.graph = graph
        self.producer = {o: n for n in graph.node for o in n.output}
        self.consumers: dict[str, list[Any]] = defaultdict(list)
        for n in graph.node:
            for i in n.input:
                self.consumers[i].append(n)
        self.constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        for n in graph.node:
            if n.op_type == "Constant":
                for a in n.attribute:
                    if a.name == "value":
                        self.constants[n.output[0]] = numpy_helper.to_array(a.t)

    def up(self, name: str, *ops: str) -> str | None:
        """The tensor reached from `name` through producers of these types (first input each)."""
        for op in ops:
            node = self.producer.get(name)
            if node is None or node.op_type != op:
                return None
            name = node.input[0]
        return name

    def only_consumer(self, name: str, op: str) -> Any | None:
        found = [n for n in self.consumers[name] if n.op_type == op]
        return found[0] if len(found) == 1 else None

    def is_scalar(self, name: str, value: float) -> bool:
        v = self.constants.get(name)
        return v is not None and v.size == 1 and abs(float(v.reshape(-1)[0]) - value) < 1e-4


def _attentions(g: _Graph, num_heads: int) -> dict[str, Any]:
    """Output tensor of each attention block -> the MultiHeadAttention node computing it.

    The form matched: Softmax(MatMul(Q', K') + mask) with Q' = Transpose(Reshape(q)) * s and K' the
    same of k, transposed; guarded by Where(IsNaN); MatMul with Transpose(Reshape(v)); Transpose;
    Reshape back to (batch, sequence, hidden)."""
    from onnx import helper

    out: dict[str, Any] = {}
    for softmax in (n for n in g.graph.node if n.op_type == "Softmax"):
        guard = g.only_consumer(softmax.output[0], "Where")
        weighted = guard and g.only_consumer(guard.output[0], "MatMul")
        heads_out = weighted and g.only_consumer(weighted.output[0], "Transpose")
        merged = heads_out and g.only_consumer(heads_out.output[0], "Reshape")
        scores = g.producer.get(softmax.input[0])
        if guard is None or weighted is None or heads_out is None or merged is None or scores is None \
                or scores.op_type != "Add":
            continue
        qk = next((g.producer[i] for i in scores.input if i in g.producer and g.producer[i].op_type == "MatMul"), None)
        if qk is None:
            continue
        q = g.up(qk.input[0], "Mul", "Transpose", "Reshape")
        k = g.up(qk.input[1], "Mul", "Reshape", "Transpose", "Reshape", "Transpose", "Reshape")
        v = g.up(weighted.input[1], "Transpose", "Reshape")
        if q is None or k is None or v is None:
            continue
        target = merged.output[0]
        out[target] = helper.make_node("MultiHeadAttention", [q, k, v, "", KEY_PADDING_MASK], [target],
                                       domain=MS_DOMAIN, num_heads=num_heads, name=f"mnemo_attention_{len(out)}")
    return out


def _gelus(g: _Graph) -> dict[str, Any]:
    """Output tensor of each exact GELU (x * 0.5 * (1 + erf(x / sqrt 2))) -> a Gelu node."""
    from onnx import helper

    out: dict[str, Any] = {}
    for erf in (n for n in g.graph.node if n.op_type == "Erf"):
        div = g.producer.get(erf.input[0])
        if div is None or div.op_type != "Div" or not g.is_scalar(div.input[1], 2 ** 0.5):
            continue
        x = div.input[0]
        one = g.only_consumer(erf.output[0], "Add")
        half = one and g.only_consumer(one.output[0], "Mul")
        times_x = half and g.only_consumer(half.output[0], "Mul")
        if one is None or half is None or times_x is None or x not in times_x.input:
            continue
        if not any(g.is_scalar(i, 1.0) for i in one.input) or not any(g.is_scalar(i, 0.5) for i in half.input):
            continue
        target = times_x.output[0]
        out[target] = helper.make_node("Gelu", [x], [target], domain=MS_DOMAIN, name=f"mnemo_gelu_{len(out)}")
    return out


def fuse(model: Any, num_heads: int = 12, mask_input: str = "attention_mask") -> tuple[int, int]:
    """Rewrite `model` (an onnx ModelProto) in place; (attentions, GELUs) replaced."""
    from onnx import TensorProto, helper

    g = _Graph(model.graph)
    attentions, gelus = _attentions(g, num_heads), _gelus(g)
    replacements = {**attentions, **gelus}
    if not replacements:
        return 0, 0
    nodes = []
    if attentions:
        nodes.append(helper.make_node("Cast", [mask_input], [KEY_PADDING_MASK], to=TensorProto.INT32,
                                      name="mnemo_key_padding_mask_cast"))
    for n in model.graph.node:
        replaced = next((replacements[o] for o in n.output if o in replacements), None)
        nodes.append(replaced if replaced is not None else n)
    needed = {o.name for o in model.graph.output}
    kept = []
    for n in reversed(nodes):  # what no output depends on any more goes
        if any(o in needed for o in n.output):
            kept.append(n)
            needed.update(i for i in n.input if i)
    kept.reverse()
    del model.graph.node[:]
    model.graph.node.extend(kept)
    initializers = [i for i in model.graph.initializer if i.name in needed]
    del model.graph.initializer[:]
    model.graph.initializer.extend(initializers)
    if not any(o.domain == MS_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    return len(attentions), len(gelus)
