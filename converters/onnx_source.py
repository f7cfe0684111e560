"""An existing ONNX file as a model source: static input shapes, optional cut, target opset.

What comes out has what every later step relies on (the same as ``caffe_to_onnx``): each input
has a fully static shape, the default-domain opset is ``opset``, the IR version is the lowest one
that opset needs (so current onnxruntime and OpenVINO load it), shapes are inferred for every
value, and ``onnx.checker`` passes.

With ``lazy`` (the build's convert stage) the big initializers stay in the file as placeholders
(``converters.lazy``; written back by ``save_streamed``, the same bytes) as long as the model is
already at ``opset``: onnx's version converter needs every value, so a model converted to
another opset is filled in first. Shape inference and the cut read only the small tensors; the
checker checks ``light_copy`` of a model with placeholders (its absolute locations are ours).

Old exporters (PyTorch <= 1.2, IR 3-4) list every initializer as a graph input too; those are
weights, not inputs, and are removed from the input list so that "the inputs" means what the
user feeds.
"""

from __future__ import annotations

import difflib
import math
import os

import onnx

from converters.errors import MAX_TENSOR_ELEMENTS, ConversionError, ModelMismatch, did_you_mean
from converters.io import load_onnx, onnx_errors
from converters.onnx_utils import convert_opset, light_copy, model_opset


def load_onnx_source(
    path: str | os.PathLike,
    input_shapes: dict[str, list[int]] | None = None,
    outputs: list[str] | None = None,
    opset: int = 17,
    *,
    lazy: bool = False,
) -> onnx.ModelProto:
    """Load ``path`` and return a static-shape ONNX model at ``opset``, cut at ``outputs``;
    with ``lazy`` its big weights may stay in ``path`` (placeholders, see above)."""
    from converters import lazy as placeholders

    model = placeholders.load_lazy(path, placeholders.BIG) if lazy else load_onnx(path)
    where = str(path)
    _drop_initializer_inputs(model)
    _check_default_domain_only(model, where)
    _fix_input_shapes(model, input_shapes or {}, where)
    if model_opset(model) != opset:
        placeholders.materialize(model)  # the version converter reads every value
    model = _convert_opset(model, opset, where)
    model = _infer(model, where)
    if outputs:
        model = _cut(model, list(outputs), where)
        model = _infer(model, where)
    _drop_unused_initializers(model)
    with onnx_errors(where, "the model fails the ONNX checker"):
        # A placeholder's location is an absolute path, which the checker refuses: it checks
        # the model with those initializers as inputs of their type and shape instead.
        checked = light_copy(model) if placeholders.placeholders(model) else model
        onnx.checker.check_model(checked, full_check=True)
    return model


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def _drop_initializer_inputs(model: onnx.ModelProto) -> None:
    weights = {t.name for t in model.graph.initializer}
    real = [vi for vi in model.graph.input if vi.name not in weights]
    if len(real) != len(model.graph.input):
        del model.graph.input[:]
        model.graph.input.extend(real)


def _names_read(graph) -> set[str]:
    """Every value a node of ``graph`` or of its subgraphs (If/Loop bodies) reads."""
    names = {o.name for o in graph.output}
    for node in graph.node:
        names.update(node.input)
        for attr in node.attribute:
            for sub in [attr.g, *attr.graphs] if attr.type in (5, 10) else []:
                names |= _names_read(sub)  # AttributeProto.GRAPH = 5, GRAPHS = 10
    return names


def _drop_unused_initializers(model: onnx.ModelProto) -> None:
    # PyTorch exports keep e.g. BatchNorm's num_batches_tracked: dead weight, and onnxruntime
    # warns about each one at every session start.
    used = _names_read(model.graph)
    kept = [t for t in model.graph.initializer if t.name in used]
    if len(kept) != len(model.graph.initializer):
        del model.graph.initializer[:]
        model.graph.initializer.extend(kept)


def _check_default_domain_only(model: onnx.ModelProto, where: str) -> None:
    # Custom-domain ops (com.microsoft, ...) cannot be opset-converted nor run by every target.
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            raise ConversionError(
                f"{where}: node '{node.name or node.output[0]}' ({node.op_type}) is in domain "
                f"'{node.domain}'; only standard ONNX operators are supported"
            )


def _dims_text(vi) -> str:
    dims = vi.type.tensor_type.shape.dim
    return "[" + ", ".join(str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?")
                           for d in dims) + "]"  # fmt: skip


def _fix_input_shapes(model: onnx.ModelProto, shapes: dict[str, list[int]], where: str) -> None:
    inputs = {vi.name: vi for vi in model.graph.input}
    unknown = [name for name in shapes if name not in inputs]
    if unknown:
        raise ModelMismatch(
            f"{where}: input shape given for '{unknown[0]}', which is not an input of the model; "
            f"inputs: {', '.join(inputs) or '(none)'}",
            field="inputs",
            key=unknown[0],
            detail=f"the model has no input '{unknown[0]}'{did_you_mean(unknown[0], inputs)}",
        )
    changed = False
    for name, vi in inputs.items():
        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type"):
            raise ConversionError(f"{where}: input '{name}' is not a tensor")
        if name in shapes:
            want = [int(d) for d in shapes[name]]
            if any(d <= 0 for d in want):
                raise ConversionError(
                    f"{where}: input '{name}': shape {want} has a non-positive dim"
                )
            if math.prod(want) > MAX_TENSOR_ELEMENTS:
                raise ConversionError(
                    f"{where}: input '{name}': shape {want} has {math.prod(want)} elements, "
                    f"more than the {MAX_TENSOR_ELEMENTS} any runtime can hold"
                )
            if tt.HasField("shape") and len(tt.shape.dim) != len(want):
                raise ModelMismatch(
                    f"{where}: input '{name}' has rank {len(tt.shape.dim)} {_dims_text(vi)}, "
                    f"the given shape {want} has rank {len(want)}",
                    field="inputs",
                    key=name,
                    sub="shape",
                    detail=f"input '{name}' has rank {len(tt.shape.dim)} in the model "
                    f"{_dims_text(vi)}, got rank {len(want)} {want}",
                )
            old = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
            changed |= old != want
            tt.shape.Clear()
            for d in want:
                tt.shape.dim.add().dim_value = d
            continue
        if not tt.HasField("shape"):
            raise ConversionError(
                f"{where}: input '{name}' has no shape; pass --input-shape {name}=D1,D2,... "
                f"(recipe: inputs.{name}.shape)"
            )
        for axis, d in enumerate(tt.shape.dim):
            if not d.HasField("dim_value") or d.dim_value <= 0:
                label = f"'{d.dim_param}'" if d.dim_param else "unknown"
                raise ConversionError(
                    f"{where}: input '{name}' {_dims_text(vi)} has a dynamic dim {axis} ({label}); "
                    f"pass --input-shape {name}=D1,D2,... (recipe: inputs.{name}.shape)"
                )
    if changed:
        # Output shapes recorded for the old input size would contradict shape inference.
        for vi in model.graph.output:
            vi.type.tensor_type.ClearField("shape")


def _convert_opset(model: onnx.ModelProto, opset: int, where: str) -> onnx.ModelProto:
    newest = onnx.defs.onnx_opset_version()
    if not 7 <= opset <= newest:
        raise ConversionError(f"{where}: opset {opset} is not supported (7..{newest})")
    return convert_opset(model, opset, where)


def _infer(model: onnx.ModelProto, where: str) -> onnx.ModelProto:
    del model.graph.value_info[:]  # stale annotations would be kept, and could be wrong
    try:
        return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True,
                                                 data_prop=True)  # fmt: skip
    except Exception as exc:
        raise ConversionError(f"{where}: ONNX shape inference failed: {_first_line(exc)}") from None


def _cut(model: onnx.ModelProto, outputs: list[str], where: str) -> onnx.ModelProto:
    from onnx.utils import Extractor

    g = model.graph
    produced = {o for n in g.node for o in n.output if o}
    known = produced | {vi.name for vi in g.input}
    for index, name in enumerate(outputs):
        if name not in known:
            near = difflib.get_close_matches(name, sorted(known), n=5)
            hint = f"; similar: {', '.join(near)}" if near else ""
            raise ModelMismatch(
                f"{where}: requested output '{name}' is not a value of this graph; "
                f"graph outputs: {', '.join(o.name for o in g.output)}{hint}",
                field="outputs",
                key=index,
                detail=f"the model has no value '{name}'{did_you_mean(name, known)}",
            )
    typed = {vi.name for vi in list(g.value_info) + list(g.output) + list(g.input)}
    missing = [name for name in outputs if name not in typed]
    if missing:
        raise ConversionError(f"{where}: cannot infer the type/shape of output '{missing[0]}'")
    try:
        cut = Extractor(model).extract_model([vi.name for vi in g.input], outputs)
    except Exception as exc:
        raise ConversionError(
            f"{where}: cannot cut the graph at {outputs}: {_first_line(exc)}"
        ) from None
    cut.ir_version = model.ir_version
    return cut
