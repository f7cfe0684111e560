"""Caffe (.prototxt + .caffemodel) -> ONNX.

The driver reads the net, keeps the layers active in the TEST phase, optionally cuts the graph
at requested output blobs, names every blob write (SSA), runs one registered handler per layer
and assembles a static-shape ONNX model. Afterwards the Caffe-side shapes the handlers computed
are checked against ONNX shape inference, so a handler that disagrees with Caffe's arithmetic
fails loudly at conversion time instead of producing a subtly different model.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import onnx
from onnx import TensorProto, helper

from converters.caffe import records
from converters.caffe.blobs import last_writers
from converters.caffe.context import Context, LayerView
from converters.caffe.layers._geometry import spatial_pair
from converters.caffe.prototxt import parse_prototxt
from converters.caffe.registry import POSTPROCESSING_TYPES, get_handler, supported_types
from converters.caffe.upgrade import upgrade_layers
from converters.caffe.weights import read_caffemodel
from converters.errors import ConversionError, ModelMismatch, UnsupportedError, did_you_mean
from converters.lazy import SplitModel

log = logging.getLogger("zoomake.caffe")

DEFAULT_OPSET = 17
MIN_OPSET = 13  # Softmax over an arbitrary axis and Split/Squeeze with input tensors need 13

TRAINING_TYPES = frozenset(
    {
        "Accuracy", "SoftmaxWithLoss", "EuclideanLoss", "HingeLoss", "InfogainLoss",
        "MultinomialLogisticLoss", "SigmoidCrossEntropyLoss", "ContrastiveLoss", "MultiBoxLoss",
        "SmoothL1Loss", "HDF5Output",
    }
)  # fmt: skip


@functools.cache
def max_opset() -> int:
    """The newest default-domain opset both onnx and the installed onnxruntime accept."""
    import onnxruntime as ort  # fingerprint: ignore (only bounds the accepted opset)

    best = DEFAULT_OPSET
    for opset in range(DEFAULT_OPSET, onnx.defs.onnx_opset_version() + 1):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
        g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe", [x], [y])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
        m.ir_version = helper.find_min_ir_version_for([helper.make_opsetid("", opset)])
        try:
            ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        except Exception:
            break
        best = opset
    return best


def _rule_matches(rule) -> bool:
    """NetStateRule against the deploy state (phase TEST, level 0, no stages)."""
    if rule.HasField("phase") and rule.phase != 1:  # Phase: TRAIN=0, TEST=1
        return False
    if rule.HasField("min_level") and rule.min_level > 0:
        return False
    if rule.HasField("max_level") and rule.max_level < 0:
        return False
    return not rule.stage  # we have no stages; not_stage is always satisfied


def is_active(proto) -> bool:
    """Whether a layer runs in the deploy state (TEST phase): its include/exclude rules."""
    if proto.include:
        return any(_rule_matches(r) for r in proto.include)
    return not any(_rule_matches(r) for r in proto.exclude)


def _layer_views(net, source: str, weights, unknown=()) -> list[LayerView]:
    by_owner: dict[tuple[str, int], list] = {}
    for field in unknown:
        by_owner.setdefault(field.owner, []).append(field)
    views = []
    for proto, owner in upgrade_layers(net, source):
        if not is_active(proto):
            continue
        blobs = None if weights is None else weights.get(proto.name, [])
        view = LayerView(proto, proto.type, blobs, source, len(views))
        view.unknown = tuple(by_owner.get(owner, ()))
        views.append(view)
    return views


def _net_inputs(net, source: str) -> list[tuple[str, list[int] | None]]:
    """Inputs declared at net level: ``input`` with ``input_dim`` (4 each) or ``input_shape``."""
    names = list(net.input)
    if not names:
        return []
    if net.input_shape:
        if len(net.input_shape) != len(names):
            raise ConversionError(
                f"{source}: {len(names)} input(s) but {len(net.input_shape)} input_shape block(s)"
            )
        return [(n, list(s.dim)) for n, s in zip(names, net.input_shape, strict=True)]
    dims = list(net.input_dim)
    if dims:
        if len(dims) != 4 * len(names):
            raise ConversionError(
                f"{source}: {len(names)} input(s) need {4 * len(names)} input_dim values, "
                f"got {len(dims)}"
            )
        return [(n, dims[4 * i : 4 * i + 4]) for i, n in enumerate(names)]
    return [(n, None) for n in names]


def net_input_names(prototxt: str | os.PathLike) -> list[str]:
    """The net's inputs as ``convert_caffe`` takes them (``--input-shape`` names), in order."""
    net = parse_prototxt(prototxt)
    layers = _layer_views(net, str(prototxt), None)
    tops = {t for lyr in layers if _is_input_layer(lyr) for t in _input_tops(lyr)}
    return [n for n, _ in _net_inputs(net, str(prototxt))] + sorted(tops)


def _select(layers: list[LayerView], outputs: list[str] | None, input_blobs: set[str], source):
    """Layers needed for ``outputs`` (all when None), in net order."""
    if not outputs:
        return layers
    last_writer = last_writers(layer.tops for layer in layers)
    needed: set[int] = set()
    stack = []
    for index, blob in enumerate(outputs):
        if blob in last_writer:
            stack.append((blob, len(layers)))
        elif blob not in input_blobs:
            known = sorted(set(last_writer) | input_blobs)
            raise ModelMismatch(
                f"{source}: requested output '{blob}' is not a blob of this net; "
                f"blobs: {', '.join(known)}",
                field="outputs",
                key=index,
                detail=f"the model has no blob '{blob}'{did_you_mean(blob, known)}",
            )
    while stack:
        blob, before = stack.pop()
        writer = max((p for p in range(before) if blob in layers[p].tops), default=None)
        if writer is None or writer in needed:
            continue
        needed.add(writer)
        stack.extend((b, writer) for b in layers[writer].bottoms)
    return [layer for pos, layer in enumerate(layers) if pos in needed]


def _ssa_names(layers: list[LayerView], inputs: set[str]) -> tuple[dict, set[str]]:
    last = last_writers(layer.tops for layer in layers)
    names: dict[tuple[int, int], str] = {}
    used = set(inputs)
    for pos, layer in enumerate(layers):
        for i, t in enumerate(layer.tops):
            if last[t] == (pos, i) and t not in inputs:
                name = t
            else:
                name = f"{t}@{layer.name}"
                k = 1
                while name in used or name in last:
                    k += 1
                    name = f"{t}@{layer.name}#{k}"
            used.add(name)
            names[(layer.index, i)] = name
    return names, used | set(last)


def caffe_to_onnx(
    prototxt: str | os.PathLike,
    caffemodel: str | os.PathLike | None = None,
    *,
    input_shapes: dict[str, list[int]] | None = None,
    outputs: list[str] | None = None,
    opset: int = DEFAULT_OPSET,
) -> onnx.ModelProto:
    """Convert a Caffe model to ONNX (see module docstring). Raises ConversionError on bad input."""
    return convert_caffe(
        prototxt, caffemodel, input_shapes=input_shapes, outputs=outputs, opset=opset
    ).materialize()


def convert_caffe(
    prototxt: str | os.PathLike,
    caffemodel: str | os.PathLike | None = None,
    *,
    input_shapes: dict[str, list[int]] | None = None,
    outputs: list[str] | None = None,
    opset: int = DEFAULT_OPSET,
) -> SplitModel:
    """Like ``caffe_to_onnx`` but keeps large weights out of the proto (see ``SplitModel``).

    ``.materialize(lazy=True)`` leaves those stored as one float32 run in the caffemodel as
    placeholders (``converters.lazy``): ``save_streamed`` then copies them file to file, so
    the weights are never held in memory whole and never re-serialized by protobuf.
    """
    source = str(prototxt)
    # max_opset() >= DEFAULT_OPSET: probe onnxruntime (an import and sessions) only above it
    if opset < MIN_OPSET or (opset > DEFAULT_OPSET and opset > max_opset()):
        raise ConversionError(
            f"opset {opset} is not supported: expected {MIN_OPSET}..{max_opset()} "
            f"(the newest this onnxruntime loads)"
        )
    unknown: list = []
    net = parse_prototxt(prototxt, unknown)
    weights = read_caffemodel(caffemodel) if caffemodel is not None else None
    layers = _layer_views(net, source, weights, unknown)
    declared = _net_inputs(net, source)
    input_shapes = dict(input_shapes or {})

    input_layer_tops = {t for lyr in layers if _is_input_layer(lyr) for t in _input_tops(lyr)}
    all_inputs = [n for n, _ in declared] + sorted(input_layer_tops)
    unknown = set(input_shapes) - set(all_inputs)
    if unknown:
        first = sorted(unknown)[0]
        raise ModelMismatch(
            f"{source}: --input-shape names unknown input(s) {', '.join(sorted(unknown))}; "
            f"the net's inputs are: {', '.join(all_inputs) or '(none)'}",
            field="inputs",
            key=first,
            detail=f"the model has no input '{first}'{did_you_mean(first, all_inputs)}",
        )

    selected = _select(layers, outputs, {n for n, _ in declared}, source)
    if not outputs:
        # Data layers' label tops do not exist at deploy time: never suggest them as a cut.
        labels = {
            t for lyr in layers if _is_input_layer(lyr) for t in lyr.tops[len(_input_tops(lyr)) :]
        }
        for layer in selected:
            _refuse_postprocessing(layer, labels)
    names, reserved = _ssa_names(selected, {n for n, _ in declared} | input_layer_tops)
    ctx = Context(opset, names, reserved)
    ctx.input_shapes = input_shapes
    ctx.graph_inputs = []

    for name, dims in declared:
        shape = input_shapes.get(name, dims)
        if not shape:
            raise ConversionError(
                f"{source}: input '{name}' has no shape; give --input-shape {name}=N,C,H,W"
            )
        if any(d <= 0 for d in shape):
            raise ConversionError(
                f"{source}: input '{name}' has shape {list(shape)} with a non-positive size; "
                f"give --input-shape {name}=N,C,H,W"
            )
        ctx.graph_inputs.append(ctx.define_input(name, shape, source))

    # Caffe's net outputs: blobs produced and not consumed by a later layer (Silence consumes).
    available: dict[str, None] = dict.fromkeys(n for n, _ in declared)
    try:
        for layer in selected:
            info = get_handler(layer.type)
            if info is None:
                raise _unsupported(layer, source)
            read = [ctx.blob_map.get(b) for b in layer.bottoms]
            keep = records.wants_record(ctx, layer)
            info.handler(layer, ctx)
            if keep:
                records.record(ctx, layer, read)
            _warn_ignored_fields(layer)
            for b in layer.bottoms:
                available.pop(b, None)
            for t in _input_tops(layer) if _is_input_layer(layer) else layer.tops:
                if t not in ctx.blob_map:
                    raise layer.error(f"handler did not produce top '{t}'")
                available[t] = None
    finally:  # also when a too-small placeholder input made a handler fail
        _warn_placeholder_inputs(selected, ctx, source)
    if _is_input_only(selected):
        raise ConversionError(f"{source}: the net has no layers to convert")
    out_blobs = list(outputs) if outputs else [b for b in available if b in ctx.blob_map]
    graph_outputs = []
    for blob in out_blobs:
        if blob not in ctx.blob_map:  # every other top was checked above
            raise ConversionError(
                f"{source}: requested output '{blob}' is a data layer's label top, which the "
                f"deployed graph does not have"
            )
        value = ctx.blob_map[blob]
        if value != blob and blob not in ctx.graph_inputs:
            ctx.node("Identity", [value], blob)
            ctx.shapes[blob] = ctx.shapes[value]
            value = blob
        graph_outputs.append(value)

    model = _assemble(ctx, graph_outputs, net.name or Path(source).stem, opset)
    records.attach(model, ctx.layer_records)
    _check(model, ctx, source)
    return SplitModel(model, ctx.big)


_INPUT_TYPES = frozenset(
    {"Input", "Data", "ImageData", "MemoryData", "DummyData", "HDF5Data", "WindowData",
     "AnnotatedData", "VideoData"}
)  # fmt: skip


def _is_input_layer(layer: LayerView) -> bool:
    return layer.type in _INPUT_TYPES


def _input_tops(layer: LayerView) -> list[str]:
    """The tops an input layer turns into graph inputs: every top of an ``Input`` layer, only
    the first of a data layer (its label top means nothing at deploy time and is dropped)."""
    return layer.tops if layer.type == "Input" else layer.tops[:1]


def _is_input_only(layers: list[LayerView]) -> bool:
    return all(_is_input_layer(lyr) for lyr in layers)


def _cut_hint(layer: LayerView, labels: set[str] = frozenset()) -> str:
    blobs = [b for b in layer.bottoms if b not in labels] or layer.bottoms
    return (
        f"cut the graph before it with --outputs {','.join(blobs)} "
        f"(recipe: outputs: [{', '.join(blobs)}])"
    )


def _unsupported(layer: LayerView, source: str) -> UnsupportedError:
    fields = ""
    if layer.unknown:
        fields = f" with fields unknown to zoomake ({', '.join(f.where for f in layer.unknown)})"
    return UnsupportedError(
        f"{source}: layer '{layer.name}' ({layer.type}): unsupported layer type{fields}; "
        f"{_cut_hint(layer)}; supported: {', '.join(h.type_name for h in supported_types())}"
    )


def _warn_ignored_fields(layer: LayerView) -> None:
    """Unknown fields outside every message the handler read change nothing it computes."""
    if layer.unknown:
        log.warning(
            "%s: layer '%s' (%s): ignoring field(s) unknown to zoomake's caffe.proto: %s",
            layer.source, layer.name, layer.type, ", ".join(f.where for f in layer.unknown),
        )  # fmt: skip


def _refuse_postprocessing(layer: LayerView, labels: set[str]) -> None:
    kind = None
    if layer.type == "Python":
        p = getattr(layer.proto, "python_param", None)  # V1 layers have none
        code = f" ({p.module}.{p.layer})" if p is not None and p.module else ""
        kind = f"Python code{code} run by pycaffe, which no ONNX graph can hold"
    elif layer.type == "Proposal":
        # The C++ Proposal of the Faster R-CNN forks: not converted (docs/supported_layers.md)
        kind = ("Faster R-CNN's region proposal (anchors, decoding and NMS in pixels), which "
                "zoomake does not convert")  # fmt: skip
    elif layer.type in POSTPROCESSING_TYPES:
        kind = "post-processing that deployment graphs leave out"
    elif layer.type in TRAINING_TYPES:
        kind = "a training-only layer"
    if kind:
        raise UnsupportedError(
            f"{layer.source}: layer '{layer.name}' ({layer.type}) is {kind}; {_cut_hint(layer, labels)}"
        )


_KERNEL_PARAMS = {
    "Convolution": "convolution_param", "ConvolutionDepthwise": "convolution_param",
    "DepthwiseConvolution": "convolution_param", "Pooling": "pooling_param",
}  # fmt: skip


def _kernel_extent(layer: LayerView) -> tuple[int, int] | None:
    field = _KERNEL_PARAMS.get(layer.type)
    if field is None or not layer.has_param(field):
        return None
    p = getattr(layer.proto, field)
    if field == "pooling_param" and p.global_pooling:
        return None
    try:
        k = spatial_pair(layer, p, "kernel_size", 0, "kernel_h", "kernel_w")
        d = spatial_pair(layer, p, "dilation", 1, "", "") if field != "pooling_param" else (1, 1)
    except ConversionError:
        return None  # the handler reports malformed geometry itself
    return d[0] * (k[0] - 1) + 1, d[1] * (k[1] - 1) + 1


def _warn_placeholder_inputs(layers: list[LayerView], ctx: Context, source: str) -> None:
    """One line per input smaller than every kernel that reads it (OpenPose-style 1x1
    placeholders, meant to be reshaped at run time): the model built would be meaningless."""
    for name in ctx.graph_inputs:
        shape = ctx.shapes.get(name, ())
        if len(shape) != 4:
            continue
        kernels = [(lyr, _kernel_extent(lyr)) for lyr in layers if name in lyr.bottoms]
        kernels = [(lyr, k) for lyr, k in kernels if k is not None]
        h, w = shape[2:]
        if kernels and all(h < k[0] or w < k[1] for _, k in kernels):
            lyr, k = kernels[0]
            dims = ",".join(str(d) for d in shape[:2])
            log.warning(
                "%s: input '%s' is %dx%d, smaller than the %dx%d kernel of layer '%s' "
                "(a placeholder size?); give the real size with --input-shape %s=%s,H,W",
                source, name, h, w, k[0], k[1], lyr.name, name, dims,
            )  # fmt: skip


def _value_info(name: str, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def _assemble(ctx: Context, outputs: list[str], name: str, opset: int) -> onnx.ModelProto:
    graph = helper.make_graph(
        ctx.nodes,
        name,
        [_value_info(n, ctx.shapes[n]) for n in ctx.graph_inputs],
        [_value_info(n, ctx.shapes[n]) for n in outputs],
        initializer=ctx.initializers,
    )
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="zoomake")
    model.ir_version = helper.find_min_ir_version_for(opsets)
    from importlib.metadata import PackageNotFoundError, version

    try:
        model.producer_version = version("zoomake")
    except PackageNotFoundError:
        model.producer_version = "dev"
    return model


def _structure(model: onnx.ModelProto, ctx: Context) -> onnx.ModelProto:
    """The model with the large weights declared as graph inputs of the same type and shape.

    Checking and shape-inferring this instead of the full model avoids serializing hundreds of
    megabytes of weights just to look at shapes; large weights are never shape tensors.
    """
    if not ctx.big:
        return model
    light = onnx.ModelProto()
    light.CopyFrom(model)
    light.graph.input.extend(
        helper.make_tensor_value_info(name, dtype, list(dims)) for name, dtype, dims, _ in ctx.big
    )
    return light


def _check(model: onnx.ModelProto, ctx: Context, source: str) -> None:
    light = _structure(model, ctx)
    try:
        onnx.checker.check_model(light, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(light, strict_mode=True, data_prop=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise ConversionError(f"{source}: converted graph is invalid ONNX ({first})") from None
    got = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        t = vi.type.tensor_type
        if t.HasField("shape") and all(d.HasField("dim_value") for d in t.shape.dim):
            got[vi.name] = tuple(d.dim_value for d in t.shape.dim)
    for name, shape in ctx.shapes.items():
        if name in got and got[name] != shape:
            raise ConversionError(
                f"{source}: internal shape mismatch at '{name}': Caffe rules give "
                f"{list(shape)}, the ONNX graph computes {list(got[name])}"
            )
