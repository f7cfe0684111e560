"""Long fuzz runs over the five input kinds: mutated prototxt, caffemodel, ONNX, recipes, CLI flags.

The cases are those of ``tests/fuzz/harness.py`` (the suite runs the first few hundred), run
in worker processes so that a hang is caught even inside C++ (onnx, protobuf): each case has
its own deadline, a worker that misses it is killed and counted as a hang, and one that dies
(a segfault, the OOM killer) is counted as a crash. Prints one table of verdicts per kind and
every failing case; exits 1 if any case failed.

    python bench/fuzz.py                        # 1,000 cases per kind = 5,000 cases
    python bench/fuzz.py --cases 200 --kinds onnx,cli --seed 7
    python bench/fuzz.py --kind onnx --index 123 # one case, its argv and result
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing as mp
import os
import sys
import tempfile
import time
from multiprocessing.connection import wait
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from tests.fuzz.harness import FAILURES, KINDS, Result, Seeds, run_case  # noqa: E402

VERDICTS = ("ok", "error", "usage", *FAILURES, "crash")


def _worker(conn, root: str, seed: int, timeout: float) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    seeds = Seeds.load(Path(root), with_slim=True)
    conn.send("ready")
    while True:
        job = conn.recv()
        if job is None:
            return
        kind, index = job
        conn.send(run_case(kind, index, seeds, Path(root), seed=seed, timeout=timeout))


class Worker:
    def __init__(self, ctx, root: Path, seed: int, timeout: float):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, str(root), seed, timeout),
                                daemon=True)  # fmt: skip
        self.proc.start()
        child.close()
        if not self.conn.poll(300) or self.conn.recv() != "ready":
            raise SystemExit("fuzz: a worker did not start within 300 s")
        self.job: tuple[str, int] | None = None
        self.started = 0.0

    def give(self, job) -> None:
        self.job, self.started = job, time.monotonic()
        self.conn.send(job)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.join()


def run(jobs, root: Path, seed: int, timeout: float, workers: int):
    ctx = mp.get_context("spawn")  # no forked onnxruntime / OpenBLAS thread state
    pool = [Worker(ctx, root, seed, timeout) for _ in range(min(workers, len(jobs)))]
    todo = list(jobs)
    results: list[Result] = []
    for w in pool:
        w.give(todo.pop(0))
    busy = list(pool)
    while busy:
        ready = wait([w.conn for w in busy], timeout=1.0)
        now = time.monotonic()
        for w in list(busy):
            result = None
            if w.conn in ready:
                try:
                    result = w.conn.recv()
                except EOFError:  # the worker died in the middle of a case
                    result = Result(*w.job, "crash", f"exit code {w.proc.exitcode}", 0.0)
            elif now - w.started > timeout + 30:  # the in-process alarm did not fire
                result = Result(*w.job, "hang", f"no answer in {timeout + 30:.0f} s", 0.0)
            if result is None:
                continue
            results.append(result)
            if result.verdict in ("crash", "hang"):
                w.kill()
                busy.remove(w)
                if todo:
                    fresh = Worker(ctx, root, seed, timeout)
                    fresh.give(todo.pop(0))
                    busy.append(fresh)
            elif todo:
                w.give(todo.pop(0))
            else:
                w.conn.send(None)
                w.proc.join(30)
                busy.remove(w)
    return results


def table(results: list[Result], kinds) -> str:
    counts = {k: collections.Counter() for k in kinds}
    for r in results:
        counts[r.kind][r.verdict] += 1
    shown = [v for v in VERDICTS if any(c[v] for c in counts.values())]
    rows = [["kind", "cases", *shown, "failures"]]
    for k in kinds:
        c = counts[k]
        rows.append([k, str(sum(c.values())), *(str(c[v]) for v in shown),
                     str(sum(c[v] for v in (*FAILURES, "crash")))])  # fmt: skip
    total = collections.Counter(r.verdict for r in results)
    rows.append(["all", str(len(results)), *(str(total[v]) for v in shown),
                 str(sum(total[v] for v in (*FAILURES, "crash")))])  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(r, widths, strict=True))
                     for r in rows)  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", type=int, default=1000, help="cases per kind (default 1000)")
    p.add_argument("--kinds", default=",".join(KINDS), help=f"subset of {','.join(KINDS)}")
    p.add_argument("--seed", type=int, default=0, help="run seed (cases differ per seed)")
    p.add_argument("--start", type=int, default=0, help="first case index")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per case (default 60)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--kind", help="run one case: its kind ...")
    p.add_argument("--index", type=int, help="... and its index")
    p.add_argument("--keep", type=Path, help="directory for failing cases (default: a temp dir)")
    args = p.parse_args()
    root = Path(args.keep or tempfile.mkdtemp(prefix="zoomake-fuzz-"))
    root.mkdir(parents=True, exist_ok=True)
    if args.kind:
        r = run_case(args.kind, args.index or 0, Seeds.load(root, with_slim=True), root, seed=args.seed,
                     timeout=args.timeout)  # fmt: skip
        print(f"{r.name}: {r.verdict} ({r.seconds:.2f} s) {r.detail}")
        return 1 if r.failed else 0
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        p.error(f"unknown kind(s) {', '.join(sorted(unknown))}; kinds: {', '.join(KINDS)}")
    jobs = [(k, i) for i in range(args.start, args.start + args.cases) for k in kinds]
    t0 = time.perf_counter()
    results = run(jobs, root, args.seed, args.timeout, args.workers)
    elapsed = time.perf_counter() - t0
    slowest = max(results, key=lambda r: r.seconds)
    print(f"fuzz: seed {args.seed}, cases {args.start}..{args.start + args.cases - 1} per kind, "
          f"{args.workers} worker(s), {args.timeout:.0f} s per case")  # fmt: skip
    print(table(results, kinds))
    print(f"{len(results)} cases in {elapsed:.1f} s; slowest {slowest.name} "
          f"{slowest.seconds:.2f} s")  # fmt: skip
    failed = sorted((r for r in results if r.failed or r.verdict == "crash"),
                    key=lambda r: (r.kind, r.index))  # fmt: skip
    for r in failed:
        print(f"FAIL {r.name} {r.verdict}: {r.detail}")
    if failed:
        print(f"failing inputs kept in {root / 'failures'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
