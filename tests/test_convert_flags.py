"""Model Optimizer's and mmconvert's flags mean what they meant there (README table).

Each test converts MTCNN's P-Net with one flag and compares the result with OpenCV's Caffe
runtime fed the input as Model Optimizer's documented meaning of that flag prescribes, written
out here in numpy (not with zoomake's preprocessing code). Deployed inputs are pixel values.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from converters.caffe.proto import caffe_pb2
from tests.caffe.helpers import run_opencv, run_ort

ATOL = 1e-4  # float32 conversion of a tiny net; the inputs are pixels (0..255)


def zoomake(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "pipelines", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=300)  # fmt: skip


@pytest.fixture
def pnet(models_dir) -> tuple[Path, Path]:
    return models_dir / "mtcnn/det1.prototxt", models_dir / "mtcnn/det1.caffemodel"


def pixels(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, shape).astype(np.float32)


def convert(tmp_path, pnet, *flags, out="m.onnx") -> Path:
    proto, weights = pnet
    # --no-verify: the test's own comparison is the check (zoomake's is tested in test_cli).
    r = zoomake("convert", "--prototxt", proto, "--caffemodel", weights, "-o", tmp_path / out,
                "--no-verify", *flags)  # fmt: skip
    assert r.returncode == 0, r.stderr
    return tmp_path / out


def check(model: Path, pnet, x: np.ndarray, x_orig: np.ndarray, atol=ATOL) -> dict:
    """The converted model on the deployed ``x`` equals Caffe (OpenCV) on ``x_orig``."""
    got = run_ort(onnx.load(model), {"data": x})
    want = run_opencv(*pnet, {"data": x_orig.astype(np.float32)}, list(got))
    for name in got:
        np.testing.assert_allclose(got[name], want[name], atol=atol, rtol=1e-3, err_msg=name)
    return got


def test_scale_divides_like_model_optimizer(tmp_path, pnet):
    x = pixels((1, 3, 12, 12))
    a = convert(tmp_path, pnet, "--scale", "128", out="scale.onnx")
    got = check(a, pnet, x, x / 128.0)
    b = convert(tmp_path, pnet, "--std", "128", out="std.onnx")
    same = run_ort(onnx.load(b), {"data": x})
    for name in got:
        np.testing.assert_array_equal(got[name], same[name])


def test_scale_takes_one_number(tmp_path, pnet):
    r = zoomake("convert", "--prototxt", pnet[0], "-o", tmp_path / "x.onnx", "--scale", "1,2,3")
    assert r.returncode == 2 and "per-channel divisors are --scale_values or --std" in r.stderr


def test_multiply_is_the_recipe_scale(tmp_path, pnet):
    x = pixels((1, 3, 12, 12))
    model = convert(tmp_path, pnet, "--mean", "127.5", "--multiply", "0.0078125")
    check(model, pnet, x, (x - 127.5) * 0.0078125)
    meta = {p.key: p.value for p in onnx.load(model).metadata_props}
    assert json.loads(meta["zoomake.preprocess"]) == {"data": {"mean": 127.5, "scale": 0.0078125}}


@pytest.mark.parametrize("spelling", ["[104,117,123]", "data[104,117,123]", "(104,117,123)"])
def test_mean_values(tmp_path, pnet, spelling):
    x = pixels((1, 3, 12, 12))
    model = convert(tmp_path, pnet, "--mean_values", spelling)
    check(model, pnet, x, x - np.array([104, 117, 123], np.float64).reshape(1, 3, 1, 1))


def test_mean_with_brackets(tmp_path, pnet):
    x = pixels((1, 3, 12, 12))
    model = convert(tmp_path, pnet, "--mean", "[104,117,123]")
    check(model, pnet, x, x - np.array([104, 117, 123], np.float64).reshape(1, 3, 1, 1))


def test_scale_values_divide_per_channel(tmp_path, pnet):
    x = pixels((1, 3, 12, 12))
    model = convert(tmp_path, pnet, "--mean_values", "[127,128,129]", "--scale_values",
                    "[58.4,57.1,57.4]")  # fmt: skip
    mean = np.array([127, 128, 129], np.float64).reshape(1, 3, 1, 1)
    std = np.array([58.4, 57.1, 57.4], np.float64).reshape(1, 3, 1, 1)
    check(model, pnet, x, (x - mean) / std)


def test_reverse_input_channels(tmp_path, pnet):
    """MO: the IR takes the channels reversed; mean/scale apply in the original order after."""
    x = pixels((1, 3, 12, 12))
    model = convert(tmp_path, pnet, "--reverse_input_channels", "--mean_values", "[10,20,30]")
    mean = np.array([10, 20, 30], np.float64).reshape(1, 3, 1, 1)
    check(model, pnet, x, x[:, ::-1] - mean)


@pytest.mark.parametrize("flag, value", [("--input_shape", "[1,3,24,30]"),
                                         ("--input_shape", "data[1,3,24,30]"),
                                         ("--input-shape", "1,3,24,30"),
                                         ("--input-shape", "data=1,3,24,30"),
                                         ("--inputShape", "1,3,24,30")])  # fmt: skip
def test_input_shape(tmp_path, pnet, flag, value):
    x = pixels((1, 3, 24, 30)) / 128.0
    got = check(convert(tmp_path, pnet, flag, value), pnet, x, x)
    assert got["prob1"].shape == (1, 2, 7, 10)


def test_input_with_shape(tmp_path, pnet):
    x = pixels((1, 3, 24, 30)) / 128.0
    check(convert(tmp_path, pnet, "--input", "data[1,3,24,30]"), pnet, x, x)
    r = zoomake("convert", "--prototxt", pnet[0], "-o", tmp_path / "x.onnx", "--input", "conv1")
    assert r.returncode == 1
    assert "--input conv1: not an input of the model (data)" in r.stderr


def test_input_model_and_input_proto(tmp_path, pnet):
    proto, weights = pnet
    x = pixels((1, 3, 12, 12)) / 128.0
    out = tmp_path / "a.onnx"
    r = zoomake("convert", "--input_model", weights, "--input_proto", proto, "-o", out)
    assert r.returncode == 0, r.stderr
    check(out, pnet, x, x)
    # Without --input_proto, Model Optimizer reads the .prototxt of the same name beside it.
    shutil.copy(proto, tmp_path / "pnet.prototxt")
    shutil.copy(weights, tmp_path / "pnet.caffemodel")
    r = zoomake("convert", "--input_model", tmp_path / "pnet.caffemodel", "-o", tmp_path / "b.onnx")
    assert r.returncode == 0, r.stderr
    check(tmp_path / "b.onnx", pnet, x, x)


def _write_mean(path: Path, image: np.ndarray) -> Path:
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend([1, *image.shape])
    blob.data.extend(image.astype(np.float32).ravel().tolist())
    path.write_bytes(blob.SerializeToString())
    return path


def test_mean_file_and_offsets(tmp_path, pnet):
    image = np.random.default_rng(7).uniform(90, 130, (3, 20, 24))
    mean = _write_mean(tmp_path / "mean.binaryproto", image)
    x = pixels((1, 3, 12, 12))
    # Default: the centres agree, crop offset ((20 - 12) // 2, (24 - 12) // 2) = (4, 6).
    model = convert(tmp_path, pnet, "--mean_file", mean, out="center.onnx")
    check(model, pnet, x, x - image[None, :, 4:16, 6:18])
    # Model Optimizer's -mo (a,b): a is added to the row index and b to the column index
    # (mo/front/caffe/loader.py: data[i, x + offset_x, y + offset_y], x running over H).
    model = convert(tmp_path, pnet, "--mean_file", mean, "--mean_file_offsets", "(2,9)",
                    out="offset.onnx")  # fmt: skip
    check(model, pnet, x, x - image[None, :, 2:14, 9:21])


def test_output_cuts_the_graph(tmp_path, pnet):
    x = pixels((1, 3, 12, 12)) / 128.0
    model = convert(tmp_path, pnet, "--output", "conv3")
    assert [o.name for o in onnx.load(model).graph.output] == ["conv3"]
    check(model, pnet, x, x)


def test_output_names_blobs_not_the_file(tmp_path, pnet):
    r = zoomake("convert", "--prototxt", pnet[0], "--output", "x.onnx", cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr == ("zoomake: error: no output: give -o FILE or --output_dir DIR (--output "
                        "names the blobs to cut at, as in Model Optimizer)\n")  # fmt: skip


def _ir_outputs(xml: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    import openvino as ov

    compiled = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    result = compiled({"data": x})
    return {port.get_any_name(): result[port] for port in compiled.outputs}


def _ir_weight_types(xml: Path) -> set[str]:
    import re

    return set(re.findall(r'type="Const"[^>]*>\s*<data element_type="(\w+)"', xml.read_text()))


@pytest.mark.parametrize("flags, fp16", [(["--compress_to_fp16"], True),
                                         (["--compress_to_fp16=True"], True),
                                         (["--compress_to_fp16=False"], False),
                                         (["--data_type", "FP16"], True),
                                         ([], False)])  # fmt: skip
def test_compress_to_fp16(tmp_path, pnet, flags, fp16):
    xml = convert(tmp_path, pnet, *flags, out="m.xml")
    x = pixels((1, 3, 12, 12)) / 128.0
    got = _ir_outputs(xml, x)
    want = run_opencv(*pnet, {"data": x}, list(got))
    for name in got:
        np.testing.assert_allclose(got[name], want[name], atol=1e-2 if fp16 else ATOL)
    types = _ir_weight_types(xml)
    assert ("f16" in types) == fp16 and types, types


def test_output_dir_and_model_name(tmp_path, pnet):
    proto, weights = pnet
    r = zoomake("convert", "--prototxt", proto, "--caffemodel", weights,
                "--output_dir", tmp_path / "ir", "--model_name", "pnet")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "ir").iterdir()) == ["pnet.bin", "pnet.xml"]
    x = pixels((1, 3, 12, 12)) / 128.0
    got = _ir_outputs(tmp_path / "ir" / "pnet.xml", x)
    want = run_opencv(*pnet, {"data": x}, list(got))
    for name in got:
        np.testing.assert_allclose(got[name], want[name], atol=ATOL)
    # Without --model_name: the source's base name, as Model Optimizer does.
    r = zoomake("convert", "--prototxt", proto, "--caffemodel", weights, "--output_dir",
                tmp_path / "ir2")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "ir2").iterdir()) == ["det1.bin", "det1.xml"]


def test_o_is_a_file_not_a_directory(tmp_path, pnet):
    (tmp_path / "out").mkdir()
    r = zoomake("convert", "--prototxt", pnet[0], "-o", tmp_path / "out")
    assert r.returncode == 1
    assert "-o names the output file (e.g. model.onnx); for a directory use --output_dir" in (
        r.stderr
    )


@pytest.mark.parametrize("order", ["documented", "swapped"])
def test_mmconvert_flags(tmp_path, pnet, order):
    proto, weights = pnet
    files = (
        ["-in", proto, "-iw", weights] if order == "documented" else ["-iw", proto, "-in", weights]
    )
    out = tmp_path / "out.onnx"
    r = zoomake("convert", "-sf", "caffe", *files, "-df", "onnx", "-om", out,
                "--inputShape", "1,3,24,24")  # fmt: skip
    assert r.returncode == 0, r.stderr
    x = pixels((1, 3, 24, 24)) / 128.0
    got = check(out, pnet, x, x)
    assert got["prob1"].shape == (1, 2, 7, 7)


def test_mmconvert_source_framework_is_checked(tmp_path, pnet):
    r = zoomake("convert", "-sf", "onnx", "-in", pnet[0], "-om", tmp_path / "x.onnx")
    assert (r.returncode, r.stderr) == (
        1, "zoomake: error: -sf onnx but the source files are caffe\n"
    )  # fmt: skip
