"""The 7 shared architectures with synthesized weights: Caffe -> ONNX -> PyTorch against OpenCV,
max abs error <= 1e-4 x the reference output's max magnitude (as tests/caffe/test_architectures)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.caffe.helpers import final_blobs, run_opencv
from tests.caffe.synth import synthesize_weights
from tests.caffe.test_architectures import ARCHITECTURES, _input_name
from tests.pytorch.helpers import torch


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_architecture_round_trip(arch, models_dir, tmp_path):
    from converters.caffe.convert import caffe_to_onnx
    from converters.pytorch.convert import generate

    proto_name, shape, outputs = ARCHITECTURES[arch]
    proto = models_dir / "architectures" / proto_name
    input_name = _input_name(proto)
    shapes = {input_name: shape} if shape else None
    weights = synthesize_weights(
        proto, tmp_path / "w.caffemodel", seed=3, input_shapes=shapes, outputs=outputs
    )
    model = caffe_to_onnx(proto, weights, input_shapes=shapes, outputs=outputs)
    code, state = generate(model, proto.name)
    ns: dict = {}
    exec(compile(code, "model.py", "exec"), ns)
    net = ns["Model"]()
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()}, strict=True)
    net.eval()
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    feeds = {input_name: np.random.default_rng(11).uniform(-1, 1, dims).astype(np.float32)}
    with torch.no_grad():
        out = net(torch.from_numpy(feeds[input_name]))
    got = dict(
        zip(
            ns["OUTPUTS"],
            [o.numpy() for o in (out if isinstance(out, tuple) else (out,))],
            strict=True,
        )
    )
    expected = list(outputs) if outputs else final_blobs(proto)
    assert list(got) == expected
    want = run_opencv(proto, weights, feeds, expected)
    for name in expected:
        assert got[name].shape == want[name].shape, (arch, name)
        scale = float(np.abs(want[name]).max())
        assert scale > 0
        err = float(np.abs(got[name] - want[name]).max())
        assert err <= 1e-4 * scale, f"{arch} {name}: max abs error {err} vs scale {scale}"
