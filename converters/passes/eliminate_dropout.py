"""eliminate_dropout: inference-mode Dropout is the identity.

ONNX Dropout (opset 12+): ``output = x`` when ``training_mode`` is absent or false, whatever
``ratio`` is (scaling by ``1 / (1 - ratio)`` happens only in training). The node is removed and
its readers read ``x``; a graph-output name is kept by renaming the producer's output.

Refused when ``training_mode`` is not a constant false (then the output is random), when the
``mask`` output is read (it would need a constant all-true tensor instead), or when the output
is a graph output fed directly by a graph input or constant. onnxoptimizer's
``eliminate_nop_dropout`` only removes Dropout whose ``ratio`` attribute is 0, which opset 12+
nodes (``ratio`` became an input) never have: hence our own rule.
"""

from __future__ import annotations

import numpy as np

from converters.passes.graph import Rule


class EliminateDropout(Rule):
    name = "eliminate_dropout"

    def match(self, g):
        return (n for n in g.nodes if n.op_type == "Dropout" and n.domain in ("", "ai.onnx"))

    def check(self, g, node):
        if len(node.input) > 2 and node.input[2]:
            mode = g.const(node.input[2])
            if mode is None:
                return f"training_mode '{node.input[2]}' is not a constant"
            if np.any(mode):
                return "training_mode is true"
        if len(node.output) > 1 and node.output[1] and g.used(node.output[1]):
            return f"its mask output '{node.output[1]}' is used"
        return g.bypass_refusal(node.input[0], node.output[0])

    def rewrite(self, g, node):
        g.bypass(node, node.input[0], node.output[0])


RULE = EliminateDropout()
