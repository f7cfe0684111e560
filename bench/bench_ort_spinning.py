"""onnxruntime's pool spinning, as measure's candidate runs it: latency and CPU per setting.

Usage:  python bench/bench_ort_spinning.py [--model PATH.onnx] [--runs 40] [--rounds 3]

For each setting (spinning off, as zoomake ran it before; spinning within a run and stopped
when it returns, as ``pipelines.runtimes.onnxruntime`` runs it now; onnxruntime's default), in
alternating rounds on the same machine load: the median and minimum of ``--runs`` timed runs
after 4 warm-up runs (ms), how many runs measure's latency rule
(``pipelines.verify.measure``: the median's 95% interval within +-5%) would have needed, the
process CPU time per run, and the CPU the idle session burns in the 0.3 s after a run (what a
parallel build's other task loses). The model defaults to the publisher's UltraFace RFB-320
ONNX from the mirror (``ZOOMAKE_MIRROR``, default ../shared/models).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines.verify.measure import LATENCY_PRECISION, LATENCY_RUNS, median_ci  # noqa: E402

SETTINGS = {
    "off": {"session.intra_op.allow_spinning": "0", "session.inter_op.allow_spinning": "0"},
    "in-run": {"session.intra_op.allow_spinning": "1", "session.force_spinning_stop": "1"},
    "default": {},
}


def runs_needed(times: list[float]) -> int | None:
    for n in range(LATENCY_RUNS[0], len(times) + 1):
        ranks = median_ci(n)
        if ranks is None:
            continue
        ordered = sorted(times[:n])
        if ordered[ranks[1]] - ordered[ranks[0]] <= 2 * LATENCY_PRECISION * statistics.median(
            times[:n]
        ):
            return n
    return None


def one(model: str, config: dict, runs: int) -> dict:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the publisher's file lists its weights as inputs
    for key, value in config.items():
        options.add_session_config_entry(key, value)
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    x = np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32)
    for _ in range(4):
        session.run(None, {inp.name: x})
    times, cpu0 = [], time.process_time()
    for _ in range(runs):
        t0 = time.perf_counter()
        session.run(None, {inp.name: x})
        times.append((time.perf_counter() - t0) * 1000.0)
    cpu = (time.process_time() - cpu0) / runs * 1000.0
    idle0 = time.process_time()
    time.sleep(0.3)
    idle = (time.process_time() - idle0) * 1000.0
    return {"median": statistics.median(times), "min": min(times), "need": runs_needed(times),
            "cpu": cpu, "idle": idle}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mirror = Path(os.environ.get("ZOOMAKE_MIRROR") or REPO.parent / "shared" / "models")
    default = mirror / "ultraface" / "version-RFB-320_without_postprocessing.onnx"
    ap.add_argument("--model", default=str(default))
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    rows = {name: [] for name in SETTINGS}
    for _ in range(args.rounds):
        for name, config in SETTINGS.items():
            rows[name].append(one(args.model, config, args.runs))
    load = os.getloadavg()
    print(f"{Path(args.model).name}: {args.runs} timed runs x {args.rounds} rounds, "
          f"{os.cpu_count()} cores, load {load[0]:.2f}; medians over rounds")  # fmt: skip
    print(f"{'spinning':10} {'median ms':>10} {'min ms':>8} {'runs rule needs':>16} "
          f"{'CPU ms/run':>11} {'idle CPU ms/0.3 s':>18} {'median / off':>13}")  # fmt: skip
    off = statistics.median(r["median"] for r in rows["off"])
    for name, results in rows.items():
        med = statistics.median(r["median"] for r in results)
        needs = [r["need"] if r["need"] is not None else f">{args.runs}" for r in results]
        print(f"{name:10} {med:10.2f} {statistics.median(r['min'] for r in results):8.2f} "
              f"{','.join(map(str, needs)):>16} "
              f"{statistics.median(r['cpu'] for r in results):11.2f} "
              f"{statistics.median(r['idle'] for r in results):18.1f} {med / off:13.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
