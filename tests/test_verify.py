"""pipelines.verify.measure: measure an artifact against its source model, golden data, the gate.

References are real: OpenCV DNN runs the Caffe files, onnxruntime/OpenVINO run the artifacts.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from pipelines.errors import ZoomakeError
from pipelines.recipes.load import load_recipe
from pipelines.verify.golden import golden_sets, read_set
from pipelines.verify.measure import gate, measure
from pipelines.verify.reference_preprocess import preprocess
from tests.caffe.helpers import caffe_available, run_caffe, run_opencv
from tests.verify_helpers import (
    build_sources,
    corrupt,
    deployed_model,
    fake_build,
    initializer_feeding,
    make_recipe,
    write_tiny,
)


@pytest.fixture
def tiny(tmp_path):
    return write_tiny(tmp_path / "src")


@pytest.fixture
def det1(models_dir, repo_root, tmp_path):
    """The real MTCNN P-Net with its zoo recipe, converted as the build does."""
    recipe = load_recipe(repo_root / "recipes" / "mtcnn-det1.yaml")
    sources = {
        "prototxt": models_dir / "mtcnn" / "det1.prototxt",
        "caffemodel": models_dir / "mtcnn" / "det1.caffemodel",
    }
    model = deployed_model(sources, recipe)
    build = tmp_path / "build"
    out_dir = fake_build(build, "mtcnn-det1", sources, recipe, model)
    return recipe, model, build_sources(build, "mtcnn-det1", sources), out_dir


def test_det1_passes_and_records_everything(det1):
    recipe, _, sources, out_dir = det1
    report = measure("mtcnn-det1", recipe, "onnx", sources, out_dir)
    data = json.loads((out_dir / "verify.json").read_text())
    assert next(iter(data)) == "passed" and data["passed"] is True and report == data
    assert set(data["outputs"]) == {"conv4-2", "prob1"}
    for out in data["outputs"].values():
        assert out["passed"] and out["failing_elements"] == 0
        assert out["max_abs_error"] < 1e-5 and out["cosine_similarity"] > 0.999999
        assert (out["atol"], out["rtol"]) == (1e-5, 1e-4)  # the recipe's fp32 preset
    assert [s["seed"] for s in data["inputs"]["sets"]] == [[0, 0], [0, 1], [0, 2]]
    assert data["inputs"]["deployed"][0]["values"] == "uniform [0, 255]"
    assert {"onnxruntime", "opencv", "openvino", "numpy"} <= set(data["runtimes"])
    latency = data["candidate"]["latency_ms"]
    assert latency["median"] > 0 and 5 <= latency["runs"] <= 50
    assert latency["min"] <= latency["median"]
    if latency["ci95"] is not None:  # from 6 runs on
        assert latency["min"] <= latency["ci95"][0] <= latency["median"] <= latency["ci95"][1]
    # verify.reference: auto = real Caffe once it is set up (CI sets it up).
    assert data["reference"]["runtime"] == ("caffe" if caffe_available() else "opencv")
    assert data["reference"]["requested"] == "auto"
    assert [p.name for p in golden_sets(out_dir)] == [f"test_data_set_{i}" for i in range(3)]
    assert gate("mtcnn-det1", "onnx", out_dir / "verify.json", recipe, sources) is True


def test_golden_files_round_trip(det1):
    """input_K/output_K.pb are named TensorProtos; the artifact reproduces its outputs on them
    and OpenCV on the preprocessed inputs gives the same numbers."""
    recipe, model, sources, out_dir = det1
    measure("mtcnn-det1", recipe, "onnx", sources, out_dir)
    import onnxruntime as ort

    sess = ort.InferenceSession(str(out_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    for set_dir in golden_sets(out_dir):
        tensor = onnx.TensorProto()
        tensor.ParseFromString((set_dir / "input_0.pb").read_bytes())
        x = numpy_helper.to_array(tensor)
        assert tensor.name == "data" and x.dtype == np.float32 and x.shape == (1, 3, 12, 12)
        assert x.min() >= 0 and x.max() <= 255 and x.std() > 50
        inputs, outputs = read_set(set_dir)
        assert list(outputs) == [o.name for o in model.graph.output]
        got = dict(zip(list(outputs), sess.run(list(outputs), inputs), strict=True))
        spec = recipe["inputs"]["data"]["preprocess"]
        ref = run_opencv(
            sources["prototxt"],
            sources["caffemodel"],
            {"data": preprocess(x, spec)},
            list(outputs),
        )
        for name, value in outputs.items():
            np.testing.assert_array_equal(got[name], value)
            np.testing.assert_allclose(value, ref[name], atol=1e-5, rtol=1e-4)


def test_corrupted_weight_fails_and_names_the_output(det1, capsys):
    recipe, model, sources, out_dir = det1
    weight = initializer_feeding(model, "Conv", "conv4-1")  # feeds prob1 only
    from converters.io import save_onnx

    save_onnx(corrupt(model, weight, (1, 0, 0, 0), 5.0), out_dir / "model.onnx")
    report = measure("mtcnn-det1", recipe, "onnx", sources, out_dir)
    assert report["passed"] is False
    prob1, box = report["outputs"]["prob1"], report["outputs"]["conv4-2"]
    assert box["passed"] and box["max_abs_error"] < 1e-5
    assert not prob1["passed"] and prob1["max_abs_error"] > 0.01
    message, where = report["failures"]
    assert message.startswith("FAILED output 'prob1': max abs error ")
    # run layer by layer, the corrupted convolution is the first to leave the tolerance
    assert where.startswith("first divergence: layer conv4-1 (Convolution): max abs err "), where
    assert report["first_divergence"]["tensor"] == "conv4-1"
    assert report["first_divergence"]["input"]["max_abs_error"] < 1e-4
    # The worst element's values are the golden output and the OpenCV reference at that index.
    worst = prob1["worst"]
    inputs, outputs = read_set(out_dir / f"test_data_set_{worst['sample']}")
    idx = tuple(worst["index"])
    assert outputs["prob1"][idx] == pytest.approx(worst["candidate"], abs=0)
    spec = recipe["inputs"]["data"]["preprocess"]
    run_reference = run_caffe if caffe_available() else run_opencv
    ref = run_reference(
        sources["prototxt"],
        sources["caffemodel"],
        {"data": preprocess(inputs["data"], spec)},
        ["prob1"],
    )["prob1"]
    assert ref[idx] == pytest.approx(worst["reference"], rel=1e-6)
    assert f"at index {idx} of sample {worst['sample']}" in message
    assert gate("mtcnn-det1", "onnx", out_dir / "verify.json", recipe, sources) is False
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("verify:mtcnn-det1:onnx: FAILED output 'prob1': max abs error")
    assert "> atol 1e-05 + rtol 0.0001 * |reference|" in lines[0]
    assert lines[1] == f"verify:mtcnn-det1:onnx: {where}"  # the gate's failure names the layer


def _fp16_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """Every initializer rounded to float16 and back: the weight error of an fp16 artifact."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for t in out.graph.initializer:
        arr = numpy_helper.to_array(t)
        if arr.dtype == np.float32:
            t.CopyFrom(numpy_helper.from_array(arr.astype(np.float16).astype(np.float32), t.name))
    return out


def test_fp16_presets_and_per_output_overrides(tiny, tmp_path):
    """fp16-rounded weights (errors ~1e-4): the target's precision picks the preset; presets
    the recipe omits come from the schema; a per-output override applies to that output only."""
    targets = {
        "a": {"format": "onnx", "precision": "fp32"},
        "b": {"format": "onnx", "precision": "fp16"},
    }
    tight = {"samples": 2, "seed": 7, "tolerances": {"fp32": {"atol": 1e-6, "rtol": 1e-5}}}
    recipe = make_recipe(targets=targets, verify=tight)
    model = _fp16_weights(deployed_model(tiny, recipe))
    build = tmp_path / "build"
    for name in targets:
        fake_build(build, "m", tiny, recipe, model, target=name)
    sources = build_sources(build, "m", tiny)
    fp32 = measure("m", recipe, "a", sources, build / "m" / "a")
    fp16 = measure("m", recipe, "b", sources, build / "m" / "b")
    assert fp32["passed"] is False and fp16["passed"] is True
    assert fp32["tolerances"]["outputs"]["score"] == {"atol": 1e-6, "rtol": 1e-5}
    for out in fp16["outputs"].values():
        assert (out["atol"], out["rtol"]) == (0.01, 0.01)  # schema default fp16 preset
        assert 1e-6 < out["max_abs_error"] < 1e-3
    defaults = measure("m", make_recipe(targets=targets), "a", sources, build / "m" / "a")
    assert defaults["tolerances"]["outputs"]["prob"] == {"atol": 1e-4, "rtol": 1e-3}
    strict = make_recipe(
        targets=targets,
        verify={
            "samples": 2,
            "seed": 7,
            "outputs": {
                "score": {"fp16": {"atol": 1e-7, "rtol": 1e-6}},
                "prob": {"fp16": {"rtol": 0.5}},
            },
        },
    )
    report = measure("m", strict, "b", sources, build / "m" / "b")
    assert not report["outputs"]["score"]["passed"] and report["outputs"]["prob"]["passed"]
    assert report["tolerances"]["outputs"]["score"] == {"atol": 1e-7, "rtol": 1e-6}
    assert report["tolerances"]["outputs"]["prob"] == {"atol": 0.01, "rtol": 0.5}


def test_uint8_nhwc_bgr_inputs(tiny, tmp_path):
    """A uint8 NHWC deployed input: integer pixels, laid out NHWC in the golden data, and the
    reference really applies the recipe's preprocessing (a mismatched recipe fails)."""
    pre = {
        "mean": [120.0, 110.0, 100.0],
        "std": [60.0, 55.0, 50.0],
        "reverse_channels": True,
        "layout": "NHWC",
        "dtype": "uint8",
    }
    recipe = make_recipe(inputs={"data": {"shape": [1, 3, 8, 8], "preprocess": pre}})
    build = tmp_path / "build"
    out_dir = fake_build(build, "m", tiny, recipe)
    sources = build_sources(build, "m", tiny)
    report = measure("m", recipe, "onnx", sources, out_dir)
    assert report["passed"], report["failures"]
    assert report["inputs"]["deployed"] == [
        {
            "name": "data",
            "shape": [1, 8, 8, 3],
            "dtype": "uint8",
            "layout": "NHWC",
            "values": "uniform [0, 255]",
        }
    ]
    inputs, _ = read_set(out_dir / "test_data_set_0")
    x = inputs["data"]
    assert x.dtype == np.uint8 and x.shape == (1, 8, 8, 3) and x.min() < 20 and x.max() > 235
    # Same artifact, recipe claiming no channel reversal: the reference now differs.
    wrong = make_recipe(
        inputs={"data": {"shape": [1, 3, 8, 8], "preprocess": {**pre, "reverse_channels": False}}}
    )
    assert measure("m", wrong, "onnx", sources, out_dir)["passed"] is False


def test_sample_image_file_and_mean_file(tiny, tmp_path):
    """verify.files images are decoded, resized and fed (after the random samples); a mean
    image (mean_file:<input>) is subtracted on the reference side."""
    from converters.caffe.proto import caffe_pb2

    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    png = tmp_path / "src" / "cat.png"
    cv2.imwrite(str(png), image)
    mean = caffe_pb2.BlobProto()
    mean.shape.dim.extend([3, 10, 10])
    mean.data.extend(rng.uniform(90, 140, 300).astype(np.float32).tolist())
    mean_path = tmp_path / "src" / "mean.binaryproto"
    mean_path.write_bytes(mean.SerializeToString())
    ref = {"url": "https://example.org/cat.png", "sha256": "0" * 64, "size": png.stat().st_size}
    recipe = make_recipe(
        inputs={"data": {"shape": [1, 3, 8, 8], "preprocess": {"mean_file": ref, "scale": 0.02}}},
        verify={"samples": 1, "seed": 0, "files": [ref]},
    )
    files = {**tiny, "mean_file:data": mean_path}
    build = tmp_path / "build"
    out_dir = fake_build(build, "m", files, recipe)
    shutil.copy(png, build / "m" / "source" / "cat.png")
    report = measure("m", recipe, "onnx", build_sources(build, "m", files), out_dir)
    assert report["passed"], report["failures"]
    assert report["inputs"]["sets"][1] == {
        "set": "test_data_set_1",
        "kind": "file",
        "file": "cat.png",
    }
    fed = read_set(out_dir / "test_data_set_1")[0]["data"]
    want = cv2.resize(image, (8, 8), interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1)[None]
    np.testing.assert_array_equal(fed, want.astype(np.float32))


def test_caffe_target_runs_in_opencv_with_multi_top_layers(tmp_path):
    """A Caffe artifact: outputs addressed through their last writing layer and top index."""
    proto = """
name: "multi"
input: "data"
input_shape { dim: 1 dim: 4 dim: 3 dim: 3 }
layer { name: "sl" type: "Slice" bottom: "data" top: "a" top: "b" slice_param { slice_point: 1 } }
layer { name: "r" type: "ReLU" bottom: "b" top: "b" }
"""
    sources = write_tiny(tmp_path / "src", prototxt=proto, weights={})
    recipe = make_recipe(
        inputs={"data": {"shape": [1, 4, 3, 3]}},
        targets={"caffe": {"format": "caffe", "precision": "fp32"}},
    )
    out_dir = tmp_path / "build" / "m" / "caffe"
    out_dir.mkdir(parents=True)
    shutil.copy(sources["prototxt"], out_dir / "model.prototxt")
    shutil.copy(sources["caffemodel"], out_dir / "model.caffemodel")
    report = measure("m", recipe, "caffe", sources, out_dir)
    assert report["passed"] and report["candidate"]["runtime"] == "opencv"
    assert report["inputs"]["deployed"][0]["values"] == "standard normal"
    inputs, outputs = read_set(out_dir / "test_data_set_0")
    np.testing.assert_array_equal(outputs["a"], inputs["data"][:, :1])
    np.testing.assert_array_equal(outputs["b"], np.maximum(inputs["data"][:, 1:], 0))


def test_onnx_source_with_cut_point_and_openvino_target(tiny, tmp_path):
    """ONNX source (reference: onnxruntime, intermediate 'pool1' exposed) and an OpenVINO IR
    candidate run with the f32 precision hint."""
    import openvino as ov

    from converters.io import save_onnx
    from tests.verify_helpers import convert_tiny

    src_onnx = tmp_path / "src" / "tiny.onnx"
    save_onnx(convert_tiny(tiny), src_onnx)
    recipe = make_recipe(
        source={"framework": "onnx"},
        outputs=["pool1", "prob"],
        targets={"ov": {"format": "openvino", "precision": "fp32"}},
    )
    cut_onnx = tmp_path / "cut.onnx"
    save_onnx(deployed_model(tiny, recipe), cut_onnx)
    out_dir = tmp_path / "build" / "m" / "ov"
    out_dir.mkdir(parents=True)
    ov.save_model(ov.convert_model(cut_onnx), str(out_dir / "model.xml"), compress_to_fp16=False)
    report = measure("m", recipe, "ov", {"onnx": src_onnx}, out_dir)
    assert report["passed"], report["failures"]
    assert list(report["outputs"]) == ["pool1", "prob"]
    assert report["candidate"]["runtime"] == "openvino"
    assert report["reference"]["runtime"] == "onnxruntime"
    assert report["outputs"]["prob"]["topk"]["exact_agreement"] == 1.0


def test_real_errors_raise(tiny, tmp_path):
    recipe = make_recipe()
    with pytest.raises(ZoomakeError, match=r"model\.onnx: model file not found"):
        measure("m", recipe, "onnx", tiny, tmp_path / "nowhere")
    out_dir = fake_build(tmp_path / "build", "m", tiny, recipe)
    (out_dir / "verify.json").write_text('{"passed": true}')  # from an earlier run
    with pytest.raises(ZoomakeError, match="needs the source caffemodel"):
        measure("m", recipe, "onnx", {"prototxt": tiny["prototxt"]}, out_dir)
    assert not (out_dir / "verify.json").exists()


def test_gate_messages(tmp_path, capsys):
    recipe = make_recipe()
    assert gate("m", "t", tmp_path / "verify.json", recipe) is False
    assert "verify:m:t: " in capsys.readouterr().err
    # A bare "passed": true is not a verification: nothing it claims can be re-derived.
    (tmp_path / "verify.json").write_text(json.dumps({"passed": True}))
    assert gate("m", "t", tmp_path / "verify.json", recipe) is False
    assert "records no sha256 digests" in capsys.readouterr().err
    (tmp_path / "verify.json").write_text("{not json")
    assert gate("m", "t", tmp_path / "verify.json", recipe) is False
    assert "unreadable" in capsys.readouterr().err


def test_shape_of_golden_paths_is_the_model_zoo_layout(det1):
    recipe, _, sources, out_dir = det1
    measure("mtcnn-det1", recipe, "onnx", sources, out_dir)
    names = sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*.pb"))
    assert names == [
        f"test_data_set_{n}/{f}"
        for n in range(3)
        for f in ("input_0.pb", "output_0.pb", "output_1.pb", "reference_0.pb", "reference_1.pb")
    ]
    assert not [p for p in out_dir.iterdir() if p.name.startswith(".")]  # no temp leftovers
    assert Path(out_dir / "verify.json").is_file()


# -- the comparison rule (pipelines.verify.metrics), on hand-made numbers -------------------------------
def _check(got, ref, atol=0.1, rtol=0.5, topk=None):
    from pipelines.verify.metrics import OutputCheck

    check = OutputCheck("y", atol, rtol, topk)
    check.add(0, np.asarray(got, np.float32), np.asarray(ref, np.float32))
    return check.result()


def test_rule_is_atol_plus_rtol_times_reference():
    # allowed = 0.1 + 0.5 * |ref|: 0.6 at ref 1, 0.1 at ref 0 (values exact in float32)
    assert _check([1.5, 0.0625], [1.0, 0.0])["passed"]
    r = _check([1.75, 0.0625], [1.0, 0.0])
    assert not r["passed"] and r["failing_elements"] == 1
    assert r["worst"] == {
        "sample": 0,
        "index": [0],
        "candidate": 1.75,
        "reference": 1.0,
        "allowed": 0.6,
    }
    assert r["max_abs_error"] == 0.75 and r["max_rel_error"] == 0.75
    assert "max abs error 0.75 > atol 0.1 + rtol 0.5 * |reference| at index (0,)" in r["message"]
    # only the failing element is reported, not a larger error that its rtol allows
    r = _check([30.0, 0.25], [20.0, 0.0])
    assert r["failing_elements"] == 1 and r["worst"]["index"] == [1]
    assert r["max_abs_error"] == 10.0


def test_nan_and_inf_pass_only_where_the_reference_has_them():
    nan, inf = float("nan"), float("inf")
    ok = _check([nan, inf, 1.0], [nan, inf, 1.0])
    assert ok["passed"] and ok["nan"] == {"candidate": 1, "reference": 1}
    bad = _check([nan, 1.0, 1.0], [0.5, 1.0, 1.0])
    assert not bad["passed"] and bad["worst"]["candidate"] == "nan"
    assert "got nan, reference 0.5" in bad["message"]
    assert not _check([-inf, 1.0], [inf, 1.0])["passed"]
    json.dumps(bad, allow_nan=False)  # verify.json stays strict JSON


def test_cosine_similarity_and_shape_mismatch():
    assert _check([1.0, 2.0], [2.0, 4.0], atol=10)["cosine_similarity"] == pytest.approx(1.0)
    assert _check([1.0, 0.0], [0.0, 1.0], atol=10)["cosine_similarity"] == pytest.approx(0.0)
    r = _check([[1.0, 2.0]], [1.0, 2.0])
    assert not r["passed"] and "shape [1, 2] differs from the reference's [2]" in r["message"]


def test_topk_agreement_up_to_ties():
    # within the element tolerance everywhere, but the top-1 class changes: fails on top-k
    r = _check([[0.5, 0.55, 0.0]], [[0.9, 0.1, 0.0]], atol=0.5, rtol=0.0, topk=1)
    assert r["failing_elements"] == 0 and not r["passed"] and r["topk"]["top1_agreement"] == 0
    assert "top-1 classes disagree" in r["message"] and "got [1], reference [0]" in r["message"]
    # a near-tie swapped within tolerance is not a disagreement
    r = _check([[0.4999, 0.5, 0.0]], [[0.5, 0.4999, 0.0]], atol=1e-3, rtol=0.0, topk=1)
    assert r["passed"] and r["topk"]["exact_agreement"] == 0.0
    # top-k over 4-D (N, C, 1, 1) outputs, k capped at the class count
    r = _check(np.eye(3)[None, :, :1, None], np.eye(3)[None, :, :1, None], topk=5)
    assert r["topk"]["k"] == 5 and r["topk"]["rows"] == 1 and r["passed"]
