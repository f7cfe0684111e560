"""The zoo report: ``report.json`` (machines), ``junit.xml`` (CI) and ``index.html`` (people).

Everything is read from the build tree, never recomputed: the build state (``pipelines.build.state``:
which stage failed and why, which are out of date), each target's ``verify.json`` (status,
errors, latency; a pass counts only if the verify gate's ``recheck`` of it still
holds), its artifact files (sizes) and the stage timings (``convert/stats.json``,
``optimize/stats.json``, ``<target>/export-stats.json``). Every target is ``passed``, ``failed``
(with the failing ``stage`` and its one-line error: a build stage, or ``verify`` for a numerical
mismatch, or ``recipe`` for an invalid recipe) or ``not_built``. Only a target whose whole chain
is current links its artifacts and ``verify.json``: what an older build left is never shown as
this build's result.
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from converters.io import atomic_output
from pipelines.build.state import BuildState

ARTIFACT_FILES = {
    "onnx": ["model.onnx"],
    "openvino": ["model.xml", "model.bin"],
    "caffe": ["model.prototxt", "model.caffemodel"],
}
_XML_INVALID = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
STATUSES = ("passed", "failed", "not_built")


def _json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _seconds(path: Path) -> float | None:
    data = _json(path)
    value = data.get("seconds") if isinstance(data, dict) else None
    return float(value) if isinstance(value, int | float) else None


def target_entry(
    model_id: str,
    name: str,
    target: dict,
    build_dir: Path,
    recipe: dict | None = None,
    state: BuildState | None = None,
) -> dict:
    """One target's line of the report (see the module docstring for the sources)."""
    out_dir = build_dir / model_id / name
    fmt = target.get("format", "onnx")
    timings = [
        _seconds(build_dir / model_id / "convert" / "stats.json"),
        _seconds(build_dir / model_id / "optimize" / "stats.json"),
        _seconds(out_dir / "export-stats.json"),
    ]
    known = [t for t in timings if t is not None]
    entry = {
        "name": name,
        "format": fmt,
        "precision": target.get("precision", "fp32"),
        "passed": False,
        "status": "not_built",
        "stage": None,
        "message": None,
        "files": [],
        "verify_json": None,
        "conversion_seconds": None,
        "worst_error": {},
        "failed_outputs": [],
        "latency_ms": None,
        "reference": None,
    }
    verdict = state.verdict(model_id, name) if state is not None else None
    if verdict is not None:
        entry["status"], entry["stage"], entry["message"] = verdict
        return entry
    verify_path = out_dir / "verify.json"
    data = _json(verify_path)
    if not isinstance(data, dict) or not isinstance(data.get("passed"), bool):
        entry["stage"] = "measure"
        entry["message"] = (
            f"{verify_path.relative_to(build_dir).as_posix()} is "
            + ("unreadable" if verify_path.exists() else "missing")
            + f" (measure:{model_id}:{name} did not run or failed)"
        )
        return entry
    outputs = data.get("outputs") if isinstance(data.get("outputs"), dict) else {}
    files = [out_dir / f for f in ARTIFACT_FILES.get(fmt, [])]
    entry.update(
        passed=data["passed"],
        status="passed" if data["passed"] else "failed",
        stage=None if data["passed"] else "verify",
        message="; ".join(data.get("failures") or []) or None,
        files=[
            {"path": f.relative_to(build_dir).as_posix(), "bytes": f.stat().st_size}
            for f in files
            if f.is_file()
        ],
        verify_json=verify_path.relative_to(build_dir).as_posix(),
        conversion_seconds=round(sum(known), 4) if known else None,
        worst_error={k: v.get("max_abs_error") for k, v in outputs.items() if isinstance(v, dict)},
        failed_outputs=[
            k for k, v in outputs.items() if isinstance(v, dict) and not v.get("passed")
        ],
        latency_ms=((data.get("candidate") or {}).get("latency_ms") or {}).get("median"),
        reference=(data.get("reference") or {}).get("runtime"),
        verify_seconds=data.get("seconds"),
    )
    if entry["passed"] and recipe is not None:
        # A pass is shown only if it still stands, as the verify gate checks it: a hand-edited
        # or outdated verify.json must not turn the report green.
        from pipelines.verify.measure import recheck

        problems = recheck(recipe, name, verify_path)
        if problems:
            entry.update(passed=False, status="failed", stage="verify", message="; ".join(problems))
    return entry


def _invalid_entry(model_id: str, errors: list[str]) -> dict:
    """An invalid recipe: one failed pseudo-target ``recipe`` carrying its errors."""
    target = target_entry(model_id, "recipe", {"format": "-", "precision": "-"}, Path("."))
    target.update(status="failed", stage="recipe", message="; ".join(errors))
    return {"id": model_id, "description": "invalid recipe", "task": None, "errors": errors,
            "targets": [target]}  # fmt: skip


def build_report(zoo: dict[str, dict], build_dir: Path, state: BuildState | None = None) -> dict:
    """The report of ``zoo`` (``state``: from the end of a doit run; None: from the files only)."""
    models = []
    for model_id in sorted(zoo):
        recipe = zoo[model_id]
        targets = [
            target_entry(model_id, name, t, build_dir, recipe, state)
            for name, t in (recipe.get("targets") or {}).items()
        ]
        models.append(
            {
                "id": model_id,
                "description": recipe.get("description", ""),
                "task": recipe.get("task"),
                "targets": targets,
            }
        )
    if state is not None:
        models += [_invalid_entry(i, errors) for i, errors in state.invalid.items()]
        models.sort(key=lambda m: m["id"])
    statuses = [t["status"] for m in models for t in m["targets"]]
    summary = {s: statuses.count(s) for s in STATUSES}
    return {"summary": {"targets": len(statuses), **summary}, "models": models}


_FAILURE_TYPES = {"verify": "NumericalMismatch", "recipe": "InvalidRecipe"}


def _case_name(model_id: str, t: dict) -> str:
    return f"recipe:{model_id}" if t["stage"] == "recipe" else f"verify:{model_id}:{t['name']}"


def junit_xml(report: dict) -> str:
    """One ``<testcase>`` per target; failed -> ``<failure>``, not built -> ``<error>``."""
    s = report["summary"]
    suites = ET.Element(
        "testsuites",
        name="zoomake",
        tests=str(s["targets"]),
        failures=str(s["failed"]),
        errors=str(s["not_built"]),
    )
    suite = ET.SubElement(
        suites,
        "testsuite",
        name="verify",
        tests=str(s["targets"]),
        failures=str(s["failed"]),
        errors=str(s["not_built"]),
        skipped="0",
    )
    for model in report["models"]:
        for t in model["targets"]:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"verify.{model['id']}",
                name=_case_name(model["id"], t),
                time=str(t.get("verify_seconds") or 0),
            )
            if t["status"] != "passed":
                text = _XML_INVALID.sub("?", t["message"] or t["status"])
                kind = "failure" if t["status"] == "failed" else "error"
                child = ET.SubElement(
                    case,
                    kind,
                    message=text.split("; ")[0],
                    type=_FAILURE_TYPES.get(t["stage"], "BuildFailed")
                    if kind == "failure"
                    else "NotBuilt",
                )
                child.text = text.replace("; ", "\n")
    ET.indent(suites)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
    )


def _write(path: Path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_report(
    zoo: dict[str, dict], build_dir: Path, out_dir: Path, state: BuildState | None = None
) -> None:
    """Write ``out_dir``/report.json, junit.xml and index.html for the models of ``zoo``."""
    from pipelines.report.html import render_html

    build_dir, out_dir = Path(build_dir), Path(out_dir)
    report = build_report(zoo, build_dir, state)
    # Links in the page are relative to where it lives, so the tree can be moved or served.
    prefix = Path(os.path.relpath(build_dir, out_dir)).as_posix()
    _write(out_dir / "report.json", json.dumps(report, indent=2) + "\n")
    _write(out_dir / "junit.xml", junit_xml(report))
    _write(out_dir / "index.html", render_html(report, prefix))
