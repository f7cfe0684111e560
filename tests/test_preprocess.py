"""Preprocessing embedded in the model == the original Caffe model on numpy-preprocessed input.

Each case builds a tiny Caffe net, converts it, embeds the preprocessing, feeds the *raw*
deployed input to onnxruntime, and feeds ``reference(raw)`` to OpenCV DNN running the original
Caffe files: ``pipelines.verify.reference_preprocess``, the verifier's own transcription of the README
formula, which shares no code with the embedding under test. Weights are small (std 1e-3) so outputs are O(1) and an absolute 1e-5 is
a real float32 bound even with raw pixel values up to 255.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from converters.caffe.convert import caffe_to_onnx
from converters.caffe.proto import caffe_pb2
from converters.errors import ConversionError
from converters.preprocess import embed_preprocessing, load_mean_file, preprocess_numpy
from pipelines.verify.reference_preprocess import load_mean_image
from pipelines.verify.reference_preprocess import preprocess as reference
from tests.caffe.helpers import run_opencv, run_ort, write_net

ATOL = 1e-5
H, W = 12, 10

NET = """
name: "pre"
layer {{ name: "data" type: "Input" top: "data"
        input_param {{ shape {{ dim: 1 dim: 3 dim: {h} dim: {w} }} }} }}
layer {{ name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param {{ num_output: 4 kernel_size: 3 pad: {pad} stride: 1 }} }}
layer {{ name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }}
"""

POOL_FIRST = """
name: "pool_first"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 3 dim: 12 dim: 10 } } }
layer { name: "pool1" type: "Pooling" bottom: "data" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
"""


def _conv_net(tmp_path: Path, pad: int = 0, bias: bool = True):
    rng = np.random.default_rng(1)
    text = NET.format(h=H, w=W, pad=pad)
    if not bias:
        text = text.replace("stride: 1", "stride: 1 bias_term: false")
    blobs = [rng.normal(0, 1e-3, (4, 3, 3, 3))]
    if bias:
        blobs.append(rng.normal(0, 0.1, (4,)))
    return write_net(tmp_path, text, {"conv1": blobs})


def _raw_input(spec: dict, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (1, H, W, 3) if spec.get("layout") == "NHWC" else (1, 3, H, W)
    raw = rng.integers(0, 256, shape)
    return raw.astype(np.uint8 if spec.get("dtype") == "uint8" else np.float32)


def _check(tmp_path, spec, *, pad=0, bias=True, files=None, mean_image=None, fold=True):
    proto, weights = _conv_net(tmp_path, pad, bias)
    model = embed_preprocessing(caffe_to_onnx(proto, weights), {"data": spec}, files, fold=fold)
    onnx.checker.check_model(model, full_check=True)
    raw = _raw_input(spec)
    got = run_ort(model, {"data": raw})["conv1"]
    want = run_opencv(proto, weights, {"data": reference(raw, spec, mean_image)},
                      ["conv1"])["conv1"]  # fmt: skip
    assert got.shape == want.shape
    assert np.abs(want).max() > 0.05  # the comparison is not between two near-zero tensors
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)
    return model


def _ops(model) -> list[str]:
    return [n.op_type for n in model.graph.node]


CASES = {
    "mean_only": {"mean": 117.0},
    "mean_scale": {"mean": 127.5, "scale": 0.0078125},
    "mean_std": {"mean": 127.5, "std": 58.8},
    "per_channel": {"mean": [104.0, 117.0, 123.0], "std": [58.8, 57.1, 57.4]},
    "per_channel_scale": {"mean": [104.0, 117.0, 123.0], "scale": [0.017, 0.018, 0.0175]},
    "reverse": {"mean": [104.0, 117.0, 123.0], "scale": [0.5, 1.0, 2.0], "reverse_channels": True},
    "nhwc": {"mean": [104.0, 117.0, 123.0], "layout": "NHWC"},
    "uint8": {"mean": [104.0, 117.0, 123.0], "std": [58.8, 57.1, 57.4], "dtype": "uint8"},
    "all": {"mean": [1.0, 2.0, 3.0], "std": [2.0, 4.0, 8.0], "reverse_channels": True,
            "layout": "NHWC", "dtype": "uint8"},
}  # fmt: skip


@pytest.mark.parametrize("fold", [True, False], ids=["folded", "explicit"])
@pytest.mark.parametrize("case", list(CASES))
def test_combination_matches_opencv(tmp_path, case, fold):
    spec = CASES[case]
    model = _check(tmp_path, spec, fold=fold)
    ops = _ops(model)
    assert ops.count("Cast") == (spec.get("dtype") == "uint8")
    assert ops.count("Transpose") == (spec.get("layout") == "NHWC")
    if fold:  # unpadded first conv: everything but Cast/Transpose goes into its weights/bias
        assert set(ops) <= {"Cast", "Transpose", "Conv", "Relu"}, ops
    else:
        assert ops.count("Gather") == bool(spec.get("reverse_channels"))
        assert ops.count("Sub") == 1
        assert ops.count("Div") + ops.count("Mul") == ("std" in spec or "scale" in spec)
    vi = model.graph.input[0]
    assert vi.name == "data"
    assert [d.dim_value for d in vi.type.tensor_type.shape.dim] == list(_raw_input(spec).shape)


def test_padded_conv_keeps_mean_explicit(tmp_path):
    """conv pads (x - m) with zeros, not x: folding m into the bias would be wrong at borders."""
    spec = {"mean": [104.0, 117.0, 123.0], "scale": 0.0078125, "reverse_channels": True}
    model = _check(tmp_path, spec, pad=1)
    assert _ops(model) == ["Sub", "Conv", "Relu"]  # scale and reversal folded, mean not


def test_naive_mean_fold_into_padded_conv_is_wrong(tmp_path):
    """Why the guard exists: a bias fold matches OpenCV inside but not on the padded border."""
    spec = {"mean": [104.0, 117.0, 123.0]}
    model = _check(tmp_path, spec, pad=1)
    sub, conv = model.graph.node[0], model.graph.node[1]
    assert (sub.op_type, conv.op_type) == ("Sub", "Conv")
    inits = {t.name: t for t in model.graph.initializer}
    w = onnx.numpy_helper.to_array(inits[conv.input[1]]).astype(np.float64)
    b = onnx.numpy_helper.to_array(inits[conv.input[2]]).astype(np.float64)
    naive = b - np.einsum("ocij,c->o", w, np.asarray(spec["mean"]))
    inits[conv.input[2]].CopyFrom(onnx.numpy_helper.from_array(naive.astype(np.float32),
                                                               conv.input[2]))  # fmt: skip
    conv.input[0] = "data"
    model.graph.node.remove(sub)
    raw = _raw_input(spec)
    got = run_ort(model, {"data": raw})["conv1"]
    proto, weights = tmp_path / "net.prototxt", tmp_path / "net.caffemodel"
    want = run_opencv(proto, weights, {"data": reference(raw, spec)}, ["conv1"])["conv1"]
    np.testing.assert_allclose(got[..., 1:-1, 1:-1], want[..., 1:-1, 1:-1], atol=ATOL, rtol=0)
    assert np.abs(got - want).max() > 1e-2


def test_no_bias_conv_gets_a_bias(tmp_path):
    model = _check(tmp_path, {"mean": [10.0, 20.0, 30.0]}, bias=False)
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    assert len(conv.input) == 3


def test_first_layer_not_conv_stays_explicit(tmp_path):
    proto, weights = write_net(tmp_path, POOL_FIRST)
    spec = {"mean": [104.0, 117.0, 123.0], "std": 2.0, "reverse_channels": True}
    model = embed_preprocessing(caffe_to_onnx(proto, weights), {"data": spec})
    assert _ops(model) == ["Gather", "Sub", "Div", "MaxPool"]
    raw = _raw_input(spec)
    got = run_ort(model, {"data": raw})["pool1"]
    want = run_opencv(proto, weights, {"data": reference(raw, spec)}, ["pool1"])["pool1"]
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


def _write_mean(path: Path, image: np.ndarray, legacy: bool = False) -> Path:
    blob = caffe_pb2.BlobProto()
    if legacy:
        blob.num, blob.channels, blob.height, blob.width = 1, *image.shape
    else:
        blob.shape.dim.extend([1, *image.shape])
    blob.data.extend(image.astype(np.float32).ravel().tolist())
    path.write_bytes(blob.SerializeToString())
    return path


@pytest.mark.parametrize("offset", [None, [0, 3]], ids=["center", "offset"])
@pytest.mark.parametrize("pad", [0, 1])
def test_mean_file(tmp_path, offset, pad):
    rng = np.random.default_rng(5)
    image = rng.uniform(90, 130, (3, H + 4, W + 6))
    path = _write_mean(tmp_path / "mean.binaryproto", image, legacy=offset is None)
    spec = {"mean_file": {"url": "https://example.invalid/mean.binaryproto"}, "scale": 0.02,
            "reverse_channels": True}  # fmt: skip
    if offset:
        spec["mean_file_offset"] = offset
    files = {"mean_file:data": path}
    loaded = load_mean_file(path)
    np.testing.assert_array_equal(loaded, image.astype(np.float32))
    np.testing.assert_array_equal(load_mean_image(path), loaded)
    model = _check(tmp_path, spec, pad=pad, files=files, mean_image=load_mean_image(path))
    assert _ops(model) == ["Sub", "Conv", "Relu"]  # a spatial mean never folds into a bias
    y, x = offset or (2, 3)
    sub = next(n for n in model.graph.node if n.op_type == "Sub")
    const = next(t for t in model.graph.initializer if t.name == sub.input[1])
    # reversal is folded into the conv, so the mean image is stored in deployed (reversed) order
    expected = image[::-1, y : y + H, x : x + W].astype(np.float32)
    np.testing.assert_array_equal(onnx.numpy_helper.to_array(const)[0], expected)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"mean": 1.0, "scale": 0.5, "std": 2.0}, "both 'scale' and 'std'"),
        ({"std": [1.0, 0.0, 1.0]}, "std must be non-zero"),
        ({"scale": 0}, "scale must be non-zero"),
        ({"mean_file": "m.binaryproto", "mean_file_offset": [1]}, "mean_file_offset must be"),
        ({"mean": [1.0, 2.0]}, "preprocess.mean has 2 values, expected 1 or 3"),
        ({"scale": [1.0, 2.0, 3.0, 4.0]}, "preprocess.scale has 4 values"),
        ({"layout": "CHW"}, "layout must be NCHW or NHWC"),
        ({"dtype": "int8"}, "dtype must be float32 or uint8"),
        ({"means": 1}, "unknown preprocess key(s) means"),
        ({"mean": 1, "mean_file": "m.binaryproto"}, "both 'mean' and 'mean_file'"),
        ({"mean_file": {"url": "u"}}, "mean_file has no local file (files['mean_file:data'])"),
    ],
)
def test_bad_spec_is_one_precise_error(tmp_path, spec, message):
    proto, weights = _conv_net(tmp_path)
    model = caffe_to_onnx(proto, weights)
    with pytest.raises(ConversionError) as err:
        embed_preprocessing(model, {"data": spec})
    assert message in str(err.value)
    assert "input 'data'" in str(err.value)


def test_unknown_input_lists_inputs(tmp_path):
    proto, weights = _conv_net(tmp_path)
    with pytest.raises(ConversionError, match="model's inputs are: data"):
        embed_preprocessing(caffe_to_onnx(proto, weights), {"image": {"mean": 1.0}})


def test_mean_image_too_small(tmp_path):
    proto, weights = _conv_net(tmp_path)
    path = _write_mean(tmp_path / "m.binaryproto", np.zeros((3, H - 1, W)))
    with pytest.raises(ConversionError, match=r"mean image is 3x11x10 .* at least 12x10"):
        embed_preprocessing(caffe_to_onnx(proto, weights), {"data": {"mean_file": {}}},
                            {"mean_file:data": path})  # fmt: skip


def test_reverse_needs_three_channels(tmp_path):
    proto, weights = write_net(tmp_path, POOL_FIRST.replace("dim: 3", "dim: 4"))
    with pytest.raises(ConversionError, match="reverse_channels needs 3 channels"):
        embed_preprocessing(caffe_to_onnx(proto, weights), {"data": {"reverse_channels": True}})


@pytest.mark.parametrize("formula", [preprocess_numpy, reference], ids=["embedding", "reference"])
def test_numpy_formula_by_hand(formula):
    x = np.arange(2 * 2 * 3, dtype=np.float32).reshape(1, 2, 2, 3)  # NHWC, channels last
    spec = {"mean": [1.0, 2.0, 3.0], "std": [2.0, 4.0, 8.0], "reverse_channels": True,
            "layout": "NHWC"}  # fmt: skip
    got = formula(x, spec)
    # pixel (0,0) is [0, 1, 2] in deployed order -> reversed [2, 1, 0]
    np.testing.assert_allclose(got[0, :, 0, 0], [(2 - 1) / 2, (1 - 2) / 4, (0 - 3) / 8])
    assert got.dtype == np.float32 and got.shape == (1, 3, 2, 2)


@pytest.mark.parametrize("deployed", ["NCHW", "NHWC"])
def test_nhwc_original_model(tmp_path, deployed):
    """An ONNX source taking NHWC: channel ops act on its last axis, no Transpose pair left."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(2)
    w = onnx.numpy_helper.from_array(rng.normal(0, 0.1, (4, 3, 3, 3)).astype(np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("Transpose", ["img"], ["t"], perm=[0, 3, 1, 2]),
         helper.make_node("Conv", ["t", "W"], ["y"], pads=[1, 1, 1, 1])],
        "nhwc",
        [helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, H, W, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, H, W])],
        [w],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    image = rng.uniform(90, 130, (3, H + 2, W + 2))
    path = _write_mean(tmp_path / "mean.binaryproto", image)
    spec = {"mean_file": {}, "std": [58.8, 57.1, 57.4], "reverse_channels": True,
            "layout": deployed, "dtype": "uint8"}  # fmt: skip
    deployed_model = embed_preprocessing(model, {"img": spec}, {"mean_file:img": path},
                                         original_layouts={"img": "NHWC"})  # fmt: skip
    onnx.checker.check_model(deployed_model, full_check=True)
    transposes = [n for n in deployed_model.graph.node if n.op_type == "Transpose"]
    assert len(transposes) == (1 if deployed == "NHWC" else 2)  # the model's own + one
    raw = _raw_input(spec)
    got = run_ort(deployed_model, {"img": raw})["y"]
    ref_in = reference(raw, spec, load_mean_image(path)).transpose(0, 2, 3, 1)
    want = run_ort(model, {"img": np.ascontiguousarray(ref_in)})["y"]
    assert np.abs(want).max() > 0.05
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)
