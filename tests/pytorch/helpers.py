"""Tiny ONNX graphs built in code, run in onnxruntime (the reference) and as generated torch."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.onnx2caffe.helpers import random_feeds

torch = pytest.importorskip("torch", reason="torch is not installed (pip install -e '.[pytorch]')")


def graph_model(nodes, inputs, outputs, inits=(), opset=17):
    """inputs/outputs: {name: shape} (float32; an output shape may be None)."""
    g = helper.make_graph(
        nodes,
        "t",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs.items()],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in dict(inits).items()],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    return m


def run_ort(model, feeds):
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds), strict=True))


def compare(model, atol=1e-6, seed=0, feeds=None, rtol=0.0):
    """Generate model.py in memory, load it, run both; assert every output within ``atol``."""
    from converters.pytorch.convert import generate

    code, state = generate(model)
    ns: dict = {}
    exec(compile(code, "model.py", "exec"), ns)
    net = ns["Model"]()
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()}, strict=True)
    net.eval()
    if feeds is None:
        feeds = random_feeds(model, seed)
    want = run_ort(model, feeds)
    with torch.no_grad():
        out = net(*[torch.from_numpy(feeds[n]) for n in ns["INPUTS"]])
    out = out if isinstance(out, tuple) else (out,)
    got = dict(zip(ns["OUTPUTS"], [o.numpy() for o in out], strict=True))
    assert set(got) == set(want)
    for name in want:
        assert got[name].shape == want[name].shape, (name, got[name].shape, want[name].shape)
        np.testing.assert_allclose(got[name], want[name], atol=atol, rtol=rtol, err_msg=name)
    return code


def node(op, inputs, outputs, **attrs):
    return helper.make_node(op, inputs, outputs, name=f"{op.lower()}_0", **attrs)


ULTRAFACE_SHAPES = {"scores": (1, 4420, 2), "boxes": (1, 4420, 4)}


def assert_forms_agree(forms: dict[str, dict], shapes: dict[str, tuple], atol: float) -> None:
    """Every pair of ``forms`` (name -> {output: array}) agrees within ``atol`` on every output
    of ``shapes`` (name -> the shape every form must give): each form is an oracle of the others."""
    names = list(forms)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            for out, shape in shapes.items():
                assert forms[a][out].shape == forms[b][out].shape == shape, (a, b, out)
                err = float(np.abs(forms[a][out] - forms[b][out]).max())
                assert err <= atol, f"{out}: {a} vs {b} differ by {err}"
