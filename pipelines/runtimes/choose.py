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

import functools
from pathlib import Path

import numpy as np

from pipelines.errors import ZoomakeError
from pipelines.runtimes.base import Runner


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
    from pipelines.runtimes.side import available, setup_command

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
    return dict(_versions())


@functools.cache  # a process cannot change them; ~40 ms a call (imports, distribution lookups)
def _versions() -> dict[str, str]:
    import platform
    from importlib.metadata import version

    import cv2
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
        "onnx": version("onnx"),  # the installed distribution's (= onnx.__version__)
        "python": platform.python_version(),
    }
