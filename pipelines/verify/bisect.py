"""Where does a failing artifact start to go wrong? The first diverging layer.

The source model and the artifact are run once more on the same input with their intermediate
values exposed: a Caffe source in OpenCV DNN (every layer's tops with ``forwardAndRetrieve``,
layer fusion off so a ReLU folded into its convolution still has its own output), an ONNX source
or artifact in onnxruntime with every node output added as a graph output, an OpenVINO IR with
every tensor added as a model output, a Caffe artifact in OpenCV as the source. Tensors are
matched by name: the Caffe -> ONNX converter keeps the blob names (the last layer writing a blob
gives the ONNX value that name; an earlier in-place writer's value is ``<blob>@<layer>``), and
ONNX -> OpenVINO/Caffe keep ONNX value names. Walking the source's layers in order, the first
matched tensor whose error exceeds the tolerance (``atol + rtol * |reference|``, the target's) is
the divergence; what its inputs' errors were says whether the layer itself is at fault.

Values an optimization pass removed (a BatchNorm folded into its Conv) have no counterpart and
are skipped; the comparison only needs one matched tensor per region of the graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.errors import ZoomakeError
from pipelines.verify.metrics import fmt, num


class _Layer:
    """A source layer: ``tops``/``bottoms`` as tensor names of the artifact's graph, ``blobs``:
    what its bottoms are called in the source (the same, but for in-place Caffe blobs)."""

    def __init__(self, name, type_, tops, bottoms, blobs=None):
        self.name, self.type, self.tops, self.bottoms = name, type_, tops, bottoms
        self.blobs = dict(zip(bottoms, blobs or bottoms, strict=True))


def _caffe_layers(prototxt: Path) -> tuple[list[_Layer], dict[str, str]]:
    """The TEST net's layers with the ONNX name of each top (see the module docstring), and
    ``{ONNX name of a top: blob it was read as}`` for mapping bottoms."""
    from pipelines.runtimes.opencv import deploy_net

    net = deploy_net(prototxt)[0]
    raw = [(lyr.name, str(lyr.type), list(lyr.top), list(lyr.bottom)) for lyr in net.layer]
    last: dict[str, tuple[int, int]] = {}
    for k, (_, _, tops, _) in enumerate(raw):
        for i, t in enumerate(tops):
            last[t] = (k, i)
    layers, current = [], {}  # blob -> ONNX name of its value so far
    for k, (name, type_, tops, bottoms) in enumerate(raw):
        if type_ in ("Input", "Data", "DummyData"):
            current.update({t: t for t in tops})
            continue
        ins = [current.get(b, b) for b in bottoms]
        outs = [t if last[t] == (k, i) else f"{t}@{name}" for i, t in enumerate(tops)]
        current.update(zip(tops, outs, strict=True))
        layers.append(_Layer(name, type_, outs, ins, bottoms))
    return layers, current


def _opencv_values(prototxt: Path, caffemodel: Path, feeds: dict, layers: list[_Layer]) -> dict:
    import cv2

    from pipelines.runtimes.opencv import OpenCvCaffeRunner

    runner = OpenCvCaffeRunner(Path(prototxt), Path(caffemodel))
    net = runner.net
    net.enableFusion(False)
    for name, value in feeds.items():
        net.setInput(np.ascontiguousarray(value, dtype=np.float32), name)
    names = [lyr.name for lyr in layers]
    try:
        blobs = net.forwardAndRetrieve(names)
    except cv2.error as exc:
        raise ZoomakeError(f"OpenCV DNN failed to run the Caffe model: {exc}") from None
    values = {}
    for lyr, outs in zip(layers, blobs, strict=True):
        for top, value in zip(lyr.tops, outs, strict=False):
            values[top] = np.asarray(value)
    return values


def _onnx_layers(path: Path) -> list[_Layer]:
    from converters.io import load_onnx

    graph = load_onnx(path).graph
    return [
        _Layer(n.name or n.output[0], n.op_type, [o for o in n.output if o], list(n.input))
        for n in graph.node
    ]


def _ort_values(path: Path, feeds: dict) -> dict:
    import onnx

    from converters.io import load_onnx
    from pipelines.runtimes.onnxruntime import OrtRunner

    model = load_onnx(path)
    present = {o.name for o in model.graph.output}
    for node in model.graph.node:
        for name in node.output:
            if name and name not in present:
                model.graph.output.append(onnx.ValueInfoProto(name=name))
                present.add(name)
    runner = OrtRunner(model.SerializeToString())
    return runner.run({k: v for k, v in feeds.items() if k in {p.name for p in runner.inputs}})


def _openvino_values(xml: Path, feeds: dict, wanted: set[str]) -> dict:
    from converters.optional import require

    ov = require("openvino")
    core = ov.Core()
    model = core.read_model(str(xml))
    extra = []
    for op in model.get_ordered_ops():
        if op.get_type_name() in ("Parameter", "Constant", "Result"):
            continue
        for out in op.outputs():
            if out.get_names() & wanted:
                extra.append(out)
    if extra:
        model.add_outputs(extra)
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    result = compiled.create_infer_request().infer(feeds)
    values = {}
    for port in compiled.outputs:
        for name in port.get_names() & wanted:
            values[name] = np.array(result[port])
    return values


def _reference(framework: str, sources: dict[str, Path], feeds: dict):
    """``(layers in order, {tensor name: value})`` of the source model."""
    if framework == "caffe":
        layers, _ = _caffe_layers(Path(sources["prototxt"]))
        return layers, _opencv_values(sources["prototxt"], sources["caffemodel"], feeds, layers)
    if framework == "onnx":
        path = Path(sources["onnx"])
        return _onnx_layers(path), _ort_values(path, feeds)
    raise ZoomakeError(f"no layer-by-layer reference for source framework '{framework}'")


def _candidate(fmt_: str, out_dir: Path, feeds: dict, wanted: set[str]) -> dict:
    if fmt_ == "onnx":
        return _ort_values(out_dir / "model.onnx", feeds)
    if fmt_ == "openvino":
        return _openvino_values(out_dir / "model.xml", feeds, wanted)
    if fmt_ == "caffe":
        layers, _ = _caffe_layers(out_dir / "model.prototxt")
        return _opencv_values(out_dir / "model.prototxt", out_dir / "model.caffemodel", feeds,
                              layers)  # fmt: skip
    raise ZoomakeError(f"no layer-by-layer runner for artifact format '{fmt_}'")


def _error(got: np.ndarray, want: np.ndarray, atol: float, rtol: float) -> dict | None:
    if got.size != want.size:
        return None
    a = got.astype(np.float64).reshape(want.shape)
    b = want.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        diff = np.abs(a - b)
        diff[np.isnan(a) & np.isnan(b)] = 0.0
        diff[~np.isfinite(diff)] = np.inf
        allowed = atol + rtol * np.abs(b)
        ratio = np.where(diff == 0.0, 0.0, diff / allowed)
    return {
        "max_abs_error": float(diff.max(initial=0.0)),
        "margin": float(np.nan_to_num(ratio, nan=np.inf).max(initial=0.0)),
        "failing_elements": int((diff > allowed).sum()),
        "elements": int(diff.size),
    }


def first_divergence(
    framework: str,
    sources: dict[str, Path],
    fmt_: str,
    out_dir: Path,
    reference_feeds: dict,
    candidate_feeds: dict,
    atol: float,
    rtol: float,
) -> dict:
    """The first source layer whose output the artifact gets wrong (see the module docstring).

    Returns ``{"found": bool, "compared": N, "layer", "type", "tensor", "max_abs_error",
    "margin", "input": {"tensor", "max_abs_error"} | None, "message"}``.
    """
    layers, ref = _reference(framework, sources, reference_feeds)
    wanted = {t for lyr in layers for t in lyr.tops}
    got = _candidate(fmt_, Path(out_dir), candidate_feeds, wanted)
    errors: dict[str, dict] = {}
    last_ok: tuple[str, dict] | None = None
    for lyr in layers:
        for top in lyr.tops:
            if top not in ref or top not in got:
                continue
            err = _error(np.asarray(got[top]), np.asarray(ref[top]), atol, rtol)
            if err is None:
                continue
            errors[top] = err
            if err["failing_elements"] == 0:
                last_ok = (top.split("@")[0], err)
                continue
            before = [(lyr.blobs[b], errors[b]) for b in lyr.bottoms if b in errors]
            inp = max(before, key=lambda be: be[1]["max_abs_error"]) if before else last_ok
            result = {
                "found": True,
                "compared": len(errors),
                "layer": lyr.name,
                "type": lyr.type,
                "tensor": top,
                "max_abs_error": num(err["max_abs_error"]),
                "margin": num(round(err["margin"], 6)),
                "failing_elements": err["failing_elements"],
                "elements": err["elements"],
                "input": None
                if inp is None
                else {"tensor": inp[0], "max_abs_error": num(inp[1]["max_abs_error"])},
            }
            result["message"] = divergence_line(result)
            return result
    return {
        "found": False,
        "compared": len(errors),
        "message": f"first divergence: none of the {len(errors)} intermediate tensors matched "
        "by name exceeds the tolerance (the difference is in what comes after them)",
    }


def divergence_line(d: dict) -> str:
    """``first divergence: layer conv4_3_norm (Normalize): max abs err 0.41, its input within
    2e-06`` (the form the failure message, verify.json and the report show)."""
    if not d.get("found"):
        return d.get("message") or "first divergence: not found"
    line = (
        f"first divergence: layer {d['layer']} ({d['type']}): max abs err {fmt(d['max_abs_error'])}"
    )
    if d.get("input"):
        line += f", its input {d['input']['tensor']} within {fmt(d['input']['max_abs_error'])}"
    else:
        line += " (the first layer compared)"
    return line
