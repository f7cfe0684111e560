"""MaxPool / AveragePool / Global*Pool -> Pooling, with the exact window count and divisor.

MXNet's output size along an axis is ``floor`` (``pooling_convention: valid``) or ``ceil``
(``full``, Caffe's rounding, without Caffe's "last window starts in the padding" trim) of
``(H + 2p - k) / s`` plus one, with the symmetric pad ``p``. ONNX's windows start at
``o * s - begin`` like MXNet's, so with ``p = begin`` only the count can differ: the convention
giving ONNX's inferred count is used, or the smaller count above it followed by a slice.

Divisors: MAX ignores padding in both. AVE with ONNX ``count_include_pad=0`` counts the input
cells of the window, as MXNet's ``count_include_pad: False``. ONNX ``count_include_pad=1``
divides by the full kernel; MXNet (``True``) by the window clipped to ``H + p`` (Caffe's AVE),
the same unless a window overhangs the padded input, which is refused.
"""

from __future__ import annotations

import math

from converters.mxnet.ops._geometry import onnx_pads, spatial
from converters.mxnet.registry import register


@register("GlobalAveragePool", "GlobalMaxPool")
def global_pool(node, ctx):
    """Pooling with global_pool."""
    kind = "avg" if node.op == "GlobalAveragePool" else "max"
    n = len(ctx.in_shape(node)) - 2
    attrs = {"kernel": (1,) * n, "pool_type": kind, "global_pool": True}
    ctx.out(node, "Pooling", [ctx.sym(node, 0)], attrs)


@register("MaxPool", "AveragePool")
def pool(node, ctx):
    """Pooling valid/full convention chosen from ONNX's output size; count_include_pad."""
    shape, out_shape = ctx.in_shape(node), ctx.out_shape(node)
    if len(node.outputs) > 1 and node.outputs[1]:
        raise node.error("the indices output has no MXNet equivalent")
    n = len(shape) - 2
    k = spatial(node, "kernel_shape", n, 1)
    s = spatial(node, "strides", n, 1)
    if any(d != 1 for d in spatial(node, "dilations", n, 1)):
        raise node.error("dilated pooling has no MXNet equivalent")
    begin, end = onnx_pads(node, n)
    size, want = shape[2:], out_shape[2:]
    counts = {}
    for conv, rounding in (("valid", math.floor), ("full", math.ceil)):
        counts[conv] = [int(rounding((size[i] + 2 * begin[i] - k[i]) / s[i])) + 1
                        for i in range(n)]  # fmt: skip
    fits = [c for c in ("valid", "full") if all(counts[c][i] >= want[i] for i in range(n))]
    if not fits:
        raise node.error(f"ONNX gives {list(want)} windows; MXNet's pad {list(begin)} gives at "
                         f"most {counts['full']}")  # fmt: skip
    convention = min(fits, key=lambda c: sum(counts[c]))
    for i in range(n):
        if (want[i] - 1) * s[i] - begin[i] >= size[i]:
            raise node.error(f"the last window along axis {i + 2} pools no input value")
    attrs = {"kernel": k, "stride": s, "pad": begin, "pooling_convention": convention,
             "pool_type": "max" if node.op == "MaxPool" else "avg"}  # fmt: skip
    if node.op == "AveragePool":
        include = bool(node.attr("count_include_pad", 0))
        if include and any((want[i] - 1) * s[i] + k[i] > size[i] + begin[i] + end[i]
                           for i in range(n)):  # fmt: skip
            raise node.error("count_include_pad=1 with a window overhanging the padded input: "
                             "ONNX and MXNet divide it differently")  # fmt: skip
        if include and begin != end:
            raise node.error("count_include_pad=1 with asymmetric pads has no MXNet equivalent")
        attrs["count_include_pad"] = include
    if counts[convention] == list(want):
        ctx.out(node, "Pooling", [ctx.sym(node, 0)], attrs)
        return
    y = ctx.op("Pooling", [ctx.sym(node, 0)], attrs, hint=f"{node.name}/pool")
    ctx.out(node, "slice", [y], {"begin": (0,) * (n + 2), "end": tuple(out_shape)})
