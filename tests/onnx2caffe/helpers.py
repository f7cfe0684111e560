"""Build tiny ONNX graphs in code, convert them to Caffe, run onnxruntime and OpenCV DNN, compare.

onnxruntime on the ONNX graph is the reference; OpenCV's DNN module (4.x) runs the written
``.prototxt`` + ``.caffemodel``. Graph outputs are Caffe blobs *and* layers of the same name,
which is what OpenCV's ``forward()`` takes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from converters.errors import ConversionError
from converters.onnx2caffe import onnx_to_caffe
from tests.caffe.helpers import assert_caffe_outputs, run_opencv, run_ort


def make_model(
    nodes,
    inputs: dict[str, tuple[int, ...]],
    outputs: list[str],
    initializers: dict[str, np.ndarray] | None = None,
    opset: int = 17,
) -> onnx.ModelProto:
    """A checked model with float32 inputs; output types/shapes come from shape inference."""
    graph = helper.make_graph(
        nodes,
        "test",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in inputs.items()],
        [helper.make_empty_tensor_value_info(n) for n in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (initializers or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = helper.find_min_ir_version_for(list(model.opset_import))
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    types = {vi.name: vi.type for vi in inferred.graph.value_info}
    for vi in model.graph.output:
        vi.type.CopyFrom(types[vi.name])
    onnx.checker.check_model(model, full_check=True)
    return model


def node(op: str, inputs, outputs, **attrs):
    outputs = [outputs] if isinstance(outputs, str) else list(outputs)
    return helper.make_node(op, list(inputs), outputs, name=f"{op.lower()}_{outputs[0]}", **attrs)


def random_feeds(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for vi in model.graph.input:
        shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        feeds[vi.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def convert_and_compare(
    tmp_path: Path,
    model: onnx.ModelProto,
    *,
    atol: float = 1e-5,
    rtol: float = 0.0,
    feeds: dict[str, np.ndarray] | None = None,
    seed: int = 0,
):
    """onnx_to_caffe, then ORT(model) vs OpenCV(caffe) on the same input; returns both."""
    proto, weights = tmp_path / "model.prototxt", tmp_path / "model.caffemodel"
    onnx_to_caffe(model, proto, weights)
    feeds = feeds if feeds is not None else random_feeds(model, seed)
    want = run_ort(model, feeds)
    assert_caffe_outputs(proto, list(want))
    got = run_opencv(proto, weights, feeds, list(want))
    for name in want:
        assert got[name].shape == want[name].shape, (name, got[name].shape, want[name].shape)
        np.testing.assert_allclose(got[name], want[name], atol=atol, rtol=rtol, err_msg=name)
    return got, want


def assert_refused(tmp_path: Path, model: onnx.ModelProto, message: str) -> None:
    """``onnx_to_caffe`` into the empty ``tmp_path`` fails with exactly ``message`` and writes
    nothing."""
    import pytest

    with pytest.raises(ConversionError) as info:
        onnx_to_caffe(model, tmp_path / "m.prototxt", tmp_path / "m.caffemodel")
    assert str(info.value) == message
    assert not list(tmp_path.iterdir())
