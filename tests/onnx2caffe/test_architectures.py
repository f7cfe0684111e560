"""Real deploy architectures with synthesized weights: Caffe -> ONNX -> Caffe, compared with the
original net in OpenCV DNN (max abs error <= 1e-4 x the output's magnitude)."""

from __future__ import annotations

import numpy as np
import pytest

from converters.caffe.convert import caffe_to_onnx
from converters.onnx2caffe import onnx_to_caffe
from tests.caffe.helpers import run_opencv
from tests.caffe.synth import synthesize_weights
from tests.caffe.test_architectures import ARCHITECTURES, _input_name

SLOW = {"alexnet", "resnet50"}  # 240 MB of weights / 50+ layers: seconds, not milliseconds


@pytest.mark.parametrize(
    "arch", [pytest.param(a, marks=pytest.mark.slow) if a in SLOW else a
             for a in sorted(ARCHITECTURES)],
)  # fmt: skip
def test_architecture_round_trip(arch, models_dir, tmp_path):
    proto_name, shape, outputs = ARCHITECTURES[arch]
    # SSD's prior boxes depend only on shapes: a constant, which a Caffe net cannot output.
    outputs = [o for o in outputs or [] if o != "mbox_priorbox"] or None
    proto = models_dir / "architectures" / proto_name
    input_name = _input_name(proto)
    shapes = {input_name: shape} if shape else None
    weights = synthesize_weights(proto, tmp_path / "w.caffemodel", seed=3, input_shapes=shapes,
                                 outputs=outputs)  # fmt: skip
    model = caffe_to_onnx(proto, weights, input_shapes=shapes, outputs=outputs)
    out_proto, out_weights = tmp_path / "rt.prototxt", tmp_path / "rt.caffemodel"
    onnx_to_caffe(model, out_proto, out_weights)
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    feeds = {input_name: np.random.default_rng(11).uniform(-1, 1, dims).astype(np.float32)}
    names = [o.name for o in model.graph.output]
    want = run_opencv(proto, weights, feeds, names)
    got = run_opencv(out_proto, out_weights, feeds, names)
    for name in names:
        ref = want[name].reshape(got[name].shape)
        scale = float(np.abs(ref).max())
        err = float(np.abs(got[name] - ref).max())
        assert scale > 0 and err <= 1e-4 * scale, f"{arch} {name}: error {err}, scale {scale}"
