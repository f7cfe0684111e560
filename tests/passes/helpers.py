"""Build small ONNX graphs in code and compare a model before and after a pass."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.caffe.helpers import run_ort


def make_model(nodes, inputs: dict, outputs: dict, inits: dict | None = None, opset: int = 17):
    """``inputs``/``outputs``: name -> shape (float32) or (shape, elem_type); ``inits``: arrays."""

    def vi(name, spec):
        shape, elem = spec if isinstance(spec, tuple) else (spec, TensorProto.FLOAT)
        return helper.make_tensor_value_info(name, elem, shape)

    graph = helper.make_graph(
        nodes,
        "t",
        [vi(n, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs.items()],
        initializer=[numpy_helper.from_array(np.asarray(a), n) for n, a in (inits or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = helper.find_min_ir_version_for(list(model.opset_import))
    onnx.checker.check_model(model, full_check=True)
    return model


def ops(model) -> Counter:
    return Counter(n.op_type for n in model.graph.node)


def feeds_for(model, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    inits = {t.name for t in model.graph.initializer}
    return {
        vi.name: rng.standard_normal([d.dim_value for d in vi.type.tensor_type.shape.dim]).astype(
            np.float32
        )
        for vi in model.graph.input
        if vi.name not in inits
    }


def assert_same_outputs(before, after, atol: float = 1e-5, seed: int = 0, feeds=None):
    """Same output names, same values (onnxruntime) within ``atol``; returns the outputs."""
    assert [o.name for o in after.graph.output] == [o.name for o in before.graph.output]
    onnx.checker.check_model(after, full_check=True)
    feeds = feeds or feeds_for(before, seed)
    want, got = run_ort(before, feeds), run_ort(after, feeds)
    for name in want:
        assert np.abs(want[name]).max() > 1e-2, f"{name}: test output is ~0, proves nothing"
        np.testing.assert_allclose(got[name], want[name], atol=atol, rtol=0, err_msg=name)
    return got


def rng_array(shape, scale: float = 1.0, seed: int = 0, low: float | None = None):
    rng = np.random.default_rng(seed)
    if low is not None:
        return rng.uniform(low, low + scale, shape).astype(np.float32)
    return (rng.standard_normal(shape) * scale).astype(np.float32)
