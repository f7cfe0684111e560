"""kill -9 at random points of a build: does the next build leave no temporary and the same bytes?

Usage:  python bench/bench_kill.py [N] [--seed S]        (default: 20 kills, seed 0)
        ZOOMAKE_MIRROR=../shared/models is used when set, else ../shared/models.

Builds a small real zoo (MTCNN P-Net and R-Net: ONNX, FP16 ONNX and OpenVINO IR targets) once
from nothing to time it and take its artifact digests. Then, in a second build directory, N
times: start `doit` and kill -9 the whole process group (doit, its OpenVINO child) of a full rebuild (doit's database removed
first, the files on disk kept): odd kills
after a uniformly random time within that build's duration, even ones aimed, a random 0-20 ms
after a temporary appears under a model's directory (random kills rarely land inside the short
windows in which a temporary exists); then count the temporaries lying around. Each
kill lands on whatever the previous killed runs left. Finally one more `doit` must finish: it
must leave 0 temporaries (`*.zoomake-tmp-*`, `*.tmp`) and artifacts and golden data
byte-identical to the clean build. Prints one line per kill and the totals.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
MODELS = {"mtcnn-det1": ["onnx", "onnx-fp16", "openvino"], "mtcnn-det2": ["onnx", "openvino"]}
TEMP_MARKS = ("zoomake-tmp", ".tmp")


def _zoo(base: Path, mirror: str) -> dict:
    recipes = base / "recipes"
    recipes.mkdir(parents=True)
    for model_id, targets in MODELS.items():
        recipe = yaml.safe_load((REPO / "recipes" / f"{model_id}.yaml").read_text())
        recipe["targets"] = {t: recipe["targets"][t] for t in targets}
        (recipes / f"{model_id}.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    return {**os.environ, "ZOOMAKE_RECIPES": str(recipes), "ZOOMAKE_BUILD": str(base / "build"),
            "ZOOMAKE_CACHE": str(base / "cache"), "ZOOMAKE_MIRROR": mirror,
            "ZOOMAKE_OFFLINE": "1"}  # fmt: skip


def _doit(env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip


def _temporaries(build: Path) -> list[Path]:
    return [p for p in build.rglob("*") if any(m in p.name for m in TEMP_MARKS)]


def _digests(build: Path) -> dict[str, str]:
    return {
        f.relative_to(build).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(build.rglob("*"))
        if f.is_file() and (f.name.startswith("model.") or f.suffix == ".pb")
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("n", nargs="?", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    mirror = os.environ.get("ZOOMAKE_MIRROR") or str(REPO.parent / "shared" / "models")
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        clean_env = _zoo(tmp / "clean", mirror)
        t0 = time.perf_counter()
        proc = _doit(clean_env)
        _, err = proc.communicate()
        duration = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"the clean build failed:\n{err}")
        want = _digests(tmp / "clean" / "build")
        print(f"clean build: {duration:.1f} s, {len(want)} artifact/golden files")
        env = _zoo(tmp / "killed", mirror)
        build = tmp / "killed" / "build"
        print(f"{'kill':>4} {'aimed':>5} {'at s':>6} {'temporaries left by the kill':>29}")
        hit = 0
        for i in range(args.n):
            aimed = i % 2 == 1
            # doit records each finished task: without its database every kill lands on a full
            # build again (what a killed run left on disk stays, for the next run to deal with).
            (build / ".doit.db").unlink(missing_ok=True)
            proc = _doit(env)
            start = time.perf_counter()
            at = rng.uniform(0.0, duration)
            while proc.poll() is None and (aimed or time.perf_counter() - start < at):
                if aimed and any(_temporaries(d) for d in build.glob("*/*") if d.is_dir()):
                    time.sleep(rng.uniform(0.0, 0.02))
                    break
                time.sleep(0.002)
            at = time.perf_counter() - start
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            left = len(_temporaries(build)) if build.is_dir() else 0
            hit += left > 0
            print(f"{i + 1:4d} {'yes' if aimed else 'no':>5} {at:6.2f} {left:29d}")
        proc = _doit(env)
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"the build after the kills failed:\n{err}")
        left = _temporaries(build)
        same = _digests(build) == want
        print(f"kills that left temporaries: {hit}/{args.n}")
        print(f"after the next build: {len(left)} temporaries; artifacts byte-identical to the "
              f"clean build: {'yes' if same else 'NO'}")  # fmt: skip
        for p in left:
            print(f"  left: {p.relative_to(build)}")
        return 0 if same and not left else 1


if __name__ == "__main__":
    sys.exit(main())
