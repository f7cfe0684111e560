"""OpenVINO IR in the OpenVINO runtime on CPU with ``INFERENCE_PRECISION_HINT f32``: without the
hint recent CPUs silently run bf16/fp16 arithmetic, which is how wrong FP16 conversions went
unseen."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.errors import ZoomakeError
from pipelines.runtimes.base import Port, Runner, need_files, static_shape


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
