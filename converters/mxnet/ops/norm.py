"""BatchNormalization -> BatchNorm (inference statistics, learned gamma), LRN -> LRN.

BatchNorm is written with ``fix_gamma: False`` (MXNet's default True ignores gamma and uses 1)
and ``use_global_stats: True`` (use the moving statistics, which MXNet keeps as auxiliary
states: ``aux:<name>_moving_mean`` / ``_moving_var`` in the params file).
LRN: ``x / (knorm + alpha / nsize * sum(x^2 over nsize channels)) ^ beta`` in both.
"""

from __future__ import annotations

import numpy as np

from converters.mxnet.registry import register


@register("BatchNormalization")
def batch_norm(node, ctx):
    """BatchNorm with fix_gamma False, use_global_stats True, moving stats as aux states."""
    if node.attr("training_mode", 0):
        raise node.error("training_mode=1 (batch statistics) is not an inference graph")
    if any(o for o in node.outputs[1:]):
        raise node.error("the running-statistics outputs are not supported")
    out = node.outputs[0]
    names = ("gamma", "beta", "moving_mean", "moving_var")
    values = [np.asarray(ctx.const(node, i + 1, names[i]), dtype=np.float32) for i in range(4)]
    params = [ctx.weight(f"{out}_{nm}", v, aux=nm.startswith("moving"))
              for nm, v in zip(names, values, strict=True)]  # fmt: skip
    attrs = {"eps": float(node.attr("epsilon", 1e-5)), "momentum": 0.9, "fix_gamma": False,
             "use_global_stats": True, "axis": 1}  # fmt: skip
    ctx.out(node, "BatchNorm", [ctx.sym(node, 0), *params], attrs)


@register("LRN")
def lrn(node, ctx):
    """LRN across channels (alpha, beta, knorm = bias, nsize)."""
    attrs = {"alpha": float(node.attr("alpha", 1e-4)), "beta": float(node.attr("beta", 0.75)),
             "knorm": float(node.attr("bias", 1.0)), "nsize": int(node.attr("size"))}  # fmt: skip
    if attrs["nsize"] % 2 == 0:
        raise node.error(f"even size {attrs['nsize']}: ONNX and MXNet centre the window "
                         "differently")  # fmt: skip
    ctx.out(node, "LRN", [ctx.sym(node, 0)], attrs)
