"""MXNet 1.9.1 as the reference for tests (the ``mxnet`` side runtime).

- ``require_mxnet()``: skip (fail under CI) when the side runtime is not set up.
- ``run_mxnet(symbol, params, feeds, outputs=None)``: the checkpoint in MXNet, outputs by
  this project's names (``formats.mxnet_runner.MxnetRunner``).
- ``mx_jobs(jobs)``: run ``mx_jobs.py`` (Gluon model building and export, ``load_checkpoint`` /
  ``SymbolBlock.imports`` runs, ``mx.nd.load``) in the MXNet environment, all jobs in ONE
  process (its start-up costs seconds on a loaded machine).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

JOBS_SCRIPT = Path(__file__).with_name("mx_jobs.py")


def require_mxnet() -> None:
    from pipelines.runtimes.side import available

    if available("mxnet"):
        return
    reason = "MXNet is not set up: run `zoomake setup-runtime mxnet`"
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must set it up, see .ci/run)", pytrace=False)
    pytest.skip(reason)


def run_mxnet(symbol, params, feeds: dict, outputs=None) -> dict[str, np.ndarray]:
    from formats.mxnet_runner import MxnetRunner

    require_mxnet()
    return MxnetRunner(symbol, params).run(feeds, outputs)


def mx_jobs(jobs: list[dict], workdir: Path) -> None:
    """Run ``jobs`` (see mx_jobs.py) in the MXNet environment; a failure shows its stderr."""
    from pipelines.runtimes.side import locate

    require_mxnet()
    env = locate("mxnet")
    spec = workdir / "jobs.json"
    spec.write_text(json.dumps(jobs))
    child = dict(os.environ, PYTHONPATH=os.pathsep.join(env.pythonpath), PYTHONNOUSERSITE="1")
    done = subprocess.run([env.python, str(JOBS_SCRIPT), str(spec)], capture_output=True,
                          text=True, env=child, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


def max_rel_err(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want| / max(1, max |want|)."""
    return float(np.abs(got - want).max() / max(1.0, float(np.abs(want).max())))
