"""``zoomake setup-runtime`` and ``zoomake doctor``: create and check the side runtimes'
environments (see ``pipelines.runtimes.side``) and list every runtime a build can use.

A side runtime's venv lives under ``<zoomake cache>/runtimes/<fw>/venv``, described by
``runtime.json`` beside it (python, PYTHONPATH, build). Each setup ends with a check: a tiny
model whose expected output is computed here in numpy, run by the new environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from converters.io import atomic_output
from pipelines.errors import ZoomakeError
from pipelines.runtimes.side import (
    SideModel,
    build_note,
    locate,
    process,
    runtime_dir,
    setup_command,
)

# The versions each prebuilt framework was built against (tools/caffe/README.md; MXNet 1.9.1's
# wheel predates NumPy 1.24's removal of np.bool / np.int aliases it still uses).
PACKAGES = {
    "caffe": ["numpy==1.26.4", "protobuf==4.21.12", "six"],
    "mxnet": ["mxnet==1.9.1", "numpy==1.23.5"],
}
PIP_TIMEOUT_S = 1200


def default_caffe_dir() -> Path:
    """``$ZOOMAKE_SHARED/tools/caffe``, else ``../shared/tools/caffe`` beside the repository."""
    shared = os.environ.get("ZOOMAKE_SHARED")
    base = Path(shared) if shared else Path(__file__).resolve().parents[3] / "shared"
    return base / "tools" / "caffe"


def _run(cmd: list[str], what: str) -> None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ZoomakeError(f"{what}: no result within {PIP_TIMEOUT_S} s") from None
    if done.returncode != 0:
        lines = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if "error" in ln.lower()] or lines or ["no output"]
        raise ZoomakeError(f"{what} failed: {errors[-1].strip()}")


def setup_runtime(framework: str, from_dir: Path | None = None, log=print) -> dict:
    """Create (or reuse) the framework's environment, record it, check it; return its info."""
    if framework not in PACKAGES:
        raise ZoomakeError(f"unknown runtime '{framework}' (caffe, mxnet)")
    var = f"ZOOMAKE_{framework.upper()}_PYTHON"
    if os.environ.get(var):
        if from_dir is not None:
            raise ZoomakeError(f"--from is ignored while {var} is set; unset one of the two")
        log(f"using {var}={os.environ[var]}")
    else:
        pythonpath = []
        if framework == "caffe":
            src = Path(from_dir) if from_dir else default_caffe_dir()
            if not (src / "python" / "caffe" / "__init__.py").is_file():
                raise ZoomakeError(
                    f"{src}: no pycaffe here (expected {src}/python/caffe/__init__.py); "
                    "give --from DIR with the prebuilt Caffe"
                )
            pythonpath = [str((src / "python").resolve())]
        elif from_dir is not None:
            raise ZoomakeError("--from applies to caffe only (MXNet comes from PyPI)")
        home = runtime_dir(framework)
        venv = home / "venv"
        python = venv / "bin" / "python"
        # The venv's own interpreter must be the one the prebuilt extension was built for.
        base = getattr(sys, "_base_executable", sys.executable)
        if not python.is_file():
            log(f"creating {venv}")
            _run([base, "-m", "venv", "--clear", str(venv)], f"creating the {framework} venv")
        log(f"installing {' '.join(PACKAGES[framework])}")
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        _run(pip + PACKAGES[framework], f"pip install into {venv}")
        record = {
            "framework": framework,
            "python": str(python),
            "pythonpath": pythonpath,
            "packages": PACKAGES[framework],
            "build": build_note(framework, pythonpath),
        }
        with atomic_output(home / "runtime.json") as tmp:
            tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    info = check_runtime(framework)
    log(f"{framework} runtime ready: {describe(framework, info)}")
    return info


def check_runtime(framework: str) -> dict:
    """Run a tiny model in the side runtime against its numpy result; the runner's info."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (1, 2, 3, 4)).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="zoomake-check-") as tmp:
        if framework == "caffe":
            # Power: y = (shift + scale * x) ^ power, no weights needed.
            proto = Path(tmp) / "check.prototxt"
            proto.write_text(
                'name: "check"\ninput: "data"\ninput_shape { dim: 1 dim: 2 dim: 3 dim: 4 }\n'
                'layer { name: "p" type: "Power" bottom: "data" top: "y"\n'
                "  power_param { power: 2 scale: 0.5 shift: 1 } }\n"
            )
            model, want = SideModel("caffe", {"prototxt": proto}), (1 + 0.5 * x) ** 2
        else:
            symbol = Path(tmp) / "check-symbol.json"
            symbol.write_text(json.dumps(_LEAKY_SYMBOL))
            model, want = SideModel("mxnet", {"symbol": symbol}), np.where(x > 0, x, 0.25 * x)
        got = model.run({"data": x})
    (name,) = got
    if got[name].shape != want.shape or not np.allclose(got[name], want, rtol=1e-6, atol=1e-6):
        raise ZoomakeError(f"the {framework} runtime computed a wrong result for its check model")
    return process(framework).info


_LEAKY_SYMBOL = {
    "nodes": [
        {"op": "null", "name": "data", "inputs": []},
        {"op": "LeakyReLU", "name": "act", "attrs": {"act_type": "leaky", "slope": "0.25"},
         "inputs": [[0, 0, 0]]},
    ],
    "arg_nodes": [0],
    "node_row_ptr": [0, 1, 2],
    "heads": [[1, 0, 0]],
    "attrs": {"mxnet_version": ["int", 10901]},
}  # fmt: skip


def describe(framework: str, info: dict) -> str:
    env = locate(framework)
    name = {"caffe": "Caffe", "mxnet": "MXNet"}[framework]
    build = f" ({env.build})" if env and env.build else ""
    return (
        f"{name} {info.get('version')}{build}, Python {info.get('python')}, "
        f"NumPy {info.get('numpy')}, {env.python if env else '?'}"
    )


def doctor() -> tuple[list[str], bool]:
    """Lines for ``zoomake doctor`` and whether every runtime that is set up works."""
    from pipelines.runtimes.choose import versions

    v = versions()
    lines, healthy = ["reference runtimes (run the source model):"], True
    for framework, role in (("caffe", "Caffe sources"), ("mxnet", "MXNet sources")):
        if locate(framework) is None:
            status = f"not set up (run `{setup_command(framework)}`)"
        else:
            try:
                status = "available: " + describe(framework, check_runtime(framework))
            except ZoomakeError as exc:
                status, healthy = f"BROKEN: {exc}", False
        lines.append(f"  {framework:12} {role:30} {status}")
    lines.append(f"  {'opencv':12} {'Caffe sources (fallback)':30} available: OpenCV {v['opencv']}")
    lines.append(f"  {'onnxruntime':12} {'ONNX sources':30} available: {v['onnxruntime']}")
    lines.append("artifact runtimes (run the built target):")
    lines.append(f"  {'onnxruntime':12} {'onnx targets':30} available: {v['onnxruntime']}")
    ov = v["openvino"]
    ov = (
        "not installed (pip install zoomake[openvino])"
        if ov == "not installed"
        else f"available: {ov}"
    )
    lines.append(f"  {'openvino':12} {'openvino targets':30} {ov}")
    lines.append(f"  {'opencv':12} {'caffe targets':30} available: OpenCV {v['opencv']}")
    return lines, healthy
