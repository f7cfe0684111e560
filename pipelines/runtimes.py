"""Run a model in the runtime it is deployed with (candidate) or came from (reference).

Every runner exposes the same small surface: ``inputs`` (name, static shape, numpy dtype, in the
model's order), ``outputs`` (names, in the model's order) and ``run(feeds) -> {name: array}``.

- ONNX: onnxruntime, CPU provider, every graph optimization on (what a deployment gets).
- OpenVINO IR: OpenVINO runtime on CPU with ``INFERENCE_PRECISION_HINT f32``; without the hint
  recent CPUs silently run bf16/fp16 arithmetic, which is how wrong FP16 conversions went unseen.
- Caffe: real Caffe (pycaffe in its own environment, ``pipelines.side_runtime``) as the
  reference when set up, else OpenCV DNN 4.x (``DNN_BACKEND_OPENCV``, CPU), which also runs Caffe
  artifacts; see ``pipelines.runtime_caffe`` and ``caffe_reference``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# The interface every runner implements lives in a neutral module, so a format's own runners
# (formats/, converters/<format>/) need nothing from pipelines/; re-exported here.
from formats.runner import Port, Runner, static_shape
from pipelines.errors import ZoomakeError

__all__ = ["Port", "Runner", "static_shape"]

_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(double)": np.float64,
}


def need_files(*paths: Path) -> None:
    for p in paths:
        if not Path(p).is_file():
            raise ZoomakeError(f"{p}: model file not found")


class OrtRunner(Runner):
    runtime = "onnxruntime"

    def __init__(self, model: Path | bytes, extra_outputs: list[str] | None = None):
        import onnxruntime as ort

        if extra_outputs:
            model = _with_outputs(model, extra_outputs)
        elif isinstance(model, Path):
            need_files(model)
            model = str(model)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Errors only: a source file with initializers listed as inputs (old exporters) makes
        # onnxruntime print a warning per weight, which would drown the build log.
        options.log_severity_level = 3
        # Idle pool threads sleep instead of spinning: in a parallel build (`doit -n 2`), on a
        # machine shared with other work, a spinning pool burns the core the other task needs.
        # Results are unchanged (same kernels, same threads); only the waiting differs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ZoomakeError(f"onnxruntime cannot load the model: {exc}") from None
        self.inputs = [
            Port(i.name, static_shape(i.shape), np.dtype(_ORT_TYPES.get(i.type, np.float32)))
            for i in self.session.get_inputs()
        ]
        self.outputs = [o.name for o in self.session.get_outputs()]

    @property
    def threads(self) -> int:
        """Intra-op threads: 0 in the options means onnxruntime's default, one per core."""
        import os

        return self.session.get_session_options().intra_op_num_threads or os.cpu_count() or 1

    def run(self, feeds, outputs=None):
        names = list(outputs or self.outputs)
        try:
            results = self.session.run(names, feeds)
        except Exception as exc:
            raise ZoomakeError(f"onnxruntime failed to run the model: {exc}") from None
        return dict(zip(names, results, strict=True))


def _with_outputs(path: Path, names: list[str]) -> bytes:
    """The model with intermediate values ``names`` added as graph outputs (cut points)."""
    import onnx

    from converters.io import load_onnx

    model = load_onnx(path)
    present = {o.name for o in model.graph.output}
    known = {o for n in model.graph.node for o in n.output} | {i.name for i in model.graph.input}
    for name in names:
        if name in present:
            continue
        if name not in known:
            raise ZoomakeError(f"{path}: '{name}' is not a value of the source ONNX model")
        model.graph.output.append(onnx.ValueInfoProto(name=name))
    return model.SerializeToString()


class OpenVinoRunner(Runner):
    runtime = "openvino"

    def __init__(self, xml: Path, prefer: list[str] | None = None):
        from converters.optional import require

        ov = require("openvino")
        need_files(xml, xml.with_suffix(".bin"))
        core = ov.Core()
        try:
            model = core.read_model(str(xml))
            # No CPU pinning: the build process also runs numpy's OpenBLAS and onnxruntime, and
            # OpenVINO pinning their threads to its cores is how a verify task got stuck.
            config = {"INFERENCE_PRECISION_HINT": "f32", "ENABLE_CPU_PINNING": False}
            self.compiled = core.compile_model(model, "CPU", config)
        except RuntimeError as exc:
            raise ZoomakeError(f"{xml}: OpenVINO cannot load the model: {exc}") from None
        self.inputs = [
            Port(
                p.get_any_name(),
                static_shape(list(p.get_shape())) if p.get_partial_shape().is_static else None,
                np.dtype(p.get_element_type().to_dtype()),
            )
            for p in self.compiled.inputs
        ]
        # An IR tensor may carry several names; keep the one the ONNX graph gave its output.
        preferred = set(prefer or ())
        self.outputs = []
        for port in self.compiled.outputs:
            names = sorted(port.get_names())
            self.outputs.append(next((n for n in names if n in preferred), port.get_any_name()))
        self.request = self.compiled.create_infer_request()

    @property
    def threads(self) -> int | None:
        try:
            return int(self.compiled.get_property("INFERENCE_NUM_THREADS")) or None
        except (RuntimeError, TypeError, ValueError):
            return None

    def run(self, feeds, outputs=None):
        try:
            result = self.request.infer(feeds)
        except RuntimeError as exc:
            raise ZoomakeError(f"OpenVINO failed to run the model: {exc}") from None
        got = {
            name: np.array(result[port])
            for name, port in zip(self.outputs, self.compiled.outputs, strict=True)
        }
        return {n: got[n] for n in (outputs or self.outputs)}


def open_artifact(fmt: str, out_dir: Path, prefer: list[str] | None = None) -> Runner:
    """The built artifact of format ``fmt`` in ``out_dir``, in its deployment runtime (the
    format's ``Target.runner``, see ``formats``)."""
    from converters.errors import ConversionError
    from formats import target

    try:
        spec = target(fmt)
    except ConversionError as exc:
        raise ZoomakeError(f"{out_dir}: {exc}") from None
    return spec.runner(out_dir, prefer)


def caffe_reference(choice: str = "auto") -> str:
    """Which runtime runs a Caffe source: ``verify.reference`` resolved (``auto``: real Caffe
    when its side runtime is set up, else OpenCV). A missing requested runtime is an error."""
    from formats import source
    from pipelines.side_runtime import available, setup_command

    references = source("caffe").references
    if choice not in references:
        raise ZoomakeError(
            f"verify.reference: expected one of {', '.join(references)}, got '{choice}'"
        )
    if choice == "opencv":
        return "opencv"
    if available("caffe"):
        return "caffe"
    if choice == "caffe":
        raise ZoomakeError(
            "verify.reference is 'caffe' but the Caffe runtime is not set up: "
            f"run `{setup_command('caffe')}` (or set verify.reference: auto)"
        )
    return "opencv"


def open_reference(
    framework: str, sources: dict[str, Path], outputs: list[str], choice: str = "auto"
) -> Runner:
    """The SOURCE model in its own framework's runtime, able to produce ``outputs`` (the
    format's ``Source.reference``, see ``formats``)."""
    from converters.errors import ConversionError
    from formats import source

    try:
        spec = source(framework)
    except ConversionError as exc:
        raise ZoomakeError(f"no reference runtime: {exc}") from None
    return spec.reference(sources, outputs, choice)


def versions() -> dict[str, str]:
    """Versions of every runtime that can take part in a verification."""
    import platform

    import cv2
    import onnx
    import onnxruntime

    from converters.optional import available

    if available("openvino"):
        import openvino

        openvino_version = openvino.get_version()
    else:
        openvino_version = "not installed"
    return {
        "onnxruntime": onnxruntime.__version__,
        "opencv": cv2.__version__,
        "openvino": openvino_version,
        "numpy": np.__version__,
        "onnx": onnx.__version__,
        "python": platform.python_version(),
    }
