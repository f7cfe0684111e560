"""PyTorch as a source: a torch.export archive, a TorchScript file, or model code + checkpoint
-> ONNX, and the reference runner (the model itself, eager, no_grad, eval).

Everything that imports the user's code runs in a child process (``converters.pytorch.worker``):
its code directory goes on ``sys.path`` there only, and a model's import-time side effects (or a
stub it needs) never reach the build process.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx

from converters.errors import ConversionError, ModelMismatch
from formats.runner import Runner

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
    # Outputs that get a softmax over their last axis after forward (export and reference).
    softmax: list[str] = field(default_factory=list)

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
    """Export ``src`` to ONNX in a worker process; raises ConversionError with one line. A
    ``.pt2`` archive may leave ``input_shapes`` / ``outputs`` empty: its own are used."""
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
    """The model in eager mode (eval, no_grad) on ``feeds``, once (see ``TorchReference``)."""
    with TorchReference(src, outputs, timeout=timeout) as ref:
        return ref.run(feeds)


class TorchReference(Runner):
    """Reference runner: the model itself in eager mode (eval, no_grad), in one worker process
    that loads it once and serves every ``run`` (a verify runs several feed sets; importing torch
    and the model per run would cost seconds each). ``run(feeds)`` passes the feeds to
    ``forward`` positionally, in the dict's order (the ONNX graph's input order)."""

    runtime = "torch"

    def __init__(self, src: TorchSource, outputs: list[str], inputs=(), timeout: float = 600):
        if not outputs and src.kind != "pt2":  # an archive knows its outputs
            raise ConversionError(
                "a PyTorch source needs the recipe's outputs: names for what forward returns"
            )
        self.outputs = list(outputs or [])
        self.inputs = list(inputs)
        self.timeout = timeout
        self._tmp = tempfile.TemporaryDirectory(prefix="zoomake-torch-")
        tmp = Path(self._tmp.name)
        req = tmp / "request.json"
        req.write_text(json.dumps({"action": "serve", "source": asdict(src), "outputs": outputs}))
        self._stderr = open(tmp / "stderr.txt", "w+")  # noqa: SIM115 (closed in close())
        self._count = 0
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "converters.pytorch.worker", str(req)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=_worker_env(),
            cwd=tmp,
        )
        try:
            self.outputs = self._reply()["outputs"]
        except BaseException:
            self.close()
            raise

    def run(self, feeds: dict[str, np.ndarray], outputs=None) -> dict[str, np.ndarray]:
        tmp = Path(self._tmp.name)
        self._count += 1
        feeds_path = tmp / f"feeds_{self._count}.npz"
        results_path = tmp / f"results_{self._count}.npz"
        np.savez(feeds_path, **{n: np.ascontiguousarray(v) for n, v in feeds.items()})
        self._proc.stdin.write(
            json.dumps({"feeds": str(feeds_path), "results": str(results_path)}) + "\n"
        )
        self._proc.stdin.flush()
        reply = self._reply()
        if "error" in reply:
            raise ConversionError(f"pytorch reference: {reply['error']}")
        with np.load(results_path) as res:
            out = {name: res[name] for name in (outputs or self.outputs)}
        feeds_path.unlink()
        results_path.unlink()
        return out

    def _reply(self) -> dict:
        ready, _, _ = select.select([self._proc.stdout], [], [], self.timeout)
        line = self._proc.stdout.readline() if ready else None
        if line:
            return json.loads(line)
        if line is None:
            self.close()
            raise ConversionError(f"pytorch worker did not answer within {self.timeout:g} s")
        code = self._proc.wait()
        self._stderr.seek(0)
        raise _failure(self._stderr.read(), code)

    def close(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if not self._stderr.closed:
            self._stderr.close()
        self._tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        with contextlib.suppress(Exception):  # interpreter shutdown: best effort
            self.close()


def _worker_env() -> dict:
    env = dict(os.environ)
    # The worker imports converters.* from this checkout, not whatever is first on its path.
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _failure(stderr: str, code: int) -> ConversionError:
    """The worker's one error line as an exception: a ``ModelMismatch`` against the source key
    it names (``source/entry``, ``source/kwargs``, ...; a recipe build says it against the
    recipe), else a ConversionError."""
    lines = [ln for ln in stderr.splitlines() if ln.startswith(ERROR_PREFIX)]
    if not lines:
        tail = (stderr.strip().splitlines() or ["no output"])[-1]
        return ConversionError(f"pytorch worker failed (exit {code}): {tail}")
    line = lines[-1][len(ERROR_PREFIX) :]
    if line.startswith("{"):
        found = json.loads(line)
        message = found["message"]
        return ModelMismatch(message, field="source", key=found["role"], detail=message)
    return ConversionError(line)


def _call(request: dict, tmp: str, timeout: float) -> None:
    req = Path(tmp) / "request.json"
    req.write_text(json.dumps(request))
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "converters.pytorch.worker", str(req)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_worker_env(),
            cwd=tmp,
        )
    except subprocess.TimeoutExpired:
        raise ConversionError(f"pytorch worker did not finish within {timeout:g} s") from None
    if proc.returncode != 0:
        raise _failure(proc.stderr, proc.returncode)
