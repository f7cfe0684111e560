"""The source model's reference run once per model (``reference:<id>``), read by every measure.

Artifacts are real conversions of a tiny Caffe net (``tests.verify_helpers``) run in
onnxruntime; the reference is OpenCV DNN on the Caffe files, stored by ``run_reference``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from pipelines.runtimes.base import Port
from pipelines.verify import measure as verify
from pipelines.verify.golden import golden_sets, read_tensors
from pipelines.verify.measure import gate, measure
from pipelines.verify.reference import reference_ports
from tests.verify_helpers import built_with_reference


@pytest.fixture
def built(tmp_path):
    return built_with_reference(tmp_path, samples=3, seed=7, reference="opencv")


def _no_live_reference(monkeypatch):
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise AssertionError("measure ran the reference although reference:<id> stored it")

    monkeypatch.setattr(verify, "open_reference", refuse)
    return calls


def test_measure_reads_the_stored_reference_and_agrees_with_a_live_run(built, monkeypatch):
    recipe, build, out_dir, sources = built
    live = measure("m", recipe, "onnx", sources, out_dir)  # no reference dir: runs OpenCV
    live_refs = [read_tensors(d, "reference") for d in golden_sets(out_dir)]
    assert live["passed"] and live["reference"]["stored_sets"] == 0

    _no_live_reference(monkeypatch)
    stored = measure("m", recipe, "onnx", sources, out_dir, reference_dir=build / "m" / "reference")
    assert stored["passed"] and stored["reference"]["stored_sets"] == 3
    assert stored["reference"]["runtime"] == live["reference"]["runtime"] == "opencv"
    assert stored["outputs"] == live["outputs"]
    refs = [read_tensors(d, "reference") for d in golden_sets(out_dir)]
    assert len(refs) == 3
    for a, b in zip(refs, live_refs, strict=True):
        assert a.keys() == b.keys()
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])
    recorded = stored["sha256"]["reference"]
    assert "../reference/reference.json" in recorded
    assert "../reference/test_data_set_2/reference_0.pb" in recorded
    assert gate("m", "onnx", out_dir / "verify.json", recipe, sources)


def test_a_stored_set_of_other_inputs_is_not_used(built, monkeypatch):
    """Another seed gives other deployed inputs: measure runs the reference itself for them."""
    recipe, build, out_dir, sources = built
    reseeded = {**recipe, "verify": {**recipe["verify"], "seed": 8}}
    report = measure(
        "m", reseeded, "onnx", sources, out_dir, reference_dir=build / "m" / "reference"
    )
    assert report["passed"] and report["reference"]["stored_sets"] == 0
    assert "reference" not in report["sha256"]
    _no_live_reference(monkeypatch)
    with pytest.raises(AssertionError, match="ran the reference"):
        measure("m", reseeded, "onnx", sources, out_dir, reference_dir=build / "m" / "reference")


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def test_gate_fails_when_a_reference_file_measure_read_changes(built, capsys):
    recipe, build, out_dir, sources = built
    ref_dir = build / "m" / "reference"
    measure("m", recipe, "onnx", sources, out_dir, reference_dir=ref_dir)
    assert gate("m", "onnx", out_dir / "verify.json", recipe, sources)
    capsys.readouterr()
    _flip(ref_dir / "test_data_set_1" / "reference_0.pb")
    assert gate("m", "onnx", out_dir / "verify.json", recipe, sources) is False
    err = capsys.readouterr().err
    assert re.search(
        r"reference/test_data_set_1/reference_0\.pb: sha256 [0-9a-f]{64} differs .* the "
        r"reference file measure verified",
        err,
    ), err
    # ... and measure refuses the stored reference in one line, rather than trust it.
    with pytest.raises(Exception, match=r"reference_0\.pb: sha256 .* the one reference\.json"):
        measure("m", recipe, "onnx", sources, out_dir, reference_dir=ref_dir)


def test_reference_index_records_runtime_sets_and_digests(built):
    build = built[1]
    index = json.loads((build / "m" / "reference" / "reference.json").read_text())
    assert index["runtime"] == "opencv" and index["requested"] == "opencv"
    assert [s["seed"] for s in index["sets"]] == [[7, 0], [7, 1], [7, 2]]
    assert index["inputs"] == [{"name": "data", "shape": [1, 3, 8, 8], "dtype": "float32"}]
    assert index["sha256"]["source"]["caffemodel"]["path"] == "../source/tiny.caffemodel"
    names = {
        f"test_data_set_{n}/{f}"
        for n in range(3)
        for f in ("input_0.pb", "reference_0.pb", "reference_1.pb")
    }
    assert set(index["sha256"]["golden"]) == names  # the tiny net has two outputs


def test_reference_ports_follow_the_recipe_shape_layout_and_dtype():
    src = [
        Port("data", (1, 3, 4, 6), np.dtype(np.float32)),
        Port("aux", None, np.dtype(np.float32)),
    ]
    recipe = {
        "inputs": {
            "data": {"preprocess": {"layout": "NHWC", "dtype": "uint8"}},
            "aux": {"shape": [1, 5, 7, 2], "layout": "NHWC"},
        }
    }
    data, aux = reference_ports(recipe, src)
    assert (data.shape, data.dtype) == ((1, 4, 6, 3), np.uint8)
    assert (aux.shape, aux.dtype) == ((1, 2, 5, 7), np.float32)
