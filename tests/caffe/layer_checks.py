"""Test support for layer families OpenCV DNN cannot run, and for error-path assertions.

``convert_and_run`` converts a tiny net and runs it in onnxruntime, and in real Caffe whenever
this Caffe build has every layer type of the net (asserting agreement at ``caffe_atol`` /
``caffe_rtol``); the test then compares against a numpy implementation of Caffe's forward pass
written in the test module itself where Caffe lacks the layer (Interp, ShuffleChannel, ...).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from converters.errors import ConversionError
from tests.caffe.helpers import (
    _assert_close,
    assert_same_outputs,
    caffe_can_run,
    final_blobs,
    run_caffe,
    run_ort,
    write_net,
)
from tests.onnx2caffe.helpers import random_feeds


def convert_and_run(
    tmp_path: Path,
    prototxt: str,
    weights: dict[str, list[np.ndarray]] | None = None,
    *,
    feeds: dict[str, np.ndarray] | None = None,
    seed: int = 0,
    opset: int = 17,
    legacy_blobs: bool = False,
    caffe_atol: float = 1e-5,
    caffe_rtol: float = 1e-5,
    caffe: bool = True,
):
    """Convert and run in onnxruntime (and real Caffe, see the module docstring; ``caffe=False``
    where this Caffe build is known to differ from the dialect under test); returns
    ``(model, outputs, feeds)``."""
    import onnx

    from converters.caffe.convert import caffe_to_onnx

    proto_path, model_path = write_net(tmp_path, prototxt, weights, legacy_blobs=legacy_blobs)
    model = caffe_to_onnx(proto_path, model_path, opset=opset)
    onnx.checker.check_model(model, full_check=True)
    if feeds is None:
        feeds = random_feeds(model, seed)
    got = run_ort(model, feeds)
    if caffe and caffe_can_run(proto_path):
        want = run_caffe(proto_path, model_path, feeds, final_blobs(proto_path))
        assert_same_outputs(got, list(want))
        _assert_close(got, want, caffe_atol, caffe_rtol, "real Caffe")
    return model, got, feeds


def expect_error(tmp_path: Path, prototxt: str, weights, layer: str, *fragments: str) -> str:
    """Converting must fail with one line naming the prototxt, ``layer`` and each fragment."""
    from converters.caffe.convert import caffe_to_onnx

    proto_path, model_path = write_net(tmp_path, prototxt, weights, name="bad")
    with pytest.raises(ConversionError) as info:
        caffe_to_onnx(proto_path, model_path)
    msg = str(info.value)
    assert "\n" not in msg, msg
    assert msg.startswith(f"{proto_path}: layer '{layer}' ("), msg
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)
    return msg


def op_types(model) -> list[str]:
    return [n.op_type for n in model.graph.node]
