"""Pooling: MAX, AVE and global, with Caffe's exact output size and AVE divisor.

Caffe output size (``round_mode`` CEIL by default; the SSD fork's ``ceil_mode: false`` and BVLC's
``round_mode: FLOOR`` select floor)::

    out = ceil_or_floor((H + 2p - k) / s) + 1
    if p > 0 and (out - 1) * s >= H + p: out -= 1      # last window must start inside image+pad

ONNX pooling is used in ``ceil_mode=0`` with explicit extra end pads, and the output is sliced if
ONNX's floor arithmetic yields one more window than Caffe. MAX ignores padding either way.
AVE: Caffe divides by the window clipped to ``H + p`` (real padding counts, the ceil overhang
does not). ``Pad(p)`` with zeros followed by ``AveragePool(count_include_pad=0)`` with only the
overhang as ONNX pads reproduces that divisor exactly.
"""

from __future__ import annotations

from onnx import TensorProto

from converters.caffe.layers._geometry import spatial_pair
from converters.caffe.prototxt import pooling_ceil_mode
from converters.caffe.registry import register
from converters.caffe_geometry import caffe_pool_size

MAX, AVE, STOCHASTIC = 0, 1, 2


@register("Pooling")
def pooling(layer, ctx):
    """MAX/AVE/global pooling, exact Caffe output size and AVE divisor; MAX argmax mask top."""
    p = layer.param("pooling_param")
    x = ctx.input(layer)
    n, c, h, w = ctx.in_shape4(layer)
    if p.pool == STOCHASTIC:
        raise layer.error("STOCHASTIC pooling is not supported (no deterministic ONNX equivalent)")
    mask = len(layer.tops) == 2
    if len(layer.tops) > 2 or (mask and p.pool != MAX):
        raise layer.error(f"a second top (the argmax mask) needs pool: MAX and is the last; "
                          f"got {len(layer.tops)} tops")  # fmt: skip
    if p.global_pooling and not mask:
        op = "GlobalMaxPool" if p.pool == MAX else "GlobalAveragePool"
        ctx.set_top(layer, 0, ctx.node(op, [x], ctx.top_name(layer)), (n, c, 1, 1))
        return
    if p.global_pooling:  # with a mask: one window over the whole plane
        k, s, pad = (h, w), (1, 1), (0, 0)
    else:
        k = spatial_pair(layer, p, "kernel_size", 0, "kernel_h", "kernel_w")
        s = spatial_pair(layer, p, "stride", 1, "stride_h", "stride_w", minimum=1)
        pad = spatial_pair(layer, p, "pad", 0, "pad_h", "pad_w")
    if min(k) <= 0:
        raise layer.error(f"kernel size must be positive, got {k[0]}x{k[1]}")
    if pad[0] >= k[0] or pad[1] >= k[1]:
        raise layer.error(f"pad {pad} must be smaller than kernel {k} (Caffe's own check)")
    ceil = pooling_ceil_mode(p)
    out = [caffe_pool_size(size, k[i], s[i], pad[i], ceil) for i, size in enumerate((h, w))]
    for i, (size, axis) in enumerate(((h, "height"), (w, "width"))):
        # Caffe only drops a last window that starts in the padding when pad > 0: with pad 0,
        # stride > kernel and ceil rounding it keeps one that covers no input at all (it writes
        # -FLT_MAX for MAX, 0/0 for AVE), and ONNX refuses the end pad >= kernel it would need.
        start = (out[i] - 1) * s[i] - pad[i]
        if start >= size:
            raise layer.error(
                f"the last window along {axis} starts at {start}, outside the input (size "
                f"{size}; kernel {k[i]}, stride {s[i]}, pad {pad[i]}, ceil rounding): it pools "
                f"no input value (Caffe writes -FLT_MAX or 0/0 there); round_mode: FLOOR drops it"
            )

    if p.pool == MAX:
        begin = list(pad)
        padded = [h + pad[0], w + pad[1]]  # image plus begin pad; end pads below
    else:
        begin = [0, 0]
        padded = [h + 2 * pad[0], w + 2 * pad[1]]
        if any(pad):
            if all((out[i] - 1) * s[i] + k[i] <= padded[i] for i in range(2)):
                # No window overhangs the padded image: ONNX's count_include_pad=1 is exact.
                y = ctx.node(
                    "AveragePool",
                    [x],
                    ctx.top_name(layer),
                    kernel_shape=list(k),
                    strides=list(s),
                    pads=[pad[0], pad[1], pad[0], pad[1]],
                    count_include_pad=1,
                )
                ctx.set_top(layer, 0, y, (n, c, *out))
                return
            x = ctx.node(
                "Pad",
                [x, ctx.ints(f"{layer.name}/pads", [0, 0, pad[0], pad[1], 0, 0, pad[0], pad[1]])],
                hint=f"{layer.name}/pad",
            )
    # End pads so that the last Caffe window exists; ONNX then counts floor-style.
    end = [max(0, (out[i] - 1) * s[i] + k[i] - padded[i]) for i in range(2)]
    onnx_out = [(padded[i] + end[i] - k[i]) // s[i] + 1 for i in range(2)]
    exact = onnx_out == out
    attrs = dict(kernel_shape=list(k), strides=list(s), pads=[*begin, *end])
    op = "MaxPool" if p.pool == MAX else "AveragePool"
    if p.pool != MAX:
        attrs["count_include_pad"] = 0
    if mask:
        _pool_with_mask(layer, ctx, x, attrs, exact, (n, c, *out), (h, w))
        return
    y = ctx.node(
        op, [x], ctx.top_name(layer) if exact else None, hint=f"{layer.name}/pool", **attrs
    )
    if not exact:
        y = ctx.slice(y, [0, 0], out, [2, 3], output=ctx.top_name(layer), hint=layer.name)
    ctx.set_top(layer, 0, y, (n, c, *out))


def _pool_with_mask(layer, ctx, x, attrs, exact: bool, out_shape, in_hw) -> None:
    top = ctx.top_name(layer, 0)
    names = [top if exact else ctx.fresh(f"{layer.name}/pool"), ctx.fresh(f"{layer.name}/indices")]
    y, idx = ctx.node_multi("MaxPool", [x], names, **attrs)
    if not exact:
        y = ctx.slice(y, [0, 0], out_shape[2:], [2, 3], output=top, hint=layer.name)
        idx = ctx.slice(idx, [0, 0], out_shape[2:], [2, 3], hint=f"{layer.name}/indices")
    plane = ctx.node("Mod", [idx, ctx.ints(f"{layer.name}/plane", in_hw[0] * in_hw[1])],
                     hint=f"{layer.name}/plane_index")  # fmt: skip
    m = ctx.node("Cast", [plane], ctx.top_name(layer, 1), to=TensorProto.FLOAT)
    ctx.set_top(layer, 0, y, out_shape)
    ctx.set_top(layer, 1, m, out_shape)
    # Windows that cannot overlap give every input position to at most one output, which
    # is what lets an unpooling scatter be exact (resize.py checks this).
    k, s = attrs["kernel_shape"], attrs["strides"]
    ctx.pool_masks[m] = (all(s[i] >= k[i] for i in range(2)), tuple(in_hw), layer.name)
