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

from converters.io import atomic_output, sweep_temporaries
from formats import artifact_names
from pipelines.build.state import BuildState

_XML_INVALID = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
STATUSES = ("passed", "failed", "not_built")
SCHEMA_VERSION = 1  # schemas/report.schema.json; bump on any incompatible change
HISTORY_RUNS = 30  # runs kept in report/history.json


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
        "latency_ci95_ms": None,
        "latency_runs": None,
        "latency_threads": None,
        "reference": None,
        "reference_version": None,
        "margins": {},
        "digests": None,
        "size_ratio_fp32": None,
        "first_divergence": None,
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
    files = [out_dir / f for f in artifact_names(fmt)]
    latency = _latency(data)
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
        latency_ms=latency.get("median"),
        latency_ci95_ms=latency.get("ci95"),
        latency_runs=latency.get("runs"),
        latency_threads=(data.get("candidate") or {}).get("threads"),
        reference=(data.get("reference") or {}).get("runtime"),
        reference_version=(data.get("reference") or {}).get("version"),
        verify_seconds=data.get("seconds"),
        margins={k: _margin(v) for k, v in outputs.items() if isinstance(v, dict)},
        digests=_digests(data),
        first_divergence=data.get("first_divergence"),
    )
    if entry["passed"] and recipe is not None:
        # A pass is shown only if it still stands, as the verify gate checks it: a hand-edited
        # or outdated verify.json must not turn the report green.
        from pipelines.verify.measure import recheck

        problems = recheck(recipe, name, verify_path)
        if problems:
            entry.update(passed=False, status="failed", stage="verify", message="; ".join(problems))
    return entry


def _latency(data: dict) -> dict:
    latency = (data.get("candidate") or {}).get("latency_ms")
    return latency if isinstance(latency, dict) else {}


def _margin(result: dict) -> dict:
    """How close an output came to its tolerance (``pipelines.verify.metrics``: ``margin`` is the worst
    error over what was allowed there; above 1 fails)."""
    keep = ("margin", "max_abs_error", "cosine_similarity", "failing_elements", "elements")
    out = {k: result.get(k) for k in keep}
    out["passed"] = bool(result.get("passed"))
    topk = result.get("topk")
    if isinstance(topk, dict):
        out["topk"] = {k: topk.get(k) for k in ("k", "exact_agreement", "top1_agreement")}
    return out


def _digests(data: dict) -> dict | None:
    """The sha256 of the source and artifact files measure verified (verify.json)."""
    recorded = data.get("sha256")
    if not isinstance(recorded, dict):
        return None
    sources = recorded.get("source") if isinstance(recorded.get("source"), dict) else {}
    return {
        "source": {
            role: e["sha256"]
            for role, e in sources.items()
            if isinstance(e, dict) and isinstance(e.get("sha256"), str)
        },
        "artifact": dict(recorded.get("artifact") or {}),
    }


def _size_ratios(targets: list[dict]) -> None:
    """FP16 artifacts: their size over the FP32 artifact of the same format of the model."""
    fp32 = {t["format"]: sum(f["bytes"] for f in t["files"]) for t in targets
            if t["precision"] == "fp32" and t["files"]}  # fmt: skip
    for t in targets:
        if t["precision"] == "fp16" and t["files"] and fp32.get(t["format"]):
            t["size_ratio_fp32"] = round(sum(f["bytes"] for f in t["files"]) / fp32[t["format"]], 4)


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
        _size_ratios(targets)
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
    return {
        "schema_version": SCHEMA_VERSION,
        "summary": {"targets": len(statuses), **summary},
        "models": models,
    }


_FAILURE_TYPES = {"verify": "NumericalMismatch", "recipe": "InvalidRecipe"}


def _case_name(model_id: str, t: dict) -> str:
    return f"recipe:{model_id}" if t["stage"] == "recipe" else f"verify:{model_id}:{t['name']}"


def _properties(parent: ET.Element, items: list[tuple[str, object]]) -> None:
    items = [(k, v) for k, v in items if v is not None]
    if items:
        props = ET.SubElement(parent, "properties")
        for key, value in items:
            text = value if isinstance(value, str) else json.dumps(value)
            ET.SubElement(props, "property", name=key, value=_XML_INVALID.sub("?", text))


def _suite_properties(report: dict) -> list[tuple[str, object]]:
    p = report.get("provenance") or {}
    git = (p.get("zoo") or {}).get("git") or {}
    items = [("started", p.get("started")), ("finished", p.get("finished")),
             ("zoo.commit", git.get("commit")), ("zoo.dirty", git.get("dirty")),
             ("zoomake.version", p.get("zoomake")), ("python", p.get("python"))]  # fmt: skip
    items += [(f"version.{k}", v) for k, v in (p.get("libraries") or {}).items()]
    machine = p.get("machine") or {}
    items += [("machine.cpu", machine.get("cpu")), ("machine.cores", machine.get("cores"))]
    base = report.get("baseline")
    if base:
        items.append(("baseline", base.get("source")))
    return items


def _case_properties(t: dict) -> list[tuple[str, object]]:
    items: list[tuple[str, object]] = [
        ("format", t["format"]), ("precision", t["precision"]), ("status", t["status"]),
        ("stage", t["stage"]), ("reference", t.get("reference")),
        ("reference_version", t.get("reference_version")),
        ("latency_ms", t.get("latency_ms")), ("latency_threads", t.get("latency_threads")),
        ("conversion_seconds", t.get("conversion_seconds")),
        ("size_ratio_fp32", t.get("size_ratio_fp32")),
    ]  # fmt: skip
    for name, m in (t.get("margins") or {}).items():
        items += [(f"output.{name}.margin", m.get("margin")),
                  (f"output.{name}.max_abs_error", m.get("max_abs_error")),
                  (f"output.{name}.cosine_similarity", m.get("cosine_similarity")),
                  (f"output.{name}.failing_elements", m.get("failing_elements"))]  # fmt: skip
        if m.get("topk"):
            items.append((f"output.{name}.topk_agreement", m["topk"].get("exact_agreement")))
    for f in t.get("files") or []:
        items.append((f"artifact.{f['path'].rsplit('/', 1)[-1]}.bytes", f["bytes"]))
    for kind, files in (t.get("digests") or {}).items():
        items += [(f"{kind}.{name}.sha256", digest) for name, digest in files.items()]
    if t.get("first_divergence"):
        items.append(("first_divergence", t["first_divergence"].get("message")))
    if t.get("baseline"):
        b = t["baseline"]
        items.append(("baseline", b["status"] + (f": {b['message']}" if b.get("message") else "")))
    return items


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
    _properties(suite, _suite_properties(report))
    for model in report["models"]:
        for t in model["targets"]:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"verify.{model['id']}",
                name=_case_name(model["id"], t),
                time=str(t.get("verify_seconds") or 0),
            )
            _properties(case, _case_properties(t))
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
    # A build killed while it wrote the report left its temporary here; no task owns the
    # report's files, so their writer sweeps them (under the build lock the reporter holds).
    sweep_temporaries(path)
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _history(report: dict, out_dir: Path) -> None:
    """Append this run to ``history.json`` (the last HISTORY_RUNS runs' per-target worst margin,
    worst error and latency) and give each target its series, oldest first."""
    path = out_dir / "history.json"
    old = _json(path)
    runs = old.get("runs") if isinstance(old, dict) and isinstance(old.get("runs"), list) else []
    now = {}
    for model in report["models"]:
        for t in model["targets"]:
            margins = [m.get("margin") for m in (t.get("margins") or {}).values()]
            errors = list((t.get("worst_error") or {}).values())
            now[f"{model['id']}:{t['name']}"] = {
                "status": t["status"],
                "margin": _largest(margins),
                "worst_error": _largest(errors),
                "latency_ms": t.get("latency_ms"),
            }
    prov = report.get("provenance") or {}
    git = (prov.get("zoo") or {}).get("git") or {}
    runs = [r for r in runs if isinstance(r, dict) and isinstance(r.get("targets"), dict)]
    this = {"finished": prov.get("finished"), "commit": git.get("commit"), "targets": now}
    runs = [*runs, this][-HISTORY_RUNS:]
    for model in report["models"]:
        for t in model["targets"]:
            tag = f"{model['id']}:{t['name']}"
            points = [r["targets"].get(tag) or {} for r in runs]
            t["history"] = {k: [p.get(k) for p in points] for k in ("margin", "latency_ms")}
    _write(path, json.dumps({"schema_version": SCHEMA_VERSION, "runs": runs}, indent=1) + "\n")


def _largest(values) -> float | None:
    numbers = [v for v in values if isinstance(v, int | float)]
    if any(isinstance(v, str) for v in values):  # 'inf' / 'nan' recorded as strings
        return float("inf")
    return max(numbers, default=None)


def write_report(
    zoo: dict[str, dict],
    build_dir: Path,
    out_dir: Path,
    state: BuildState | None = None,
    *,
    started: float | None = None,
    baseline: str | None = None,
    zoo_dir: Path | None = None,
) -> dict:
    """Write ``out_dir``/report.json, junit.xml, index.html and history.json for the models of
    ``zoo``; ``started``: when the build began (epoch seconds); ``baseline``: a previous build
    or report to compare with (``pipelines.report.baseline``); ``zoo_dir``: for its git commit."""
    import time

    from pipelines.report.html import render_html
    from pipelines.report.provenance import provenance

    build_dir, out_dir = Path(build_dir), Path(out_dir)
    report = build_report(zoo, build_dir, state)
    if zoo_dir is None:
        from pipelines.locations import recipes_dir

        zoo_dir = recipes_dir().parent
    report["provenance"] = provenance(zoo, Path(zoo_dir), started, time.time())
    report["baseline"] = None
    if baseline:
        from pipelines.report.baseline import annotate

        annotate(report, build_dir, baseline)
        report["summary"]["changed"] = report["baseline"]["counts"].get("changed", 0)
    _history(report, out_dir)
    # Links in the page are relative to where it lives, so the tree can be moved or served.
    prefix = Path(os.path.relpath(build_dir, out_dir)).as_posix()
    _write(out_dir / "report.json", json.dumps(report, indent=2) + "\n")
    _write(out_dir / "junit.xml", junit_xml(report))
    _write(out_dir / "index.html", render_html(report, prefix))
    return report
