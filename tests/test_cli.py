"""`zoomake convert`: the one-shot CLI, run as a user runs it (a separate process)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest

from tests.caffe.helpers import (
    assert_caffe_outputs,
    assert_same_outputs,
    final_blobs,
    run_opencv,
    run_ort,
)


def zoomake(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "pipelines", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd)  # fmt: skip


def test_convert_real_model_matches_opencv(models_dir, tmp_path):
    proto, weights = models_dir / "mtcnn/det1.prototxt", models_dir / "mtcnn/det1.caffemodel"
    out = tmp_path / "det1.onnx"
    r = zoomake("convert", "--prototxt", proto, "--caffemodel", weights, "-o", out,
                "--input-shape", "data=1,3,24,30")  # fmt: skip
    assert r.returncode == 0, r.stderr
    model = onnx.load(out)
    onnx.checker.check_model(model, full_check=True)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 24, 30)).astype(np.float32)
    got = run_ort(model, {"data": x})
    expected = final_blobs(proto)
    assert_same_outputs(got, expected)
    want = run_opencv(proto, weights, {"data": x}, expected)
    for name in expected:
        np.testing.assert_allclose(got[name], want[name], atol=1e-5)


def test_convert_outputs_cut_and_opset(models_dir, tmp_path):
    out = tmp_path / "cut.onnx"
    r = zoomake("convert", "--prototxt", models_dir / "mtcnn/det1.prototxt", "--caffemodel",
                models_dir / "mtcnn/det1.caffemodel", "-o", out, "--outputs", "conv3",
                "--opset", "13")  # fmt: skip
    assert r.returncode == 0, r.stderr
    model = onnx.load(out)
    assert [o.name for o in model.graph.output] == ["conv3"]
    assert model.opset_import[0].version == 13


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--prototxt", "missing.prototxt", "-o", "x.onnx"], "missing.prototxt: --prototxt file not found"),
        (["-o", "x.onnx"], "no source"),
        (["--onnx", "a.onnx", "--prototxt", "b", "-o", "x.onnx"], "not both"),
    ],
)  # fmt: skip
def test_convert_usage_errors(tmp_path, args, needle):
    r = zoomake("convert", *args, cwd=tmp_path)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zoomake: error: ")
    assert needle in r.stderr


def test_unknown_output_suffix(models_dir, tmp_path):
    r = zoomake("convert", "--prototxt", models_dir / "mtcnn/det1.prototxt", "-o",
                tmp_path / "x.tflite")  # fmt: skip
    assert r.returncode == 1 and "suffix '.tflite'" in r.stderr


def test_bad_input_shape_is_usage_error(models_dir, tmp_path):
    r = zoomake("convert", "--prototxt", models_dir / "mtcnn/det1.prototxt", "-o",
                tmp_path / "x.onnx", "--input-shape", "data=1,3,x")  # fmt: skip
    assert r.returncode == 2 and "NAME=1,3,224,224" in r.stderr


def test_python_m_and_console_script_agree():
    r = zoomake("layers")
    assert r.returncode == 0
    assert "Convolution" in r.stdout and "Pooling" in r.stdout


def test_onnx_to_openvino_ir(models_dir, tmp_path):
    import openvino as ov

    src = models_dir / "ultraface/version-RFB-320_without_postprocessing.onnx"
    out = tmp_path / "ir" / "rfb.xml"
    r = zoomake("convert", "--onnx", src, "-o", out)
    assert r.returncode == 0, r.stderr
    assert out.is_file() and out.with_suffix(".bin").is_file()
    x = np.random.default_rng(1).uniform(-1, 1, (1, 3, 240, 320)).astype(np.float32)
    compiled = ov.Core().compile_model(str(out), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    got = compiled({"input": x})
    want = run_ort(onnx.load(src), {"input": x})
    ports = {port.get_any_name(): port for port in compiled.outputs}
    assert_same_outputs(ports, list(want))
    for name, value in want.items():
        np.testing.assert_allclose(got[ports[name]], value, atol=1e-4, err_msg=name)


def test_onnx_to_caffe_pair(models_dir, tmp_path):
    src = models_dir / "ultraface/version-slim-320_without_postprocessing.onnx"
    out = tmp_path / "slim.prototxt"
    r = zoomake("convert", "--onnx", src, "-o", out)
    assert r.returncode == 0, r.stderr
    x = np.random.default_rng(2).uniform(-1, 1, (1, 3, 240, 320)).astype(np.float32)
    want = run_ort(onnx.load(src), {"input": x})
    assert_caffe_outputs(out, list(want))
    got = run_opencv(out, out.with_suffix(".caffemodel"), {"input": x}, list(want))
    for name in want:
        np.testing.assert_allclose(got[name].reshape(want[name].shape), want[name], atol=1e-4)


def test_preprocessing_optimize_fp16_flags(models_dir, tmp_path):
    """uint8 NHWC input with mean/scale baked in, optimized, FP16 weights, float32 I/O."""
    proto, weights = models_dir / "mtcnn/det2.prototxt", models_dir / "mtcnn/det2.caffemodel"
    out = tmp_path / "det2.onnx"
    r = zoomake("convert", "--prototxt", proto, "--caffemodel", weights, "-o", out,
                "--mean", "127.5", "--multiply", "0.0078125", "--input-layout", "NHWC",
                "--input-dtype", "uint8", "--optimize", "--fp16")  # fmt: skip
    assert r.returncode == 0, r.stderr
    model = onnx.load(out)
    vi = model.graph.input[0]
    assert vi.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_value for d in vi.type.tensor_type.shape.dim] == [1, 24, 24, 3]
    assert all(o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for o in model.graph.output)
    raw = np.random.default_rng(3).integers(0, 256, (1, 24, 24, 3), dtype=np.uint8)
    got = run_ort(model, {"data": raw})
    x = ((raw.astype(np.float64).transpose(0, 3, 1, 2) - 127.5) * 0.0078125).astype(np.float32)
    expected = final_blobs(proto)
    assert_same_outputs(got, expected)
    want = run_opencv(proto, weights, {"data": x}, expected)
    for name in expected:
        np.testing.assert_allclose(got[name], want[name], atol=1e-2, err_msg=name)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--scale", "2", "--std", "3"], "--std/--scale_values and --scale both set the std of "
         "input (the image input): give one"),
        (["--multiply", "2", "--std", "3"], "input (the image input): --multiply and a divisor "
         "(--std/--scale/--scale_values) are mutually exclusive"),
        (["--mean", "1", "--mean_values", "2"], "--mean/--mean_values is given twice for input "
         "(the image input)"),
    ],
)  # fmt: skip
def test_one_divisor_or_multiplier_per_input(models_dir, tmp_path, flags, message):
    r = zoomake("convert", "--prototxt", models_dir / "mtcnn/det1.prototxt", "-o",
                tmp_path / "x.onnx", *flags)  # fmt: skip
    assert (r.returncode, r.stderr) == (1, f"zoomake: error: {message}\n")
    assert not list(tmp_path.iterdir())


def test_to_overrides_the_suffix(models_dir, tmp_path):
    out = tmp_path / "det1.model"
    r = zoomake("convert", "--prototxt", models_dir / "mtcnn/det1.prototxt", "--caffemodel",
                models_dir / "mtcnn/det1.caffemodel", "-o", out, "--to", "onnx")  # fmt: skip
    assert r.returncode == 0, r.stderr
    onnx.checker.check_model(onnx.load(out), full_check=True)


def test_build_runs_doit_on_the_zoo_of_the_current_directory(repo_root, tmp_path):
    shutil.copytree(repo_root / "recipes", tmp_path / "recipes")
    r = zoomake("build", "list", "--all", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert {"fetch", "convert", "optimize", "export", "measure", "verify", "report"} <= {
        line.split()[0] for line in r.stdout.splitlines() if line.strip()
    }
    ids = {p.stem for p in (repo_root / "recipes").glob("*.yaml")}
    assert {line.split()[0] for line in r.stdout.splitlines() if line.startswith("convert:")} == {
        f"convert:{i}" for i in ids
    }
    assert (tmp_path / "build" / ".doit.db").exists()  # the state lives in ./build


def test_build_recipes_and_build_flags(repo_root, tmp_path):
    (tmp_path / "zoo").mkdir()
    shutil.copy(repo_root / "recipes" / "mtcnn-det2.yaml", tmp_path / "zoo")
    r = zoomake("build", "--recipes", "zoo", "--build", "out", "list", "--all", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "convert:mtcnn-det2" in r.stdout.split() and "convert:mtcnn-det1" not in r.stdout
    assert (tmp_path / "out" / ".doit.db").exists() and not (tmp_path / "build").exists()


def test_build_without_recipes_folder_is_one_line(tmp_path):
    r = zoomake("build", cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        f"zoomake: error: {tmp_path / 'recipes'}: recipes folder not found; run zoomake build "
        "in a zoo directory (one with recipes/) or give --recipes DIR"
    ]


def test_validate_honours_zoomake_recipes_and_the_flag(repo_root, tmp_path):
    (tmp_path / "zoo").mkdir()
    shutil.copy(repo_root / "recipes" / "mtcnn-det2.yaml", tmp_path / "zoo")
    env = {**os.environ, "ZOOMAKE_RECIPES": str(tmp_path / "zoo")}
    r = subprocess.run([sys.executable, "-m", "pipelines", "validate"], cwd=repo_root, env=env,
                       capture_output=True, text=True)  # fmt: skip
    assert (r.returncode, r.stdout.strip()) == (0, "1 recipe(s) valid"), r.stderr
    r = zoomake("validate", "--recipes", tmp_path / "zoo", cwd=repo_root)
    assert (r.returncode, r.stdout.strip()) == (0, "1 recipe(s) valid"), r.stderr


def test_version():
    from pipelines import version

    r = zoomake("--version")
    assert (r.returncode, r.stdout.strip()) == (0, f"zoomake {version()}")
    assert version()[0].isdigit()


def test_validate_reports_every_error_and_exits_1(repo_root, tmp_path):
    good = (repo_root / "recipes" / "mtcnn-det1.yaml").read_text()
    bad = (
        good.replace("shape: [1, 3, 12, 12]", "shape: [1, 3]")
        .replace("onnx: {format: onnx", "onnx: {format: tflite")
        .replace("reverse_channels: false", "reverse_channels: maybe")
    )
    (tmp_path / "det1.yaml").write_text(bad)
    r = zoomake("validate", "det1.yaml", cwd=tmp_path)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert lines[:-1] == [
        "det1.yaml#/inputs/data/shape: expected array of 4 integers, got [1, 3]",
        "det1.yaml#/inputs/data/preprocess/reverse_channels: expected true or false, got 'maybe'",
        "det1.yaml#/targets/onnx/format: expected one of onnx, openvino, caffe, got 'tflite'",
    ]
    assert lines[-1] == "3 error(s) in 1 recipe(s)"


def test_validate_default_zoo(repo_root):
    r = zoomake("validate", cwd=repo_root)
    assert r.returncode == 0, r.stderr
    assert (
        r.stdout.strip() == f"{len(list((repo_root / 'recipes').glob('*.yaml')))} recipe(s) valid"
    )
