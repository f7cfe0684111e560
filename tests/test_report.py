"""pipelines.report.results: report.json, junit.xml and index.html of a small real build tree.

The tree holds one model whose targets pass, one whose artifact has a corrupted weight (fails)
and one that was never built (missing), each measured for real by pipelines.verify.measure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

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
    write_report(zoo, build, build / "report")
    return build


def test_report_json(zoo_build):
    report = json.loads((zoo_build / "report" / "report.json").read_text())
    assert report["summary"] == {"targets": 4, "passed": 2, "failed": 1, "not_built": 1}
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
    assert good["onnx-fp16"]["precision"] == "fp16"
    (broken,) = models["broken"]["targets"]
    assert broken["status"] == "failed" and broken["passed"] is False
    assert broken["message"].startswith("FAILED output 'prob': max abs error")
    assert broken["worst_error"]["prob"] > 0.01 and broken["worst_error"]["score"] < 1e-4
    (gone,) = models["gone"]["targets"]
    assert gone["status"] == "not_built" and gone["files"] == [] and gone["latency_ms"] is None
    assert "gone/openvino/verify.json is missing" in gone["message"]


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
    assert list(cases["verify:good:onnx"]) == []
    assert float(cases["verify:good:onnx"].get("time")) > 0
    (failure,) = cases["verify:broken:onnx"]
    assert failure.tag == "failure" and "FAILED output 'prob'" in failure.get("message")
    (error,) = cases["verify:gone:openvino"]
    assert error.tag == "error" and "missing" in error.get("message")


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
    assert "http://" not in html and "https://" not in html and "<script" not in html
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
</script>"""


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
        "--window-size=1300,700",
        page.as_uri(),
        user_dir=tmp_path / "profile2",
    )
    assert shot.stat().st_size > 10_000
    if os.environ.get("ZOOMAKE_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["ZOOMAKE_KEEP_SCREENSHOT"])


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
    assert cases["recipe:bad"][0].get("type") == "InvalidRecipe"
    assert cases["verify:good:onnx-fp16"][0].tag == "error"
