"""Shape and routing ops: Flatten, Reshape (0/-1 codes as ONNX's, -2/-3/-4 resolved on the
static shape), transpose, expand_dims, Concat, SliceChannel, slice_axis, slice, Pad,
UpSampling, BilinearResize2D, softmax family, and the identities (Dropout, _copy, BlockGrad)."""

from __future__ import annotations

import numpy as np

from converters.mxnet.source import register


@register("Flatten", "flatten")
def flatten(node, ctx):
    """Flatten(axis=1)."""
    ctx.emit("Flatten", [ctx.input(node, 0)], ctx.out(node), axis=1)


def _mx_shape(node, codes, shape) -> list[int]:
    """MXNet's Reshape codes (0 copy, -1 infer, -2 copy the rest, -3 merge two, -4 split)."""
    out, i, k = [], 0, 0
    codes = list(codes)
    while k < len(codes):
        c = codes[k]
        if c > 0:
            out.append(c)
            i += 1
        elif c == 0:
            out.append(shape[i])
            i += 1
        elif c == -1:
            out.append(-1)
            i += 1
        elif c == -2:
            out.extend(shape[i:])
            i = len(shape)
        elif c == -3:
            out.append(shape[i] * shape[i + 1])
            i += 2
        elif c == -4:
            a, b = codes[k + 1], codes[k + 2]
            a = shape[i] // b if a == -1 else a
            b = shape[i] // a if b == -1 else b
            out.extend([a, b])
            i += 1
            k += 2
        else:
            raise node.error(f"reshape code {c}")
        k += 1
    if -1 in out:
        known = int(np.prod([d for d in out if d != -1]))
        out[out.index(-1)] = int(np.prod(shape)) // max(known, 1)
    return out


@register("Reshape", "reshape")
def reshape(node, ctx):
    """Reshape to the shape MXNet's codes give on the static input shape."""
    if node.bool("reverse", False):
        raise node.error("reverse=True is not supported")
    x = ctx.input(node, 0)
    target = node.tuple("shape")
    if not target:
        raise node.error("the legacy target_shape form is not supported")
    dims = _mx_shape(node, target, ctx.shape(node, x))
    ctx.emit("Reshape", [x, ctx.ints(f"{node.name}/shape", dims)], ctx.out(node))


@register("transpose", "SwapAxis")
def transpose(node, ctx):
    """Transpose(perm)."""
    x = ctx.input(node, 0)
    rank = len(ctx.shape(node, x))
    if node.op == "SwapAxis":
        perm = list(range(rank))
        a, b = node.int("dim1", 0), node.int("dim2", 0)
        perm[a], perm[b] = perm[b], perm[a]
    else:
        perm = list(node.tuple("axes")) or list(reversed(range(rank)))
    ctx.emit("Transpose", [x], ctx.out(node), perm=perm)


@register("expand_dims")
def expand_dims(node, ctx):
    """Unsqueeze(axis)."""
    axes = ctx.ints(f"{node.name}/axes", [node.int("axis", 0)])
    ctx.emit("Unsqueeze", [ctx.input(node, 0), axes], ctx.out(node))


@register("Concat", "concat")
def concat(node, ctx):
    """Concat(axis = dim)."""
    ins = [ctx.input(node, i) for i in range(len(node.inputs))]
    ctx.emit("Concat", ins, ctx.out(node), axis=node.int("dim", 1))


@register("SliceChannel", "split")
def split(node, ctx):
    """Split into num_outputs equal parts (squeeze_axis: then Squeeze each)."""
    n, axis = node.int("num_outputs", 1), node.int("axis", 1)
    squeeze = node.bool("squeeze_axis", False)
    outs = [ctx.out(node, k, n) if not squeeze else ctx.fresh(f"{node.name}/{k}")
            for k in range(n)]  # fmt: skip
    extra = {"num_outputs": n} if ctx.opset >= 18 else {}  # before 18: equal parts by count
    ctx.emit("Split", [ctx.input(node, 0)], outs, axis=axis, **extra)
    if squeeze:
        axes = ctx.ints(f"{node.name}/axes", [axis])
        for k, o in enumerate(outs):
            ctx.emit("Squeeze", [o, axes], ctx.out(node, k, n))


@register("slice_axis")
def slice_axis(node, ctx):
    """Slice on one axis (end None: to the end)."""
    x = ctx.input(node, 0)
    axis = node.int("axis", 0)
    size = ctx.shape(node, x)[axis]
    end = node.text("end")
    end = size if end is None else int(end)
    ins = [x, ctx.ints(f"{node.name}/starts", [node.int("begin", 0)]),
           ctx.ints(f"{node.name}/ends", [end]), ctx.ints(f"{node.name}/axes", [axis])]  # fmt: skip
    ctx.emit("Slice", ins, ctx.out(node))


@register("slice")
def slice_(node, ctx):
    """Slice on the leading axes (None: whole axis)."""
    x = ctx.input(node, 0)
    shape = ctx.shape(node, x)
    begin, end = node.tuple("begin"), node.tuple("end")
    step = node.tuple("step") or (1,) * len(begin)
    b = [0 if v is None else v for v in begin]
    e = [shape[i] if v is None else v for i, v in enumerate(end)]
    st = [1 if v is None else v for v in step]
    ins = [x, ctx.ints(f"{node.name}/starts", b), ctx.ints(f"{node.name}/ends", e),
           ctx.ints(f"{node.name}/axes", list(range(len(b)))),
           ctx.ints(f"{node.name}/steps", st)]  # fmt: skip
    ctx.emit("Slice", ins, ctx.out(node))


@register("Pad", "pad")
def pad(node, ctx):
    """Pad (constant mode; MXNet's pad_width is (begin, end) per axis)."""
    if node.text("mode", "constant") != "constant":
        raise node.error(f"mode {node.text('mode')!r} (constant only)")
    width = node.tuple("pad_width")
    pads = list(width[0::2]) + list(width[1::2])
    value = ctx.const(f"{node.name}/value", np.float32(node.float("constant_value", 0.0)))
    ctx.emit("Pad", [ctx.input(node, 0), ctx.ints(f"{node.name}/pads", pads), value],
             ctx.out(node))  # fmt: skip


@register("UpSampling")
def upsampling(node, ctx):
    """Resize nearest (asymmetric, floor): each value repeated ``scale`` times."""
    if node.text("sample_type", "nearest") != "nearest" or node.int("num_args", 1) != 1:
        raise node.error("only nearest UpSampling of one input")
    k = float(node.int("scale", 1))
    scales = ctx.const(f"{node.name}/scales", np.array([1, 1, k, k], np.float32))
    ctx.emit("Resize", [ctx.input(node, 0), "", scales], ctx.out(node), mode="nearest",
             coordinate_transformation_mode="asymmetric", nearest_mode="floor")  # fmt: skip


@register("_contrib_BilinearResize2D")
def bilinear(node, ctx):
    """Resize linear to (height, width); align_corners or half_pixel."""
    if node.text("mode", "size") != "size" or node.text("scale_height"):
        raise node.error("only mode 'size' with height and width")
    x = ctx.input(node, 0)
    n, c = ctx.shape(node, x)[:2]
    size = ctx.ints(f"{node.name}/sizes", [n, c, node.int("height", 1), node.int("width", 1)])
    coord = "align_corners" if node.bool("align_corners", True) else "half_pixel"
    ctx.emit("Resize", [x, "", "", size], ctx.out(node), mode="linear",
             coordinate_transformation_mode=coord)  # fmt: skip


@register("softmax", "log_softmax", "SoftmaxActivation", "SoftmaxOutput", "Softmax")
def softmax(node, ctx):
    """Softmax over MXNet's axis (SoftmaxOutput: the last axis, multi_output: axis 1)."""
    x = ctx.input(node, 0)
    if node.op in ("softmax", "log_softmax"):
        if node.text("temperature") not in (None, "1", "1.0"):
            raise node.error("a temperature other than 1")
        axis = node.int("axis", -1)
    elif node.op == "SoftmaxActivation":
        axis = 1 if node.text("mode", "instance") == "channel" else -1
        if axis == -1 and len(ctx.shape(node, x)) != 2:
            raise node.error("mode 'instance' on a tensor that is not 2-D")
    else:
        axis = 1 if node.bool("multi_output", False) else -1
    op = "LogSoftmax" if node.op == "log_softmax" else "Softmax"
    ctx.emit(op, [x], ctx.out(node), axis=axis)


@register("Dropout", "_copy", "identity", "BlockGrad", "stop_gradient", "Cast")
def identity(node, ctx):
    """Identity (inference Dropout; a Cast to float32)."""
    if node.op == "Cast" and node.text("dtype") not in ("float32",):
        raise node.error(f"cast to {node.text('dtype')} (float32 graphs only)")
    ctx.emit("Identity", [ctx.input(node, 0)], ctx.out(node))
