"""Prove a built artifact numerically equal to its source model (``measure``) and gate on it.

Reference: the SOURCE model in its own framework's runtime (OpenCV DNN for Caffe, onnxruntime for
ONNX), fed the recipe's preprocessing computed in numpy. Candidate: the artifact in its
deployment runtime (see ``pipelines.runtimes``). Both see the same deployed inputs (see
``pipelines.samples`` for their ranges and seeds); every artifact output is compared with the
rule of ``pipelines.metrics``. ``measure`` records everything in ``verify.json`` and the golden
data (``pipelines.golden``) and never fails on numbers; ``gate`` is the verdict doit acts on.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from converters.io import atomic_output
from pipelines import samples
from pipelines.errors import ZoomakeError
from pipelines.golden import write_golden
from pipelines.metrics import RULE, OutputCheck
from pipelines.runtimes import open_artifact, open_reference, versions

LATENCY_RUNS = (5, 50)  # at least / at most this many timed runs ...
LATENCY_BUDGET_S = 1.0  # ... and no more timed runs once this much time has passed


def _default(*path: str):
    """A default of the recipe schema's verify block (the tolerance presets live there)."""
    from pipelines.recipes import schema

    node = schema()["$defs"]["verify"]
    for key in path:
        node = node["properties"][key]
    return node["default"]


def setting(recipe: dict, key: str):
    return (recipe.get("verify") or {}).get(key, _default(key))


def tolerance(recipe: dict, output: str, precision: str) -> dict[str, float]:
    """``{atol, rtol}``: the output's override, else the recipe's preset, else the schema's."""
    verify = recipe.get("verify") or {}
    base = (verify.get("tolerances") or {}).get(precision) or {}
    over = ((verify.get("outputs") or {}).get(output) or {}).get(precision) or {}
    return {
        k: float(over.get(k, base.get(k, _default("tolerances", precision, k))))
        for k in ("atol", "rtol")
    }


def _sample_files(recipe: dict, sources: dict[str, Path], out_dir: Path) -> list[Path]:
    paths = []
    for i, ref in enumerate(setting(recipe, "files") or []):
        # tasks.source_files puts every fetched file into build/<id>/source/<url basename>.
        path = sources.get(f"file:{i}") or out_dir.parent / "source" / ref["url"].rsplit("/", 1)[-1]
        if not Path(path).is_file():
            raise ZoomakeError(f"{path}: verify.files[{i}] sample file not found (not fetched?)")
        paths.append(Path(path))
    return paths


def _latency(candidate, feeds) -> dict:
    times = []
    start = time.perf_counter()
    while len(times) < LATENCY_RUNS[1] and (
        len(times) < LATENCY_RUNS[0] or time.perf_counter() - start < LATENCY_BUDGET_S
    ):
        t0 = time.perf_counter()
        candidate.run(feeds)
        times.append((time.perf_counter() - t0) * 1000.0)
    return {
        "median": round(statistics.median(times), 4),
        "min": round(min(times), 4),
        "runs": len(times),
    }


def measure(
    model_id: str, recipe: dict, target_name: str, sources: dict[str, Path], out_dir: Path
) -> dict:
    """Compare the artifact in ``out_dir`` with the source model; write verify.json + golden."""
    t_start = time.perf_counter()
    target = (recipe.get("targets") or {}).get(target_name)
    if target is None:
        raise ZoomakeError(f"{model_id}: recipe has no target '{target_name}'")
    fmt, precision = target.get("format", "onnx"), target.get("precision", "fp32")
    framework = recipe["source"]["framework"]
    out_dir = Path(out_dir)
    # A stale verify.json must not outlive a failed re-measure (the report would show it).
    (out_dir / "verify.json").unlink(missing_ok=True)
    candidate = open_artifact(fmt, out_dir, prefer=recipe.get("outputs"))
    inputs = samples.deployed_inputs(recipe, candidate.inputs)
    outputs = candidate.outputs
    reference = open_reference(framework, {k: Path(v) for k, v in sources.items()}, outputs)
    means = samples.mean_images(sources)
    seed, n_random = int(setting(recipe, "seed")), int(setting(recipe, "samples"))
    topk = int(setting(recipe, "topk")) if recipe.get("task") == "classification" else None
    tolerances = {name: tolerance(recipe, name, precision) for name in outputs}
    checks = {n: OutputCheck(n, t["atol"], t["rtol"], topk) for n, t in tolerances.items()}

    sets_info, golden = [], []
    feeds_list = [
        (samples.random_feeds(inputs, seed, i), {"kind": "random", "seed": [seed, i]})
        for i in range(n_random)
    ]
    for path in _sample_files(recipe, sources, out_dir):
        feeds_list.append((samples.image_feeds(inputs, path), {"kind": "file", "file": path.name}))
    for n, (feeds, info) in enumerate(feeds_list):
        got = candidate.run(feeds)
        want = reference.run(samples.reference_feeds(inputs, feeds, means), outputs)
        for name in outputs:
            checks[name].add(n, np.asarray(got[name]), np.asarray(want[name]))
        sets_info.append({"set": f"test_data_set_{n}", **info})
        golden.append(([(i.name, feeds[i.name]) for i in inputs], [(o, got[o]) for o in outputs]))
    latency = _latency(candidate, feeds_list[0][0])
    write_golden(out_dir, golden)

    results = {name: check.result() for name, check in checks.items()}
    report = {
        "passed": all(r["passed"] for r in results.values()),
        "model": model_id,
        "target": target_name,
        "format": fmt,
        "precision": precision,
        "task": recipe.get("task"),
        "failures": [r["message"] for r in results.values() if not r["passed"]],
        "outputs": results,
        "tolerances": {"rule": RULE, "outputs": tolerances},
        "inputs": {
            "deployed": [
                {
                    "name": i.name,
                    "shape": list(i.shape),
                    "dtype": str(i.dtype),
                    "layout": i.layout,
                    "values": i.values,
                }
                for i in inputs
            ],
            "sets": sets_info,
        },
        "reference": {
            "framework": framework,
            "runtime": reference.runtime,
            "files": {role: Path(p).name for role, p in sources.items()},
        },
        "candidate": {"runtime": candidate.runtime, "latency_ms": latency},
        "runtimes": versions(),
        "seconds": round(time.perf_counter() - t_start, 4),
    }
    with atomic_output(out_dir / "verify.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return report


def gate(model_id: str, target_name: str, verify_json: Path) -> bool:
    """True when ``verify_json`` records a pass; else one line per failing output, False."""
    tag = f"verify:{model_id}:{target_name}"
    try:
        data = json.loads(Path(verify_json).read_text(encoding="utf-8"))
    except FileNotFoundError:
        print(
            f"{tag}: {verify_json} is missing (measure:{model_id}:{target_name} did not run "
            "or failed)",
            file=sys.stderr,
        )
        return False
    except (OSError, ValueError) as exc:
        print(f"{tag}: {verify_json} is unreadable ({exc})", file=sys.stderr)
        return False
    if isinstance(data, dict) and data.get("passed") is True:
        return True
    failures = (data.get("failures") if isinstance(data, dict) else None) or [
        "FAILED (verify.json records no passing result)"
    ]
    for message in failures:
        print(f"{tag}: {message}", file=sys.stderr)
    return False
