"""ONNX models in onnxruntime: CPU provider, every graph optimization on (what a deployment
gets). Runs ONNX artifacts, and ONNX sources as their reference (with cut points as outputs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.errors import ZoomakeError
from pipelines.runtimes.base import Port, Runner, need_files, static_shape

_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(double)": np.float64,
}


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
        # Pool threads spin while a run waits on them (onnxruntime's default, so the latency
        # measure records is near what a deployment with default options sees: 12-34% lower
        # than with spinning off on UltraFace here, and steadier) and stop spinning as soon as
        # the run returns: with the default they go on spinning, ~57 ms of CPU in the 0.3 s
        # after a run, which the other task of a parallel build (`doit -n 2`) would lose
        # (bench/bench_ort_spinning.py).
        options.add_session_config_entry("session.intra_op.allow_spinning", "1")
        options.add_session_config_entry("session.inter_op.allow_spinning", "1")
        options.add_session_config_entry("session.force_spinning_stop", "1")
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
