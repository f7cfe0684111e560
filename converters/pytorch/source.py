"""PyTorch as a source: a torch.export archive, a TorchScript file, or model code + checkpoint
-> ONNX, and the reference runner (the model itself, eager, no_grad, eval).

Everything that imports the user's code runs in a child process (``converters.pytorch.worker``):
its code directory goes on ``sys.path`` there only, and a model's import-time side effects (or a
stub it needs) never reach the build process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx

from converters.errors import ConversionError

ERROR_PREFIX = "zoomake-error: "


@dataclass
class TorchSource:
    """How a PyTorch model is kept: one of ``pt2``, ``torchscript``, ``code``."""

    kind: str
    model: str | None = None  # .pt2 / .pt file
    entry: str | None = None  # "package.module:callable" (kind "code")
    kwargs: dict = field(default_factory=dict)
    code_dir: str | None = None  # put on sys.path in the worker only
    checkpoint: str | None = None  # state_dict, loaded with weights_only=True
    # Modules the model's import chain imports but never calls (e.g. torchvision, which cannot
    # be installed beside the CPU torch here): the worker serves a stub that fails if used.
    stub_modules: list[str] = field(default_factory=list)

    def __post_init__(self):
        if self.kind not in ("pt2", "torchscript", "code"):
            raise ConversionError(
                f"pytorch source kind {self.kind!r}: expected pt2, torchscript or code"
            )
        if self.kind == "code" and not self.entry:
            raise ConversionError(
                "pytorch source kind 'code' needs entry: 'package.module:callable'"
            )
        if self.kind != "code" and not self.model:
            raise ConversionError(f"pytorch source kind {self.kind!r} needs a model file")


def torch_to_onnx(
    src: TorchSource,
    input_shapes: dict[str, list[int]],
    outputs: list[str],
    opset: int = 17,
    timeout: float = 600,
) -> onnx.ModelProto:
    """Export ``src`` to ONNX in a worker process; raises ConversionError with one line."""
    with tempfile.TemporaryDirectory(prefix="zoomake-torch-") as tmp:
        out = Path(tmp) / "model.onnx"
        _call(
            {
                "action": "export",
                "source": asdict(src),
                "inputs": input_shapes,
                "outputs": outputs,
                "opset": opset,
                "onnx_out": str(out),
            },
            tmp,
            timeout,
        )
        return onnx.load(str(out))


def run_reference(
    src: TorchSource, feeds: dict[str, np.ndarray], outputs: list[str], timeout: float = 600
) -> dict[str, np.ndarray]:
    """Reference runner: the model in eager mode (eval, no_grad) on ``feeds``, in a worker."""
    with tempfile.TemporaryDirectory(prefix="zoomake-torch-") as tmp:
        feeds_path, results_path = Path(tmp) / "feeds.npz", Path(tmp) / "results.npz"
        np.savez(feeds_path, **feeds)
        _call(
            {
                "action": "run",
                "source": asdict(src),
                "inputs": list(feeds),
                "outputs": outputs,
                "feeds": str(feeds_path),
                "results": str(results_path),
            },
            tmp,
            timeout,
        )
        with np.load(results_path) as res:
            return {name: res[name] for name in outputs}


def _call(request: dict, tmp: str, timeout: float) -> None:
    req = Path(tmp) / "request.json"
    req.write_text(json.dumps(request))
    env = dict(os.environ)
    # The worker imports converters.* from this checkout, not whatever is first on its path.
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "converters.pytorch.worker", str(req)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=tmp,
        )
    except subprocess.TimeoutExpired:
        raise ConversionError(f"pytorch worker did not finish within {timeout:g} s") from None
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith(ERROR_PREFIX)]
        if lines:
            raise ConversionError(lines[-1][len(ERROR_PREFIX) :])
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConversionError(f"pytorch worker failed (exit {proc.returncode}): {tail}")
