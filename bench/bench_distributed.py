"""Dask builds and the shared artifact cache on a synthetic zoo (issue 17).

A zoo of N models (default 40: copies of the shared MTCNN stages under new ids, each with its
own verification seed, ``bench/synth_recipes.py``) is built three times, each from a fresh copy
of the zoo with an empty build directory, through ``zoomake build --workers W`` (a Dask
``LocalCluster``):

  cold, 1 worker    empty cache
  cold, 2 workers   empty cache                      -> speed-up over 1 worker
  warm, 2 workers   the cache the run above filled   -> time against the cold run

and the warm build's tree (artifacts, verify.json, golden data, report) is compared byte for
byte with the cold one's. On a machine shared with others the absolute times mean little: note
``uptime`` beside the table (it is printed).

  python bench/bench_distributed.py [--models N] [--targets onnx,openvino]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from synth_recipes import write_synthetic_recipes  # noqa: E402


def _clone(base: Path, recipes: Path) -> Path:
    base.mkdir(parents=True)
    shutil.copytree(recipes, base / "recipes")
    return base


def _build(clone: Path, workers: int, cache: Path, env: dict) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "pipelines", "build", "--workers", str(workers), "--remote-cache",
         str(cache)],
        cwd=clone, env={**env, "ZOOMAKE_BUILD": str(clone / "build"),
                        "ZOOMAKE_RECIPES": str(clone / "recipes")},
        capture_output=True, text=True,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"build failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return seconds, r.stdout


def _counts(out: str) -> tuple[int, int]:
    m = re.search(r"^dask: .*: (\d+) actions run, (\d+) cache hits", out, re.M)
    return (int(m.group(1)), int(m.group(2))) if m else (-1, -1)


def _tree(build: Path) -> dict[str, bytes]:
    return {
        f.relative_to(build).as_posix(): f.read_bytes()
        for f in sorted(build.rglob("*"))
        if f.is_file()
        and f.name not in (".doit.db", ".lock")
        and not f.relative_to(build).as_posix().startswith(".cache/")
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=40)
    ap.add_argument("--targets", default="", help="comma-separated targets to keep (default all)")
    args = ap.parse_args()
    mirror = os.environ.get("ZOOMAKE_MIRROR") or str(REPO.parent / "shared" / "models")
    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as tmp:
        tmp = Path(tmp)
        recipes = tmp / "synth-recipes"
        for path in write_synthetic_recipes(recipes, args.models):
            if args.targets:
                recipe = yaml.safe_load(path.read_text())
                keep = args.targets.split(",")
                recipe["targets"] = {k: v for k, v in recipe["targets"].items() if k in keep}
                path.write_text(yaml.safe_dump(recipe, sort_keys=False))
        env = {**os.environ, "ZOOMAKE_MIRROR": mirror, "ZOOMAKE_OFFLINE": "1",
               "ZOOMAKE_CACHE": str(tmp / "downloads")}  # fmt: skip
        print(f"uptime before: {os.popen('uptime').read().strip()}", flush=True)
        rows = []
        runs = [("cold", 1, tmp / "cache-1"), ("cold", 2, tmp / "cache-2"),
                ("warm", 2, tmp / "cache-2")]  # fmt: skip
        trees = {}
        for i, (kind, workers, cache) in enumerate(runs):
            clone = _clone(tmp / f"clone-{i}", recipes)
            seconds, out = _build(clone, workers, cache, env)
            ran, hits = _counts(out)
            rows.append((kind, workers, seconds, ran, hits))
            trees[i] = _tree(clone / "build")
            print(f"  {kind} {workers} worker(s): {seconds:.1f} s ({ran} run, {hits} hits)",
                  flush=True)  # fmt: skip
        print(f"uptime after: {os.popen('uptime').read().strip()}")
    cold1, cold2, warm = (r[2] for r in rows)
    print(f"\n{args.models} models, targets: {args.targets or 'all'}\n")
    print(f"| {'build':<22} | {'seconds':>8} | {'actions run':>11} | {'cache hits':>10} | "
          f"{'vs cold, 1 worker':>17} |")  # fmt: skip
    print(f"|{'-' * 24}|{'-' * 10}:|{'-' * 12}:|{'-' * 11}:|{'-' * 18}:|")
    for kind, workers, seconds, ran, hits in rows:
        name = f"{kind}, {workers} worker{'s' if workers > 1 else ''}"
        print(f"| {name:<22} | {seconds:8.1f} | {ran:11d} | {hits:10d} | "
              f"{cold1 / seconds:16.2f}x |")  # fmt: skip
    print(f"\nspeed-up of 2 workers over 1 (cold): {cold1 / cold2:.2f}x")
    print(f"warm-cache rebuild from a fresh clone: {warm:.1f} s = {warm / cold2:.2f} of the cold "
          f"2-worker build")  # fmt: skip
    same = trees[1] == trees[2]
    print(f"warm build byte-identical to the cold one ({len(trees[1])} files): {same}")


if __name__ == "__main__":
    main()
