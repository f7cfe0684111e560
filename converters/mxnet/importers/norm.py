"""BatchNorm -> BatchNormalization (moving statistics; ``fix_gamma`` means gamma = 1),
LRN -> LRN, InstanceNorm -> InstanceNormalization."""

from __future__ import annotations

import numpy as np

from converters.mxnet.source import register


@register("BatchNorm")
def batch_norm(node, ctx):
    """BatchNormalization with MXNet's eps (default 1e-3) and fix_gamma (default True)."""
    if node.int("axis", 1) != 1:
        raise node.error(f"axis {node.int('axis', 1)} (channel axis 1 only)")
    gamma = ctx.param(node, 1, "gamma")
    if node.bool("fix_gamma", True):  # MXNet then ignores the stored gamma
        scale = ctx.const(f"{node.name}_gamma_fixed", np.ones_like(gamma))
    else:
        scale = ctx.input(node, 1)
    ins = [ctx.input(node, 0), scale, ctx.input(node, 2), ctx.input(node, 3), ctx.input(node, 4)]
    ctx.emit("BatchNormalization", ins, ctx.out(node), epsilon=node.float("eps", 1e-3))


@register("LRN")
def lrn(node, ctx):
    """LRN (alpha, beta, bias = knorm, size = nsize)."""
    ctx.emit("LRN", [ctx.input(node, 0)], ctx.out(node), alpha=node.float("alpha", 1e-4),
             beta=node.float("beta", 0.75), bias=node.float("knorm", 2.0),
             size=node.int("nsize", 0))  # fmt: skip


@register("InstanceNorm")
def instance_norm(node, ctx):
    """InstanceNormalization (eps default 1e-3)."""
    ins = [ctx.input(node, i) for i in range(3)]
    ctx.emit("InstanceNormalization", ins, ctx.out(node), epsilon=node.float("eps", 1e-3))
