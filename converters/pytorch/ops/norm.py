"""BatchNormalization (inference) -> nn.BatchNorm1d/2d; LRN -> nn.LocalResponseNorm."""

from __future__ import annotations

from converters.pytorch.registry import register


@register("BatchNormalization", notes="inference form as nn.BatchNorm1d/2d with running statistics")
def batch_norm(node, ctx):
    """nn.BatchNorm2d (rank 4) or nn.BatchNorm1d (rank 2/3) in eval mode."""
    if ctx.attr(node, "training_mode", 0) or len([o for o in node.output if o]) > 1:
        raise ctx.refuse(node, "training_mode=1 is not supported (inference only)")
    rank = len(ctx.shape(node.input[0]))
    cls = {4: "BatchNorm2d", 3: "BatchNorm1d", 2: "BatchNorm1d"}.get(rank)
    if cls is None:
        raise ctx.refuse(node, f"input rank {rank} is not supported")
    scale, bias, mean, var = (
        ctx.const(node, i, w) for i, w in enumerate(["scale", "B", "mean", "var"], start=1)
    )
    eps = float(ctx.attr(node, "epsilon", 1e-5))
    # ONNX momentum weighs the old statistic, torch's the new one.
    momentum = 1.0 - float(ctx.attr(node, "momentum", 0.9))
    layer = ctx.add_module(
        node,
        f"nn.{cls}({scale.shape[0]}, eps={eps!r}, momentum={momentum!r})",
        {"weight": scale, "bias": bias, "running_mean": mean, "running_var": var},
    )
    ctx.assign(node, f"{layer}({ctx.var(node, 0)})")


@register("LRN", notes="nn.LocalResponseNorm (across channels; torch also divides alpha by size)")
def lrn(node, ctx):
    """nn.LocalResponseNorm: b = a / (bias + alpha / size * sum a^2) ^ beta, as ONNX."""
    size = int(ctx.attr(node, "size"))
    alpha = float(ctx.attr(node, "alpha", 1e-4))
    beta = float(ctx.attr(node, "beta", 0.75))
    bias = float(ctx.attr(node, "bias", 1.0))
    layer = ctx.add_module(
        node, f"nn.LocalResponseNorm({size}, alpha={alpha!r}, beta={beta!r}, k={bias!r})", {}
    )
    ctx.assign(node, f"{layer}({ctx.var(node, 0)})")
