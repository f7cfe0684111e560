"""pipelines.report.results: report.json, junit.xml and index.html of a small real build tree.

The tree holds one model whose targets pass, one whose artifact has a corrupted weight (fails)
and one that was never built (missing), each measured for real by pipelines.verify.measure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import onnxruntime
import pytest

from pipelines.report.results import write_report
from pipelines.verify.measure import measure
from tests.verify_helpers import (
    build_sources,
    corrupt,
    deployed_model,
    fake_build,
    initializer_feeding,
    make_recipe,
    write_tiny,
)

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def zoo_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    build = root / "build"
    sources = write_tiny(root / "src")
    targets = {
        "onnx": {"format": "onnx", "precision": "fp32"},
        "onnx-fp16": {"format": "onnx", "precision": "fp16"},
    }
    good = make_recipe(description="a model that converts fine", targets=targets)
    broken = make_recipe(
        description="a model with a corrupted weight", targets={"onnx": targets["onnx"]}
    )
    gone = make_recipe(
        description="never built <b>&</b>",
        task="detection",
        targets={"openvino": {"format": "openvino", "precision": "fp32"}},
    )
    for name in targets:
        out_dir = fake_build(build, "good", sources, good, target=name)
        measure("good", good, name, build_sources(build, "good", sources), out_dir)
    (build / "good" / "convert").mkdir()
    (build / "good" / "convert" / "stats.json").write_text('{"seconds": 1.25}')
    (build / "good" / "onnx" / "export-stats.json").write_text('{"seconds": 0.5}')
    model = deployed_model(sources, broken)
    bad = corrupt(model, initializer_feeding(model, "Gemm", "fc", which=2), (3,), 2.0)
    out_dir = fake_build(build, "broken", sources, broken, bad)
    measure("broken", broken, "onnx", build_sources(build, "broken", sources), out_dir)
    zoo = {"good": good, "broken": broken, "gone": gone}
    zoo_dir = _git_zoo(root)
    write_report(zoo, build, build / "report", zoo_dir=zoo_dir)  # the history's first run
    baseline = _baseline(root / "before", sources, good, broken)
    # What a build killed -9 while it wrote the report leaves (converters.io's temporaries).
    for name in REPORT_FILES:
        (build / "report" / f".{name}.zoomake-tmp-killed1").write_text("half a report")
    write_report(zoo, build, build / "report", started=time.time() - 5, zoo_dir=zoo_dir,
                 baseline=str(baseline))  # fmt: skip
    return build


REPORT_FILES = ("report.json", "junit.xml", "index.html", "history.json")


def _baseline(before: Path, sources, good: dict, broken: dict) -> Path:
    """A previous build: good's mean was 120 (its onnx target has drifted since; its fp16 one
    was never built then), broken was not broken yet, and a model since retired."""
    old = make_recipe(targets={"onnx": good["targets"]["onnx"]},
                      inputs={"data": {"shape": [1, 3, 8, 8],
                                       "preprocess": {"mean": 120.0, "scale": 0.0078125}}})  # fmt: skip
    for model_id, recipe in (("good", old), ("broken", broken), ("retired", broken)):
        out_dir = fake_build(before, model_id, sources, recipe)
        measure(model_id, recipe, "onnx", build_sources(before, model_id, sources), out_dir)
    return before


def _git_zoo(root: Path) -> Path:
    """A zoo checkout with one commit and an uncommitted change (dirty)."""
    zoo_dir = root / "zoo"
    (zoo_dir / "recipes").mkdir(parents=True)
    (zoo_dir / "recipes" / "good.yaml").write_text("description: x\n")
    git = ["git", "-C", str(zoo_dir), "-c", "user.name=t", "-c", "user.email=t@t"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "zoo"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    (zoo_dir / "recipes" / "good.yaml").write_text("description: y\n")
    return zoo_dir


def _head(build: Path) -> str:
    zoo_dir = build.parent / "zoo"
    done = subprocess.run(["git", "-C", str(zoo_dir), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True)  # fmt: skip
    return done.stdout.strip()


def test_report_json(zoo_build):
    report = json.loads((zoo_build / "report" / "report.json").read_text())
    assert report["summary"] == {
        "targets": 4, "passed": 2, "failed": 1, "not_built": 1, "changed": 2,
    }  # fmt: skip
    models = {m["id"]: m for m in report["models"]}
    assert [m["id"] for m in report["models"]] == ["broken", "gone", "good"]
    good = {t["name"]: t for t in models["good"]["targets"]}
    onnx_t = good["onnx"]
    verify = json.loads((zoo_build / "good" / "onnx" / "verify.json").read_text())
    assert onnx_t["status"] == "passed" and onnx_t["passed"] is True
    assert onnx_t["files"] == [
        {
            "path": "good/onnx/model.onnx",
            "bytes": (zoo_build / "good/onnx/model.onnx").stat().st_size,
        }
    ]
    assert onnx_t["conversion_seconds"] == 1.75  # convert 1.25 + export 0.5 (no optimize stats)
    assert good["onnx-fp16"]["conversion_seconds"] == 1.25
    assert onnx_t["worst_error"] == {k: v["max_abs_error"] for k, v in verify["outputs"].items()}
    assert onnx_t["latency_ms"] == verify["candidate"]["latency_ms"]["median"] > 0
    assert onnx_t["latency_runs"] == verify["candidate"]["latency_ms"]["runs"] >= 5
    assert onnx_t["latency_ci95_ms"] == verify["candidate"]["latency_ms"]["ci95"]
    assert good["onnx-fp16"]["precision"] == "fp16"
    (broken,) = models["broken"]["targets"]
    assert broken["status"] == "failed" and broken["passed"] is False
    assert broken["message"].startswith("FAILED output 'prob': max abs error")
    assert broken["worst_error"]["prob"] > 0.01 and broken["worst_error"]["score"] < 1e-4
    (gone,) = models["gone"]["targets"]
    assert gone["status"] == "not_built" and gone["files"] == [] and gone["latency_ms"] is None
    assert "gone/openvino/verify.json is missing" in gone["message"]


def test_report_margins_and_provenance(zoo_build):
    report = json.loads((zoo_build / "report" / "report.json").read_text())
    by = {(m["id"], t["name"]): t for m in report["models"] for t in m["targets"]}
    for key in (("good", "onnx"), ("broken", "onnx")):
        verify = json.loads((zoo_build / key[0] / key[1] / "verify.json").read_text())
        t = by[key]
        for name, out in verify["outputs"].items():
            m = t["margins"][name]
            assert m["margin"] == out["margin"]
            assert m["cosine_similarity"] == out["cosine_similarity"]
            assert m["failing_elements"] == out["failing_elements"]
            if name == "prob":  # the classifier output (N, C): top-k agreement too
                assert m["topk"]["exact_agreement"] == out["topk"]["exact_agreement"]
        assert t["digests"]["artifact"] == verify["sha256"]["artifact"]
        assert (
            t["digests"]["source"]["prototxt"] == verify["sha256"]["source"]["prototxt"]["sha256"]
        )
        assert t["latency_threads"] == verify["candidate"]["threads"] >= 1
        assert t["reference_version"] == verify["reference"]["version"]  # OpenCV's or Caffe's
    assert by["broken", "onnx"]["margins"]["prob"]["margin"] > 1  # out of tolerance ...
    assert by["broken", "onnx"]["margins"]["score"]["margin"] < 1  # ... and within it
    assert by["good", "onnx"]["margins"]["prob"]["margin"] < 1
    d = by["broken", "onnx"]["first_divergence"]
    assert (d["layer"], d["type"], d["tensor"]) == ("fc", "InnerProduct", "fc")  # its bias
    assert d["input"]["tensor"] == "pool1" and d["input"]["max_abs_error"] < 1e-4
    fp16, fp32 = by["good", "onnx-fp16"], by["good", "onnx"]
    sizes = [sum(f["bytes"] for f in t["files"]) for t in (fp16, fp32)]
    assert fp16["size_ratio_fp32"] == round(sizes[0] / sizes[1], 4)
    assert fp32["size_ratio_fp32"] is None
    p = report["provenance"]
    assert p["zoo"]["git"] == {"commit": _head(zoo_build), "dirty": True}
    assert p["started"] < p["finished"] and 4 < p["seconds"] < 600
    assert p["libraries"]["onnxruntime"] == onnxruntime.__version__
    assert set(p["libraries"]) >= {"onnx", "onnxruntime", "openvino", "opencv", "numpy"}
    assert p["machine"]["cores"] == os.cpu_count() and p["machine"]["cpu"]
    from pipelines import version

    assert p["zoomake"] == version()


def test_a_killed_report_writers_temporaries_are_swept(zoo_build):
    names = sorted(p.name for p in (zoo_build / "report").iterdir())
    assert [n for n in names if n.startswith(".")] == [], names
    assert set(REPORT_FILES) <= set(names)


def test_report_baseline_and_history(zoo_build):
    report = json.loads((zoo_build / "report" / "report.json").read_text())
    by = {(m["id"], t["name"]): t for m in report["models"] for t in m["targets"]}
    good = by["good", "onnx"]["baseline"]
    assert good["status"] == "changed"  # the baseline's mean was 120
    assert good["message"].startswith("output 'prob' drifted: max abs error")
    assert 1e-4 < good["max_abs_change"] < 1e-2
    assert by["good", "onnx-fp16"]["baseline"] == {"status": "new"}
    assert by["broken", "onnx"]["baseline"]["status"] == "changed"
    assert report["baseline"]["gone"] == ["retired:onnx"]
    assert report["baseline"]["counts"]["changed"] == 2
    history = json.loads((zoo_build / "report" / "history.json").read_text())
    assert len(history["runs"]) == 2  # the fixture wrote the report twice
    last = history["runs"][-1]["targets"]["broken:onnx"]
    assert last["margin"] == by["broken", "onnx"]["margins"]["prob"]["margin"]
    assert last["latency_ms"] == by["broken", "onnx"]["latency_ms"]
    assert by["broken", "onnx"]["history"]["margin"] == [r["targets"]["broken:onnx"]["margin"]
                                                         for r in history["runs"]]  # fmt: skip


def test_report_json_follows_its_schema(zoo_build, repo_root, tmp_path):
    import jsonschema

    schema = json.loads((repo_root / "schemas" / "report.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    report = json.loads((zoo_build / "report" / "report.json").read_text())
    assert report["schema_version"] == schema["properties"]["schema_version"]["const"]
    assert list(validator.iter_errors(report)) == []
    for bad in ({**report, "schema_version": 2}, {**report, "surprise": 1}):
        assert list(validator.iter_errors(bad))  # the schema is strict enough to catch these


def test_junit_xml(zoo_build):
    root = ET.parse(zoo_build / "report" / "junit.xml").getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "1", "1")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert sorted(cases) == [
        "verify:broken:onnx",
        "verify:gone:openvino",
        "verify:good:onnx",
        "verify:good:onnx-fp16",
    ]
    assert [c.tag for c in cases["verify:good:onnx"]] == ["properties"]  # no failure, no error
    assert float(cases["verify:good:onnx"].get("time")) > 0
    props, failure = cases["verify:broken:onnx"]
    assert failure.tag == "failure" and "FAILED output 'prob'" in failure.get("message")
    assert "\n" not in failure.get("message")  # one line; the body has every line
    assert "first divergence: layer fc (InnerProduct)" in failure.text
    report = json.loads((zoo_build / "report" / "report.json").read_text())
    (broken,) = next(m for m in report["models"] if m["id"] == "broken")["targets"]
    got = {p.get("name"): p.get("value") for p in props}
    assert float(got["output.prob.margin"]) == broken["margins"]["prob"]["margin"] > 1
    assert float(got["output.score.margin"]) < 1
    assert got["artifact.model.onnx.sha256"] == broken["digests"]["artifact"]["model.onnx"]
    assert got["first_divergence"].startswith("first divergence: layer fc (InnerProduct)")
    assert float(got["latency_ms"]) > 0 and int(got["latency_threads"]) >= 1
    _, error = cases["verify:gone:openvino"]
    assert error.tag == "error" and "missing" in error.get("message")
    suite_props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert suite_props["zoo.commit"] == _head(zoo_build) and suite_props["zoo.dirty"] == "true"
    assert suite_props["version.onnxruntime"] == onnxruntime.__version__
    assert int(suite_props["machine.cores"]) == os.cpu_count()


class TableRows(HTMLParser):
    """Rows of ``table#zoo``: model id, and per cell its classes, links and text (cells hold
    nested tables, which browsers give an implicit tbody: only depth-1 rows and cells count)."""

    def __init__(self):
        super().__init__()
        self.rows, self.tables, self.cell = [], [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.tables.append(a.get("id"))
        outer = self.tables == ["zoo"]
        if outer and tag == "tr" and "data-model" in a:
            self.rows.append({"model": a["data-model"], "cells": []})
        elif outer and tag == "td" and "cell" in (a.get("class") or "").split():
            self.cell = {
                "class": a["class"].split(),
                "status": a.get("data-status"),
                "bg": a.get("data-bg"),
                "links": [],
                "text": "",
            }
            self.rows[-1]["cells"].append(self.cell)
        elif self.cell is not None and tag == "a":
            self.cell["links"].append(a["href"])

    def handle_endtag(self, tag):
        if tag == "table" and self.tables:
            self.tables.pop()
        elif tag == "td" and self.tables == ["zoo"]:
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell["text"] += data


def _rows(html: str) -> dict[str, list[dict]]:
    parser = TableRows()
    parser.feed(html)
    return {r["model"]: r["cells"] for r in parser.rows}


def _check_table(rows: dict[str, list[dict]], page_dir: Path) -> None:
    # columns: onnx, openvino, onnx-fp16 (first appearance over the sorted models)
    assert list(rows) == ["broken", "gone", "good"]
    assert [c["status"] for c in rows["good"]] == ["passed", "absent", "passed"]
    assert [c["status"] for c in rows["broken"]] == ["failed", "absent", "absent"]
    assert [c["status"] for c in rows["gone"]] == ["absent", "not_built", "absent"]
    assert "failed" in rows["broken"][0]["class"] and "FAIL" in rows["broken"][0]["text"]
    assert "FAILED output 'prob'" in rows["broken"][0]["text"]
    assert "NOT BUILT" in rows["gone"][1]["text"]
    assert "PASS" in rows["good"][0]["text"] and " ms" in rows["good"][0]["text"]
    links = rows["good"][0]["links"]
    assert [Path(h).name for h in links] == ["verify.json", "model.onnx"]
    for href in links + rows["broken"][0]["links"]:
        assert not href.startswith(("/", "file:", "http")), href  # relative links only
        assert (page_dir / href).resolve().is_file(), href


def test_index_html_table(zoo_build):
    page = zoo_build / "report" / "index.html"
    html = page.read_text()
    assert "http://" not in html and "https://" not in html  # self-contained: no CDN, no link out
    assert html.count("<script") == 1 and "<script src" not in html
    assert "never built &lt;b&gt;&amp;&lt;/b&gt;" in html
    _check_table(_rows(html), page.parent)


def _chromium(*args: str, user_dir: Path) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={user_dir}",
    ]
    return subprocess.run(
        [str(CHROMIUM), *flags, *args], capture_output=True, text=True, timeout=120, check=True
    )


# Test-only probe appended to a copy of the page: records each cell's computed background, so
# the dumped DOM shows what the browser actually painted (the report itself has no script).
PROBE = """<script>
for (const td of document.querySelectorAll("td.cell"))
  td.dataset.bg = getComputedStyle(td).backgroundColor;
// the filter box, typed into: which models stay visible (then cleared again)
const filterBox = document.getElementById("filter");
for (const q of ["good", ""]) {
  filterBox.value = q;
  filterBox.dispatchEvent(new Event("input"));
  for (const el of document.querySelectorAll("[data-model]"))
    el.dataset["shown_" + (q || "all")] = el.hidden ? "no" : "yes";
}
</script>"""


class Elements(HTMLParser):
    """Every element of a page with its attributes and text (for DOM assertions)."""

    VOID = frozenset({"input", "br", "meta", "img", "hr", "link"})

    def __init__(self, html: str):
        super().__init__()
        self.all, self.open = [], []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        el = {"tag": tag, **{k: v or "" for k, v in attrs}, "text": "", "parent": None}
        el["parent"] = self.open[-1] if self.open else None
        self.all.append(el)
        if tag not in self.VOID:
            self.open.append(el)

    def handle_startendtag(self, tag, attrs):  # <circle .../>: an element without content
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self.open.pop()

    def handle_endtag(self, tag):
        if any(e["tag"] == tag for e in self.open):
            while self.open.pop()["tag"] != tag:
                pass

    def handle_data(self, data):
        for el in self.open:
            el["text"] += data

    def find(self, **attrs) -> list[dict]:
        return [e for e in self.all if all(e.get(k) == v for k, v in attrs.items())]

    def inside(self, el: dict, **attrs) -> list[dict]:
        found = []
        for e in self.all:
            p = e["parent"]
            while p is not None and p is not el:
                p = p["parent"]
            if p is el and all(e.get(k) == v for k, v in attrs.items()):
                found.append(e)
        return found


@pytest.mark.browser
def test_html_renders_in_chromium(zoo_build, tmp_path):
    if not CHROMIUM.is_file() or not os.access(CHROMIUM, os.X_OK):
        reason = f"{CHROMIUM} not found (apt-get install chromium chromium-driver)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the browser test: {reason}", pytrace=False)
        pytest.skip(reason)
    page = zoo_build / "report" / "index.html"
    probe = page.with_name("_probe.html")
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    try:
        dom = _chromium("--dump-dom", probe.as_uri(), user_dir=tmp_path / "profile").stdout
    finally:
        probe.unlink()
    rows = _rows(dom)
    _check_table(rows, page.parent)
    colors = {c["status"]: c["bg"] for cells in rows.values() for c in cells}
    assert colors["passed"] == "rgb(232, 245, 236)"  # the pass/fail classes are styled
    assert colors["failed"] == "rgb(252, 232, 230)"
    assert colors["not_built"] == "rgb(253, 243, 220)"
    shot = tmp_path / "report.png"
    _chromium(
        f"--screenshot={shot}",
        "--window-size=1400,1250",
        page.as_uri(),
        user_dir=tmp_path / "profile2",
    )
    assert shot.stat().st_size > 10_000
    if os.environ.get("ZOOMAKE_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["ZOOMAKE_KEEP_SCREENSHOT"])
    _check_dom(Elements(dom), json.loads((zoo_build / "report" / "report.json").read_text()))


def _check_dom(page: Elements, report: dict) -> None:
    """What the browser built: summary strip, problems (most urgent first, each linking to its
    cell), margins per output, provenance, the filter box at work."""
    counts = {e["data-count"]: e["text"] for e in page.all if "data-count" in e}
    assert counts == {"passed": "2 passed", "failed": "1 failed", "not_built": "1 not built",
                      "changed": "2 changed since baseline"}  # fmt: skip
    problems = page.inside(page.find(id="problems")[0], tag="li")
    assert [(p["data-kind"], p["id"]) for p in problems] == [
        ("failed", "problem-broken-onnx"),
        ("changed", "problem-good-onnx"),
        ("not_built", "problem-gone-openvino"),
        ("gone", "problem-retired-onnx"),
    ]
    failed, drift = problems[0], problems[1]
    assert "first divergence: layer fc (InnerProduct): max abs err" in failed["text"]
    assert "its input pool1 within" in failed["text"]
    assert "vs baseline: changed by" in drift["text"]
    for p in problems[:3]:  # each links to its cell in the table
        (link,) = page.inside(p, tag="a")
        (cell,) = page.find(id=link["href"].removeprefix("#"))
        assert cell["tag"] == "td" and cell["data-status"] == p["data-kind"].replace(
            "changed", "passed"
        )
    by = {(m["id"], t["name"]): t for m in report["models"] for t in m["targets"]}
    for (model_id, name), t in by.items():
        if not t["margins"]:
            continue
        (cell,) = page.find(id=f"cell-{model_id}-{name}")
        shown = {r["data-output"]: r for r in page.inside(cell, tag="tr") if "data-output" in r}
        assert set(shown) == set(t["margins"])
        for output, row in shown.items():
            m = t["margins"][output]
            assert float(row["data-margin"]) == m["margin"]
            assert row["class"] == ("ok" if m["passed"] else "bad")
            (bar,) = [e for e in page.inside(row, tag="span") if "bar" in e.get("class", "")]
            assert ("over" in bar["class"]) == (m["margin"] > 1)
            (cos,) = page.inside(row, tag="td", **{"class": "cosine"})
            assert float(cos["text"]) == pytest.approx(m["cosine_similarity"], rel=1e-2)
            (out,) = page.inside(row, tag="td", **{"class": "outside"})
            assert out["text"].startswith(f"{m['failing_elements']}/{m['elements']}")
        assert "threads)" in cell["text"]
        assert len(page.inside(cell, tag="svg")) == 2  # sparklines: margin and latency
    (good,) = page.find(id="cell-good-onnx")
    (drifted,) = [e for e in page.inside(good, tag="div") if e.get("data-baseline")]
    assert drifted["data-baseline"] == "changed" and "changed by" in drifted["text"]
    fields = {r["data-field"]: r["text"] for r in page.all if "data-field" in r}
    p = report["provenance"]
    assert {"started", "finished", "zoo", "zoomake", "python", "onnx", "onnxruntime", "openvino",
            "opencv", "numpy", "cpu"} <= set(fields)  # fmt: skip
    assert p["zoo"]["git"]["commit"][:12] in fields["zoo"] and "(dirty)" in fields["zoo"]
    assert fields["onnxruntime"].endswith(p["libraries"]["onnxruntime"])
    assert f"({p['machine']['cores']} cores)" in fields["cpu"]
    assert fields["finished"].endswith(p["finished"])
    rows = {e["data-model"]: e for e in page.all if e.get("data-model") and e["tag"] == "tr"}
    assert {k: r["data-shown_good"] for k, r in rows.items()} == {
        "broken": "no", "gone": "no", "good": "yes"}  # fmt: skip
    assert all(r["data-shown_all"] == "yes" for r in rows.values())


def test_build_state_overrides_what_the_files_say(zoo_build, tmp_path):
    """A chain task that failed or is out of date outranks a passing verify.json on disk."""
    from pipelines.build.state import BuildState

    zoo = {
        "good": make_recipe(targets={"onnx": {"format": "onnx", "precision": "fp32"},
                                     "onnx-fp16": {"format": "onnx", "precision": "fp16"}}),
    }  # fmt: skip
    state = BuildState(
        failed={"export:good:onnx": "good/onnx/model.onnx: disk full"},
        stale={"optimize:good": "is out of date (not run since its inputs changed)"},
        invalid={"bad": ["recipes/bad.yaml#/source: expected a mapping, got 3"]},
    )
    out = tmp_path / "report"
    write_report(zoo, zoo_build, out, state)
    report = json.loads((out / "report.json").read_text())
    assert report["summary"] == {"targets": 3, "passed": 0, "failed": 2, "not_built": 1}
    by = {(m["id"], t["name"]): t for m in report["models"] for t in m["targets"]}
    assert (by["good", "onnx"]["status"], by["good", "onnx"]["stage"]) == ("failed", "export")
    assert (
        by["good", "onnx"]["message"] == "export:good:onnx failed: good/onnx/model.onnx: disk full"
    )
    assert by["good", "onnx-fp16"]["status"] == "not_built"
    assert by["good", "onnx-fp16"]["message"].startswith("optimize:good is out of date")
    assert (by["bad", "recipe"]["status"], by["bad", "recipe"]["stage"]) == ("failed", "recipe")
    for t in by.values():  # the passing verify.json and model.onnx on disk are not linked
        assert t["files"] == [] and t["verify_json"] is None
    html = (out / "index.html").read_text()
    assert "href" not in html.split("<tbody>")[1] and "FAIL at export" in html
    assert "FAIL at recipe" in html and "recipes/bad.yaml#/source" in html
    junit = ET.parse(out / "junit.xml").getroot()
    cases = {c.get("name"): c for c in junit.iter("testcase")}
    assert cases["recipe:bad"].find("failure").get("type") == "InvalidRecipe"
    assert cases["verify:good:onnx-fp16"].find("error") is not None


def test_baseline_given_as_a_report_bundle_or_bad(zoo_build, tmp_path):
    """A report (its folder, its file, a file:// URL) compares artifact digests; a baseline
    that is none of those is one line in the report, not a failed report."""
    from pipelines.report.baseline import annotate

    report_dir = zoo_build / "report"
    for spec in (str(report_dir), str(report_dir / "report.json"), report_dir.as_uri()):
        report = json.loads((report_dir / "report.json").read_text())
        annotate(report, zoo_build, spec)
        states = {(m["id"], t["name"]): t["baseline"]["status"]
                  for m in report["models"] for t in m["targets"]}  # fmt: skip
        assert states[("good", "onnx")] == states[("broken", "onnx")] == "unchanged", spec
        assert report["baseline"]["kind"] == "report" and report["baseline"]["gone"] == []
    edited = json.loads((report_dir / "report.json").read_text())
    for m in edited["models"]:
        for t in m["targets"]:
            if (m["id"], t["name"]) == ("good", "onnx"):
                t["digests"]["artifact"]["model.onnx"] = "0" * 64
    (tmp_path / "old.json").write_text(json.dumps(edited))
    report = json.loads((report_dir / "report.json").read_text())
    annotate(report, zoo_build, str(tmp_path / "old.json"))
    by = {(m["id"], t["name"]): t for m in report["models"] for t in m["targets"]}
    assert by["good", "onnx"]["baseline"]["status"] == "changed"
    assert by["good", "onnx-fp16"]["baseline"]["status"] == "unchanged"
    for bad, says in ((tmp_path / "nothing", "no such build directory or report"),
                      (tmp_path, "neither a build directory")):  # fmt: skip
        report = json.loads((report_dir / "report.json").read_text())
        annotate(report, zoo_build, str(bad))
        assert says in report["baseline"]["error"] and report["baseline"]["counts"] == {}
