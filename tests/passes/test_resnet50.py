"""Acceptance: ResNet-50 (synthesized weights) after the default passes.

No BatchNormalization and no Scale Mul/Add may remain (the only Adds left are the 16 residual
Eltwise sums, which read two computed tensors), and the logits must match the unoptimized
model within 1e-4 of the output's scale.
"""

from __future__ import annotations

import numpy as np

from converters.caffe.convert import caffe_to_onnx
from converters.passes import run_passes
from tests.caffe.helpers import run_ort
from tests.caffe.synth import synthesize_weights
from tests.passes.helpers import ops


def test_resnet50_default_passes(models_dir, tmp_path):
    prototxt = models_dir / "architectures" / "ResNet-50-deploy.prototxt"
    weights = synthesize_weights(prototxt, tmp_path / "resnet50.caffemodel", seed=0)
    before = caffe_to_onnx(prototxt, weights, outputs=["fc1000", "prob"])
    after = run_passes(before)

    assert ops(before)["BatchNormalization"] == 53 and ops(before)["Mul"] == 53
    counts = ops(after)
    assert "BatchNormalization" not in counts and "Mul" not in counts, counts
    assert counts["Conv"] == 53 and counts["Add"] == 16, counts
    consts = {t.name for t in after.graph.initializer}
    for node in after.graph.node:
        if node.op_type == "Add":
            assert not set(node.input) & consts, f"{node.name}: an Add with a constant remains"

    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 224, 224)).astype(np.float32)
    want, got = run_ort(before, {"data": x}), run_ort(after, {"data": x})
    for name in ("fc1000", "prob"):
        scale = np.abs(want[name]).max()
        err = np.abs(got[name] - want[name]).max()
        assert err <= 1e-4 * scale, f"{name}: max error {err} vs output scale {scale}"
    assert np.abs(want["fc1000"]).max() > 1.0  # real logits, not a collapsed network
