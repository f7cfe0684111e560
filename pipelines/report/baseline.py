"""The report's "vs baseline" column: what this build changed against a previous one.

A baseline is given as ``zoomake build --baseline DIR_OR_URL``, ``doit baseline=DIR_OR_URL``
or ``ZOOMAKE_BASELINE`` and is one of

- a previous build directory (``build/``, holding ``<id>/<target>/test_data_set_N``): each
  target's golden outputs are compared with the baseline's, on identical golden inputs, at
  the tolerances its verify.json records (``pipelines.verify.regress.compare_golden``, the logic of
  ``zoomake regress`` without re-running the artifacts);
- a previous report bundle (a directory holding ``report.json``, the file itself, or an
  http(s)/file URL of either): no tensors there, so a target is changed when its artifact's
  sha256 differs, and the worst errors before and after are shown.

Per target: ``unchanged``, ``changed`` (with the largest change and the first drift line),
``new`` (no counterpart in the baseline) or ``not_compared`` (not measured in this build);
targets of the baseline this zoo no longer has are ``gone``.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path

from pipelines.errors import ZoomakeError

MAX_REPORT_BYTES = 64 * 1024 * 1024
STATES = ("unchanged", "changed", "new", "gone", "not_compared")


def _read_url(url: str) -> dict:
    if not url.endswith(".json"):
        url = url.rstrip("/") + "/report.json"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            data = response.read(MAX_REPORT_BYTES + 1)
    except (OSError, ValueError) as exc:
        raise ZoomakeError(f"baseline {url}: cannot fetch the report ({exc})") from None
    if len(data) > MAX_REPORT_BYTES:
        raise ZoomakeError(f"baseline {url}: more than {MAX_REPORT_BYTES} bytes, not a report")
    try:
        return json.loads(data)
    except ValueError as exc:
        raise ZoomakeError(f"baseline {url}: not a JSON report ({exc})") from None


def load(spec: str) -> tuple[str, object]:
    """``("build", {tag: dir})`` or ``("report", {tag: target entry})`` for ``spec``."""
    from pipelines.verify.regress import artifacts

    scheme = urllib.parse.urlparse(spec).scheme
    if scheme in ("http", "https", "file"):
        report = _read_url(spec)
    else:
        path = Path(spec)
        if path.is_dir() and not (path / "report.json").is_file():
            found = artifacts(path)
            if not found:
                raise ZoomakeError(
                    f"baseline {path}: neither a build directory (no <id>/<target>/"
                    "test_data_set_N) nor a report bundle (no report.json)"
                )
            return "build", found
        file = path / "report.json" if path.is_dir() else path
        if not file.is_file():
            raise ZoomakeError(f"baseline {spec}: no such build directory or report")
        try:
            report = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ZoomakeError(f"baseline {file}: unreadable report ({exc})") from None
    if not isinstance(report, dict) or not isinstance(report.get("models"), list):
        raise ZoomakeError(f"baseline {spec}: not a zoomake report.json (no models)")
    entries = {
        f"{m.get('id')}:{t.get('name')}": t
        for m in report["models"]
        if isinstance(m, dict)
        for t in m.get("targets") or []
        if isinstance(t, dict) and t.get("stage") != "recipe"
    }
    return "report", entries


def _from_build(tag: str, out_dir: Path, previous: Path) -> dict:
    from pipelines.verify.regress import compare_golden

    lines, results = compare_golden(tag, out_dir, previous, rerun=False)
    changes = [r.get("max_abs_error") for r in results.values()]
    largest = max((c for c in changes if isinstance(c, int | float)), default=None)
    margins = [r.get("margin") for r in results.values()]
    return {
        "status": "changed" if lines else "unchanged",
        "max_abs_change": largest,
        "margin": max((m for m in margins if isinstance(m, int | float)), default=None),
        "message": lines[0].split(": ", 1)[1] if lines else None,
    }


def _from_report(t: dict, old: dict) -> dict:
    now = (t.get("digests") or {}).get("artifact")
    before = (old.get("digests") or {}).get("artifact")
    worst_now, worst_before = t.get("worst_error") or {}, old.get("worst_error") or {}
    changed = now != before if now and before else worst_now != worst_before
    diffs = [
        abs(worst_now[k] - worst_before[k])
        for k in worst_now
        if isinstance(worst_now.get(k), int | float)
        and isinstance(worst_before.get(k), int | float)
    ]
    return {
        "status": "changed" if changed else "unchanged",
        "max_abs_change": None,
        "margin": None,
        "message": (
            f"artifact differs from the baseline's; worst error {worst_before} -> {worst_now}"
            if changed
            else None
        ),
        "worst_error_change": max(diffs, default=None),
    }


def annotate(report: dict, build_dir: Path, spec: str) -> None:
    """Give every target of ``report`` its ``baseline`` entry; ``report["baseline"]`` gets the
    source, the counts and the targets that are gone (or the error that stopped it)."""
    try:
        kind, base = load(spec)
    except ZoomakeError as exc:
        report["baseline"] = {"source": spec, "error": str(exc), "gone": [], "counts": {}}
        return
    seen = set()
    for model in report["models"]:
        for t in model["targets"]:
            if t["stage"] == "recipe":
                continue
            tag = f"{model['id']}:{t['name']}"
            seen.add(tag)
            if tag not in base:
                t["baseline"] = {"status": "new"}
            elif not t.get("verify_json"):
                t["baseline"] = {"status": "not_compared", "message": "not measured in this build"}
            elif kind == "build":
                t["baseline"] = _from_build(tag, build_dir / model["id"] / t["name"], base[tag])
            else:
                t["baseline"] = _from_report(t, base[tag])
    gone = sorted(set(base) - seen)
    states = [t["baseline"]["status"] for m in report["models"] for t in m["targets"]
              if "baseline" in t] + ["gone"] * len(gone)  # fmt: skip
    report["baseline"] = {
        "source": spec,
        "kind": kind,
        "gone": gone,
        "counts": {s: states.count(s) for s in STATES},
    }
