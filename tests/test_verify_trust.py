"""Verification that cannot be fooled (issue 9): every expected output is compared, the reference
does not share the code under test, and the gate re-derives its verdict from hashed files.

Artifacts are real conversions of tiny Caffe nets (``tests.verify_helpers``), run in
onnxruntime; the reference is OpenCV DNN on the Caffe files.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from pipelines.report.results import target_entry
from pipelines.verify.golden import read_set
from pipelines.verify.measure import gate, measure
from tests.verify_helpers import (
    build_sources,
    corrupt,
    deployed_model,
    fake_build,
    initializer_feeding,
    make_recipe,
    write_tiny,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def tiny(tmp_path):
    return write_tiny(tmp_path / "src")


def _measure(tmp_path, sources, recipe, model=None):
    build = tmp_path / "build"
    out_dir = fake_build(build, "m", sources, recipe, model)
    return build, out_dir, build_sources(build, "m", sources)


# -- the full expected output set -----------------------------------------------------------------
def _renamed(model: onnx.ModelProto, old: str, new: str) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for node in out.graph.node:
        node.output[:] = [new if o == old else o for o in node.output]
    for vi in out.graph.output:
        if vi.name == old:
            vi.name = new
    return out


def _reshaped(model: onnx.ModelProto, name: str, shape: list[int]) -> onnx.ModelProto:
    """``name`` is still an output, with the same values in another shape."""
    out = _renamed(model, name, f"{name}/flat")
    out.graph.output[[o.name for o in out.graph.output].index(f"{name}/flat")].name = name
    out.graph.initializer.append(numpy_helper.from_array(np.array(shape, np.int64), "shape"))
    out.graph.node.append(helper.make_node("Reshape", [f"{name}/flat", "shape"], [name]))
    vi = next(o for o in out.graph.output if o.name == name)
    vi.type.CopyFrom(helper.make_tensor_type_proto(onnx.TensorProto.FLOAT, shape))
    return out


# recipe outputs, artifact transformation, the failure lines (in order)
CASES = {
    "dropped": (
        None,
        lambda tiny, recipe: deployed_model(tiny, make_recipe(outputs=["prob"])),
        ["FAILED output 'score': the artifact does not produce it (it produces 'prob')"],
    ),
    "extra": (
        ["prob"],
        lambda tiny, recipe: deployed_model(tiny, make_recipe()),
        [
            "FAILED output 'score': the artifact produces it, but it is not one of the recipe's "
            "outputs ('prob')"
        ],
    ),
    "renamed": (
        None,
        lambda tiny, recipe: _renamed(deployed_model(tiny, recipe), "score", "scores"),
        [
            "FAILED output 'score': the artifact does not produce it (it produces 'prob', "
            "'scores')",
            "FAILED output 'scores': the artifact produces it, but it is not one of the source "
            "model's outputs ('prob', 'score')",
        ],
    ),
    "reshaped": (
        None,
        lambda tiny, recipe: _reshaped(deployed_model(tiny, recipe), "prob", [1, 10, 1, 1]),
        ["FAILED output 'prob': shape [1, 10, 1, 1] differs from the reference's [1, 10]"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_output_set_mismatch_fails_with_one_line_naming_it(tiny, tmp_path, capsys, case):
    """Fails on the old measure for dropped/extra/renamed: it compared only the outputs the
    artifact had. The expected set is the recipe's outputs, else the source model's."""
    outputs, make, lines = CASES[case]
    recipe = make_recipe(**({"outputs": outputs} if outputs else {}))
    build, out_dir, sources = _measure(tmp_path, tiny, recipe, make(tiny, recipe))
    report = measure("m", recipe, "onnx", sources, out_dir)  # records, does not raise
    assert report["passed"] is False
    assert report["failures"] == lines
    data = json.loads((out_dir / "verify.json").read_text())
    assert data["failures"] == lines
    assert gate("m", "onnx", out_dir / "verify.json", recipe, sources) is False
    assert capsys.readouterr().err.splitlines() == [f"verify:m:onnx: {line}" for line in lines]
    entry = target_entry("m", "onnx", recipe["targets"]["onnx"], build)
    assert entry["status"] == "failed" and entry["message"] == "; ".join(lines)


def test_matching_output_set_passes_and_golden_holds_the_reference(tiny, tmp_path):
    recipe = make_recipe()
    _, out_dir, sources = _measure(tmp_path, tiny, recipe)
    report = measure("m", recipe, "onnx", sources, out_dir)
    assert report["passed"], report["failures"]
    assert report["expected_outputs"] == {
        "names": ["prob", "score"],
        "from": "the source model's outputs",
    }
    from pipelines.verify.golden import read_tensors

    _, got = read_set(out_dir / "test_data_set_0")
    ref = read_tensors(out_dir / "test_data_set_0", "reference")
    assert list(ref) == ["prob", "score"]
    np.testing.assert_allclose(got["prob"], ref["prob"], atol=1e-5)


# -- an independent reference ---------------------------------------------------------------------
PRE = {"mean": [120.0, 110.0, 100.0], "std": [60.0, 55.0, 50.0], "reverse_channels": True}


def test_embedding_that_misreads_the_recipe_fails_verify(tiny, tmp_path, monkeypatch):
    """Break the embedding's factor computation (std multiplied instead of divided), convert and
    measure with the bug in place: the old reference used the same ``_factors`` and agreed
    (green); the README transcription of the reference does not."""
    import converters.preprocess as pp

    right = pp._factors

    def misread(where, spec, channels):
        mean, factor, divide = right(where, spec, channels)
        return mean, factor, False if divide else divide

    recipe = make_recipe(inputs={"data": {"shape": [1, 3, 8, 8], "preprocess": PRE}})
    _, out_dir, sources = _measure(tmp_path, tiny, recipe)
    assert measure("m", recipe, "onnx", sources, out_dir)["passed"]  # the real embedding
    monkeypatch.setattr(pp, "_factors", misread)
    _, out_dir, sources = _measure(tmp_path / "bug", tiny, recipe)
    report = measure("m", recipe, "onnx", sources, out_dir)
    assert report["passed"] is False
    assert report["failures"][0].startswith("FAILED output 'prob': max abs error")


def test_reference_preprocessing_by_hand():
    from pipelines.verify.reference_preprocess import preprocess

    # README example, one NHWC uint8 pixel, deployed RGB [10, 20, 30] -> original BGR [30, 20, 10]
    x = np.array([10, 20, 30], np.uint8).reshape(1, 1, 1, 3)
    spec = {"mean": [104, 117, 123], "std": [2, 4, 8], "reverse_channels": True,
            "layout": "NHWC", "dtype": "uint8"}  # fmt: skip
    got = preprocess(x, spec)
    assert got.dtype == np.float32 and got.shape == (1, 3, 1, 1)
    np.testing.assert_array_equal(got.ravel(), [(30 - 104) / 2, (20 - 117) / 4, (10 - 123) / 8])
    # scale multiplies; one number applies to every channel
    x = np.full((1, 2, 1, 1), 200.0, np.float32)
    np.testing.assert_array_equal(preprocess(x, {"mean": 127.5, "scale": 0.5}).ravel(), [36.25] * 2)
    with pytest.raises(Exception, match=r"preprocess.mean has 2 values for 3 channels"):
        preprocess(np.zeros((1, 3, 1, 1)), {"mean": [1, 2]})
    # a mean image (C, H', W'): center crop offset ((5 - 3) // 2, (4 - 2) // 2) = (1, 1), or given
    image = np.arange(20, dtype=np.float64).reshape(1, 5, 4)
    x = np.zeros((1, 1, 3, 2), np.float32)
    centered = preprocess(x, {"mean_file": {}}, image)
    np.testing.assert_array_equal(centered[0, 0], -image[0, 1:4, 1:3])
    at = preprocess(x, {"mean_file": {}, "mean_file_offset": [2, 0]}, image)
    np.testing.assert_array_equal(at[0, 0], -image[0, 2:5, 0:2])


# Modules the reference side of measure runs; none may reach the code it checks.
REFERENCE_SIDE = ["pipelines/verify/reference_preprocess.py", "pipelines/verify/samples.py",
                  "pipelines/runtimes/opencv.py", "pipelines/runtimes/caffe.py",
                  "pipelines/verify/reference.py"]  # fmt: skip
CODE_UNDER_TEST = ("converters.preprocess", "converters.caffe.convert", "converters.caffe.prototxt")


@pytest.mark.parametrize("path", REFERENCE_SIDE)
def test_reference_side_imports_no_code_under_test(path):
    imported = set()
    for node in ast.walk(ast.parse((REPO / path).read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
    assert not {m for m in imported if m.startswith(CODE_UNDER_TEST)}, imported


PHASES = """
name: "phases"
input: "data"
input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "drop" type: "Power" bottom: "conv1" top: "conv1" include { phase: TRAIN }
        power_param { scale: 9 } }
layer { name: "act" type: "TanH" bottom: "conv1" top: "conv1" include { phase: TEST } }
layer { name: "lvl" type: "Power" bottom: "conv1" top: "conv1" include { min_level: 1 }
        power_param { shift: 3 } }
layer { name: "neg" type: "Power" bottom: "conv1" top: "conv1" exclude { phase: TEST }
        power_param { scale: -1 } }
"""
PAIR = """
layer { name: "head_train" type: "Power" bottom: "conv1" top: "out" include { phase: TRAIN }
        power_param { shift: 1 } }
layer { name: "head_test" type: "Power" bottom: "conv1" top: "out" include { phase: TEST }
        power_param { scale: 2 } }
"""


def _phase_net(tmp_path, prototxt):
    rng = np.random.default_rng(5)
    weights = {"conv1": [rng.standard_normal((4, 3, 3, 3)) * 0.3, rng.standard_normal(4)]}
    sources = write_tiny(tmp_path / "src", prototxt=prototxt, weights=weights)
    return sources, make_recipe(inputs={"data": {"shape": [1, 3, 8, 8]}})


def test_caffe_reference_builds_the_test_phase_itself(tmp_path):
    """OpenCV DNN ignores include/exclude: it ran the TRAIN-only layers (and refuses the TRAIN/TEST
    pair writing 'out'), so the old reference disagreed with a correct conversion."""
    sources, recipe = _phase_net(tmp_path, PHASES + PAIR)
    _, out_dir, roles = _measure(tmp_path, sources, recipe)
    report = measure("m", recipe, "onnx", roles, out_dir)
    assert report["passed"], report["failures"]
    assert list(report["outputs"]) == ["out"]
    outputs = read_set(out_dir / "test_data_set_0")[1]
    assert report["outputs"]["out"]["max_abs_error"] < 1e-5
    assert np.abs(outputs["out"]).max() <= 2.0  # 2 * tanh: the TEST layers only


def test_caffe_phase_rule_of_the_converter_is_not_the_references(tmp_path, monkeypatch):
    """A converter that builds every layer regardless of phase: the old reference shared its
    rule and OpenCV ran the same layers (green); the reference's own Caffe rule says no."""
    import converters.caffe.convert as convert

    sources, recipe = _phase_net(tmp_path, PHASES)
    monkeypatch.setattr(convert, "is_active", lambda layer: True)
    _, out_dir, roles = _measure(tmp_path, sources, recipe)
    report = measure("m", recipe, "onnx", roles, out_dir)
    assert report["passed"] is False
    assert report["failures"][0].startswith("FAILED output 'conv1': max abs error")


# -- the gate re-derives everything ---------------------------------------------------------------
@pytest.fixture
def measured(tiny, tmp_path):
    recipe = make_recipe()
    _, out_dir, sources = _measure(tmp_path, tiny, recipe)
    report = measure("m", recipe, "onnx", sources, out_dir)
    assert report["passed"] and gate("m", "onnx", out_dir / "verify.json", recipe, sources)
    return recipe, out_dir, sources


def _flip(path: Path, offset: int = -1) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _edit(out_dir: Path, fn) -> None:
    path = out_dir / "verify.json"
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


TAMPER = {
    "model.onnx byte": (
        lambda d, s: _flip(d / "model.onnx"),
        r"model\.onnx: sha256 [0-9a-f]{64} differs from [0-9a-f]{64}, the artifact file",
    ),
    "golden output byte": (
        lambda d, s: _flip(d / "test_data_set_1" / "output_0.pb"),
        r"test_data_set_1/output_0\.pb: sha256 .* the golden file measure verified",
    ),
    "golden reference byte": (
        lambda d, s: _flip(d / "test_data_set_0" / "reference_1.pb"),
        r"test_data_set_0/reference_1\.pb: sha256 .* the golden file",
    ),
    "golden file removed": (
        lambda d, s: (d / "test_data_set_0" / "output_1.pb").unlink(),
        r"output_1\.pb: golden file missing \(measured with sha256 [0-9a-f]{64}\)",
    ),
    "golden file added": (
        lambda d, s: (d / "test_data_set_0" / "output_2.pb").write_bytes(b""),
        r"output_2\.pb: golden file not among the files measure hashed",
    ),
    "source byte": (
        lambda d, s: _flip(s["caffemodel"], 20),
        r"tiny\.caffemodel: sha256 .* the source file measure verified",
    ),
    "digests removed": (
        lambda d, s: _edit(d, lambda v: v.pop("sha256")),
        r"verify\.json records no sha256 digests",
    ),
    "numbers edited": (
        lambda d, s: _edit(d, lambda v: v["outputs"]["prob"].update(max_abs_error=0.0)),
        r"the recorded per-output results differ from those its golden data gives",
    ),
}


@pytest.mark.parametrize("how", sorted(TAMPER))
def test_gate_fails_on_any_change_since_measure(measured, capsys, how):
    recipe, out_dir, sources = measured
    change, pattern = TAMPER[how]
    change(out_dir, sources)
    assert gate("m", "onnx", out_dir / "verify.json", recipe, sources) is False
    err = capsys.readouterr().err
    assert err.startswith("verify:m:onnx: ") and "Traceback" not in err
    assert re.search(pattern, err), err


def test_hand_edited_pass_fails(tiny, tmp_path, capsys):
    """A failing measurement edited to "passed": true (failures cleared) fails the gate: the
    verdict comes from the golden data, not from the field."""
    recipe = make_recipe()
    model = deployed_model(tiny, recipe)
    bad = corrupt(model, initializer_feeding(model, "Conv", "score", 2), (0,), 5.0)
    build, out_dir, sources = _measure(tmp_path, tiny, recipe, bad)
    assert measure("m", recipe, "onnx", sources, out_dir)["passed"] is False
    _edit(out_dir, lambda v: v.update(passed=True, failures=[]))
    assert gate("m", "onnx", out_dir / "verify.json", recipe, sources) is False
    # The report does not show the forged pass either.
    entry = target_entry("m", "onnx", recipe["targets"]["onnx"], build, recipe)
    assert entry["status"] == "failed" and "records passed=true" in entry["message"]
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].endswith(
        "records passed=true, but its golden data fails the recipe's tolerances"
    )
    assert lines[1].startswith("verify:m:onnx: FAILED output 'score': max abs error")


def test_golden_rewritten_with_matching_digest_still_fails(measured, capsys):
    """Even a consistent forgery of one golden output (new tensor, its sha256 recorded) fails:
    the comparison is redone from the files and no longer matches what verify.json says."""
    import hashlib

    recipe, out_dir, sources = measured
    path = out_dir / "test_data_set_0" / "output_0.pb"
    tensor = onnx.TensorProto()
    tensor.ParseFromString(path.read_bytes())
    values = numpy_helper.to_array(tensor) + 0.5
    path.write_bytes(numpy_helper.from_array(values, tensor.name).SerializeToString())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    _edit(out_dir, lambda v: v["sha256"]["golden"].update({"test_data_set_0/output_0.pb": digest}))
    assert gate("m", "onnx", out_dir / "verify.json", recipe, sources) is False
    err = capsys.readouterr().err
    assert "records passed=true, but its golden data fails" in err
    assert "FAILED output 'prob': max abs error" in err


def test_gate_applies_the_recipes_tolerances(tiny, tmp_path, capsys):
    """Weights rounded to float16 (errors ~1e-4): measured under loose tolerances, the gate
    passes with that recipe and fails with a tighter one (its tolerances are the recipe's, not
    what verify.json recorded)."""
    recipe = make_recipe(verify={"samples": 2, "seed": 7,
                                 "tolerances": {"fp32": {"atol": 0.01, "rtol": 0.01}}})  # fmt: skip
    model = deployed_model(tiny, recipe)
    for t in model.graph.initializer:
        arr = numpy_helper.to_array(t).astype(np.float16).astype(np.float32)
        t.CopyFrom(numpy_helper.from_array(arr, t.name))
    _, out_dir, sources = _measure(tmp_path, tiny, recipe, model)
    assert measure("m", recipe, "onnx", sources, out_dir)["passed"]
    assert gate("m", "onnx", out_dir / "verify.json", recipe, sources) is True
    tight = make_recipe(verify={"samples": 2, "seed": 7,
                                "tolerances": {"fp32": {"atol": 1e-7, "rtol": 0.0}}})  # fmt: skip
    assert gate("m", "onnx", out_dir / "verify.json", tight, sources) is False
    err = capsys.readouterr().err
    assert "records passed=true, but its golden data fails the recipe's tolerances" in err
    assert "FAILED output 'prob': max abs error" in err
