"""Input and deploy-time data layers: they define graph inputs."""

from __future__ import annotations

from converters.caffe.registry import register


def _declare(layer, ctx, top: int, shape) -> None:
    blob = layer.tops[top]
    override = ctx.input_shapes.get(blob)
    shape = list(override) if override is not None else shape
    if not shape:
        raise layer.error(
            f"input '{blob}' has no shape in the prototxt; give --input-shape {blob}=N,C,H,W"
        )
    if any(d <= 0 for d in shape):
        # e.g. a MemoryData layer whose memory_data_param leaves the sizes at their default 0
        raise layer.error(
            f"input '{blob}' has shape {list(shape)} with a non-positive size; "
            f"give --input-shape {blob}=N,C,H,W"
        )
    where = f"{layer.source}: layer '{layer.name}' ({layer.type})"
    ctx.graph_inputs.append(ctx.define_input(blob, shape, where))


@register("Input")
def input_layer(layer, ctx):
    """Graph inputs from ``input_param.shape`` (one shape for all tops, or one per top)."""
    shapes = [list(s.dim) for s in layer.param("input_param").shape]
    if shapes and len(shapes) not in (1, len(layer.tops)):
        raise layer.error(f"{len(layer.tops)} tops but {len(shapes)} input_param shapes")
    for i in range(len(layer.tops)):
        _declare(layer, ctx, i, shapes[i if len(shapes) > 1 else 0] if shapes else None)


@register("Data", "ImageData", "HDF5Data", "WindowData", "AnnotatedData", "VideoData",
          "MemoryData", "DummyData")  # fmt: skip
def data_layer(layer, ctx):
    """Deploy-time data layers: the first top becomes a graph input; labels are dropped."""
    shape = None
    if layer.type == "MemoryData":
        p = layer.param("memory_data_param")
        shape = [p.batch_size, p.channels, p.height, p.width]
    elif layer.type == "DummyData":
        p = layer.param("dummy_data_param")
        if p.shape:
            shape = list(p.shape[0].dim)
        elif p.num and p.channels and p.height and p.width:  # legacy: all four or none
            shape = [p.num[0], p.channels[0], p.height[0], p.width[0]]
    _declare(layer, ctx, 0, shape)
