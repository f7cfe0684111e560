"""Run an MXNet checkpoint in MXNet 1.9.1 itself (the ``mxnet`` side runtime).

MXNet 1.9 needs NumPy 1.23, so it lives in its own environment (``zoomake setup-runtime mxnet``)
and runs as a subprocess (``pipelines.runtimes.side``, runner ``side_runners/run_mxnet.py``).
Outputs are addressed by the names this project gives them: MXNet lists a node's output as
``<node>_output``, and the node computing an ONNX graph output is named after it
(``converters.mxnet.export``), so the suffix is dropped. ``SoftmaxOutput``'s label argument is
bound as zeros by the side runner (it does not change the inference result).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from formats.runner import Port, Runner
from pipelines.errors import ZoomakeError

SUFFIX = "_output"


def public_name(mxnet_output: str) -> str:
    return mxnet_output[: -len(SUFFIX)] if mxnet_output.endswith(SUFFIX) else mxnet_output


def require_runtime() -> None:
    """One line saying how to create the MXNet runtime when it is missing."""
    from pipelines.runtimes.side import available, setup_command

    if not available("mxnet"):
        raise ZoomakeError(
            f"the MXNet runtime (mxnet==1.9.1, its own environment) is not set up: "
            f"run `{setup_command('mxnet')}`"
        )


def _recorded_shapes(symbol: Path) -> dict[str, tuple[int, ...]]:
    """Input shapes the symbol records (``__shape__`` of a variable; our writer sets it)."""
    import ast
    import json

    try:
        nodes = json.loads(symbol.read_text(encoding="utf-8")).get("nodes") or []
        return {n["name"]: tuple(ast.literal_eval(n["attrs"]["__shape__"])) for n in nodes
                if n.get("op") == "null" and "__shape__" in (n.get("attrs") or {})}  # fmt: skip
    except (OSError, ValueError, SyntaxError, TypeError, KeyError, AttributeError):
        return {}  # MXNet itself says what is wrong with the file when it loads it


def _array_count(path: Path) -> int:
    import struct

    with open(path, "rb") as f:
        head = f.read(24)
    return struct.unpack("<QQQ", head)[2] if len(head) == 24 else -1


class MxnetRunner(Runner):
    """``inputs``/``outputs``/``run(feeds)`` over an MXNet symbol (+ params) in MXNet 1.9.1.

    ``input_shapes`` gives the static shape of each data input (a symbol does not record it);
    inputs not given have shape None."""

    runtime = "mxnet"

    def __init__(self, symbol: str | os.PathLike, params: str | os.PathLike | None = None,
                 input_shapes: dict[str, list[int]] | None = None):  # fmt: skip
        from pipelines.runtimes.side import SideModel

        for p in (symbol, params):
            if p and not Path(p).is_file():
                raise ZoomakeError(f"{p}: model file not found")
        require_runtime()
        if params and _array_count(Path(params)) == 0:
            params = None  # mx.nd.load gives a list, not a dict, for an empty file
        files = {"symbol": str(symbol), **({"params": str(params)} if params else {})}
        self.model = SideModel("mxnet", files)
        shapes = {**_recorded_shapes(Path(symbol)), **(input_shapes or {})}
        self.inputs = [
            Port(n, tuple(shapes[n]) if n in shapes else None, np.dtype(np.float32))
            for n, _ in self.model.inputs
        ]
        self._names = {public_name(o): o for o in self.model.outputs}
        self.outputs = list(self._names)
        self._internal = {public_name(b): b for b in self.model.blobs}

    @classmethod
    def from_prefix(cls, prefix: str | os.PathLike, epoch: int = 0, **kw) -> MxnetRunner:
        from converters.mxnet.export import checkpoint_paths

        return cls(*checkpoint_paths(prefix, epoch), **kw)

    def has_output(self, name: str) -> bool:
        return name in self._internal

    def run(self, feeds, outputs=None):
        wanted = list(outputs or self.outputs)
        missing = [n for n in wanted if n not in self._internal]
        if missing:
            raise ZoomakeError(f"the MXNet model has no output '{missing[0]}'")
        internal = [self._internal[n] for n in wanted]
        plain = internal == list(self.model.outputs)
        got = self.model.run(feeds, None if plain else internal)
        return {n: np.asarray(got[self._internal[n]]) for n in wanted}
