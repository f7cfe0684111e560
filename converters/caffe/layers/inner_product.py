"""InnerProduct: Gemm over the dims from ``axis`` to the end.

Weights are ``(N, K)`` (``transpose: false``, Gemm ``transB=1``) or ``(K, N)`` with
``transpose: true``; legacy V1 blobs are 4-D ``(1, 1, N, K)`` and are reshaped by element count.
Output shape is ``in[:axis] + [N]``.
"""

from __future__ import annotations

import math

from converters.caffe.registry import register


@register("InnerProduct")
def inner_product(layer, ctx):
    """Gemm (transB unless ``transpose``), flattening dims from ``axis``."""
    p = layer.param("inner_product_param")
    x = ctx.input(layer)
    shape = ctx.shape(x)
    if not -len(shape) <= p.axis < len(shape):
        raise layer.error(
            f"inner_product_param.axis {p.axis} is out of range for a {len(shape)}-D input"
        )
    axis = p.axis % len(shape)
    k = math.prod(shape[axis:])
    lead = list(shape[:axis])
    n = p.num_output
    if p.transpose:
        w = ctx.const(f"{layer.name}/W", layer.stored_blob(0, (k, n), "weights"))
    else:
        w = ctx.const(f"{layer.name}/W", layer.stored_blob(0, (n, k), "weights"))
    ins = [x if len(shape) == 2 and axis == 1 else None, w]
    if ins[0] is None:
        if axis == 1:
            ins[0] = ctx.node("Flatten", [x], hint=f"{layer.name}/flatten", axis=1)
        else:
            ins[0] = ctx.reshape(x, [math.prod(lead), k], hint=f"{layer.name}/flatten")
    if p.bias_term:
        ins.append(ctx.const(f"{layer.name}/B", layer.blob(1, (n,), "bias")))
    out_shape = (*lead, n)
    direct = axis == 1
    y = ctx.node(
        "Gemm",
        ins,
        ctx.top_name(layer) if direct else None,
        hint=f"{layer.name}/gemm",
        transB=0 if p.transpose else 1,
    )
    if not direct:
        y = ctx.reshape(y, out_shape, output=ctx.top_name(layer), hint=layer.name)
    ctx.set_top(layer, 0, y, out_shape)
