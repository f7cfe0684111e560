"""Graph optimization passes: a registry of small rules and the one default order.

Each pass is a module with one rule object (match / check -> reason / rewrite, the maths in the
module docstring). ``run_passes`` applies the named passes in the order given, each to a fixed
point, on a copy of the model; what a rule declined and why is logged on ``zoomake.passes`` at
DEBUG level and appended to ``report`` when one is passed.

Why our own rules rather than wrapping onnxslim / onnxoptimizer / onnxscript's rewriter: the
folds must be computed in float64 with one rounding, must refuse (with a reason) rather than
approximate, and must keep every graph input/output name; the libraries fold BatchNormalization
alone in float32 (the Caffe Scale Mul/Add stays), leave opset-12+ Dropout in place, and rename or
drop outputs in places. Where a library is the right tool we use it: ``onnx.reference`` evaluates
folded constants, ``onnx.shape_inference`` supplies static shapes.
"""

from __future__ import annotations

import onnx

from converters.errors import ConversionError
from converters.passes import (
    eliminate_dead_nodes,
    eliminate_dropout,
    eliminate_identity,
    fold_batchnorm,
    fold_constants,
)
from converters.passes.graph import apply_rule, check_graph

PASSES = {
    m.RULE.name: m.RULE
    for m in (eliminate_dropout, eliminate_identity, fold_constants, fold_batchnorm,
              eliminate_dead_nodes)
}  # fmt: skip

# The default order, in one place. Dropout/Identity first so a Conv and its BatchNorm/Scale
# become adjacent; constants next so parameters computed by Constant/shape nodes are
# initializers the fold can read; dead nodes last to drop what the folds orphaned.
DEFAULT_PASSES = [
    "eliminate_dropout",
    "eliminate_identity",
    "fold_constants",
    "fold_batchnorm",
    "eliminate_dead_nodes",
]


def run_passes(
    model: onnx.ModelProto, names: list[str] | None = None, report: list[str] | None = None
) -> onnx.ModelProto:
    """A copy of ``model`` with the passes ``names`` (None = DEFAULT_PASSES) applied in order."""
    names = DEFAULT_PASSES if names is None else list(names)
    unknown = [n for n in names if n not in PASSES]
    if unknown:
        raise ConversionError(
            f"unknown optimization pass(es) {', '.join(unknown)}; known: {', '.join(PASSES)}"
        )
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for name in names:
        apply_rule(out, PASSES[name], report)
    check_graph(out, "optimization")
    return out


__all__ = ["DEFAULT_PASSES", "PASSES", "run_passes"]
