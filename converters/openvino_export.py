"""ONNX -> OpenVINO IR (``model.xml`` + ``model.bin``).

The ONNX file already contains the recipe's preprocessing, so nothing is added here: OpenVINO's
own preprocessing options would apply it a second time.

``openvino.save_model`` compresses float weights to FP16 *by default*; ``compress_to_fp16`` is
therefore always passed explicitly so that a ``precision: fp32`` target really stores float32.

FP16 weights follow ``converters.fp16``'s rule, not only OpenVINO's. OpenVINO keeps float32
every constant upstream of a precision-sensitive input (a shape, a Loop's trip count, TopK's
k), all the way to the network input; in a whole SSD detector the trip count of the NMS Loop is
the number of scores above the threshold, so 20 of YuFaceDetectNet's 24 convolutions kept
float32 weights. Here the weight layers (Convolution, MatMul, with their bias Add) that feed
the detector's decisions (TopK, NMS, Loop, Interpolate scales, a Convert to an integer or
bool, walked back to the first weight layer, ``weight_boundaries``) bound a sub-model of the
backbone, whose weights OpenVINO's own ``compress_model_transformation`` compresses (the IR
holds the usual f16 constant + decompression Convert); then ``save_model`` compresses the rest
as before. The decoding, NMS and priors keep float32 constants.

The conversion runs in this process and is deterministic. OpenVINO names the nodes it creates
without a name ``<Type>_<N>`` from a process-wide counter, and its transformations copy those
names onto the nodes they make (a folded bias ``Reshape`` becomes a constant named
``Reshape_15``), so ``openvino.convert_model`` gives different ``.xml`` bytes for the same model
depending on how many nodes the process created before. We therefore run its steps ourselves —
the ONNX front end, then the offline transformations ``convert_model`` applies — and name the
nodes that have no name of its own after the node they feed (``conv1@conv1/Constant``, unique
with ``.2``, ``.3``, ...): right after the front end (friendly name equal to the counter name),
and again after the transformations (also: a name holding a counter name of this conversion's
id range that no name had before). Counter names never contain ``/``, so a derived name is never
taken for one. Two exports in one process, or in different processes, give the same bytes, and
apart from those names the IR is ``convert_model``'s (tests/test_openvino_export.py).

The pair is written atomically: both files are saved into a temporary directory beside the
destination (``.model.xml.zoomake-tmp-*``, see ``converters.io``), any stale ``.xml`` is removed, then the ``.bin`` is renamed into place and the
``.xml`` last. An ``.xml`` on disk therefore always has its complete ``.bin`` beside it.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from converters.errors import ConversionError
from converters.io import durable_replace, refuse_directories, temp_dir_beside
from converters.optional import require

PRECISIONS = ("fp32", "fp16")


def export_openvino(
    onnx_path: str | os.PathLike, xml_path: str | os.PathLike, precision: str
) -> None:
    """Convert ``onnx_path`` to IR at ``xml_path`` (the ``.bin`` goes beside it)."""
    src, xml = Path(onnx_path), Path(xml_path)
    if precision not in PRECISIONS:
        raise ConversionError(
            f"{xml}: OpenVINO precision must be one of {', '.join(PRECISIONS)}, got '{precision}'"
        )
    if xml.suffix != ".xml":
        raise ConversionError(f"{xml}: an OpenVINO IR file name must end in .xml")
    if not src.is_file():
        raise ConversionError(f"{src}: ONNX file not found")
    require("openvino")  # before any directory is made: a missing extra leaves nothing behind
    refuse_directories([xml, xml.with_suffix(".bin")])

    created = not xml.parent.exists()
    done = False
    try:
        # Same base name inside the temporary directory: the IR's .bin is found by name.
        with temp_dir_beside(xml) as tmp_dir:
            tmp_xml = tmp_dir / xml.name
            convert_and_save(src, tmp_xml, precision)
            tmp_bin = tmp_xml.with_suffix(".bin")
            if not tmp_xml.is_file() or not tmp_bin.is_file():
                raise ConversionError(f"{xml}: OpenVINO wrote no .xml/.bin pair")
            with contextlib.suppress(FileNotFoundError):
                xml.unlink()  # never leave an old .xml next to a new .bin
            durable_replace(tmp_bin, xml.with_suffix(".bin"))
            durable_replace(tmp_xml, xml)
        done = True
    finally:
        if created and not done:
            with contextlib.suppress(OSError):
                xml.parent.rmdir()  # leave no trace of a failed export


def convert_and_save(src: Path, xml: Path, precision: str) -> None:
    """ONNX -> deterministic ``ov.Model`` -> ``save_model`` (errors: ConversionError)."""
    ov = require("openvino")
    try:
        model = convert_onnx(src)
    except Exception as exc:  # OpenVINO raises many unrelated types
        _check_onnx(src)  # OpenVINO's words for a file that is not ONNX at all are misleading
        raise ConversionError(f"{src}: OpenVINO cannot convert the model: {_reason(exc)}") from None
    # a model with decisions: its backbone compressed here, the decisions' region float32
    compress = precision == "fp16" and not compress_backbone(model)
    try:
        ov.save_model(model, str(xml), compress_to_fp16=compress)
    except Exception as exc:
        raise ConversionError(f"{xml}: OpenVINO cannot save the IR: {_reason(exc)}") from None


def convert_onnx(src: Path):
    """What ``openvino.convert_model(src)`` does for an ONNX file, with deterministic names.

    The steps are those of OpenVINO's converter (openvino/tools/ovc: ``moc_pipeline`` loads and
    converts with the front end, ``moc_emit_ir`` applies the offline transformations, ``_convert``
    adds the rt_info); tests/test_openvino_export.py checks that the IR equals
    ``convert_model``'s in everything but the invented names.
    """
    import openvino as ov
    from openvino import _offline_transformations as offline
    from openvino.frontend import FrontEndManager

    first = _next_node_id()
    front_end = FrontEndManager().load_by_framework("onnx")
    model = front_end.convert(front_end.load(str(src), True))  # weights mmapped, not copied
    name_unnamed_nodes(model)
    known = {t for op in _all_ops(model) for t in _tokens(op.get_friendly_name())}
    offline.apply_moc_transformations(model, cf=False, smart_reshape=True)
    offline.compress_quantize_weights_transformation(model)
    offline.apply_moc_legacy_transformations(model, [])
    offline.apply_fused_names_cleanup(model)
    # The transformations name new nodes after nodes they created themselves (a decomposed
    # BatchNormalization's folded scale is called "Multiply_130207"): such a name holds a
    # counter name from this conversion's range that was in no name before them.
    name_unnamed_nodes(model, counter=(first, _next_node_id()), known=known)
    model.set_rt_info(ov.get_version(), "Runtime_version")
    model.set_rt_info(f"DIR/{src.name}", ["conversion_parameters", "input_model"])
    model.set_rt_info("False", ["conversion_parameters", "is_python_object"])
    return model


WEIGHT_OPS = {"Convolution", "GroupConvolution", "ConvolutionBackpropData",
              "GroupConvolutionBackpropData", "MatMul"}  # fmt: skip
_INTEGER_TYPES = ("i", "u", "boolean")


def _sinks(ops) -> list:
    """The values the model decides on (see the module docstring)."""
    out = []
    for op in ops:
        t, n = op.get_type_name(), op.get_input_size()
        ports = {"TopK": [0], "NonMaxSuppression": [0, 1], "Interpolate": range(1, n)}.get(t, [])
        if t in ("Loop", "TensorIterator", "If"):
            ports = range(n)
        elif t == "Convert" and op.get_output_element_type(0).get_type_name().startswith(
            _INTEGER_TYPES
        ):
            ports = [0]
        out += [op.input_value(i) for i in ports if i < n]
    return out


def weight_boundaries(model) -> tuple[list, set]:
    """The weight layers (or their bias Add) where the float32 walk back from the decisions
    stops (the outputs a float16 backbone hands to the float32 region), and the names of the
    nodes of that region."""
    seen, found = set(), {}
    stack = _sinks(model.get_ordered_ops())
    while stack:
        node = stack.pop().get_node()
        key = node.get_friendly_name()
        if key in seen:
            continue
        seen.add(key)
        t = node.get_type_name()
        if t in WEIGHT_OPS:
            found[key] = node
            continue
        if t == "Add" and node.get_input_size() == 2:
            a, b = (node.input_value(i).get_node() for i in range(2))
            if a.get_type_name() in WEIGHT_OPS and b.get_type_name() == "Constant":
                found[key] = node  # the bias: part of the weight layer
                continue
        if t in ("Parameter", "Constant", "ShapeOf", "Convert"):
            continue
        stack += [node.input_value(i) for i in range(node.get_input_size())]
    return [found[k] for k in sorted(found)], seen - set(found)


def _reaches(node, names: set, stops: set) -> bool:
    """Whether a node named in ``names`` is above ``node`` (not looking above ``stops``)."""
    seen, stack = set(), [node]
    while stack:
        n = stack.pop()
        name = n.get_friendly_name()
        if name in names:
            return True
        if name in seen or name in stops:
            continue
        seen.add(name)
        stack += [n.input_value(i).get_node() for i in range(n.get_input_size())]
    return False


def compress_backbone(model) -> bool:
    """Compress the weights above ``weight_boundaries`` with OpenVINO's own transformation,
    run on the sub-model that ends there and at the model's other results (it does not see
    the decisions below); False, nothing done, for a model without decisions."""
    import openvino as ov
    from openvino import _offline_transformations as offline

    bounds, region = weight_boundaries(model)
    if not bounds:
        return False
    ends = [ov.opset13.result(b.output(0)) for b in bounds]
    stops = {b.get_friendly_name() for b in bounds}
    others = [r for r in model.get_results() if not _reaches(r, region, stops)]
    backbone = ov.Model(ends + others, model.get_parameters(), "backbone")
    offline.compress_model_transformation(backbone)
    for end in ends:  # leave no reader behind on the boundary outputs
        end.input_value(0).remove_target_input(end.input(0))
    return True


# A counter name inside a friendly name: "<Type>_<N>" (OpenVINO type names are CamelCase).
_COUNTER_NAME = re.compile(r"(?<![A-Za-z0-9])[A-Z][A-Za-z0-9]*_(\d+)(?![0-9])")
# Node ids below this are never used by a conversion (see _next_node_id): a literal "_1" in a
# name OpenVINO builds can then never be taken for a counter name.
_FIRST_ID = 10_000


def _tokens(name: str) -> set[str]:
    return {m.group(0) for m in _COUNTER_NAME.finditer(name)}


def _next_node_id() -> int:
    """The id OpenVINO's counter gives the next node (moved past _FIRST_ID on first use)."""
    import openvino as ov

    def probe() -> int:
        return int(ov.op.Parameter(ov.Type.f32, ov.Shape([1])).get_name().rsplit("_", 1)[1])

    n = probe()
    for _ in range(_FIRST_ID - n):  # once per process, ~50 ms
        n = probe()
    return n + 1


def _bodies(op) -> list:
    """The sub-graphs of a Loop / TensorIterator (its body) or an If (then, else)."""
    if hasattr(op, "get_then_body"):
        return [op.get_then_body(), op.get_else_body()]
    if op.get_type_name() in ("Loop", "TensorIterator") and hasattr(op, "get_function"):
        return [op.get_function()]
    return []


def _all_ops(model) -> list:
    """Every node of ``model``, those of its sub-graphs (Loop, If bodies) included."""
    ops = []
    for op in model.get_ordered_ops():
        ops.append(op)
        for body in _bodies(op):
            ops += _all_ops(body)
    return ops


def name_unnamed_nodes(
    model, counter: tuple[int, int] | None = None, known=frozenset(), taken=None, root="model"
) -> None:
    """Give each node without a name of its own one derived from the graph.

    Without a name of its own: its friendly name is its counter name, or (with ``counter``
    = the ids this conversion used) holds a counter name of that range that is not in
    ``known`` (the names before the transformations ran). Nodes are visited readers first
    (reverse topological order), so the node a name derives from is already named:
    ``<smallest reader's name>/<Type>``, or ``<first input's producer>/<Type>`` for a node
    nobody reads; ``.2``, ``.3``... keep names unique. The nodes of a sub-graph (the body
    of a Loop, the branches of an If: DetectionOutput's ONNX form has them) are named the same
    way after the graph around them, a node anchored to nothing after its Loop or If.
    """

    def unnamed(op) -> bool:
        name = op.get_friendly_name()
        if name == op.get_name():
            return True
        if counter is None:
            return False
        lo, hi = counter
        return any(
            m.group(0) not in known and lo <= int(m.group(1)) < hi
            for m in _COUNTER_NAME.finditer(name)
        )

    ops = model.get_ordered_ops()
    if taken is None:
        taken = {op.get_friendly_name() for op in _all_ops(model)}
    for op in reversed(ops):
        if not unnamed(op):
            continue
        readers = sorted(
            target.get_node().get_friendly_name()
            for out in op.outputs()
            for target in out.get_target_inputs()
        )
        if readers:
            anchor = readers[0]
        elif op.get_input_size() and not unnamed(producer := op.input_value(0).get_node()):
            anchor = producer.get_friendly_name()
        else:  # a sink with no input, or reading a node not named yet (a body's Result)
            anchor = root
        base = f"{anchor}/{op.get_type_name()}"
        name, k = base, 1
        while name in taken:
            k += 1
            name = f"{base}.{k}"
        taken.add(name)
        op.set_friendly_name(name)
    for op in ops:
        for k, body in enumerate(_bodies(op)):
            name_unnamed_nodes(body, counter, known, taken, f"{op.get_friendly_name()}/body{k}")


def _check_onnx(src: Path) -> None:
    from converters.io import load_onnx

    model = load_onnx(src)
    if model.ir_version <= 0 or not model.graph.node:
        raise ConversionError(f"{src}: not an ONNX model (no IR version or no graph)")


def _reason(exc: BaseException) -> str:
    """OpenVINO's message on one line, without its source-location preamble."""
    noise = ("Check '", "FrontEnd API failed", "Summary:")
    lines = [ln.strip().lstrip("- ").strip() for ln in str(exc).splitlines()]
    kept = [ln for ln in lines if ln and not ln.startswith(noise)]
    text = " ".join(kept) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
