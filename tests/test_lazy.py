"""Big weights left in their files (converters.lazy): the build's streamed convert, optimize and
export steps give the bytes of the in-memory path, and the artifacts compute what OpenCV
computes from the Caffe model.

The model is a synthesized 24 MB VGG-style net (a 4.7 MB convolution followed by BatchNorm +
Scale, which the default passes fold from the weights left in the file; a 16.8 MB and a 2 MB
InnerProduct) with mean/std preprocessing, as the zoo's recipes have. Memory and time are the
benchmark's (bench/bench_convert.py), not asserted here.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from converters.io import load_onnx, save_onnx
from converters.lazy import load_lazy, placeholders, save_streamed, tensor_array

MID = """
name: "mid"
input: "data"
input_shape { dim: 1 dim: 3 dim: 16 dim: 16 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 64 pad: 1 kernel_size: 3 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
        convolution_param { num_output: 256 pad: 1 kernel_size: 3 } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv3" type: "Convolution" bottom: "pool2" top: "conv3"
        convolution_param { num_output: 512 pad: 1 kernel_size: 3 } }
layer { name: "bn3" type: "BatchNorm" bottom: "conv3" top: "conv3" }
layer { name: "scale3" type: "Scale" bottom: "conv3" top: "conv3" scale_param { bias_term: true } }
layer { name: "relu3" type: "ReLU" bottom: "conv3" top: "conv3" }
layer { name: "pool3" type: "Pooling" bottom: "conv3" top: "pool3"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "fc1" type: "InnerProduct" bottom: "pool3" top: "fc1"
        inner_product_param { num_output: 512 } }
layer { name: "relu4" type: "ReLU" bottom: "fc1" top: "fc1" }
layer { name: "fc2" type: "InnerProduct" bottom: "fc1" top: "fc2"
        inner_product_param { num_output: 1000 } }
"""
PREPROCESS = {"mean": [104.0, 117.0, 123.0], "std": 58.0}
INPUTS = {"data": {"shape": [1, 3, 16, 16], "preprocess": PREPROCESS}}
TARGETS = {
    "onnx": {"format": "onnx", "precision": "fp32", "opset": 17},
    "onnx-fp16": {"format": "onnx", "precision": "fp16", "opset": 17},
    "openvino": {"format": "openvino", "precision": "fp32"},
    "openvino-fp16": {"format": "openvino", "precision": "fp16"},
}


@pytest.fixture(scope="module")
def mid(tmp_path_factory):
    """The build's steps on the mid-size model twice: streamed (what the doit actions run)
    into ``streamed/``, and with every weight in memory (load_onnx/save_onnx, the single-file
    OpenVINO export) into ``memory/``."""
    from converters.fp16 import to_fp16
    from converters.openvino_export import export_openvino
    from pipelines.build.steps import convert_source, export, optimize
    from tests.caffe.synth import synthesize_weights

    tmp = tmp_path_factory.mktemp("mid")
    proto = tmp / "mid.prototxt"
    proto.write_text(MID)
    weights = synthesize_weights(proto, tmp / "mid.caffemodel", seed=4)
    files = {"prototxt": proto, "caffemodel": weights}
    s, m = tmp / "streamed", tmp / "memory"

    lazy = convert_source("caffe", files, INPUTS, None, 17, lazy=True)
    converted_placeholders = [t.name for t in placeholders(lazy)]
    save_streamed(lazy, s / "convert/model.onnx")
    save_onnx(convert_source("caffe", files, INPUTS, None, 17), m / "convert/model.onnx")

    read = load_lazy(s / "convert/model.onnx")
    read_placeholders = [t.name for t in placeholders(read)]
    save_streamed(optimize(read, None), s / "optimize/model.onnx")
    save_onnx(optimize(load_onnx(m / "convert/model.onnx"), None), m / "optimize/model.onnx")

    for name, target in TARGETS.items():
        export(s / "optimize/model.onnx", target, s / name)
        (m / name).mkdir()
        if target["format"] == "openvino":
            export_openvino(m / "optimize/model.onnx", m / name / "model.xml", target["precision"])
        else:
            model = load_onnx(m / "optimize/model.onnx")
            if target["precision"] == "fp16":
                model = to_fp16(model, keep_io_types=True)
            save_onnx(model, m / name / "model.onnx")
    return {"tmp": tmp, "files": files, "converted": converted_placeholders,
            "read": read_placeholders}  # fmt: skip


def test_the_weights_stay_in_their_files(mid):
    """The converter leaves the big weights in the caffemodel and the optimize step reads them
    from convert's file: no step had them in memory before writing."""
    assert mid["converted"] == ["conv3/W", "fc1/W", "fc2/W"]
    assert mid["read"] == ["conv3/W", "fc1/W", "fc2/W"]


STEP_FILES = ["convert/model.onnx", "optimize/model.onnx", "onnx/model.onnx", "onnx-fp16/model.onnx",
              "openvino/model.xml", "openvino/model.bin", "openvino-fp16/model.xml",
              "openvino-fp16/model.bin"]  # fmt: skip


@pytest.mark.parametrize("name", STEP_FILES)
def test_streamed_steps_write_the_in_memory_bytes(mid, name):
    streamed = (mid["tmp"] / "streamed" / name).read_bytes()
    assert streamed == (mid["tmp"] / "memory" / name).read_bytes()


def test_the_batchnorm_fold_read_the_weights_from_the_file(mid):
    """fold_batchnorm computed conv3's folded weights from the placeholder: the optimized
    graph has no BatchNormalization, and its conv3 weights are W * s of the converted file."""
    conv = load_onnx(mid["tmp"] / "streamed" / "convert/model.onnx")
    opt = load_onnx(mid["tmp"] / "streamed" / "optimize/model.onnx")
    assert "BatchNormalization" in {n.op_type for n in conv.graph.node}
    assert "BatchNormalization" not in {n.op_type for n in opt.graph.node}
    folded = next(n for n in opt.graph.node if n.op_type == "Conv" and "conv3" in n.input[1])
    w = next(t for t in opt.graph.initializer if t.name == folded.input[1])
    w0 = next(t for t in conv.graph.initializer if t.name == "conv3/W")
    assert w.name != "conv3/W" and list(w.dims) == list(w0.dims)
    assert not np.array_equal(onnx.numpy_helper.to_array(w), onnx.numpy_helper.to_array(w0))


def _reference(mid, x):
    """OpenCV's run of the Caffe model on the deployed input preprocessed in numpy."""
    from converters.preprocess import preprocess_numpy
    from tests.caffe.helpers import run_opencv

    files = mid["files"]
    feed = preprocess_numpy(x, PREPROCESS)
    return run_opencv(files["prototxt"], files["caffemodel"], {"data": feed}, ["fc2"])["fc2"]


# fp32: float32 rounding over a 4608- and an 8192-term sum; fp16: float16 weights and values
# (logits of magnitude ~10).
TOLERANCE = {"fp32": (1e-4, 1e-4), "fp16": (0.15, 0.02)}


@pytest.mark.parametrize("target", list(TARGETS))
def test_streamed_artifacts_compute_what_opencv_computes(mid, target):
    from tests.caffe.helpers import run_ort

    rng = np.random.default_rng(11)
    x = rng.uniform(0, 255, (1, 3, 16, 16)).astype(np.float32)
    want = _reference(mid, x)
    out = mid["tmp"] / "streamed" / target
    if TARGETS[target]["format"] == "onnx":
        got = run_ort((out / "model.onnx").read_bytes(), {"data": x})["fc2"]
    else:
        from tests.test_openvino_export import _run_ir

        got = _run_ir(out / "model.xml", {"data": x})["fc2"]
    atol, rtol = TOLERANCE[TARGETS[target]["precision"]]
    assert np.abs(want).max() > 1  # a real signal, not a dead net
    np.testing.assert_allclose(got, want, atol=atol, rtol=rtol)


# -- reading and writing any ONNX file lazily ------------------------------------------------------
def test_lazy_read_and_streamed_write_of_a_publisher_model(models_dir, tmp_path):
    """UltraFace RFB-320 as its publisher wrote it, with every initializer over 256 bytes left
    in the file (floats, int64 shapes): the values are those onnx reads, and writing it back
    gives the bytes of writing the model onnx.load read."""
    src = models_dir / "ultraface" / "version-RFB-320_without_postprocessing.onnx"
    full = load_onnx(src)
    lazy = load_lazy(src, limit=256)
    assert len(placeholders(lazy)) > 50
    for t, want in zip(lazy.graph.initializer, full.graph.initializer, strict=True):
        np.testing.assert_array_equal(tensor_array(t), onnx.numpy_helper.to_array(want))
    save_streamed(lazy, tmp_path / "streamed.onnx")
    save_onnx(full, tmp_path / "plain.onnx")
    assert (tmp_path / "streamed.onnx").read_bytes() == (tmp_path / "plain.onnx").read_bytes()


def test_lazy_read_of_a_file_with_its_own_external_data_resolves_it(tmp_path, models_dir):
    """A user's file with external data is read by load_onnx (its location checks): the
    weights come in memory, no placeholder points at a file the model names."""
    model = load_onnx(models_dir / "ultraface" / "version-RFB-320_without_postprocessing.onnx")
    onnx.save(model, tmp_path / "ext.onnx", save_as_external_data=True, size_threshold=0)
    got = load_lazy(tmp_path / "ext.onnx", limit=256)
    assert placeholders(got) == []
    assert got == load_onnx(tmp_path / "ext.onnx")


def test_lazy_read_of_a_file_that_is_no_onnx_is_load_onnx_error(tmp_path):
    from converters.errors import ConversionError

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\xff" * (2 << 20))
    with pytest.raises(ConversionError) as lazy_err:
        load_lazy(bad)
    with pytest.raises(ConversionError) as plain_err:
        load_onnx(bad)
    assert str(lazy_err.value) == str(plain_err.value)


def test_float16_range_check_skips_inf_and_nan_like_numpy(tmp_path, monkeypatch):
    """The range check's max |x| over finite values, chunk by chunk from the file (small
    chunks: some hold an inf or a NaN, some not), equals numpy's over the whole array."""
    from converters.io import FileRange
    from converters.lazy import HalfBytes, max_abs_finite

    rng = np.random.default_rng(2)
    w = rng.normal(0, 100, 10_000).astype(np.float32)
    w[[5, 4000]] = np.inf
    w[7000] = -np.inf
    w[[6, 9000]] = np.nan
    w[8500] = -60000.5
    path = tmp_path / "w.bin"
    path.write_bytes(b"pad" + w.tobytes())
    want = float(np.max(np.abs(w[np.isfinite(w)])))
    monkeypatch.setattr(HalfBytes, "CHUNK", 1000)
    half = HalfBytes(FileRange(path, 3, w.nbytes))
    assert half.max_abs_finite() == want == 60000.5
    assert max_abs_finite(w, chunk=1000) == want
    got = np.frombuffer(half.read(), dtype="<f2")
    np.testing.assert_array_equal(got, w.astype(np.float16))  # inf, -inf and NaN kept
