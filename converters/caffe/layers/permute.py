"""Permute (SSD fork) and ShuffleChannel (ShuffleNet fork): pure data movement.

Permute: ``order`` lists the leading output axes; the SSD fork appends every axis not listed,
in increasing order (``order: 0 order: 2`` on 4-D is ``[0, 2, 1, 3]``). ShuffleChannel with
``group`` g: output channel ``j * g + i`` is input channel ``i * (C / g) + j``, i.e. reshape to
``(N, g, C/g, rest)``, swap the two middle axes, reshape back.
"""

from __future__ import annotations

import math

from converters.caffe.registry import register


@register("Permute")
def permute(layer, ctx):
    """Transpose by ``order``, missing axes appended in increasing order."""
    x = ctx.input(layer)
    shape = ctx.shape(x)
    order = [int(o) for o in layer.param("permute_param").order]
    bad = [o for o in order if o >= len(shape)]
    if bad:
        raise layer.error(f"order {order} names axis {bad[0]}, the bottom has {len(shape)} dims")
    if len(set(order)) != len(order):
        raise layer.error(f"order {order} repeats an axis")
    perm = order + [a for a in range(len(shape)) if a not in order]
    out_shape = [shape[a] for a in perm]
    if perm == sorted(perm):  # SSD nets use order 0,1,2,3 as a no-op
        ctx.set_top(layer, 0, x, out_shape)
        return
    y = ctx.node("Transpose", [x], ctx.top_name(layer), perm=perm)
    ctx.set_top(layer, 0, y, out_shape)


@register("ShuffleChannel")
def shuffle_channel(layer, ctx):
    """Channel shuffle: reshape (N, g, C/g, rest) -> swap axes 1,2 -> reshape back."""
    x = ctx.input(layer)
    shape = ctx.shape(x)
    if len(shape) < 2:
        raise layer.error(f"needs a bottom with a channel axis, got shape {list(shape)}")
    group = int(layer.param("shuffle_channel_param").group)
    n, c = shape[0], shape[1]
    if group <= 0 or c % group:
        raise layer.error(f"group {group} must be positive and divide the {c} channels")
    if group in (1, c):  # both reorderings are the identity: no nodes
        ctx.set_top(layer, 0, x, shape)
        return
    rest = math.prod(shape[2:])
    t = ctx.reshape(x, [n, group, c // group, rest], hint=f"{layer.name}/groups")
    t = ctx.node("Transpose", [t], hint=f"{layer.name}/swap", perm=[0, 2, 1, 3])
    y = ctx.reshape(t, list(shape), output=ctx.top_name(layer), hint=layer.name)
    ctx.set_top(layer, 0, y, shape)
