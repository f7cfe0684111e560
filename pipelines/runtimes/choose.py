"""Open a model in the runtime it is deployed with (candidate) or came from (reference).

Every runner exposes the same small surface: ``inputs`` (name, static shape, numpy dtype, in the
model's order), ``outputs`` (names, in the model's order) and ``run(feeds) -> {name: array}``.

- ONNX: onnxruntime, CPU provider, every graph optimization on (what a deployment gets).
- OpenVINO IR: OpenVINO runtime on CPU with ``INFERENCE_PRECISION_HINT f32``; without the hint
  recent CPUs silently run bf16/fp16 arithmetic, which is how wrong FP16 conversions went unseen.
- Caffe: real Caffe (pycaffe in its own environment, ``pipelines.runtimes.side``) as the
  reference when set up, else OpenCV DNN 4.x (``DNN_BACKEND_OPENCV``, CPU), which also runs Caffe
  artifacts; see ``pipelines.runtimes.opencv``, ``pipelines.runtimes.caffe`` and
  ``caffe_reference``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.errors import ZoomakeError
from pipelines.runtimes.base import Runner, need_files
from pipelines.runtimes.caffe import RealCaffeRunner
from pipelines.runtimes.onnxruntime import OrtRunner
from pipelines.runtimes.opencv import OpenCvCaffeRunner
from pipelines.runtimes.openvino import OpenVinoRunner


def open_artifact(fmt: str, out_dir: Path, prefer: list[str] | None = None) -> Runner:
    """The built artifact of format ``fmt`` in ``out_dir``, in its deployment runtime."""
    if fmt == "onnx":
        return OrtRunner(out_dir / "model.onnx")
    if fmt == "openvino":
        return OpenVinoRunner(out_dir / "model.xml", prefer)
    if fmt == "caffe":
        return OpenCvCaffeRunner(out_dir / "model.prototxt", out_dir / "model.caffemodel")
    raise ZoomakeError(f"{out_dir}: unknown artifact format '{fmt}' (onnx, openvino, caffe)")


REFERENCES = ("auto", "caffe", "opencv")


def caffe_reference(choice: str = "auto") -> str:
    """Which runtime runs a Caffe source: ``verify.reference`` resolved (``auto``: real Caffe
    when its side runtime is set up, else OpenCV). A missing requested runtime is an error."""
    from pipelines.runtimes.side import available, setup_command

    if choice not in REFERENCES:
        raise ZoomakeError(
            f"verify.reference: expected one of {', '.join(REFERENCES)}, got '{choice}'"
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
    """The SOURCE model in its own framework's runtime, able to produce ``outputs``."""
    if framework == "caffe":
        for role in ("prototxt", "caffemodel"):
            if role not in sources:
                raise ZoomakeError(f"the Caffe reference needs the source {role} (not fetched)")
        files = Path(sources["prototxt"]), Path(sources["caffemodel"])
        if caffe_reference(choice) == "caffe":
            return RealCaffeRunner(*files)
        return OpenCvCaffeRunner(*files)
    if framework == "onnx":
        if choice != "auto":
            raise ZoomakeError(f"verify.reference '{choice}' applies to Caffe sources only")
        if "onnx" not in sources:
            raise ZoomakeError("the ONNX reference needs the source onnx file (not fetched)")
        path = Path(sources["onnx"])
        need_files(path)
        return OrtRunner(path, extra_outputs=outputs)
    raise ZoomakeError(f"no reference runtime for source framework '{framework}' (caffe, onnx)")


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
