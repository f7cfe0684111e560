"""ONNX as a source: the publisher's UltraFace files load with static shapes at the requested
opset, inputs can be resized, the graph cut, and every bad input is one line."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from converters.errors import ConversionError
from converters.io import save_onnx
from converters.onnx_source import load_onnx_source
from tests.caffe.helpers import run_ort

RFB = "ultraface/version-RFB-320_without_postprocessing.onnx"
SLIM = "ultraface/version-slim-320_without_postprocessing.onnx"


def _dims(vi):
    return [d.dim_value if d.HasField("dim_value") else d.dim_param
            for d in vi.type.tensor_type.shape.dim]  # fmt: skip


def _feeds(shape=(1, 3, 240, 320), seed=0):
    return {"input": np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)}


@pytest.mark.parametrize("path", [RFB, SLIM])
def test_publisher_onnx_loads(models_dir, path):
    original = onnx.load(models_dir / path)
    assert (original.ir_version, original.opset_import[0].version) == (4, 9)
    model = load_onnx_source(models_dir / path)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17 and model.ir_version == 8
    # Old PyTorch listed every weight as a graph input; only the image is one now.
    assert [vi.name for vi in model.graph.input] == ["input"]
    assert {vi.name: _dims(vi) for vi in model.graph.output} == {
        "scores": [1, 4420, 2], "boxes": [1, 4420, 4]}  # fmt: skip
    assert all(t.name.endswith("num_batches_tracked") is False for t in model.graph.initializer)
    want = run_ort(original.SerializeToString(), _feeds())
    got = run_ort(model, _feeds())
    for name in want:
        # |boxes| reaches 7; onnxruntime fuses Conv+BatchNorm differently per graph (measured
        # up to 7e-6 apart), so this is float32 agreement, not bit equality.
        np.testing.assert_allclose(got[name], want[name], atol=2e-5, err_msg=name)


def test_override_input_shape(models_dir):
    """The UltraFace graph computes its reshapes from Shape ops, so 640x480 works."""
    model = load_onnx_source(models_dir / RFB, {"input": [1, 3, 480, 640]})
    assert _dims(model.graph.input[0]) == [1, 3, 480, 640]
    assert _dims(model.graph.output[1]) == [1, 17640, 4]
    got = run_ort(model, _feeds((1, 3, 480, 640)))
    assert got["boxes"].shape == (1, 17640, 4)


def test_cut_at_outputs(models_dir):
    full = load_onnx_source(models_dir / RFB)
    conv = next(n.output[0] for n in full.graph.node if n.op_type == "Conv")
    model = load_onnx_source(models_dir / RFB, outputs=["boxes", conv])
    assert [vi.name for vi in model.graph.output] == ["boxes", conv]
    assert _dims(model.graph.output[1]) == [1, 16, 120, 160]
    assert "Softmax" not in {n.op_type for n in model.graph.node}  # scores branch is gone
    got = run_ort(model, _feeds())
    np.testing.assert_allclose(got["boxes"], run_ort(full, _feeds())["boxes"], atol=2e-5)


@pytest.mark.parametrize("opset", [11, 13, 18])
def test_opset_conversion(models_dir, opset):
    model = load_onnx_source(models_dir / SLIM, opset=opset)
    assert model.opset_import[0].version == opset
    assert model.ir_version == helper.find_min_ir_version_for(list(model.opset_import))
    want = run_ort(load_onnx_source(models_dir / SLIM), _feeds())
    got = run_ort(model, _feeds())
    for name in want:
        np.testing.assert_allclose(got[name], want[name], atol=2e-5, err_msg=name)


def _dynamic_model(tmp_path, opset=17):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, "h", "w"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, "h", "w"])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    path = tmp_path / "dyn.onnx"
    save_onnx(model, path)
    return path


def test_dynamic_dims_need_a_shape(tmp_path):
    path = _dynamic_model(tmp_path)
    with pytest.raises(ConversionError) as err:
        load_onnx_source(path)
    assert str(err.value) == (
        f"{path}: input 'x' [batch, 3, h, w] has a dynamic dim 0 ('batch'); pass "
        f"--input-shape x=D1,D2,... (recipe: inputs.x.shape)"
    )


def test_dynamic_dims_fixed(tmp_path):
    model = load_onnx_source(_dynamic_model(tmp_path), {"x": [2, 3, 5, 7]})
    assert _dims(model.graph.input[0]) == [2, 3, 5, 7]
    assert _dims(model.graph.output[0]) == [2, 3, 5, 7]


def test_unknown_input_name(tmp_path):
    with pytest.raises(ConversionError, match=r"input shape given for 'data', which is not an "
                                              r"input of the model; inputs: x$"):  # fmt: skip
        load_onnx_source(_dynamic_model(tmp_path), {"data": [1, 3, 4, 4]})


def test_rank_mismatch(tmp_path):
    with pytest.raises(ConversionError, match=r"input 'x' has rank 4 .* has rank 3"):
        load_onnx_source(_dynamic_model(tmp_path), {"x": [1, 3, 4]})


def test_unknown_output(models_dir):
    with pytest.raises(ConversionError, match=r"requested output 'box' is not a value of this "
                                              r"graph; graph outputs: scores, boxes; similar: "
                                              r"boxes"):  # fmt: skip
        load_onnx_source(models_dir / RFB, outputs=["box"])


def test_impossible_opset_conversion(tmp_path):
    """LayerNormalization exists from opset 17 only: going down to 13 cannot work."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])
    scale = onnx.numpy_helper.from_array(np.ones(4, np.float32), "s")
    graph = helper.make_graph([helper.make_node("LayerNormalization", ["x", "s"], ["y"])], "g",
                              [x], [y], [scale])  # fmt: skip
    path = tmp_path / "ln.onnx"
    save_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    with pytest.raises(ConversionError) as err:
        load_onnx_source(path, opset=13)
    assert str(err.value).startswith(f"{path}: cannot convert the model from opset 17 to 13: ")
    assert "\n" not in str(err.value)


def test_unreadable_and_missing_files(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07\x12\xff\xff")
    with pytest.raises(ConversionError, match=r"bad.onnx: not an ONNX model"):
        load_onnx_source(bad)
    with pytest.raises(ConversionError, match=r"nope.onnx: ONNX file not found"):
        load_onnx_source(tmp_path / "nope.onnx")


def test_custom_domain_refused(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    graph = helper.make_graph(
        [helper.make_node("Gelu", ["x"], ["y"], domain="com.microsoft")],
        "g",
        [x],
        [helper.make_tensor_value_info("y", 1, [1])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    path = tmp_path / "ms.onnx"
    save_onnx(model, path)
    with pytest.raises(ConversionError, match=r"node 'y' \(Gelu\) is in domain 'com.microsoft'"):
        load_onnx_source(path)
