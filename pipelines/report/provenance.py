"""Where a zoo report comes from: when, on which commit of the zoo, with which code, libraries
and machine. Read cheaply at the end of a run (package metadata, not imports: importing
OpenVINO costs a second)."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

# library -> the distributions that provide it (the first installed one counts)
LIBRARIES = {
    "onnx": ["onnx"],
    "onnxruntime": ["onnxruntime", "onnxruntime-gpu"],
    "openvino": ["openvino"],
    "opencv": ["opencv-python-headless", "opencv-python", "opencv-contrib-python"],
    "numpy": ["numpy"],
    "doit": ["doit"],
}
OPTIONAL = {"torch": ["torch"], "mxnet": ["mxnet"]}  # listed when a recipe uses the framework


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _dist_version(names: list[str]) -> str | None:
    for name in names:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return None


def git_state(where: Path) -> dict | None:
    """``{"commit", "dirty"}`` of the git work tree holding ``where`` (None: not in one)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(where), *args], capture_output=True,
                                  text=True, timeout=20)  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None
    status = git("status", "--porcelain", "--", ".")
    return {"commit": commit.strip(), "dirty": bool(status and status.strip())}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def uses(zoo: dict[str, dict], framework: str) -> bool:
    return any(
        (r.get("source") or {}).get("framework") == framework
        or any((t or {}).get("format") == framework for t in (r.get("targets") or {}).values())
        for r in zoo.values()
    )


def provenance(zoo: dict[str, dict], zoo_dir: Path, started: float | None, finished: float):
    from pipelines import version as zoomake_version

    libraries = {k: _dist_version(v) or "not installed" for k, v in LIBRARIES.items()}
    for name, dists in OPTIONAL.items():
        if uses(zoo, "pytorch" if name == "torch" else name):
            libraries[name] = _dist_version(dists) or "side runtime (see each target)"
    return {
        "started": iso(started),
        "finished": iso(finished),
        "seconds": None if started is None else round(finished - started, 3),
        "zoo": {"path": str(zoo_dir), "git": git_state(zoo_dir)},
        "zoomake": zoomake_version(),
        "python": platform.python_version(),
        "libraries": libraries,
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "platform": platform.platform(),
        },
    }
