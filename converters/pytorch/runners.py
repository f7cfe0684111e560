"""Artifact runners of the PyTorch target: ``model.pt2`` (what deploys) and, for tests and
users who edit it, ``model.py`` + ``model.pth``; both in torch, in this process (the files are
ours: the generated module imports only torch). Interface of the runtime runners: ``inputs``
(``Port``: ONNX name, static shape, numpy dtype), ``outputs`` (ONNX names), ``run(feeds)``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from converters.errors import ConversionError
from converters.pytorch.convert import NAMES_FILE, load_generated
from formats.runner import Port, Runner


def _ports(names, values) -> list[Port]:
    return [
        Port(n, tuple(int(d) for d in v.shape), np.dtype(str(v.dtype).removeprefix("torch.")))
        for n, v in zip(names, values, strict=True)
    ]


class _TorchRunner(Runner):
    runtime = "torch"

    def _call(self, fn, feeds: dict[str, np.ndarray], outputs=None) -> dict[str, np.ndarray]:
        import torch

        missing = [p.name for p in self.inputs if p.name not in feeds]
        if missing:
            raise ConversionError(f"{self.path}: no feed for input {missing[0]!r}")
        args = [torch.from_numpy(np.ascontiguousarray(feeds[p.name])) for p in self.inputs]
        with torch.no_grad():
            out = fn(*args)
        out = out if isinstance(out, tuple | list) else (out,)
        got = dict(zip(self.outputs, (o.detach().numpy() for o in out), strict=True))
        return {n: got[n] for n in (outputs or self.outputs)}


class Pt2Runner(_TorchRunner):
    """``model.pt2`` loaded with ``torch.export.load``; names from its ``zoomake.json``."""

    def __init__(self, path: str | Path):
        import torch

        self.path = Path(path)
        if not self.path.is_file():
            raise ConversionError(f"{self.path}: model file not found")
        extra = {NAMES_FILE: ""}
        try:
            program = torch.export.load(str(self.path), extra_files=extra)
        except Exception as exc:  # a damaged archive: torch raises several kinds
            raise ConversionError(f"{self.path}: torch cannot load the archive: {exc}") from None
        if not extra[NAMES_FILE]:
            raise ConversionError(f"{self.path}: not a zoomake archive (no {NAMES_FILE} inside)")
        names = json.loads(extra[NAMES_FILE])
        placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
        values = [placeholders[n].meta["val"] for n in program.graph_signature.user_inputs]
        self.inputs = _ports(names["inputs"], values)
        self.outputs = list(names["outputs"])
        self.module = program.module()

    def run(self, feeds, outputs=None):
        return self._call(self.module, feeds, outputs)

    def companions(self):
        """model.py + model.pth written beside the archive: a user may deploy those instead."""
        py = self.path.with_name("model.py")
        if not py.is_file() and not py.with_name("model.pth").is_file():
            return []
        return [("model.py + model.pth", GeneratedRunner(py))]


class GeneratedRunner(_TorchRunner):
    """``model.py`` imported and ``model.pth`` loaded into it (strict), run in eval mode."""

    def __init__(self, model_py: str | Path, state_pth: str | Path | None = None):
        self.path = Path(model_py)
        pth = Path(state_pth) if state_pth else self.path.with_name("model.pth")
        for f in (self.path, pth):
            if not f.is_file():
                raise ConversionError(f"{f}: model file not found")
        self.net, module = load_generated(self.path, pth)
        self.outputs = list(module.OUTPUTS)
        self.inputs = [
            Port(n, tuple(module.INPUT_SHAPES[n]), np.dtype(module.INPUT_DTYPES[n]))
            for n in module.INPUTS
        ]

    def run(self, feeds, outputs=None):
        return self._call(self.net, feeds, outputs)
