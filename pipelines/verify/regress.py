"""Nightly regression: do today's artifacts still give yesterday's numbers?

For every artifact of ``build_dir`` with golden data (``<id>/<target>/test_data_set_N``), the
artifact is run again, in its deployment runtime, on its stored golden inputs and compared with
the golden OUTPUTS of the same model and target in ``against`` (an earlier build directory),
with the tolerances its ``verify.json`` records (the recipe's, per output). This catches what a
rebuild changed: a converter or pass change, a runtime upgrade, a re-fetched model.

Drift (exit 1): an output out of tolerance, an output added, removed or reshaped, golden inputs
that differ from the earlier build's (seed, samples or input shape changed: nothing is
comparable any more), an artifact the earlier build had and this one lacks. An artifact new in
this build is listed but is not drift. An unchanged zoo prints nothing and returns 0.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipelines.errors import ZoomakeError
from pipelines.runtimes.choose import open_artifact
from pipelines.verify.golden import golden_sets, read_set
from pipelines.verify.metrics import OutputCheck, abs_error, fmt


def artifacts(build_dir: Path) -> dict[str, Path]:
    """``{"<id>:<target>": dir}`` for every target directory holding golden data."""
    found = {}
    for verify_json in sorted(build_dir.glob("*/*/verify.json")):
        if golden_sets(verify_json.parent):
            found[f"{verify_json.parent.parent.name}:{verify_json.parent.name}"] = (
                verify_json.parent
            )
    return found


def _same_inputs(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return list(a) == list(b) and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and np.array_equal(a[k], b[k])
        for k in a
    )


def _drift_line(tag: str, name: str, r: dict) -> str:
    if "worst" not in r or not r.get("failing_elements"):
        return f"{tag}: {r['message'].replace('FAILED output', 'output')}"
    w = r["worst"]
    return (
        f"{tag}: output '{name}' drifted: max abs error {fmt(abs_error(w))} > atol {fmt(r['atol'])}"
        f" + rtol {fmt(r['rtol'])} * |previous| at index {tuple(w['index'])} of "
        f"test_data_set_{w['sample']}: got {fmt(w['candidate'])}, previous {fmt(w['reference'])} "
        f"({r['failing_elements']} of {r['elements']} elements)"
    )


def compare_golden(
    tag: str, out_dir: Path, previous: Path, rerun: bool = True
) -> tuple[list[str], dict[str, dict]]:
    """Drift lines for one artifact (empty: unchanged) and the per-output comparison results.

    ``rerun``: run the artifact again on the golden inputs (``zoomake regress``: does the
    artifact still give the earlier numbers); else compare the golden outputs this build's
    measure stored (the report's "vs baseline", no runtime needed)."""
    try:
        verify = json.loads((out_dir / "verify.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"{tag}: cannot read {out_dir / 'verify.json'} ({exc})"], {}
    tolerances = (verify.get("tolerances") or {}).get("outputs") or {}
    own, prev = golden_sets(out_dir), golden_sets(previous)
    if [p.name for p in own] != [p.name for p in prev]:
        return [
            f"{tag}: golden sets differ ({len(own)} now, {len(prev)} in {previous}): "
            "verify.samples or verify.files changed, outputs not comparable"
        ], {}
    if rerun:
        runner = open_artifact(verify.get("format", "onnx"), out_dir, prefer=list(tolerances))
    checks: dict[str, OutputCheck] = {}
    for n, (own_set, prev_set) in enumerate(zip(own, prev, strict=True)):
        inputs, stored = read_set(own_set)
        prev_inputs, prev_outputs = read_set(prev_set)
        if not _same_inputs(inputs, prev_inputs):
            return [
                f"{tag}: golden inputs of {own_set.name} differ from {previous}: verify seed "
                "or the input signature changed, outputs not comparable"
            ], {}
        got = runner.run(inputs) if rerun else stored
        if list(got) != list(prev_outputs):
            return [
                f"{tag}: outputs are now {', '.join(got) or 'none'}, previously "
                f"{', '.join(prev_outputs) or 'none'}"
            ], {}
        for name, value in got.items():
            tol = tolerances.get(name) or (verify.get("outputs") or {}).get(name) or {}
            if "atol" not in tol or "rtol" not in tol:
                raise ZoomakeError(f"{out_dir / 'verify.json'}: no tolerance recorded for '{name}'")
            check = checks.setdefault(name, OutputCheck(name, tol["atol"], tol["rtol"]))
            check.add(n, np.asarray(value), prev_outputs[name])
    results = {name: check.result() for name, check in checks.items()}
    lines = [_drift_line(tag, n, r) for n, r in results.items() if not r["passed"]]
    return lines, results


def compare_artifact(tag: str, out_dir: Path, previous: Path) -> list[str]:
    """Drift lines for one artifact, run again on its golden inputs (empty: unchanged)."""
    return compare_golden(tag, out_dir, previous, rerun=True)[0]


def regress(build_dir: Path, against: Path) -> int:
    """Compare ``build_dir``'s artifacts with ``against``'s golden outputs; 1 on drift, else 0."""
    build_dir, against = Path(build_dir), Path(against)
    for d in (build_dir, against):
        if not d.is_dir():
            raise ZoomakeError(f"{d}: build directory not found")
    now, before = artifacts(build_dir), artifacts(against)
    drift: list[str] = []
    drifted: set[str] = set()
    for tag, out_dir in now.items():
        if tag not in before:
            print(f"regress: {tag}: new artifact (no golden data in {against}), not compared")
            continue
        lines = compare_artifact(tag, out_dir, before[tag])
        drift += [f"regress: {line}" for line in lines]
        drifted |= {tag} if lines else set()
    for tag in before:
        if tag not in now:
            drift.append(
                f"regress: {tag}: in {against} but missing from {build_dir} (or it has "
                "no golden data)"
            )
            drifted.add(tag)
    for line in drift:
        print(line)
    if drift:
        print(f"regress: {len(drifted)} of {len(now | before)} artifact(s) changed since {against}")
    return 1 if drift else 0
