"""What every runner is, whichever runtime it drives: ``inputs`` (name, static shape, numpy dtype,
in the model's order), ``outputs`` (names, in the model's order) and
``run(feeds) -> {name: array}``. The runners (``onnxruntime``, ``openvino``, ``opencv``,
``caffe``) build on this module and nothing else of ``pipelines.runtimes``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.errors import ZoomakeError


@dataclass(frozen=True)
class Port:
    name: str
    shape: tuple[int, ...] | None  # None when the model leaves a dimension symbolic
    dtype: np.dtype


class Runner:
    runtime = ""
    inputs: list[Port]
    outputs: list[str]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def has_output(self, name: str) -> bool:
        """Whether ``run`` can return ``name`` (a graph output here; any blob of a Caffe net)."""
        return name in self.outputs


def static_shape(dims) -> tuple[int, ...] | None:
    return tuple(dims) if all(isinstance(d, int) and d > 0 for d in dims) else None


def need_files(*paths: Path) -> None:
    for p in paths:
        if not Path(p).is_file():
            raise ZoomakeError(f"{p}: model file not found")
