"""Scale (``y = x * gamma [+ beta]``) and Bias (``y = x + beta``), one-blob and two-bottom forms.

The operand spans the bottom's dims ``[axis, axis + k)``: with one bottom, ``k`` is
``num_axes`` (default 1, -1 = to the end, 0 = a scalar) and the operand is a weight blob; with
two bottoms the operand is bottom 1 and ``k`` is its rank (``num_axes`` is ignored, as in Caffe).
It is reshaped to ``operand_shape + [1] * trailing`` so ONNX's right-aligned broadcasting puts it
on the right axes (a (C) gamma must act as (C, 1, 1)). Scale's ``bias_term`` blob is blob 1 with
one bottom and blob 0 with two (Caffe appends it after the parameters it owns).
"""

from __future__ import annotations

from converters.caffe.layers._axes import canonical_axis
from converters.caffe.registry import register


def _span(layer, shape, axis: int, k: int, field: str) -> tuple[int, int]:
    if k == 0:  # a scalar operand: Caffe ignores the axis; an empty span at the end is the same
        return len(shape), len(shape)
    axis = canonical_axis(layer, axis, len(shape), f"{field}.axis")
    end = len(shape) if k == -1 else axis + k
    if k < -1 or end > len(shape):
        raise layer.error(
            f"{field}: axis {axis} + num_axes {k} does not fit a "
            f"{len(shape)}-D bottom {list(shape)}"
        )
    return axis, end


def _bcast(shape, axis: int, end: int) -> list[int]:
    return [*shape[axis:end], *[1] * (len(shape) - end)]


def _operand(layer, ctx, x_shape, p, field: str, blob: int, what: str) -> tuple[str, int, int]:
    """The operand (bottom 1 or blob ``blob``) reshaped to broadcast; returns (name, axis, end)."""
    if len(layer.bottoms) == 2:
        b = ctx.input(layer, 1)
        b_shape = ctx.shape(b)
        axis, end = _span(layer, x_shape, p.axis, len(b_shape), field)
        if tuple(x_shape[axis:end]) != tuple(b_shape):
            raise layer.error(
                f"bottom 1 '{layer.bottoms[1]}' has shape {list(b_shape)}, expected "
                f"{list(x_shape[axis:end])} (dims {axis}.. of {list(x_shape)})"
            )
        trailing = len(x_shape) - end
        if trailing:
            b = ctx.unsqueeze(
                b, list(range(len(b_shape), len(b_shape) + trailing)), hint=f"{layer.name}/{what}"
            )
        return b, axis, end
    axis, end = _span(layer, x_shape, p.axis, p.num_axes, field)
    value = layer.blob(blob, tuple(x_shape[axis:end]), what)
    return ctx.const(f"{layer.name}/{what}", value.reshape(_bcast(x_shape, axis, end))), axis, end


def _blob_count(layer, names: list[str]) -> None:
    """Caffe refuses a caffemodel whose blob count differs from what the layer owns."""
    if len(layer.bottoms) not in (1, 2):
        raise layer.error(f"expected 1 or 2 bottom blobs, got {len(layer.bottoms)}")
    if layer.num_blobs < len(names):
        layer.blob(layer.num_blobs, None, names[layer.num_blobs])  # raises the precise error
    if layer.num_blobs > len(names):
        raise layer.error(
            f"expected {len(names)} weight blob(s) ({', '.join(names) or 'none'}) for "
            f"{len(layer.bottoms)} bottom(s), the caffemodel has {layer.num_blobs}"
        )


@register("Scale")
def scale(layer, ctx):
    """Mul by gamma (blob or bottom 1) over ``axis``/``num_axes``, then Add beta if bias_term."""
    x = ctx.input(layer)
    shape = ctx.shape(x)
    p = layer.param("scale_param")
    two = len(layer.bottoms) == 2
    names = ["gamma"] * (not two) + ["beta"] * p.bias_term
    _blob_count(layer, names)
    gamma, axis, end = _operand(layer, ctx, shape, p, "scale_param", 0, "gamma")
    top = ctx.top_name(layer)
    y = ctx.node("Mul", [x, gamma], None if p.bias_term else top, hint=f"{layer.name}/mul")
    if p.bias_term:
        beta = layer.blob(0 if two else 1, tuple(shape[axis:end]), "beta")
        beta = ctx.const(f"{layer.name}/beta", beta.reshape(_bcast(shape, axis, end)))
        y = ctx.node("Add", [y, beta], top)
    ctx.set_top(layer, 0, y, shape)


@register("Bias")
def bias(layer, ctx):
    """Add beta (blob or bottom 1) over ``axis``/``num_axes``."""
    x = ctx.input(layer)
    shape = ctx.shape(x)
    _blob_count(layer, [] if len(layer.bottoms) == 2 else ["beta"])
    beta, _, _ = _operand(layer, ctx, shape, layer.param("bias_param"), "bias_param", 0, "beta")
    ctx.set_top(layer, 0, ctx.node("Add", [x, beta], ctx.top_name(layer)), shape)
