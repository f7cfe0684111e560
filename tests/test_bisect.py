"""First diverging layer: a deliberately broken Caffe handler is found at its layer.

The PReLU handler is replaced (monkeypatched, in this process) by one that ignores the learned
slopes of layer ``PReLU2`` of MTCNN's P-Net only; ``zoomake convert --verify --bisect`` must
then fail naming that layer, its type, its error and the error of its input (conv2, still
exact), for the ONNX target (onnxruntime, every value exposed) and the OpenVINO IR (every
tensor added as an output). Without ``--bisect`` the message has no divergence line.
"""

from __future__ import annotations

import re

import pytest

from converters.caffe import registry
from pipelines.cli.main import main


def _broken_prelu(original):
    def prelu(layer, ctx):
        if layer.name != "PReLU2":
            return original(layer, ctx)
        x = ctx.input(layer)  # the bug: a fixed 0.5 slope instead of the learned ones
        y = ctx.node("LeakyRelu", [x], ctx.top_name(layer), alpha=0.5)
        ctx.set_top(layer, 0, y, ctx.shape(x))

    return prelu


@pytest.fixture
def broken_prelu(monkeypatch):
    info = registry.get_handler("PReLU")
    monkeypatch.setitem(
        registry._HANDLERS, "PReLU", registry.HandlerInfo(
            info.type_name, _broken_prelu(info.handler), info.family, info.notes)
    )  # fmt: skip


DIVERGENCE = re.compile(
    r"first divergence: layer PReLU2 \(PReLU\): max abs err ([0-9.e+-]+), "
    r"its input conv2 within ([0-9.e+-]+)"
)


@pytest.mark.parametrize("suffix", [".onnx", ".xml"])
def test_bisect_names_the_broken_layer(broken_prelu, models_dir, tmp_path, capsys, suffix):
    det1 = models_dir / "mtcnn"
    out = tmp_path / f"det1{suffix}"
    args = ["convert", "--prototxt", str(det1 / "det1.prototxt"),
            "--caffemodel", str(det1 / "det1.caffemodel"), "-o", str(out), "--std", "128",
            "--mean", "127.5"]  # fmt: skip
    assert main([*args, "--verify", "--bisect"]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("zoomake: error: verification failed, no output written: FAILED")
    found = DIVERGENCE.search(line)
    assert found, line
    assert float(found.group(1)) > 0.01  # PReLU2's own error: far out of tolerance ...
    assert float(found.group(2)) < 1e-4  # ... while what it read was right
    assert not out.exists()
    assert main(args) == 1  # without --bisect: the failure alone
    (line,) = capsys.readouterr().err.splitlines()
    assert "FAILED" in line and "first divergence" not in line


def test_no_divergence_on_a_faithful_conversion(models_dir, tmp_path):
    """The walk itself: on the unbroken converter every matched tensor is within tolerance."""
    import numpy as np

    from pipelines.build.steps import convert_source, write_model
    from pipelines.verify.bisect import first_divergence

    det1 = models_dir / "mtcnn"
    sources = {"prototxt": det1 / "det1.prototxt", "caffemodel": det1 / "det1.caffemodel"}
    model = convert_source("caffe", sources, {}, None, 17)
    write_model(model, tmp_path / "model.onnx", "onnx", "fp32")
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 12, 12)).astype(np.float32)
    result = first_divergence("caffe", sources, "onnx", tmp_path, {"data": x}, {"data": x},
                              1e-4, 1e-3)  # fmt: skip
    assert result["found"] is False
    assert result["compared"] >= 9  # conv1, PReLU1, pool1, conv2, ... prob1: all matched by name


def test_onnx_source_against_a_caffe_artifact(models_dir, tmp_path):
    """The other runners: an ONNX source in onnxruntime against a Caffe artifact in OpenCV.
    The artifact is exported from P-Net's ONNX; the SOURCE then gets one conv2 weight changed,
    so conv2 is where the two part (its input, pool1, still agrees)."""
    import numpy as np

    from converters.io import save_onnx
    from pipelines.build.steps import convert_source, write_model
    from pipelines.verify.bisect import first_divergence
    from tests.verify_helpers import corrupt, initializer_feeding

    det1 = models_dir / "mtcnn"
    sources = {"prototxt": det1 / "det1.prototxt", "caffemodel": det1 / "det1.caffemodel"}
    model = convert_source("caffe", sources, {}, None, 17)
    write_model(model, tmp_path / "model.prototxt", "caffe")
    x = {"data": np.random.default_rng(1).uniform(-1, 1, (1, 3, 12, 12)).astype(np.float32)}
    save_onnx(model, tmp_path / "source.onnx")
    same = first_divergence("onnx", {"onnx": tmp_path / "source.onnx"}, "caffe", tmp_path, x, x,
                            1e-4, 1e-3)  # fmt: skip
    assert same["found"] is False and same["compared"] == 10
    weight = initializer_feeding(model, "Conv", "conv2@conv2")
    save_onnx(corrupt(model, weight, (3, 0, 1, 1), 0.5), tmp_path / "source.onnx")
    d = first_divergence("onnx", {"onnx": tmp_path / "source.onnx"}, "caffe", tmp_path, x, x,
                         1e-4, 1e-3)  # fmt: skip
    assert (d["found"], d["type"], d["tensor"]) == (True, "Conv", "conv2@conv2")
    assert d["input"]["tensor"] == "pool1" and d["input"]["max_abs_error"] < 1e-4  # in tolerance
    assert d["message"].startswith("first divergence: layer conv2@conv2 (Conv): max abs err ")
