"""doit overhead on synthetic zoos: `doit list` and the no-op `doit` on N recipes.

Usage:  python bench/bench_doit.py [N ...] [--list-only N ...] [--baseline REF] [--keep DIR]
        (default: 100 500; e.g. ``100 500 5000 --baseline main --keep /tmp/zoos``)
        ZOOMAKE_MIRROR=../shared/models is used when set, else ../shared/models.

With ``--baseline REF`` every timing is also taken with ``git archive REF`` and a ``base``
row is printed under each ``new`` one. Both trees build the same zoo into one build directory
(their task definitions are the same; the build is done once, by this worktree's code): the
base runs are taken first, then this worktree's, since a base no-op rewrites doit's database
and so invalidates the whole-zoo stamp (pipelines/build/stamp.py) a new no-op would use.
``--list-only`` sizes time ``doit list`` alone (no build). ``--keep DIR`` keeps the recipes,
builds and download cache in DIR (``r<N>``, ``b<N>``, ``cache``) and reuses them in the next
run: a 5,000-recipe zoo takes ~15 min to build on 2 cores.
Every timing is printed as wall seconds and, after a slash, the CPU seconds (user + sys) of
the process: on a machine others load, wall time varies 2-4x from run to run, CPU time less.
The ``doit floor`` row is doit itself listing as many trivial tasks (one file_dep, one
target, one action each), with the same Python: the part no task creator can remove.

For each N: writes N recipes (bench/synth_recipes.py: real MTCNN stages, one onnx target each,
one verification sample), then times in fresh processes, as a user pays for them:
  list cold   `doit list` with no recipe cache (parse + validate every recipe)
  list warm   `doit list` again (recipes served from the stat-keyed cache; on new code the
              listing itself is served from the one the previous `doit list` recorded)
  build       the full build, `doit -n 2 -P process` (informational; ~0 for a kept build)
  no-op 1st   the first `doit` once everything is up to date (loads every task; writes the
              whole-zoo stamp on new code)
  no-op       `doit` again (median of 3): what every later no-op costs
The ``floor`` rows are doit itself with as many trivial tasks: ``doit list``, and a no-op
``doit`` of tasks that are all up to date (one file_dep, one target, one action each).
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
DOIT_CONFIG = {{"dep_file": {db!r}, "backend": "sqlite3", "verbosity": 0}}
def nothing():
    pass
def task_x():
    for i in range({n}):
        yield {{"name": f"m{{i}}", "actions": [nothing], "file_dep": [{dep!r}],
               "targets": [{out!r} + str(i)]}}
"""


def _floor(tmp: Path, n_tasks: int) -> dict[str, tuple[float, float]]:
    """doit's own cost for ``n_tasks`` trivial tasks: ``list``, and a no-op (all up to date)."""
    d = tmp / f"floor-{n_tasks}"
    d.mkdir(exist_ok=True)
    dep = d / "input"
    dep.write_text("x")
    for i in range(n_tasks):
        (d / f"output{i}").write_text("y")
    (d / "dodo.py").write_text(FLOOR_DODO.format(db=str(d / ".doit.db"), n=n_tasks, dep=str(dep),
                                                 out=str(d / "output")))  # fmt: skip
    times = {"list": _doit(dict(os.environ), d, "list")}
    _doit(dict(os.environ), d)  # runs every action once
    times["noop"] = sorted(_doit(dict(os.environ), d) for _ in range(3))[1]
    return times


def _fmt(t: tuple[float, float]) -> str:
    return f"{t[0]:.2f}/{t[1]:.2f}"


def _recipes(dest: Path, n: int) -> Path:
    """The synthetic zoo of ``n`` recipes in ``dest`` (kept as it is when already there: its
    files' stats are what a kept build's stamp and recipe cache were made with)."""
    if not (dest.is_dir() and len(list(dest.glob("*.yaml"))) == n):
        shutil.rmtree(dest, ignore_errors=True)
        _slim(write_synthetic_recipes(dest, n))
    return dest


def _cold(row: dict) -> tuple[float, float]:
    """`doit list` without the recipe cache and the recorded listing (pipelines.build.stamp),
    both in the shared build directory's .cache."""
    for pattern in ("recipes-*.json", "list-*.json"):
        for p in (Path(row["env"]["ZOOMAKE_BUILD"]) / ".cache").glob(pattern):
            p.unlink()
    return _doit(row["env"], row["root"], "list")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sizes", nargs="*", type=int)
    ap.add_argument("--list-only", nargs="*", type=int, default=[])
    ap.add_argument("--baseline")
    ap.add_argument("--keep", type=Path, help="keep (and reuse) recipes, builds, cache here")
    args = ap.parse_args()
    sizes = args.sizes or ([] if args.list_only else [100, 500])
    mirror = os.environ.get("ZOOMAKE_MIRROR") or str(REPO.parent / "shared" / "models")
    print(f"{'N':>5} {'code':5} {'tasks':>6} {'list cold s':>12} {'list warm s':>12} "
          f"{'recipe work s':>14} {'build s':>9} {'no-op 1st s':>12} {'no-op s':>12}"
          "   (wall/CPU)")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        keep = args.keep or tmp
        roots = {"new": REPO}
        if args.baseline:
            sys.path.insert(0, str(REPO / "bench"))
            from bench_parallel import tree

            roots["base"] = tree(args.baseline, tmp)
        for n in [*sizes, *args.list_only]:
            build_too = n in sizes
            recipes = _recipes(keep / f"r{n}", n)
            env = {**os.environ, "ZOOMAKE_RECIPES": str(recipes),
                   "ZOOMAKE_BUILD": str(keep / f"b{n}"), "ZOOMAKE_CACHE": str(keep / "cache"),
                   "ZOOMAKE_MIRROR": mirror, "ZOOMAKE_OFFLINE": "1"}  # fmt: skip
            rows = {label: {"env": env, "root": root} for label, root in roots.items()}
            for row in rows.values():
                row["cold"] = _cold(row)
            for row in rows.values():
                runs = [_doit(row["env"], row["root"], "list") for _ in range(3)]
                row["warm"] = min(runs, key=lambda t: t[1])
            for row in rows.values():
                row["work"] = min(_recipe_work(row["env"], row["root"]) for _ in range(3))
            listed = subprocess.run([sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py"),
                                     "list", "--all"], env={**env, "PYTHONPATH": str(REPO)},
                                    cwd=REPO, capture_output=True, text=True)  # fmt: skip
            tasks = sum(1 for ln in listed.stdout.splitlines() if ":" in ln.split()[0])
            if build_too:
                build = _doit(env, REPO, "-n", "2", "-P", "process")[0]
                _doit(env, REPO)  # settle: a parallel build can leave a task to run serially
                # base first: its no-op rewrites doit's database, which voids a stamp
                for label in sorted(rows, key=lambda k: k != "base"):
                    row = rows[label]
                    row["first"] = _doit(row["env"], row["root"])
                    runs = [_doit(row["env"], row["root"]) for _ in range(3)]
                    row["noop"] = sorted(runs)[1]
            for label, row in rows.items():
                shown = f"{build:9.1f}" if build_too else f"{'-':>9}"
                first = _fmt(row["first"]) if build_too else "-"
                noop = _fmt(row["noop"]) if build_too else "-"
                print(f"{n:5d} {label:5} {tasks:6d} {_fmt(row['cold']):>12} "
                      f"{_fmt(row['warm']):>12} {row['work']:14.3f} {shown} {first:>12} "
                      f"{noop:>12}", flush=True)  # fmt: skip
            floor = _floor(tmp, tasks)
            print(f"{n:5d} {'floor':5} {tasks:6d} {'':>12} {_fmt(floor['list']):>12} "
                  f"{'':>14} {'':>9} {'':>12} {_fmt(floor['noop']):>12}   "
                  "doit itself, as many trivial tasks", flush=True)  # fmt: skip
            if "base" in rows and build_too:
                ratio = rows["base"]["noop"][1] / max(rows["new"]["noop"][1], 1e-9)
                print(f"{n:5d} no-op CPU: base/new {ratio:.1f}x, new/floor "
                      f"{rows['new']['noop'][1] / floor['noop'][1]:.2f}, list warm CPU new/floor "
                      f"{rows['new']['warm'][1] / floor['list'][1]:.2f}", flush=True)  # fmt: skip
            elif "base" in rows:
                print(f"{n:5d} list warm CPU: base/new "
                      f"{rows['base']['warm'][1] / rows['new']['warm'][1]:.2f}x, new/floor "
                      f"{rows['new']['warm'][1] / floor['list'][1]:.2f}", flush=True)  # fmt: skip
            if args.keep is None:
                shutil.rmtree(keep / f"b{n}", ignore_errors=True)
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
