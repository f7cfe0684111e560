"""to_fp16: range errors by name, float32 islands for coordinates/shapes, no Cast chains, size."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from converters.caffe.convert import caffe_to_onnx
from converters.errors import ConversionError
from converters.fp16 import to_fp16
from converters.preprocess import embed_preprocessing
from tests.caffe.helpers import run_ort
from tests.passes.helpers import make_model, ops, rng_array

F16_TOL = {"atol": 1e-2, "rtol": 1e-2}


def _types(model) -> dict[str, int]:
    return {t.name: t.data_type for t in model.graph.initializer}


def _io_types(model):
    g = model.graph
    return [v.type.tensor_type.elem_type for v in [*g.input, *g.output]]


def _no_cast_chains(model):
    producer = {o: n for n in model.graph.node for o in n.output}
    for n in model.graph.node:
        if n.op_type == "Cast" and n.input[0] in producer:
            assert producer[n.input[0]].op_type != "Cast", f"Cast chain at {n.name}"


def _conv_model(w_scale=0.3):
    inits = {"W": rng_array((8, 3, 3, 3), w_scale), "B": rng_array((8,), 0.1, 1)}
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["y"]),
    ]
    return make_model(nodes, {"x": [1, 3, 16, 16]}, {"y": [1, 8, 16, 16]}, inits)


def test_conv_net_numerics_io_and_types():
    model = _conv_model()
    half = to_fp16(model)
    assert _io_types(half) == [TensorProto.FLOAT, TensorProto.FLOAT]
    assert _types(half) == {"W": TensorProto.FLOAT16, "B": TensorProto.FLOAT16}
    assert half.opset_import[0].version == model.opset_import[0].version
    assert ops(half) == {"Cast": 2, "Conv": 1, "Relu": 1}
    x = rng_array((1, 3, 16, 16), seed=3)
    want, got = run_ort(model, {"x": x})["y"], run_ort(half, {"x": x})["y"]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, **F16_TOL)
    assert np.abs(got - want).max() > 0  # it really computed in float16

    io16 = to_fp16(model, keep_io_types=False)
    assert _io_types(io16) == [TensorProto.FLOAT16, TensorProto.FLOAT16]
    assert "Cast" not in ops(io16)
    got16 = run_ort(io16, {"x": x.astype(np.float16)})["y"]
    np.testing.assert_allclose(got16.astype(np.float32), want, **F16_TOL)


def test_out_of_range_weight_is_named_never_clamped():
    model = _conv_model()
    w = next(t for t in model.graph.initializer if t.name == "W")
    arr = numpy_helper.to_array(w).copy()
    arr[0, 0, 0, 0] = -1.25e5
    w.CopyFrom(numpy_helper.from_array(arr, "W"))
    with pytest.raises(ConversionError) as err:
        to_fp16(model)
    assert str(err.value) == (
        "fp16: weight(s) outside the float16 range (|x| <= 65504): 'W' (max |x| 125000); "
        "keep this model in fp32 or rescale those weights"
    )


def _resize_model(scales_from_shapes: bool):
    """Conv -> Resize x2 (scales a constant, or Shape arithmetic) -> Mul by a shared constant."""
    inits = {"W": rng_array((2, 2, 1, 1)), "k": np.array([1.0, 1.0, 2.0, 2.0], np.float32)}
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"])]
    if scales_from_shapes:
        nodes += [
            helper.make_node("Shape", ["ref"], ["s_ref"]),
            helper.make_node("Shape", ["c"], ["s_c"]),
            helper.make_node("Cast", ["s_ref"], ["f_ref"], to=TensorProto.FLOAT),
            helper.make_node("Cast", ["s_c"], ["f_c"], to=TensorProto.FLOAT),
            helper.make_node("Div", ["f_ref", "f_c"], ["scales"]),
        ]
    inputs = {"x": [1, 2, 2, 2]} | ({"ref": [1, 2, 4, 4]} if scales_from_shapes else {})
    nodes += [
        helper.make_node("Resize", ["c", "", "scales" if scales_from_shapes else "k"], ["r"],
                         mode="linear", coordinate_transformation_mode="half_pixel"),
        helper.make_node("Mul", ["r", "k"], ["y"]),  # k also read as float16 data
    ]  # fmt: skip
    return make_model(nodes, inputs, {"y": [1, 2, 4, 4]}, inits)


@pytest.mark.parametrize("from_shapes", [False, True], ids=["const_scales", "shape_scales"])
def test_resize_scales_stay_float32(from_shapes):
    model = _resize_model(from_shapes)
    half = to_fp16(model)
    resize = next(n for n in half.graph.node if n.op_type == "Resize")
    types = _types(half)
    if from_shapes:
        div = next(n for n in half.graph.node if n.op_type == "Div")
        assert resize.input[2] == div.output[0] == "scales"  # computed, untouched, in float32
        casts = {n.output[0]: n for n in half.graph.node if n.op_type == "Cast"}
        assert casts["f_ref"].attribute[0].i == TensorProto.FLOAT
        assert types["k"] == TensorProto.FLOAT16  # only the Mul reads it: converted in place
    else:
        assert resize.input[2] == "k" and types["k"] == TensorProto.FLOAT
        assert types["k__fp16"] == TensorProto.FLOAT16  # the Mul reads a float16 copy
    feeds = {"x": rng_array((1, 2, 2, 2), seed=4)}
    if from_shapes:
        feeds["ref"] = np.zeros((1, 2, 4, 4), np.float32)
    want, got = run_ort(model, feeds)["y"], run_ort(half, feeds)["y"]
    assert got.shape == want.shape == (1, 2, 4, 4)
    np.testing.assert_allclose(got, want, **F16_TOL)
    _no_cast_chains(half)


def test_shape_arithmetic_with_integers_float16_cannot_hold():
    """2049 is not a float16 number: a Reshape target computed in float must stay float32."""
    inits = {"one": np.array([1.0], np.float32), "minus1": np.array([-1], np.int64)}
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], start=1, end=2),
        helper.make_node("Cast", ["s"], ["sf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["sf", "one"], ["sm"]),
        helper.make_node("Cast", ["sm"], ["si"], to=TensorProto.INT64),
        helper.make_node("Concat", ["minus1", "si"], ["shape"], axis=0),
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Reshape", ["r", "shape"], ["y"]),
    ]
    model = make_model(nodes, {"x": [2, 2049]}, {"y": [2, 2049]}, inits)
    half = to_fp16(model)
    assert _types(half)["one"] == TensorProto.FLOAT
    x = rng_array((2, 2049), seed=5)
    np.testing.assert_allclose(run_ort(half, {"x": x})["y"], run_ort(model, {"x": x})["y"],
                               **F16_TOL)  # fmt: skip


def test_uint8_input_cast_merges_into_one(tmp_path):
    from tests.caffe.helpers import write_net

    proto = """
    layer { name: "data" type: "Input" top: "data"
            input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
    layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
            convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
    """
    p, w = write_net(tmp_path, proto, {"conv": [rng_array((4, 3, 3, 3), 0.01), rng_array((4,))]})
    spec = {"mean": [104.0, 117.0, 123.0], "dtype": "uint8", "layout": "NHWC"}
    model = embed_preprocessing(caffe_to_onnx(p, w), {"data": spec})
    half = to_fp16(model)
    casts = [n for n in half.graph.node if n.op_type == "Cast"]
    assert [(n.input[0], n.attribute[0].i) for n in casts] == [
        ("data", TensorProto.FLOAT16),  # uint8 -> float16 directly: exact, one Cast
        ("conv__fp16", TensorProto.FLOAT),
    ]
    _no_cast_chains(half)
    x = np.random.default_rng(0).integers(0, 256, (1, 8, 8, 3)).astype(np.uint8)
    np.testing.assert_allclose(run_ort(half, {"data": x})["conv"],
                               run_ort(model, {"data": x})["conv"], **F16_TOL)  # fmt: skip


def test_real_conv_net_size_and_numbers(models_dir):
    model = caffe_to_onnx(models_dir / "mtcnn" / "det2.prototxt",
                          models_dir / "mtcnn" / "det2.caffemodel",
                          outputs=["conv5-2", "prob1"])  # fmt: skip
    half = to_fp16(model)
    onnx.checker.check_model(half, full_check=True)
    ratio = half.ByteSize() / model.ByteSize()
    assert ratio <= 0.51, ratio
    x = np.random.default_rng(1).uniform(-1, 1, (1, 3, 24, 24)).astype(np.float32)
    want, got = run_ort(model, {"data": x}), run_ort(half, {"data": x})
    for name in want:
        np.testing.assert_allclose(got[name], want[name], err_msg=name, **F16_TOL)
    _no_cast_chains(half)


def test_cast_with_float32_and_float16_readers_leaves_no_chain():
    """uint8 -> Cast(float) read by a float16 Relu and as a graph output: two parallel Casts."""
    nodes = [
        helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
        helper.make_node("Relu", ["xf"], ["y"]),
    ]
    model = make_model(nodes, {"x": ([1, 4], TensorProto.UINT8)}, {"xf": [1, 4], "y": [1, 4]})
    half = to_fp16(model)
    _no_cast_chains(half)
    casts = sorted((n.input[0], n.attribute[0].i) for n in half.graph.node if n.op_type == "Cast")
    assert casts == [("x", TensorProto.FLOAT), ("x", TensorProto.FLOAT16),
                     ("y__fp16", TensorProto.FLOAT)]  # fmt: skip
    x = np.array([[0, 7, 200, 255]], np.uint8)
    got = run_ort(half, {"x": x})
    np.testing.assert_array_equal(got["y"], x.astype(np.float32))
    np.testing.assert_array_equal(got["xf"], x.astype(np.float32))


BIG_NET = """
name: "big"
input: "data"
input_dim: 1 input_dim: 64 input_dim: 8 input_dim: 8
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 16 kernel_size: 1 } }
layer { name: "fc" type: "InnerProduct" bottom: "conv" top: "fc"
        inner_product_param { num_output: 600 } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
"""


def _big_net(tmp_path, scale=1.0):
    from tests.caffe.helpers import write_net

    rng = np.random.default_rng(3)
    weights = {
        "conv": [rng.normal(0, 0.1, (16, 64, 1, 1)).astype(np.float32), np.zeros(16, np.float32)],
        "fc": [(rng.normal(0, 0.05, (600, 1024)) * scale).astype(np.float32),
               rng.normal(0, 0.1, 600).astype(np.float32)],
    }  # fmt: skip
    return write_net(tmp_path, BIG_NET, weights)


def test_lazy_model_fp16_equals_in_memory_fp16(tmp_path):
    """--fp16 of a big Caffe model converts its 2.4 MB weight while writing the file, never
    holding it whole (a float16 placeholder of the caffemodel's float32 range): the file has
    the bytes of to_fp16 of the model materialized in memory, and runs like it."""
    from converters.caffe.convert import convert_caffe
    from converters.io import save_onnx
    from converters.lazy import placeholders, save_streamed

    proto, weights = _big_net(tmp_path)
    lazy = to_fp16(convert_caffe(proto, weights).materialize(lazy=True), copy=False)
    (t,) = placeholders(lazy)
    assert (t.name, t.data_type, list(t.dims)) == ("fc/W", TensorProto.FLOAT16, [600, 1024])
    streamed, plain = tmp_path / "streamed.onnx", tmp_path / "plain.onnx"
    save_streamed(lazy, streamed)
    want = to_fp16(convert_caffe(proto, weights).materialize())
    save_onnx(want, plain)
    assert streamed.read_bytes() == plain.read_bytes()
    got = onnx.load(streamed)
    onnx.checker.check_model(got, full_check=True)
    x = np.random.default_rng(0).standard_normal((1, 64, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(
        run_ort(got, {"data": x})["prob"], run_ort(want, {"data": x})["prob"]
    )


def test_lazy_model_fp16_out_of_range_weight_is_named(tmp_path):
    from converters.caffe.convert import convert_caffe

    proto, weights = _big_net(tmp_path, scale=3e6)
    with pytest.raises(ConversionError) as err:
        to_fp16(convert_caffe(proto, weights).materialize(lazy=True))
    with pytest.raises(ConversionError) as ref:
        to_fp16(convert_caffe(proto, weights).materialize())
    assert str(err.value) == str(ref.value)
    assert str(err.value).startswith("fp16: weight(s) outside the float16 range")
    assert "'fc/W' (max |x| " in str(err.value)


def _ssd_like(seed=0):
    """A backbone conv, a Normalize (sum of squares), loc/conf head convs, box decoding, a
    score threshold whose count is cast to int (TopK's k), TopK and NMS: an SSD in small."""
    rng = np.random.default_rng(seed)
    f = np.float32
    inits = {
        "W": rng.normal(0, 0.3, (8, 3, 3, 3)).astype(f),
        "eps": np.array(1e-10, f),
        "scale": np.full((1, 8, 1, 1), 10, f),
        "Wl": rng.normal(0, 0.05, (4, 8, 1, 1)).astype(f),
        "Wc": rng.normal(0, 0.3, (1, 8, 1, 1)).astype(f),
        "prior": rng.uniform(0, 1, (1, 64, 4)).astype(f),
        "shape_l": np.array([1, 64, 4], np.int64),
        "shape_c": np.array([1, 1, 64], np.int64),
        "thr": np.array(0.3, f),
        "top": np.array([10], np.int64),
        "axes": np.array([1], np.int64),
        "axis2": np.array([2], np.int64),
        "nms_max": np.array([5], np.int64),
        "nms_iou": np.array([0.5], f),
    }
    mk = helper.make_node
    nodes = [
        mk("Conv", ["x", "W"], ["c"], "backbone", pads=[1, 1, 1, 1], strides=[2, 2]),
        mk("Relu", ["c"], ["r"], "relu"),
        mk("ReduceSumSquare", ["r"], ["ss"], "sumsq", axes=[1]),
        mk("Add", ["ss", "eps"], ["sse"], "sumsq_eps"),
        mk("Sqrt", ["sse"], ["norm"], "norm"),
        mk("Div", ["r", "norm"], ["unit"], "unit"),
        mk("Mul", ["unit", "scale"], ["normed"], "normed"),
        mk("Conv", ["normed", "Wl"], ["lc"], "loc_conv"),
        mk("Transpose", ["lc"], ["lt"], "loc_t", perm=[0, 2, 3, 1]),
        mk("Reshape", ["lt", "shape_l"], ["loc"], "loc"),
        mk("Add", ["loc", "prior"], ["boxes"], "boxes"),
        mk("Conv", ["normed", "Wc"], ["cc"], "conf_conv"),
        mk("Reshape", ["cc", "shape_c"], ["c3"], "conf"),
        mk("Sigmoid", ["c3"], ["scores"], "scores"),
        mk("Greater", ["scores", "thr"], ["above"], "above"),
        mk("Cast", ["above"], ["above_i"], "above_i", to=TensorProto.INT64),
        mk("ReduceSum", ["above_i"], ["n"], "count", keepdims=0),
        mk("Reshape", ["n", "axes"], ["n1"], "count1"),  # shape [1]
        mk("Min", ["n1", "top"], ["k"], "k"),
        mk("Squeeze", ["scores", "axes"], ["s2"], "scores2"),
        mk("TopK", ["s2", "k"], ["vals", "idx"], "topk"),
        mk("Gather", ["boxes", "idx"], ["cand"], "cand", axis=1),
        mk("Squeeze", ["cand", "axes"], ["cand2"], "cand2"),
        mk("Unsqueeze", ["vals", "axis2"], ["v2"], "vals2"),
        mk("Concat", ["v2", "cand2"], ["rows"], "rows", axis=2),
        mk("NonMaxSuppression", ["boxes", "scores", "nms_max", "nms_iou"], ["sel"], "nms"),
    ]
    model = make_model(nodes, {"x": [1, 3, 16, 16]}, {"rows": [1, "K", 5]}, inits)
    model.graph.output.append(helper.make_tensor_value_info("sel", TensorProto.INT64, ["S", 3]))
    onnx.checker.check_model(model, full_check=True)
    return model


def _computes_in(model) -> dict[str, int]:
    """Node name -> the type of its first float input (what it computes in)."""
    g = onnx.shape_inference.infer_shapes(model).graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.input, *g.value_info, *g.output]}
    types |= {t.name: t.data_type for t in model.graph.initializer}
    floats = (TensorProto.FLOAT, TensorProto.FLOAT16)
    return {n.name: next((types[i] for i in n.input if types.get(i) in floats), None)
            for n in g.node if n.name}  # fmt: skip


def test_ssd_like_graph_float32_only_for_decisions_and_sums_of_squares():
    model = _ssd_like()
    half = to_fp16(model)
    onnx.checker.check_model(half, full_check=True)
    got = _computes_in(half)
    f16, f32 = TensorProto.FLOAT16, TensorProto.FLOAT
    # the backbone and the heads' convolutions compute in float16, weights float16
    assert {
        n: got[n] for n in ("backbone", "relu", "unit", "normed", "loc_conv", "conf_conv")
    } == dict.fromkeys(("backbone", "relu", "unit", "normed", "loc_conv", "conf_conv"), f16)
    assert all(_types(half)[w] == f16 for w in ("W", "Wl", "Wc"))
    # float32: the sum of squares and its root; from the heads' outputs on, what the decisions
    # read (box decoding, scores, threshold, TopK, NMS); the rows built from TopK's values
    fp32_nodes = ("sumsq", "sumsq_eps", "norm", "loc_t", "loc", "boxes", "conf", "scores",
                  "above", "scores2", "topk", "nms", "cand", "rows")  # fmt: skip
    assert {n: got[n] for n in fp32_nodes} == dict.fromkeys(fp32_nodes, f32)
    assert _types(half)["prior"] == f32 and _types(half)["eps"] == f32
    _no_cast_chains(half)
    # activations large enough that the sum of squares (~1e5) is beyond float16's 65504
    x = (rng_array((1, 3, 16, 16), seed=7) * 60).astype(np.float32)
    want, out = run_ort(model, {"x": x}), run_ort(half, {"x": x})
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.append(helper.make_tensor_value_info("ss", TensorProto.FLOAT, None))
    assert float(run_ort(probe, {"x": x})["ss"].max()) > 65504
    np.testing.assert_array_equal(out["sel"], want["sel"])  # the same boxes kept
    assert out["rows"].shape == want["rows"].shape  # the same count above the threshold
    np.testing.assert_allclose(out["rows"], want["rows"], atol=2e-3, rtol=0)
