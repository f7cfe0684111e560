"""eliminate_identity: ``y = Identity(x)`` is removed; readers of ``y`` read ``x``.

When ``y`` is a graph output its name must survive, so the node producing ``x`` writes ``y``
instead (and ``x``'s other readers follow the rename). Refused when ``y`` is a graph output and
``x`` is a graph input, a constant or itself a graph output (two outputs, one value: the
Identity is what gives the second name), or when a subgraph reads either value.
"""

from __future__ import annotations

from converters.passes.graph import Rule


class EliminateIdentity(Rule):
    name = "eliminate_identity"

    def match(self, g):
        return (n for n in g.nodes if n.op_type == "Identity" and n.domain in ("", "ai.onnx"))

    def check(self, g, node):
        return g.bypass_refusal(node.input[0], node.output[0])

    def rewrite(self, g, node):
        g.bypass(node, node.input[0], node.output[0])


RULE = EliminateIdentity()
