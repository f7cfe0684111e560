"""The 7 shared architectures with synthesized weights: Caffe -> ONNX -> PyTorch against OpenCV,
max abs error <= 1e-4 x the reference output's max magnitude (as tests/caffe/test_architectures)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.caffe.helpers import run_opencv
from tests.caffe.test_architectures import ARCHITECTURES, synthesized_architecture
from tests.pytorch.helpers import torch


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_architecture_round_trip(arch, models_dir, tmp_path):
    from converters.pytorch.convert import generate

    proto, weights, model, feeds, expected = synthesized_architecture(arch, models_dir, tmp_path)
    (input_name,) = feeds
    code, state = generate(model, proto.name)
    ns: dict = {}
    exec(compile(code, "model.py", "exec"), ns)
    net = ns["Model"]()
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()}, strict=True)
    net.eval()
    with torch.no_grad():
        out = net(torch.from_numpy(feeds[input_name]))
    got = dict(
        zip(
            ns["OUTPUTS"],
            [o.numpy() for o in (out if isinstance(out, tuple) else (out,))],
            strict=True,
        )
    )
    assert list(got) == expected
    want = run_opencv(proto, weights, feeds, expected)
    for name in expected:
        assert got[name].shape == want[name].shape, (arch, name)
        scale = float(np.abs(want[name]).max())
        assert scale > 0
        err = float(np.abs(got[name] - want[name]).max())
        assert err <= 1e-4 * scale, f"{arch} {name}: max abs error {err} vs scale {scale}"
