"""Cut tensors with Caffe's Slice layer: take indices along an axis, crop a box.

Caffe's Slice cuts one axis into consecutive pieces at ``slice_point``s; pieces nobody reads are
collected by the driver into a Silence layer. Arbitrary index lists (a reversal, a stride, a
Gather) are runs of consecutive indices, sliced out and concatenated in the wanted order.
"""

from __future__ import annotations

# Pieces one Gather/Slice may be cut into (a Caffe Slice + Concat): channel reversal needs 3.
MAX_PIECES = 64


def take(ctx, x: str, shape, axis: int, index, out: str) -> str:
    """``out = x[..., index, ...]`` along ``axis``; returns ``x`` itself if nothing changes.

    Raises ``ValueError`` (for the handler to word) when too many pieces would be needed.
    """
    index = [int(i) for i in index]
    dim = shape[axis]
    runs: list[tuple[int, int]] = []  # [begin, end)
    for i in index:
        if runs and runs[-1][1] == i:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    if runs == [(0, dim)]:
        return x
    if len(runs) > MAX_PIECES:
        raise ValueError(f"needs {len(runs)} pieces along axis {axis} (at most {MAX_PIECES})")
    points = sorted(({b for b, _ in runs} | {e for _, e in runs}) - {0, dim})
    bounds = [0, *points, dim]
    piece_of = {bounds[k]: k for k in range(len(bounds) - 1)}
    tops = [ctx.fresh(f"{out}/piece{k}") for k in range(len(bounds) - 1)]
    wanted = []
    for b, e in runs:
        k = piece_of[b]
        while bounds[k] < e:  # a run may span several pieces cut by other runs' bounds
            wanted.append(k)
            k += 1
    if len(wanted) == 1:
        tops[wanted[0]] = out
    layer = ctx.add_layer("Slice", [x], tops, name=ctx.fresh(f"{out}/slice"))
    layer.slice_param.axis = axis
    layer.slice_param.slice_point.extend(points)
    if len(wanted) > 1:
        ctx.add_layer("Concat", [tops[k] for k in wanted], [out]).concat_param.axis = axis
    return out


def crop(ctx, x: str, shape, begins, lengths, out: str) -> str:
    """Keep ``[begin, begin + length)`` of every axis (one Slice per cropped axis)."""
    axes = [a for a in range(len(shape)) if (begins[a], lengths[a]) != (0, shape[a])]
    for n, a in enumerate(axes):
        target = out if n == len(axes) - 1 else ctx.fresh(f"{out}/crop{a}")
        x = take(ctx, x, shape, a, range(begins[a], begins[a] + lengths[a]), target)
        shape = (*shape[:a], lengths[a], *shape[a + 1 :])
    return x
