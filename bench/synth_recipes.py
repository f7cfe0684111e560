"""Synthetic zoos for benchmarks: N valid recipes built from the checked-in MTCNN recipes.

``write_synthetic_recipes(dest, n)`` writes ``synth-0000.yaml`` ... into ``dest``; each is a
real, buildable MTCNN stage (det1..det3 in turn, same pinned files, so one download serves
all) with its own description and verification seed, so that every recipe is distinct.

Run ``python bench/synth_recipes.py [N ...]`` to time recipe loading (cold: parse and
validate everything; warm: served from the stat-keyed cache), each in a fresh process the
way ``doit list`` pays for it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
_STAGES = ["mtcnn-det1", "mtcnn-det2", "mtcnn-det3"]


def write_synthetic_recipes(dest: str | Path, n: int) -> list[Path]:
    """Write ``n`` valid recipes into ``dest`` (created if needed); return their paths."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    bases = {}
    for stage in _STAGES:
        with open(REPO / "recipes" / f"{stage}.yaml", encoding="utf-8") as f:
            bases[stage] = yaml.safe_load(f)
    paths = []
    for i in range(n):
        stage = _STAGES[i % len(_STAGES)]
        recipe = dict(bases[stage])
        recipe["description"] = f"Synthetic copy {i} of {stage} (benchmark zoo)."
        recipe["verify"] = {**recipe["verify"], "seed": i}
        path = dest / f"synth-{i:04d}.yaml"
        path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
        paths.append(path)
    return paths


_TIMER = """
import sys, time
t0 = time.perf_counter()
from pipelines.recipes.cache import load_zoo
zoo = load_zoo(sys.argv[1], sys.argv[2])
print(f"{time.perf_counter() - t0:.4f} {len(zoo)}")
"""


def _timed_load(recipes_dir: Path, cache_dir: Path) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _TIMER, str(recipes_dir), str(cache_dir)],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    return float(out[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time load_zoo on synthetic zoos.")
    parser.add_argument("sizes", nargs="*", type=int, default=[100, 500, 5000])
    parser.add_argument("--repeat", type=int, default=3, help="warm loads to time (best is shown)")
    args = parser.parse_args(argv)
    print(
        f"{'recipes':>8} {'cold load (s)':>14} {'warm load (s)':>14} {'warm per recipe (us)':>21}"
    )
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            recipes_dir, cache_dir = Path(tmp) / "recipes", Path(tmp) / "cache"
            write_synthetic_recipes(recipes_dir, n)
            cold = _timed_load(recipes_dir, cache_dir)
            # The files were just written: let them age past the racy window, as in real use.
            old = time.time() - 60
            for p in recipes_dir.iterdir():
                os.utime(p, (old, old))
            _timed_load(recipes_dir, cache_dir)  # re-caches with the new signatures
            warm = min(_timed_load(recipes_dir, cache_dir) for _ in range(args.repeat))
            print(f"{n:>8} {cold:>14.3f} {warm:>14.3f} {warm / n * 1e6:>21.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
