"""doit overhead on synthetic zoos: `doit list` and the no-op `doit` on N recipes.

Usage:  python bench/bench_doit.py [N ...]          (default: 100 500)
        ZOOMAKE_MIRROR=../shared/models is used when set, else ../shared/models.

For each N: writes N recipes (bench/synth_recipes.py: real MTCNN stages, one onnx target each,
one verification sample), then times in fresh processes, as a user pays for them:
  list cold   `doit list` with no recipe cache (parse + validate every recipe)
  list warm   `doit list` again (recipes served from the stat-keyed cache)
  build       the full build, `doit -n 2 -P process` (informational)
  no-op       `doit` once everything is up to date (median of 3)
  recipe work the time spent loading recipes inside `doit list` (warm), from the same process
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from synth_recipes import write_synthetic_recipes  # noqa: E402


def _slim(paths: list[Path]) -> None:
    """One fp32 ONNX target and one sample per recipe: the benchmark measures doit, not models."""
    for p in paths:
        recipe = yaml.safe_load(p.read_text())
        recipe["targets"] = {"onnx": {"format": "onnx", "precision": "fp32"}}
        recipe["verify"]["samples"] = 1
        p.write_text(yaml.safe_dump(recipe, sort_keys=False))


def _doit(env: dict, *args: str) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py"), *args],
                       env=env, cwd=REPO, capture_output=True, text=True)  # fmt: skip
    elapsed = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"doit {' '.join(args)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return elapsed


def _recipe_work(env: dict) -> float:
    code = (
        "import time; t=time.perf_counter(); import pipelines.build.tasks as t_; t_.zoo(); "
        "print(time.perf_counter()-t)"
    )
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True,
                       text=True, check=True)  # fmt: skip
    return float(r.stdout.strip())


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [100, 500]
    mirror = os.environ.get("ZOOMAKE_MIRROR") or str(REPO.parent / "shared" / "models")
    print(f"{'N':>5} {'list cold s':>12} {'list warm s':>12} {'recipe work s':>14} "
          f"{'build s':>9} {'no-op s':>8}")  # fmt: skip
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = Path(tmpdir)
            _slim(write_synthetic_recipes(tmp / "recipes", n))
            env = {**os.environ, "ZOOMAKE_RECIPES": str(tmp / "recipes"),
                   "ZOOMAKE_BUILD": str(tmp / "build"), "ZOOMAKE_CACHE": str(tmp / "cache"),
                   "ZOOMAKE_MIRROR": mirror, "ZOOMAKE_OFFLINE": "1"}  # fmt: skip
            cold = _doit(env, "list")
            warm = min(_doit(env, "list") for _ in range(3))
            work = min(_recipe_work(env) for _ in range(3))
            build = _doit(env, "-n", "2", "-P", "process")
            noop = statistics.median(_doit(env) for _ in range(3))
            print(f"{n:5d} {cold:12.3f} {warm:12.3f} {work:14.3f} {build:9.1f} {noop:8.3f}")
            shutil.rmtree(tmp / "build", ignore_errors=True)


if __name__ == "__main__":
    main()
