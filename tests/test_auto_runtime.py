"""The build sets up a side runtime it can install alone (MXNet, from the package registry)
before the first task that runs in it (``runtime:<fw>``, pipelines.build.tasks.task_runtime),
so the README's first line builds the default zoo on a fresh machine; with
``ZOOMAKE_AUTO_RUNTIME=0`` it stops in one line instead. Real doit runs on a one-model zoo with
a cache of its own (no runtime recorded there, and the conftest's ZOOMAKE_MXNET_PYTHON unset).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.test_build_trust import make_zoo, report, run_doit
from tests.test_zoo_build import executed


def _fresh(tmp_path: Path, models_dir: Path) -> dict:
    zoo = make_zoo(tmp_path, models_dir, {"mtcnn-det1": ["onnx", "mxnet"]})
    for var in ("ZOOMAKE_MXNET_PYTHON", "ZOOMAKE_MXNET_PYTHONPATH"):
        zoo["env"].pop(var, None)
    return zoo


def test_only_tasks_that_run_in_mxnet_wait_for_its_setup(tmp_path, models_dir):
    zoo = _fresh(tmp_path, models_dir)
    # `doit info` exits 1 for a task that is not up to date: read what it prints.
    r = run_doit(zoo["env"], "info", "measure:mtcnn-det1:mxnet", cwd=tmp_path)
    assert "task_dep   : \n - runtime:mxnet" in r.stdout, r.stdout + r.stderr
    r = run_doit(zoo["env"], "info", "measure:mtcnn-det1:onnx", cwd=tmp_path)
    assert "\nmeasure:mtcnn-det1:onnx\n" in r.stdout, r.stdout + r.stderr
    assert "runtime:" not in r.stdout
    # A zoo without an MXNet target or source has no runtime:<fw> task.
    zoo2 = make_zoo(tmp_path / "plain", models_dir, {"mtcnn-det2": ["onnx"]})
    r = run_doit(zoo2["env"], "list", "--all", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "verify:mtcnn-det2:onnx" in r.stdout
    assert not [w for w in r.stdout.split() if w.startswith("runtime:")], r.stdout


def test_turned_off_a_missing_runtime_stops_its_targets_in_one_line(tmp_path, models_dir):
    zoo = _fresh(tmp_path, models_dir)
    env = {**zoo["env"], "ZOOMAKE_AUTO_RUNTIME": "0"}
    r = run_doit(env, "--continue", cwd=tmp_path)
    assert r.returncode != 0
    errors = [ln for ln in r.stderr.splitlines() if "failed:" in ln]
    assert errors == [
        "runtime:mxnet failed: the mxnet runtime is not set up and ZOOMAKE_AUTO_RUNTIME=0: "
        "run `zoomake setup-runtime mxnet`"
    ], r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    targets = report(zoo["build"])
    assert targets[("mtcnn-det1", "onnx")]["status"] == "passed"
    mxnet = targets[("mtcnn-det1", "mxnet")]
    assert mxnet["status"] != "passed" and "runtime:mxnet" in mxnet["message"], mxnet
    assert not (zoo["build"] / "mtcnn-det1" / "mxnet" / "verify.json").exists()


def test_a_fresh_cache_gets_the_runtime_once_and_the_target_is_measured_in_mxnet(
    tmp_path, models_dir
):
    """The README's first line on a fresh machine: pip installs mxnet==1.9.1 + numpy==1.23.5
    into the cache's own venv (pip's download cache makes a repeat quick)."""
    zoo = _fresh(tmp_path, models_dir)
    r = run_doit(zoo["env"], cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "setting up the mxnet runtime" in r.stdout
    record = json.loads((tmp_path / "cache" / "runtimes" / "mxnet" / "runtime.json").read_text())
    assert record["packages"] == ["mxnet==1.9.1", "numpy==1.23.5"]
    # The new environment really is MXNet 1.9.1 beside NumPy 1.23.5.
    out = subprocess.run(
        [record["python"], "-c", "import mxnet, numpy; print(mxnet.__version__, numpy.__version__)"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.stdout.split() == ["1.9.1", "1.23.5"], out.stderr
    verify = json.loads((zoo["build"] / "mtcnn-det1" / "mxnet" / "verify.json").read_text())
    assert verify["passed"] is True
    assert verify["candidate"]["runtime"] == "mxnet"
    # Set up once: the next run does nothing.
    r = run_doit(zoo["env"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert executed(r) == set(), r.stdout
