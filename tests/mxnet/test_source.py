"""MXNet source -> ONNX on the shared MXNet files (MXNet's own caffe_converter output of MTCNN
det2/det3: Convolution, LeakyReLU prelu, Pooling full, FullyConnected, Dropout, SoftmaxOutput),
read without mxnet, against MXNet 1.9.1 running the same files; then the ONNX -> Caffe target
of that model against MXNet as well. Bad input: one line naming the file and what is wrong."""

from __future__ import annotations

import numpy as np
import pytest

from converters.errors import ConversionError
from tests.mxnet.helpers import run_mxnet

NETS = {"det2": ((1, 3, 24, 24), ["conv5_2", "prob1"]),
        "det3": ((1, 3, 48, 48), ["conv6_2", "conv6_3", "prob1"])}  # fmt: skip


def _files(models_dir, net):
    d = models_dir / "mxnet"
    return {"symbol": d / f"mtcnn-{net}-symbol.json", "params": d / f"mtcnn-{net}-0000.params"}


@pytest.mark.parametrize("net", sorted(NETS))
def test_shared_mxnet_files_to_onnx_match_mxnet(net, models_dir, tmp_path):
    from converters.mxnet.source import to_onnx
    from converters.onnx2caffe import onnx_to_caffe
    from tests.caffe.helpers import run_opencv, run_ort

    shape, outputs = NETS[net]
    files = _files(models_dir, net)
    model = to_onnx(files, {"data": list(shape)})
    assert [o.name for o in model.graph.output] == outputs
    x = np.random.default_rng(3).uniform(-1, 1, shape).astype(np.float32)
    want = run_mxnet(files["symbol"], files["params"], {"data": x})
    assert list(want) == outputs
    got = run_ort(model, {"data": x})
    for name in outputs:
        np.testing.assert_allclose(got[name], want[name], atol=1e-5, rtol=0, err_msg=name)
    # The pre-softmax logits (an internal output) are where a softmax hides nothing.
    logits = "conv5_1" if net == "det2" else "conv6_1"
    cut = to_onnx(files, {"data": list(shape)}, outputs=[logits])
    ref = run_mxnet(files["symbol"], files["params"], {"data": x}, [logits])[logits]
    np.testing.assert_allclose(run_ort(cut, {"data": x})[logits], ref, atol=1e-5, rtol=0)
    # ... and as a Caffe target, run by OpenCV
    proto, weights = tmp_path / "m.prototxt", tmp_path / "m.caffemodel"
    onnx_to_caffe(model, proto, weights)
    caffe = run_opencv(proto, weights, {"data": x}, outputs)
    for name in outputs:
        np.testing.assert_allclose(caffe[name], want[name], atol=1e-5, rtol=0, err_msg=name)


def test_source_errors_are_one_line(models_dir, tmp_path):
    from converters.mxnet.source import to_onnx

    files = _files(models_dir, "det2")
    with pytest.raises(
        ConversionError,
        match=r"argument 'data' is neither in the params file nor a data input with a shape",
    ):
        to_onnx(files, {})
    with pytest.raises(ConversionError, match=r"no data input 'image' \(its inputs: data\)"):
        to_onnx(files, {"data": [1, 3, 24, 24], "image": [1, 3, 24, 24]})
    with pytest.raises(ConversionError, match=r"no output 'prob2'; did you mean 'prob1'"):
        to_onnx(files, {"data": [1, 3, 24, 24]}, outputs=["prob2"])
    bad = tmp_path / "bad.params"
    bad.write_bytes(files["params"].read_bytes()[:1000])
    with pytest.raises(ConversionError, match=r"bad.params: not an MXNet NDArray file: truncated"):
        to_onnx({**files, "params": bad}, {"data": [1, 3, 24, 24]})
    sym = tmp_path / "x-symbol.json"
    sym.write_text("{}")
    with pytest.raises(ConversionError, match=r"x-symbol.json: not an MXNet symbol file"):
        to_onnx({"symbol": sym}, {})
    no_weights = {"symbol": files["symbol"]}
    with pytest.raises(
        ConversionError, match=r"'conv1_weight' is neither in a params file \(none given\)"
    ):
        to_onnx(no_weights, {"data": [1, 3, 24, 24]})
    odd = tmp_path / "odd-symbol.json"
    odd.write_text(files["symbol"].read_text().replace('"Pooling"', '"ROIPooling"', 1))
    with pytest.raises(ConversionError, match=r"node 'pool1' \(ROIPooling\): no ONNX equivalent"):
        to_onnx({**files, "symbol": odd}, {"data": [1, 3, 24, 24]})
