"""Serial `doit` vs `doit -n 2 -P process` on a zoo of the default recipes taken twice.

Usage:  python bench/bench_parallel.py [--copies 2] [--baseline REF] [--repeat 1] [--only A,B]

The zoo is every recipe of ``recipes/`` written ``--copies`` times (``<id>``, ``<id>-copy1``,
...; the same pinned files, so one mirror serves all). Each build starts from an empty build
directory and a warm download cache (a first, untimed ``doit fetch`` fills it), with the side
runtimes of ``~/.cache/zoomake/runtimes`` (real Caffe, MXNet) when set up, and runs as a
user runs it: ``python -m doit -f dodo.py`` in a fresh process, offline, with the mirror of
``ZOOMAKE_MIRROR`` (default ../shared/models). With ``--baseline REF`` the same builds run
from ``git archive REF`` too, alternating with this worktree's in one loop, so both see the
same machine load. The table prints wall seconds of both builds and serial / parallel; the
last column says whether every artifact and golden file of the two builds is byte-identical.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Files whose content is a timing or names a run (never compared).
VOLATILE = {"stats.json", "export-stats.json", "verify.json"}


def write_zoo(dest: Path, copies: int, only: list[str] | None = None) -> int:
    dest.mkdir(parents=True)
    n = 0
    for recipe in sorted((REPO / "recipes").glob("*.yaml")):
        if only and recipe.stem not in only:
            continue
        for c in range(copies):
            name = recipe.stem if c == 0 else f"{recipe.stem}-copy{c}"
            shutil.copyfile(recipe, dest / f"{name}.yaml")
            n += 1
    return n


def tree(ref: str, tmp: Path) -> Path:
    """``git archive ref`` unpacked under ``tmp`` (the code a build of that ref runs)."""
    root = tmp / f"tree-{ref.replace('/', '_')}"
    root.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], check=True,
                             capture_output=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    return root


FAILED: dict[str, str] = {}  # build -> its closing zoo line, for builds whose gates failed


def doit(root: Path, env: dict, *args: str, gates_may_fail: bool = False) -> float:
    """Wall seconds of one ``doit`` run. With ``gates_may_fail`` it runs with ``--continue``
    and a run whose only failures are verify gates (``zoo: ... N failed``: every task still
    ran, the timing holds) counts, noted in ``FAILED``; anything else stops the benchmark."""
    env = {**env, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
    extra = ["--continue"] if gates_may_fail else []
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "doit", "-f", str(root / "dodo.py"), *args, *extra],
                       cwd=root, env=env, capture_output=True, text=True)  # fmt: skip
    elapsed = time.perf_counter() - t0
    if r.returncode != 0:
        failed = [ln for ln in r.stderr.splitlines() if " failed: " in ln]
        if gates_may_fail and failed and all(ln.startswith("verify:") for ln in failed):
            zoo = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.startswith("zoo: ")]
            FAILED[f"{root.name} {' '.join(args)}"] = zoo[-1] if zoo else failed[0]
            return elapsed
        raise SystemExit(f"doit {' '.join(args)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return elapsed


def digests(build: Path) -> dict[str, str]:
    out = {}
    for p in sorted(build.rglob("*")):
        rel = p.relative_to(build)
        if not p.is_file() or p.name in VOLATILE or rel.parts[0] in ("report", ".cache"):
            continue
        if p.name.startswith(".doit") or p.name == ".lock":
            continue
        with open(p, "rb") as f:
            out[rel.as_posix()] = hashlib.file_digest(f, "sha256").hexdigest()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=2)
    ap.add_argument("--baseline", help="git ref whose builds run alongside, e.g. main")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--new", help="git ref to run as 'new' (default: this worktree as it is)")
    ap.add_argument("--only", help="comma-separated recipe ids of recipes/ (default: all)")
    args = ap.parse_args()
    mirror = os.environ.get("ZOOMAKE_MIRROR") or str(REPO.parent / "shared" / "models")
    mirror = str(Path(mirror).resolve())  # the builds run in the trees' directories
    only = [x for x in (args.only or "").split(",") if x]
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        n = write_zoo(tmp / "recipes", args.copies, only)
        # The side runtimes this machine has set up (real Caffe, MXNet), as a user's build
        # finds them; else the first timed build would set MXNet up from the registry.
        (tmp / "cache").mkdir()
        runtimes = Path.home() / ".cache" / "zoomake" / "runtimes"
        if runtimes.is_dir():
            (tmp / "cache" / "runtimes").symlink_to(runtimes)
        roots = {"new": tree(args.new, tmp) if args.new else REPO} | (
            {args.baseline: tree(args.baseline, tmp)} if args.baseline else {}
        )
        times: dict[str, dict[str, list[float]]] = {k: {"serial": [], "-n 2": []} for k in roots}
        same: dict[str, bool] = {}
        loads: list[float] = []  # 1-minute load average as each timed build starts
        for _ in range(args.repeat):
            for label, root in roots.items():
                found = {}
                for mode, extra in (("serial", []), ("-n 2", ["-n", "2", "-P", "process"])):
                    base = tmp / "run" / label / mode.replace(" ", "")
                    shutil.rmtree(base, ignore_errors=True)
                    env = {**os.environ, "ZOOMAKE_RECIPES": str(tmp / "recipes"),
                           "ZOOMAKE_BUILD": str(base / "build"), "ZOOMAKE_CACHE": str(tmp / "cache"),
                           "ZOOMAKE_MIRROR": mirror, "ZOOMAKE_OFFLINE": "1"}  # fmt: skip
                    doit(root, env, "fetch")  # the download cache and sources: not timed
                    loads.append(os.getloadavg()[0])
                    times[label][mode].append(doit(root, env, *extra, gates_may_fail=True))
                    found[mode] = digests(base / "build")
                same[label] = bool(found["serial"]) and found["serial"] == found["-n 2"]
                if not same[label]:
                    diff = sorted(k for k in found["serial"].keys() | found["-n 2"].keys()
                                  if found["serial"].get(k) != found["-n 2"].get(k))  # fmt: skip
                    print(f"{label}: {len(diff)} file(s) differ, e.g. {diff[:5]}", flush=True)
        load = os.getloadavg()
        which = f"{len(only)} recipes of recipes/" if only else "recipes/"
        print(f"zoo: {n} models ({which} x {args.copies}); load average {load[0]:.2f} "
              f"{load[1]:.2f} {load[2]:.2f} at the end, {min(loads):.2f}-{max(loads):.2f} "
              f"as the builds started; medians of {args.repeat}")  # fmt: skip
        for build, line in sorted(FAILED.items()):
            print(f"note: {build}: gates failed (timed all the same, --continue): {line}")
        print(f"{'code':10} {'serial s':>9} {'-n 2 s':>8} {'speed-up':>9}  identical artifacts")
        for label in roots:
            s = statistics.median(times[label]["serial"])
            p = statistics.median(times[label]["-n 2"])
            print(f"{label:10} {s:9.1f} {p:8.1f} {s / p:9.2f}  {'yes' if same[label] else 'NO'}")


if __name__ == "__main__":
    main()
