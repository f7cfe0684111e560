"""Prove a built artifact numerically equal to its source model (``measure``) and gate on it.

Reference: the SOURCE model in its own framework's runtime (real Caffe when its side runtime is
set up, else OpenCV DNN, as ``verify.reference`` says; onnxruntime for ONNX), fed the recipe's
preprocessing computed in numpy by a transcription of its own (``pipelines.verify.reference_preprocess``). Candidate: the artifact in its deployment runtime (see
``pipelines.runtimes.choose``). Both see the same deployed inputs (see ``pipelines.verify.samples`` for their
ranges and seeds). The artifact must produce exactly the expected outputs (the recipe's, else
the source model's), each compared with the rule of ``pipelines.verify.metrics``. ``measure`` records
everything in ``verify.json`` (with the sha256 of every file it read or wrote) and the golden
data (``pipelines.verify.golden``) and never fails on numbers; ``gate`` is the verdict doit acts on,
re-derived from those files rather than read from verify.json.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from converters.io import atomic_output
from formats import artifact_names
from pipelines.errors import ZoomakeError
from pipelines.recipes.stages import format_files
from pipelines.runtimes.choose import open_artifact, open_reference, versions
from pipelines.verify import samples
from pipelines.verify.digests import sha256, sha256_once
from pipelines.verify.golden import golden_sets, read_tensors, write_golden
from pipelines.verify.metrics import RULE, DetectionCheck, OutputCheck
from pipelines.verify.reference import expected_outputs, setting, verify_default

# The candidate's latency: the median of timed runs on the first sample, after the sample runs
# (which warm it up). Timing stops once the median is known well enough: its 95% confidence
# interval (distribution-free, from order statistics: ``median_ci``; there is one from 6 runs
# on) within +-LATENCY_PRECISION of it; at the latest after LATENCY_RUNS[1] runs, or once
# LATENCY_BUDGET_S seconds have passed (a slow model gets LATENCY_RUNS[0] runs, no more).
# A fixed 50 runs (the old rule) spent 0.1-0.3 s per target on a 2-5 ms model for an interval of
# +-1-2%, finer than the same artifact's latency varies between builds on a shared machine (5-30%
# measured here); on the default zoo this rule stops after 6-25 runs on a quiet machine and runs
# longer only where timings scatter. verify.json records the interval beside the median.
LATENCY_RUNS = (5, 50)  # at least / at most this many timed runs ...
LATENCY_BUDGET_S = 1.0  # ... and no more timed runs once this much time has passed
LATENCY_PRECISION = 0.05  # stop when the 95% interval of the median is within +-5% of it


def tolerance(recipe: dict, output: str, precision: str) -> dict[str, float]:
    """``{atol, rtol}``: the output's override, else the recipe's preset, else the schema's."""
    verify = recipe.get("verify") or {}
    base = (verify.get("tolerances") or {}).get(precision) or {}
    over = ((verify.get("outputs") or {}).get(output) or {}).get(precision) or {}
    return {
        k: float(over.get(k, base.get(k, verify_default("tolerances", precision, k))))
        for k in ("atol", "rtol")
    }


# The box IoU at which two detections pair up, per precision (recipe-settable, see the
# schema's ``iou``). A detector whose box decoding runs in float16 moves normalized
# coordinates by up to ~5e-4 (measured on YuFaceDetectNet before converters/fp16.py kept the
# decisions float32), which on a small box (side ~0.01) is an IoU of 0.90; the coordinates
# themselves are still held to ``atol``. The YuFaceDetectNet recipes set 0.99 (measured 0.997).
DEFAULT_IOU = {"fp32": 0.99, "fp16": 0.85}


def compare_modes(
    recipe: dict, outputs, precision: str = "fp32", sources: dict | None = None
) -> dict[str, dict]:
    """``verify.outputs.<name>.compare``/``iou``/``cuts`` of the outputs that are not
    elementwise; the IoU from, first to last: ``outputs.<name>.<precision>.iou``,
    ``outputs.<name>.iou``, ``tolerances.<precision>.iou``, ``DEFAULT_IOU[precision]``; the cuts
    (ties at a cut, ``DetectionCheck``) from the source's detection layers
    (``Source.detection_cuts`` of the fetched ``sources``), each overridden by
    ``outputs.<name>.cuts``."""
    verify = recipe.get("verify") or {}
    over = verify.get("outputs") or {}
    preset = ((verify.get("tolerances") or {}).get(precision) or {}).get("iou")
    default = DEFAULT_IOU.get(precision, DEFAULT_IOU["fp32"])
    modes = {}
    for n in outputs:
        o = over.get(n) or {}
        if o.get("compare") != "detections":
            continue
        iou = (o.get(precision) or {}).get("iou", o.get("iou", preset))
        modes[n] = {"compare": "detections", "iou": float(default if iou is None else iou)}
    if modes:
        found = _source_cuts(recipe, sources)
        for n, mode in modes.items():
            mode["cuts"] = {**found.get(n, {}), **((over.get(n) or {}).get("cuts") or {})}
    return modes


def _source_cuts(recipe: dict, sources: dict | None) -> dict:
    from formats import source

    framework = (recipe.get("source") or {}).get("framework")
    hook = source(framework).detection_cuts if framework else None
    if hook is None or not sources:
        return {}
    return hook(format_files(recipe, sources))


def _check_companions(candidate, feeds_list, golden, expected, origin, tolerances, topk, modes,
                      out_dir) -> None:  # fmt: skip
    """Every other deployable form of the artifact (``Runner.companions``) against the same
    references at the same tolerances; one that fails stops measure in one line (the golden
    data and verify.json describe the main file, so they are not written)."""
    for what, runner in candidate.companions():
        sets = []
        for (feeds, _), (_, _, want) in zip(feeds_list, golden, strict=True):
            got = runner.run(feeds, [o for o in expected if runner.has_output(o)])
            sets.append((got, dict(want)))
        results = compare(expected, origin, sets, tolerances, topk, modes)
        bad = [r["message"] for r in results.values() if not r["passed"]]
        if bad:
            raise ZoomakeError(
                f"{out_dir}: {what} is not the model {getattr(candidate, 'path', Path('artifact')).name} is: {bad[0]}"
            )


def median_ci(n: int, confidence: float = 0.95) -> tuple[int, int] | None:
    """0-based ranks ``(lo, hi)`` in a sorted sample of ``n`` whose values bound its median
    with at least ``confidence``, for any continuous distribution of iid values: ``j - 1`` and
    ``n - j`` for the largest ``j >= 1`` with ``P(Binomial(n, 1/2) < j) <= (1 - confidence) / 2``
    (order statistics; 95%: n = 6 gives the extremes, 10 the 2nd and 9th, 50 the 18th and
    33rd); None when not even the extremes reach it (n <= 5 at 95%)."""
    tail, cum, j = (1.0 - confidence) / 2.0, 0.0, 0
    for k in range(n):
        cum += math.comb(n, k) / 2.0**n  # P(B <= k) = P(B < k + 1)
        if cum > tail:
            break
        j = k + 1
    return (j - 1, n - j) if j else None


def _latency(candidate, feeds) -> dict:
    """Median, minimum and the median's 95% interval (ms; None below 6 runs) of timed runs
    on ``feeds``; see LATENCY_RUNS for when it stops."""
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < LATENCY_RUNS[1]:
        t0 = time.perf_counter()
        candidate.run(feeds)
        times.append((time.perf_counter() - t0) * 1000.0)
        if len(times) < LATENCY_RUNS[0]:
            continue
        if time.perf_counter() - start >= LATENCY_BUDGET_S:
            break
        ci = _interval(times)
        if ci and ci[1] - ci[0] <= 2.0 * LATENCY_PRECISION * statistics.median(times):
            break
    ci = _interval(times)
    return {
        "median": round(statistics.median(times), 4),
        "min": round(min(times), 4),
        "runs": len(times),
        "ci95": [round(ci[0], 4), round(ci[1], 4)] if ci else None,
    }


def _interval(times: list[float]) -> tuple[float, float] | None:
    ranks = median_ci(len(times))
    if ranks is None:
        return None
    ordered = sorted(times)
    return ordered[ranks[0]], ordered[ranks[1]]


def _artifact_files(out_dir: Path, fmt: str | None = None) -> list[Path]:
    """Every file of the artifact: ``model.*`` (model.onnx and its external data, model.xml +
    model.bin, model.prototxt + model.caffemodel) and the format's ``Target.files``."""
    named = {out_dir / n for n in artifact_names(fmt)} if fmt else set()
    return sorted(p for p in set(out_dir.glob("model.*")) | named if p.is_file())


def _golden_files(out_dir: Path) -> list[Path]:
    return sorted(f for d in golden_sets(out_dir) for f in d.iterdir() if f.is_file())


def _rel(path: Path, out_dir: Path) -> str:
    return Path(os.path.relpath(path, out_dir)).as_posix()


def _names(names) -> str:
    return ", ".join(f"'{n}'" for n in names) or "none"


def compare(
    expected: list[str],
    origin: str,
    sets: list[tuple[dict, dict]],
    tolerances: dict[str, dict[str, float]],
    topk: int | None,
    modes: dict[str, dict] | None = None,
) -> dict[str, dict]:
    """Per-output results over ``sets`` (``[(candidate outputs, reference outputs), ...]``).

    The artifact must produce exactly ``expected``: an expected output it lacks and an output
    it has beyond them fail with a line naming the output (a renamed output is both), and
    ``pipelines.verify.metrics`` fails one whose shape or values differ. ``measure`` runs this on the
    outputs it just computed and ``gate`` again on the golden files, so both reach one verdict.
    """
    produced = [n for n in (sets[0][0] if sets else []) if all(n in got for got, _ in sets)]
    results: dict[str, dict] = {}
    for name in expected:
        if name not in produced:
            results[name] = {
                "passed": False,
                "message": f"FAILED output '{name}': the artifact does not produce it "
                f"(it produces {_names(produced)})",
            }
            continue
        t = tolerances[name]
        if name in (modes or {}):  # compare: detections
            mode = modes[name]
            check = DetectionCheck(name, t["atol"], t["rtol"], mode["iou"], mode.get("cuts"))
        else:
            check = OutputCheck(name, t["atol"], t["rtol"], topk)
        for n, (got, want) in enumerate(sets):
            check.add(n, np.asarray(got[name]), np.asarray(want[name]))
        results[name] = check.result()
    for name in produced:
        if name not in expected:
            results[name] = {
                "passed": False,
                "message": f"FAILED output '{name}': the artifact produces it, but it is not one "
                f"of {origin} ({_names(expected)})",
            }
    return results


def _bisect(framework, sources, fmt, out_dir, inputs, feeds, means, tol) -> dict:
    """``pipelines.verify.bisect.first_divergence`` on the first sample; a diagnosis that cannot be
    made is recorded as such (it never turns a measured result into an error)."""
    from pipelines.errors import describe
    from pipelines.verify.bisect import first_divergence

    try:
        return first_divergence(framework, sources, fmt, out_dir,
                                samples.reference_feeds(inputs, feeds, means), feeds,
                                tol["atol"], tol["rtol"])  # fmt: skip
    except Exception as exc:  # any runtime's failure: say why, keep the measured verdict
        return {"found": False, "message": f"first divergence: not found ({describe(exc)[1]})"}


def measure(
    model_id: str,
    recipe: dict,
    target_name: str,
    sources: dict[str, Path],
    out_dir: Path,
    *,
    bisect: bool = True,
    reference_dir: Path | None = None,
) -> dict:
    """Compare the artifact in ``out_dir`` with the source model; write verify.json + golden.
    A failing artifact is also run layer by layer (``bisect``: ``pipelines.verify.bisect``).

    With ``reference_dir`` (``build/<id>/reference``, written by ``reference:<id>``), the source
    model's outputs are read from there for every sample set whose deployed inputs are
    byte-identical to the stored ones (see ``pipelines.verify.reference``); the reference runs
    here only for the others, or for all without it."""
    from pipelines.verify.reference import load_reference, sample_files, sample_sets

    t_start = time.perf_counter()
    target = (recipe.get("targets") or {}).get(target_name)
    if target is None:
        raise ZoomakeError(f"{model_id}: recipe has no target '{target_name}'")
    fmt, precision = target.get("format", "onnx"), target.get("precision", "fp32")
    framework = recipe["source"]["framework"]
    out_dir = Path(out_dir)
    sources = {k: Path(v) for k, v in sources.items()}
    # A stale verify.json must not outlive a failed re-measure (the report would show it).
    (out_dir / "verify.json").unlink(missing_ok=True)
    choice = setting(recipe, "reference")
    stored = load_reference(reference_dir, out_dir) if reference_dir is not None else None
    live = None

    def live_reference():
        nonlocal live
        if live is None:
            live = open_reference(
                framework, format_files(recipe, sources), recipe.get("outputs") or [], choice
            )
        return live

    source_outputs = stored.outputs if stored else live_reference().outputs
    expected, origin = expected_outputs(recipe, source_outputs)
    candidate = open_artifact(fmt, out_dir, prefer=expected)
    # What the artifact gives: its outputs, and expected ones it can return beyond them (a Caffe
    # net's cut point that later layers still read is a blob, not a final top).
    produced = list(candidate.outputs)
    produced += [n for n in expected if n not in produced and candidate.has_output(n)]
    digests = {
        "artifact": {p.name: sha256(p) for p in _artifact_files(out_dir, fmt)},
        "source": {
            role: {"path": _rel(p, out_dir), "sha256": sha256_once(p)}
            for role, p in sorted(sources.items())
        },
    }
    inputs = samples.deployed_inputs(recipe, candidate.inputs)
    means = None
    topk = int(setting(recipe, "topk")) if recipe.get("task") == "classification" else None
    tolerances = {name: tolerance(recipe, name, precision) for name in expected}

    sets_info, golden, reused = [], [], 0
    feeds_list = sample_sets(recipe, inputs, sample_files(recipe, sources, out_dir))
    for n, (feeds, info) in enumerate(feeds_list):
        got = candidate.run(feeds, produced)
        want = stored.outputs_for(n, feeds, info) if stored else None
        if want is not None and all(o in want for o in expected):
            reused += 1
        else:
            if means is None:
                means = samples.mean_images(sources)
            ref_feeds = samples.reference_feeds(inputs, feeds, means)
            want = live_reference().run(ref_feeds, expected)
        sets_info.append({"set": f"test_data_set_{n}", **info})
        golden.append(
            (
                [(i.name, feeds[i.name]) for i in inputs],
                [(o, np.asarray(got[o])) for o in produced],
                [(o, np.asarray(want[o])) for o in expected],
            )
        )
    if stored is not None and reused:
        digests["reference"] = stored.digests
    modes = compare_modes(recipe, expected, precision, sources)
    results = compare(
        expected, origin, [(dict(g[1]), dict(g[2])) for g in golden], tolerances, topk, modes
    )
    passed = all(r["passed"] for r in results.values())
    if passed:  # a failing main file is recorded as such; its other forms do not matter then
        _check_companions(candidate, feeds_list, golden, expected, origin, tolerances, topk,
                          modes, out_dir)  # fmt: skip
    latency = _latency(candidate, feeds_list[0][0])
    write_golden(out_dir, golden)
    digests["golden"] = {_rel(p, out_dir): sha256(p) for p in _golden_files(out_dir)}

    failures = [r["message"] for r in results.values() if not r["passed"]]
    divergence = None
    # Out-of-tolerance values (not a missing or reshaped output): where do they start?
    numerical = any(not r["passed"] and ("failing_elements" in r or "problems" in r)
                    for r in results.values())  # fmt: skip
    if numerical and bisect:
        tol = tolerance(recipe, "", precision)  # the recipe's preset for this precision
        means = samples.mean_images(sources) if means is None else means
        divergence = _bisect(framework, sources, fmt, out_dir, inputs, feeds_list[0][0], means,
                             tol)  # fmt: skip
        failures.append(divergence["message"])
    files = _artifact_files(out_dir, fmt)
    report = {
        "passed": passed,
        "model": model_id,
        "target": target_name,
        "format": fmt,
        "precision": precision,
        "task": recipe.get("task"),
        "failures": failures,
        "first_divergence": divergence,
        "expected_outputs": {"names": expected, "from": origin},
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
        "reference": _reference_info(framework, choice, sources, stored, live, reused),
        "candidate": {
            "runtime": candidate.runtime,
            "latency_ms": latency,
            "threads": getattr(candidate, "threads", None),
        },
        "artifact_bytes": {p.name: p.stat().st_size for p in files},
        "runtimes": versions(),
        # Paths relative to this directory; the verify gate recomputes every one of them.
        "sha256": digests,
        "seconds": round(time.perf_counter() - t_start, 4),
    }
    with atomic_output(out_dir / "verify.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return report


def _reference_info(framework, choice, sources, stored, live, reused: int) -> dict:
    """Which runtime gave the reference outputs, and how many sets came from reference:<id>."""
    if live is not None:
        runtime = live.runtime
        version = getattr(live, "version", None) or versions().get(live.runtime)
        build = getattr(live, "build", None) or None
    else:
        runtime, version, build = (stored.index.get(k) for k in ("runtime", "version", "build"))
    return {
        "framework": framework,
        "runtime": runtime,
        "requested": choice,
        "version": version,
        "build": build,
        "files": {role: Path(p).name for role, p in sources.items()},
        "stored_sets": reused,  # sets whose outputs were read from the model's reference run
    }


# -- the gate ------------------------------------------------------------------------------------


def _check_files(kind: str, recorded, current: dict[str, Path], out_dir: Path) -> list[str]:
    """Lines for every file of ``kind`` whose sha256 is not what verify.json recorded."""
    if not isinstance(recorded, dict):
        return [f"verify.json records no sha256 of the {kind} files"]
    problems = []
    for rel in sorted(set(recorded) | set(current)):
        path = current.get(rel, out_dir / rel)  # JSON keys are strings
        want = recorded.get(rel)
        if want is None:
            problems.append(f"{path}: {kind} file not among the files measure hashed")
        elif not path.is_file():
            problems.append(f"{path}: {kind} file missing (measured with sha256 {want})")
        elif (got := sha256(path)) != want:
            problems.append(
                f"{path}: sha256 {got} differs from {want}, the {kind} file measure verified"
            )
    return problems


def recheck(
    recipe: dict, target_name: str, verify_json: Path, sources: dict[str, Path] | None = None
) -> list[str]:
    """Why ``verify_json`` does not stand now, one line each ([] when it does).

    Nothing in verify.json is taken on trust: every artifact, source and golden file must still
    have the sha256 measure recorded, and the verdict is derived again from the golden files
    (candidate ``output_K.pb`` vs reference ``reference_K.pb``) with the recipe's expected
    outputs and tolerances. A recorded result that differs from that, ``passed`` included,
    fails; so do the recomputed failures.
    """
    verify_json = Path(verify_json)
    out_dir = verify_json.parent
    try:
        data = json.loads(verify_json.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return [f"{verify_json} is missing"]
    except (OSError, ValueError) as exc:
        return [f"{verify_json} is unreadable ({exc})"]
    digests = data.get("sha256") if isinstance(data, dict) else None
    if not isinstance(digests, dict):
        return [f"{verify_json} records no sha256 digests of what it verified"]
    target = (recipe.get("targets") or {}).get(target_name) or {}
    fmt, precision = target.get("format", "onnx"), target.get("precision", "fp32")

    artifact = {p.name: p for p in _artifact_files(out_dir, fmt)}
    # What open_artifact reads (the format's Target.files) must be among the digested files.
    artifact |= {n: out_dir / n for n in artifact_names(fmt)}
    problems = _check_files("artifact", digests.get("artifact"), artifact, out_dir)
    golden = {_rel(p, out_dir): p for p in _golden_files(out_dir)}
    problems += _check_files("golden", digests.get("golden"), golden, out_dir)
    if "reference" in digests:  # the model's reference run measure read (reference:<id>)
        recorded = digests["reference"]
        paths = {rel: out_dir / rel for rel in recorded} if isinstance(recorded, dict) else {}
        problems += _check_files("reference", recorded, paths, out_dir)
    recorded_sources = digests.get("source")
    if not isinstance(recorded_sources, dict):
        problems.append("verify.json records no sha256 of the source files")
        recorded_sources = {}
    for role, path in sorted((sources or {}).items()):
        if (recorded_sources.get(role) or {}).get("path") != _rel(Path(path), out_dir):
            problems.append(f"{path}: source file ({role}) not among the files measure hashed")
    for role, entry in sorted(recorded_sources.items()):
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(k), str) for k in ("path", "sha256")
        ):
            problems.append(f"verify.json: the sha256 record of source '{role}' is malformed")
            continue
        path = out_dir / entry["path"]
        if not path.is_file():
            problems.append(f"{path}: source file missing (measured with sha256 {entry['sha256']})")
        elif (got := sha256(path)) != entry["sha256"]:
            problems.append(
                f"{path}: sha256 {got} differs from {entry['sha256']}, the source file "
                "measure verified"
            )
    if problems:
        return problems

    sets = []
    for d in golden_sets(out_dir):
        sets.append((read_tensors(d, "output"), read_tensors(d, "reference")))
    if not sets:
        return [f"{out_dir}: no golden test_data_set_N to derive the verdict from"]
    expected, origin = expected_outputs(recipe, list(sets[0][1]))
    lacking = [n for n in expected if any(n not in ref for _, ref in sets)]
    if lacking:
        return [f"{out_dir}: the golden reference_K.pb lack expected output(s) {_names(lacking)}"]
    topk = int(setting(recipe, "topk")) if recipe.get("task") == "classification" else None
    tolerances = {name: tolerance(recipe, name, precision) for name in expected}
    # the source files measure hashed (checked above): the detection cuts come from them
    hashed = {role: out_dir / e["path"] for role, e in recorded_sources.items()}
    modes = compare_modes(recipe, expected, precision, sources or hashed)
    results = json.loads(json.dumps(compare(expected, origin, sets, tolerances, topk, modes)))
    passed = all(r["passed"] for r in results.values())
    if data.get("passed") is not passed:
        problems.append(
            f"{verify_json} records passed={json.dumps(data.get('passed'))}, but its golden data "
            f"{'passes' if passed else 'fails'} the recipe's tolerances"
        )
    elif data.get("outputs") != results:
        problems.append(
            f"{verify_json}: the recorded per-output results differ from those its golden data "
            "gives (edited after measure?)"
        )
    return problems + [r["message"] for r in results.values() if not r["passed"]]


def gate(
    model_id: str,
    target_name: str,
    verify_json: Path,
    recipe: dict,
    sources: dict[str, Path] | None = None,
) -> bool:
    """True when ``verify_json`` stands (see ``recheck``); else one line per problem, False."""
    tag = f"verify:{model_id}:{target_name}"
    problems = recheck(recipe, target_name, Path(verify_json), sources)
    if problems and problems[0].endswith(" is missing"):
        problems[0] += f" (measure:{model_id}:{target_name} did not run or failed)"
    if problems and not problems[-1].startswith("first divergence"):
        problems += _recorded_divergence(Path(verify_json))
    for message in problems:
        print(f"{tag}: {message}", file=sys.stderr)
    return not problems


def _recorded_divergence(verify_json: Path) -> list[str]:
    """measure's first-divergence line (a diagnosis for the failure message, not evidence:
    the verdict never depends on it)."""
    try:
        data = json.loads(verify_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    where = data.get("first_divergence") if isinstance(data, dict) else None
    message = where.get("message") if isinstance(where, dict) else None
    return [message] if isinstance(message, str) and message.startswith("first divergence") else []
