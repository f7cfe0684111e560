"""The runner interface every format's runtimes implement (neutral: imports nothing of zoomake).

``inputs``: ``Port``s (name, static shape or None, numpy dtype) in the model's order;
``outputs``: output names in the model's order; ``run(feeds) -> {name: ndarray}``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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

    def companions(self) -> list[tuple[str, Runner]]:
        """Other deployable forms of the same artifact, as (what they are, their runner):
        measure checks each on every sample against the reference at the recipe's
        tolerances, as it checks this one (PyTorch: model.py + model.pth beside model.pt2)."""
        return []


def static_shape(dims) -> tuple[int, ...] | None:
    return tuple(dims) if all(isinstance(d, int) and d > 0 for d in dims) else None
