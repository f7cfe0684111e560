"""What every runner is, whichever runtime it drives: ``inputs`` (name, static shape, numpy dtype,
in the model's order), ``outputs`` (names, in the model's order) and
``run(feeds) -> {name: array}``. The interface itself is ``formats.runner`` (so a format's own
runners need nothing from pipelines/); this module re-exports it with ``need_files``. The
runners (``onnxruntime``, ``openvino``, ``opencv``, ``caffe``) build on this module and nothing
else of ``pipelines.runtimes``.
"""

from __future__ import annotations

from pathlib import Path

from formats.runner import Port, Runner, static_shape
from pipelines.errors import ZoomakeError

# The interface every runner implements lives in a neutral module, so a format's own runners
# (formats/, converters/<format>/) need nothing from pipelines/; re-exported here.
__all__ = ["Port", "Runner", "need_files", "static_shape"]


def need_files(*paths: Path) -> None:
    for p in paths:
        if not Path(p).is_file():
            raise ZoomakeError(f"{p}: model file not found")
