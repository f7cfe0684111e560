"""doit overhead on synthetic zoos: `doit list` and the no-op `doit` on N recipes.

Usage:  python bench/bench_doit.py [N ...] [--list-only N ...] [--baseline REF]
        (default: 100 500; e.g. ``500 --list-only 5000 --baseline main``)
        ZOOMAKE_MIRROR=../shared/models is used when set, else ../shared/models.

With ``--baseline REF`` every timing is also taken with ``git archive REF`` (its own build
and recipe cache), alternating with this worktree's in the same loop, and a ``base`` row is
printed under each ``new`` one. ``--list-only`` sizes time ``doit list`` alone (no build).
Every timing is printed as wall seconds and, after a slash, the CPU seconds (user + sys) of
the process: on a machine others load, wall time varies 2-4x from run to run, CPU time less.
The ``doit floor`` row is doit itself listing as many trivial tasks (one file_dep, one
target, one action each), with the same Python: the part no task creator can remove.

For each N: writes N recipes (bench/synth_recipes.py: real MTCNN stages, one onnx target each,
one verification sample), then times in fresh processes, as a user pays for them:
  list cold   `doit list` with no recipe cache (parse + validate every recipe)
  list warm   `doit list` again (recipes served from the stat-keyed cache)
  build       the full build, `doit -n 2 -P process` (informational)
  no-op       `doit` once everything is up to date (median of 3)
  recipe work the time spent loading recipes inside `doit list` (warm), from the same process
"""

from __future__ import annotations

import argparse
import os
import shutil
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


def _doit(env: dict, root: Path, *args: str) -> tuple[float, float]:
    """Wall and CPU (user + sys, from wait4) seconds of one `python -m doit` process."""
    env = {**env, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
    with tempfile.TemporaryFile("w+") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "doit", "-f", str(root / "dodo.py"), *args],
                                env=env, cwd=root, stdout=log, stderr=log)  # fmt: skip
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            log.seek(0)
            raise SystemExit(f"doit {' '.join(args)} failed:\n{log.read()[-4000:]}")
    return elapsed, usage.ru_utime + usage.ru_stime


def _recipe_work(env: dict, root: Path) -> float:
    code = (
        "import time; t=time.perf_counter(); import pipelines.build.tasks as t_; t_.zoo(); "
        "print(time.perf_counter()-t)"
    )
    env = {**env, "PYTHONPATH": str(root)}
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True,
                       text=True, check=True)  # fmt: skip
    return float(r.stdout.strip())


FLOOR_DODO = """
DOIT_CONFIG = {{"dep_file": {db!r}, "backend": "sqlite3"}}
def task_x():
    for i in range({n}):
        yield {{"name": f"m{{i}}", "actions": [(print, [i])], "file_dep": [f"/nonexistent/{{i}}/a"],
               "targets": [f"/nonexistent/{{i}}/b"]}}
"""


def _floor(tmp: Path, n_tasks: int) -> tuple[float, float]:
    d = tmp / "floor"
    d.mkdir(exist_ok=True)
    (d / "dodo.py").write_text(FLOOR_DODO.format(db=str(d / ".doit.db"), n=n_tasks))
    return _doit(dict(os.environ), d, "list")


def _fmt(t: tuple[float, float]) -> str:
    return f"{t[0]:.2f}/{t[1]:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sizes", nargs="*", type=int)
    ap.add_argument("--list-only", nargs="*", type=int, default=[])
    ap.add_argument("--baseline")
    args = ap.parse_args()
    sizes = args.sizes or ([] if args.list_only else [100, 500])
    mirror = os.environ.get("ZOOMAKE_MIRROR") or str(REPO.parent / "shared" / "models")
    print(f"{'N':>5} {'code':5} {'tasks':>6} {'list cold s':>12} {'list warm s':>12} "
          f"{'recipe work s':>14} {'build s':>9} {'no-op s':>12}   (wall/CPU)")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        roots = {"new": REPO}
        if args.baseline:
            sys.path.insert(0, str(REPO / "bench"))
            from bench_parallel import tree

            roots["base"] = tree(args.baseline, tmp)
        for n in [*sizes, *args.list_only]:
            build_too = n in sizes
            _slim(write_synthetic_recipes(tmp / f"recipes-{n}", n))
            rows = {}
            for label, root in roots.items():
                env = {**os.environ, "ZOOMAKE_RECIPES": str(tmp / f"recipes-{n}"),
                       "ZOOMAKE_BUILD": str(tmp / label / "build"),
                       "ZOOMAKE_CACHE": str(tmp / label / "cache"),
                       "ZOOMAKE_MIRROR": mirror, "ZOOMAKE_OFFLINE": "1"}  # fmt: skip
                rows[label] = {"env": env, "root": root, "cold": _doit(env, root, "list")}
            for key in ("warm", "work"):
                for row in rows.values():
                    if key == "warm":
                        runs = [_doit(row["env"], row["root"], "list") for _ in range(3)]
                        row["warm"] = min(runs, key=lambda t: t[1])
                    else:
                        row["work"] = min(_recipe_work(row["env"], row["root"]) for _ in range(3))
            for row in rows.values():
                listed = subprocess.run([sys.executable, "-m", "doit", "-f",
                                         str(row["root"] / "dodo.py"), "list", "--all"],
                                        env={**row["env"], "PYTHONPATH": str(row["root"])},
                                        cwd=row["root"], capture_output=True, text=True)  # fmt: skip
                row["tasks"] = sum(1 for ln in listed.stdout.splitlines() if ":" in ln.split()[0])
                if build_too:
                    row["build"] = _doit(row["env"], row["root"], "-n", "2", "-P", "process")[0]
            if build_too:
                for row in rows.values():
                    runs = [_doit(row["env"], row["root"]) for _ in range(3)]
                    row["noop"] = sorted(runs)[1]
            for label, row in rows.items():
                build = f"{row['build']:9.1f}" if build_too else f"{'-':>9}"
                noop = _fmt(row["noop"]) if build_too else "-"
                print(f"{n:5d} {label:5} {row['tasks']:6d} {_fmt(row['cold']):>12} "
                      f"{_fmt(row['warm']):>12} {row['work']:14.3f} {build} {noop:>12}",
                      flush=True)  # fmt: skip
            floor = _floor(tmp, rows["new"]["tasks"])
            print(f"{n:5d} {'floor':5} {rows['new']['tasks']:6d} {'':>12} {_fmt(floor):>12}   "
                  "doit listing as many trivial tasks", flush=True)  # fmt: skip
            for label in roots:
                shutil.rmtree(tmp / label / "build", ignore_errors=True)
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
