"""The 7 shared architectures with synthesized weights: Caffe -> ONNX -> MXNet checkpoint run by
MXNet 1.9.1 against OpenCV, max abs error <= 1e-4 x the reference output's max magnitude (as
tests/caffe/test_architectures). SqueezeNet's ceil pooling (``pooling_convention: full``),
MobileNet's depthwise convolutions, ResNet's BatchNorm/Scale, AlexNet's LRN, SSD's constant
prior boxes. A softmax output is also checked before the softmax (a saturated softmax hides
errors)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.caffe.helpers import run_opencv
from tests.caffe.test_architectures import ARCHITECTURES, synthesized_architecture
from tests.mxnet.helpers import run_mxnet


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_architecture_to_mxnet(arch, models_dir, tmp_path):
    from converters.mxnet.export import from_onnx

    proto, weights, model, feeds, expected = synthesized_architecture(arch, models_dir, tmp_path)
    symbol, params = from_onnx(model, tmp_path / "mx")
    nodes = json.loads(symbol.read_text())["nodes"]
    ops = {n["op"] for n in nodes}
    if arch == "squeezenet1.1":
        assert any(n.get("attrs", {}).get("pooling_convention") == "full" for n in nodes)
    if arch.startswith("mobilenet"):
        assert any(int(n.get("attrs", {}).get("num_group", 1)) > 1 for n in nodes)
    if arch == "resnet50":
        bn = [n for n in nodes if n["op"] == "BatchNorm"]
        assert bn and all(n["attrs"]["fix_gamma"] == "False" for n in bn)
        assert all(n["attrs"]["use_global_stats"] == "True" for n in bn)
    assert "null" in ops
    pre = [n.input[0] for n in model.graph.node if n.op_type == "Softmax" and n.output[0] in
           expected]  # fmt: skip
    got = run_mxnet(symbol, params, feeds, expected + pre)
    want = run_opencv(proto, weights, feeds, expected + pre)
    for name in expected + pre:
        assert got[name].shape == want[name].shape, (arch, name, got[name].shape)
        scale = float(np.abs(want[name]).max())
        assert scale > 0
        err = float(np.abs(got[name] - want[name]).max())
        assert err <= 1e-4 * scale, f"{arch} {name}: max abs error {err} vs scale {scale}"
