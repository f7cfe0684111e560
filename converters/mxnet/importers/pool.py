"""Pooling -> MaxPool / AveragePool / Global*Pool, with MXNet's window count and divisor.

MXNet counts ``floor`` (``valid``) or ``ceil`` (``full``) of ``(H + 2p - k) / s`` plus one
windows, starting at ``o * s - p``; ONNX is given begin pad ``p`` and the end pad that yields
the same count (floor arithmetic, ``ceil_mode=0``). MAX ignores padding in both.
AVE with ``count_include_pad`` (MXNet's default) divides by the window clipped to ``H + p``
(Caffe's rule): that is a zero ``Pad(p)`` followed by ONNX ``count_include_pad=0`` with only the
overhang as ONNX pads. Without it, both divide by the input cells in the window.
"""

from __future__ import annotations

import math

from converters.mxnet.source import register


@register("Pooling")
def pooling(node, ctx):
    """Max/avg pooling, valid/full conventions, count_include_pad, global_pool."""
    kind = node.text("pool_type", "max")
    if kind not in ("max", "avg"):
        raise node.error(f"pool_type {kind!r} (max and avg only)")
    x = ctx.input(node, 0)
    if node.bool("global_pool", False):
        op = "GlobalMaxPool" if kind == "max" else "GlobalAveragePool"
        ctx.emit(op, [x], ctx.out(node))
        return
    k = node.tuple("kernel")
    n = len(k)
    s = node.tuple("stride", (1,) * n) or (1,) * n
    p = node.tuple("pad", (0,) * n) or (0,) * n
    convention = node.text("pooling_convention", "valid")
    if convention not in ("valid", "full"):
        raise node.error(f"pooling_convention {convention!r} (valid and full only)")
    size = ctx.shape(node, x)[2:]
    rounding = math.floor if convention == "valid" else math.ceil
    out = [int(rounding((size[i] + 2 * p[i] - k[i]) / s[i])) + 1 for i in range(n)]
    include = kind == "avg" and node.bool("count_include_pad", True)
    if include and any(p):
        x = ctx.emit("Pad", [x, ctx.ints(f"{node.name}/pads", [0, 0, *p, 0, 0, *p])],
                     hint=f"{node.name}/pad")  # fmt: skip
        size, begin = [size[i] + 2 * p[i] for i in range(n)], [0] * n
    else:
        size, begin = list(size), list(p)
    end = [max(0, (out[i] - 1) * s[i] + k[i] - size[i] - begin[i]) for i in range(n)]
    attrs = {"kernel_shape": list(k), "strides": list(s), "pads": begin + end}
    if kind == "avg":
        attrs["count_include_pad"] = 0
    got = [(size[i] + begin[i] + end[i] - k[i]) // s[i] + 1 for i in range(n)]
    if got != out:
        raise node.error(f"MXNet's {out} windows have no ONNX padding ({got})")
    ctx.emit("MaxPool" if kind == "max" else "AveragePool", [x], ctx.out(node), **attrs)
