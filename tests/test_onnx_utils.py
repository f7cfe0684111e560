"""converters/onnx_utils.py: the ONNX facts written once, checked against ONNX and onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.defs
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from converters.errors import ConversionError
from converters.fp16 import to_fp16
from converters.onnx2caffe import onnx_to_caffe
from converters.onnx2caffe.context import NodeView
from converters.onnx2caffe.prepare import fold_constants as caffe_fold
from converters.onnx_utils import (
    RANDOM_OPS,
    convert_opset,
    evaluate_node,
    light_copy,
    model_opset,
    static_shape_value,
)
from converters.passes import run_passes
from converters.passes.graph import Graph


def _ort(model: onnx.ModelProto, feeds: dict | None = None) -> list[np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds or {})


def test_random_ops_are_the_onnx_ops_with_a_seed():
    """ONNX gives a ``seed`` attribute to exactly its random generators (and to Dropout, which
    is deterministic outside training mode)."""
    seeded = {
        s.name
        for s in onnx.defs.get_all_schemas_with_history()
        if s.domain == "" and "seed" in s.attributes
    }
    assert seeded - {"Dropout"} == RANDOM_OPS


def _random_like_model() -> onnx.ModelProto:
    """y = RandomUniformLike(c) + c, c a constant: every input is known, the result is not."""
    c = numpy_helper.from_array(np.zeros((64,), np.float32), "c")
    nodes = [
        helper.make_node("RandomUniformLike", ["c"], ["r"]),
        helper.make_node("Add", ["r", "c"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "rand", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64])], [c]
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_random_op_on_constants_is_not_folded_anywhere():
    model = _random_like_model()
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    first, second = sess.run(None, {})[0], sess.run(None, {})[0]
    assert not np.array_equal(first, second)  # onnxruntime: two runs, two draws
    after = run_passes(model, ["fold_constants"])
    assert [n.op_type for n in after.graph.node] == ["RandomUniformLike", "Add"]
    nodes = [NodeView(n, 17) for n in model.graph.node]
    consts = caffe_fold(nodes, {"c": (64,)}, 17, {"c": np.zeros((64,), np.float32)})
    assert set(consts) == {"c"}  # neither r nor y (which reads r) became a constant
    half = onnx.shape_inference.infer_shapes(to_fp16(model))
    types = {v.name: v.type.tensor_type.elem_type for v in half.graph.value_info}
    assert types["r"] == TensorProto.FLOAT  # fp16 leaves the generator in float32
    assert np.isfinite(_ort(half)[0]).all()


def _relu_model(*opsets) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])


def test_the_opset_is_the_default_domains_under_either_spelling(models_dir):
    publisher = onnx.load(models_dir / "ultraface/version-RFB-320_without_postprocessing.onnx")
    assert model_opset(publisher) == 9  # the UltraFace authors exported at opset 9
    assert model_opset(_relu_model(("com.microsoft", 1), ("ai.onnx", 13))) == 13
    assert model_opset(_relu_model(("com.microsoft", 1), ("", 11))) == 11
    assert model_opset(_relu_model(("com.microsoft", 1))) is None
    assert Graph(_relu_model(("", 15))).opset == 15


def test_no_default_opset_is_one_error_line_in_every_converter():
    model = _relu_model(("com.microsoft", 1))
    with pytest.raises(ConversionError, match=r"^fp16: the model imports no default-domain"):
        to_fp16(model)
    with pytest.raises(ConversionError, match=r"^Caffe export: the model imports no default-"):
        onnx_to_caffe(model, "unused.prototxt", "unused.caffemodel")
    assert Graph(model).opset is None


def test_opset_conversion_keeps_the_publishers_outputs(models_dir):
    """UltraFace RFB-320 as published (opset 9, Upsample-free) at opset 13: onnxruntime gives the
    same scores and boxes, and the file is stamped IR 7 (the lowest opset 13 needs)."""
    published = onnx.load(models_dir / "ultraface/version-RFB-320_without_postprocessing.onnx")
    x = np.random.default_rng(0).standard_normal((1, 3, 240, 320)).astype(np.float32)
    feeds = {published.graph.input[0].name: x}
    before = _ort(published, feeds)
    converted = convert_opset(onnx.ModelProto.FromString(published.SerializeToString()), 13)
    assert model_opset(converted) == 13 and converted.ir_version == 7
    for a, b in zip(before, _ort(converted, feeds), strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)
    same = convert_opset(published, 9)  # its own opset: only the IR stamp (IR 4 for opset 9)
    assert model_opset(same) == 9 and same.ir_version == 4


def test_a_refused_opset_conversion_is_one_line():
    model = _relu_model(("", 13))
    with pytest.raises(
        ConversionError, match=r"^m\.onnx: cannot convert the model from opset 13 to 1: [^\n]*$"
    ):
        convert_opset(model, 1, "m.onnx")


def _inferred_shapes(model: onnx.ModelProto) -> dict[str, list]:
    g = onnx.shape_inference.infer_shapes(model, data_prop=True).graph
    return {
        v.name: [
            d.dim_value if d.HasField("dim_value") else d.dim_param
            for d in v.type.tensor_type.shape.dim
        ]
        for v in [*g.value_info, *g.output]
    }


def test_light_copy_infers_the_same_shapes_without_the_weights(models_dir):
    published = onnx.load(models_dir / "ultraface/version-RFB-320_without_postprocessing.onnx")
    before = published.SerializeToString()
    light = light_copy(published)
    assert published.SerializeToString() == before  # the caller's model is untouched
    assert light.ByteSize() < published.ByteSize() / 20
    full = _inferred_shapes(published)
    assert len(full) > 100 and _inferred_shapes(light) == full
    assert _inferred_shapes(light_copy(published, fixed_weights=True)) == full


def test_a_weight_that_is_also_an_input_is_a_constant_only_with_fixed_weights():
    """From IR 4 on, an initializer also listed as an input is a default the caller may override
    (onnxruntime takes the fed value)."""
    shape = numpy_helper.from_array(np.array([2, -1], np.int64), "shape")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 3])
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])], "g",
        [x, helper.make_tensor_value_info("shape", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [shape],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    assert _inferred_shapes(light_copy(model, fixed_weights=True))["y"] == [2, 6]
    overridable = light_copy(model)
    assert [v.name for v in overridable.graph.input] == ["x", "shape"]
    assert not overridable.graph.initializer and _inferred_shapes(overridable)["y"] != [2, 6]
    fed = {"x": np.zeros((4, 3), np.float32), "shape": np.array([3, 4], np.int64)}
    assert _ort(model, fed)[0].shape == (3, 4)  # onnxruntime: the fed value wins


def _ort_node(node: onnx.NodeProto, feeds: dict, opset: int) -> list[np.ndarray]:
    """onnxruntime's result for one node fed ``feeds`` as graph inputs."""
    ins = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
           for k, v in feeds.items()]  # fmt: skip
    outs = [onnx.ValueInfoProto(name=o) for o in node.output]  # types left to onnxruntime
    model = helper.make_model(helper.make_graph([node], "n", ins, outs),
                              opset_imports=[helper.make_opsetid("", opset)])  # fmt: skip
    return _ort(model, feeds)


def test_folded_shape_values_are_onnxruntimes():
    x = np.zeros((2, 3, 4, 5), np.float32)
    for attrs in ({}, {"start": 1}, {"start": -3, "end": -1}, {"end": 2}, {"start": 7}):
        node = helper.make_node("Shape", ["x"], ["s"], **attrs)
        want = _ort_node(node, {"x": x}, 15)[0]
        got = static_shape_value("Shape", x.shape, attrs.get("start", 0), attrs.get("end"))
        assert got.dtype == want.dtype and got.tolist() == want.tolist(), attrs
    want = _ort_node(helper.make_node("Size", ["x"], ["n"]), {"x": x}, 15)[0]
    got = static_shape_value("Size", x.shape)
    assert got.dtype == want.dtype and got.shape == want.shape and got == want == 120


def test_folded_node_values_are_onnxruntimes():
    s = np.array([1, 3, 240, 320], np.int64)
    cases = [
        (helper.make_node("Gather", ["s", "i"], ["y"], axis=0), {"s": s, "i": np.array(2, np.int64)}),
        (helper.make_node("Concat", ["s", "t"], ["y"], axis=0), {"s": s, "t": np.array([-1], np.int64)}),
        (helper.make_node("Div", ["s", "t"], ["y"]), {"s": s, "t": np.array([2], np.int64)}),
        (helper.make_node("Range", ["a", "b", "c"], ["y"]),
         {"a": np.array(0.5, np.float32), "b": np.array(4, np.float32), "c": np.array(0.75, np.float32)}),
        (helper.make_node("Cast", ["s"], ["y"], to=TensorProto.FLOAT), {"s": s}),
    ]  # fmt: skip
    for node, feeds in cases:
        (got,), (want,) = evaluate_node(node, feeds, 13), _ort_node(node, feeds, 13)
        assert got.dtype == want.dtype and got.shape == want.shape, node.op_type
        np.testing.assert_array_equal(got, want)
