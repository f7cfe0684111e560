"""GluonConverter's job and more: small seeded Gluon models, built and exported by MXNet 1.9.1
itself (``mx_jobs.py``: convs, BatchNorm, depthwise, FC, max/avg pooling in both conventions
with and without count_include_pad, concat, residual add, ReLU6 as clip(0, 6)), read by our
MXNet source (no mxnet here) and converted:

- -> ONNX, run by onnxruntime;
- -> Caffe with BatchNorm folded into the convolutions (``fold_batchnorm``) and the channel
  reversal baked in (``reverse_channels``, BGR deployment), run by OpenCV (and real Caffe when
  set up) on the reversed input; ReLU6 stays exact as Caffe's ``ReLU6`` layer;
- -> OpenVINO IR; -> an MXNet checkpoint again (our writer), run by MXNet.

Every result against Gluon's own forward pass in MXNet: max abs error <= 1e-4 x the output's
max magnitude.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.mxnet.helpers import mx_jobs

MODELS = {"convbnpool": (1, 3, 32, 32), "residual": (1, 3, 27, 27)}


@pytest.fixture(scope="module")
def gluon_models(tmp_path_factory):
    """name -> (files, input, [Gluon's outputs]); one MXNet process builds them all."""
    work = tmp_path_factory.mktemp("gluon")
    jobs = []
    for k, (name, shape) in enumerate(MODELS.items()):
        x = np.random.default_rng(20 + k).uniform(-1, 1, shape).astype(np.float32)
        np.save(work / f"{name}.npy", x)
        jobs.append({"kind": "gluon", "model": name, "seed": 5 + k, "input": str(work / f"{name}.npy"),
                     "prefix": str(work / name), "out": str(work / f"{name}.npz")})  # fmt: skip
    mx_jobs(jobs, work)
    out = {}
    for name in MODELS:
        with np.load(work / f"{name}.npz") as f:
            want = [f[k] for k in sorted(f.files, key=lambda s: int(s[1:]))]
        files = {"symbol": work / f"{name}-symbol.json", "params": work / f"{name}-0000.params"}
        out[name] = (files, np.load(work / f"{name}.npy"), want)
    return out


def _close(got: dict, want: list, what: str) -> None:
    assert len(got) == len(want), (what, list(got))
    for (name, value), ref in zip(got.items(), want, strict=True):
        assert value.shape == ref.shape, (what, name, value.shape, ref.shape)
        scale = float(np.abs(ref).max())
        assert scale > 0
        err = float(np.abs(value - ref).max())
        assert err <= 1e-4 * scale, f"{what} {name}: max abs error {err} vs scale {scale}"


def _onnx(gluon_models, name):
    from converters.mxnet.source import to_onnx

    files, x, want = gluon_models[name]
    return to_onnx(files, {"data": list(x.shape)}), x, want


@pytest.mark.parametrize("name", sorted(MODELS))
def test_gluon_to_onnx_matches_mxnet(name, gluon_models):
    from tests.caffe.helpers import run_ort

    model, x, want = _onnx(gluon_models, name)
    ops = {n.op_type for n in model.graph.node}
    assert {"Conv", "BatchNormalization", "Clip", "Gemm"} <= ops
    _close(run_ort(model, {"data": x}), want, f"{name} onnxruntime")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_gluon_to_caffe_folded_bgr_matches_mxnet(name, gluon_models, tmp_path):
    """GluonConverter's merge_bn + to_bgr, with ReLU6 kept exact."""
    from converters.caffe.prototxt import parse_prototxt
    from converters.onnx2caffe import onnx_to_caffe
    from converters.passes import run_passes
    from converters.preprocess import embed_preprocessing
    from tests.caffe.helpers import caffe_available, caffe_can_run, run_caffe, run_opencv

    model, x, want = _onnx(gluon_models, name)
    model = embed_preprocessing(run_passes(model), {"data": {"reverse_channels": True}})
    proto, weights = tmp_path / "model.prototxt", tmp_path / "model.caffemodel"
    onnx_to_caffe(model, proto, weights)
    types = [layer.type for layer in parse_prototxt(proto).layer]
    assert "BatchNorm" not in types, types  # folded into the convolutions
    assert "ReLU6" in types
    outputs = [o.name for o in model.graph.output]
    bgr = {"data": np.ascontiguousarray(x[:, ::-1])}
    _close(run_opencv(proto, weights, bgr, outputs), want, f"{name} OpenCV")
    if caffe_available():  # this Caffe (brocolli fork) has ReLU6: it must run the net
        assert caffe_can_run(proto)
        _close(run_caffe(proto, weights, bgr, outputs), want, f"{name} real Caffe")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_gluon_to_openvino_matches_mxnet(name, gluon_models, tmp_path):
    from converters.io import save_onnx
    from converters.openvino_export import export_openvino
    from pipelines.runtimes.openvino import OpenVinoRunner

    model, x, want = _onnx(gluon_models, name)
    save_onnx(model, tmp_path / "model.onnx")
    export_openvino(tmp_path / "model.onnx", tmp_path / "model.xml", "fp32")
    runner = OpenVinoRunner(tmp_path / "model.xml", [o.name for o in model.graph.output])
    got = runner.run({"data": x})
    _close({o.name: got[o.name] for o in model.graph.output}, want, f"{name} OpenVINO")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_gluon_round_trip_through_our_mxnet_writer(name, gluon_models, tmp_path):
    from converters.mxnet.export import from_onnx
    from tests.mxnet.helpers import run_mxnet

    model, x, want = _onnx(gluon_models, name)
    symbol, params = from_onnx(model, tmp_path)
    _close(run_mxnet(symbol, params, {"data": x}), want, f"{name} MXNet (our checkpoint)")
