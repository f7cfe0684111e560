"""`zoomake convert`: the one-shot CLI, run as a user runs it (a separate process)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest

from tests.caffe.helpers import run_opencv, run_ort


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
    want = run_opencv(proto, weights, {"data": x}, list(got))
    for name in got:
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
    assert r.returncode == 2 and "NAME=D1,D2" in r.stderr


def test_python_m_and_console_script_agree():
    r = zoomake("layers")
    assert r.returncode == 0
    assert "Convolution" in r.stdout and "Pooling" in r.stdout
