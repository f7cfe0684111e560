"""PyTorch sources -> ONNX (torch.onnx.export in a worker) against the model run eagerly in torch."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tests.pytorch.helpers import run_ort, torch

ULTRAFACE = {
    "RFB-320": ("vision.ssd.mb_tiny_RFB_fd:create_Mb_Tiny_RFB_fd", "version-RFB-320.pth"),
    "slim-320": ("vision.ssd.mb_tiny_fd:create_mb_tiny_fd", "version-slim-320.pth"),
}


def ultraface_source(models_dir, name):
    from converters.pytorch.source import TorchSource

    entry, ckpt = ULTRAFACE[name]
    code = models_dir / "ultraface" / "pytorch"
    # vision/ssd/predictor.py -> vision/transforms imports torchvision at import time but the
    # network never calls it; torchvision cannot be installed beside the CPU torch here.
    return TorchSource(
        kind="code",
        entry=entry,
        kwargs={"num_classes": 2, "is_test": False},
        code_dir=str(code),
        checkpoint=str(code / ckpt),
        stub_modules=["torchvision"],
    )


def authors_input(seed):
    """RGB pixels 0..255, the authors' preprocessing (x - 127) / 128."""
    rgb = np.random.default_rng(seed).uniform(0, 255, (1, 3, 240, 320))
    return ((rgb - 127) / 128).astype(np.float32)


def test_slim_320_checkpoint_to_onnx_matches_eager(models_dir):
    """RFB-320 takes the same path in test_three_forms (export, eager, metadata, sys.path)."""
    from converters.pytorch.source import run_reference, torch_to_onnx

    src = ultraface_source(models_dir, "slim-320")
    model = torch_to_onnx(src, {"input": [1, 3, 240, 320]}, ["scores", "boxes"])
    assert_exported_by_torchscript(model)
    feeds = {"input": authors_input(1)}
    want = run_reference(src, feeds, ["scores", "boxes"])
    got = run_ort(model, feeds)
    assert want["scores"].shape == (1, 4420, 2) and want["boxes"].shape == (1, 4420, 4)
    for out in ("scores", "boxes"):
        np.testing.assert_allclose(got[out], want[out], atol=1e-5, rtol=0, err_msg=out)
    assert_code_stayed_in_worker(models_dir)


def assert_exported_by_torchscript(model):
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["zoomake.exporter"].startswith("torch.onnx.export(dynamo=False) torch 2.")


def assert_code_stayed_in_worker(models_dir):
    """The user's code went on sys.path in the worker only."""
    assert str(models_dir / "ultraface" / "pytorch") not in sys.path
    assert "vision" not in sys.modules and "torchvision" not in sys.modules


class _Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4 * 6 * 6, 5)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x)))
        return torch.softmax(self.fc(torch.flatten(y, 1)), dim=1), y


@pytest.fixture(scope="session")
def tiny_saved(tmp_path_factory):
    """``saved(kind) -> (path, live net)``: _Tiny saved as ``kind`` once per session (the pt2
    archive is read by two tests; torch.export costs seconds)."""
    cache = {}

    def saved(kind):
        if kind not in cache:
            path = tmp_path_factory.mktemp("tiny") / ("m.pt2" if kind == "pt2" else "m.pt")
            cache[kind] = path, _save_tiny(kind, path)
        return cache[kind]

    return saved


def _save_tiny(kind, path):
    """_Tiny with non-trivial BatchNorm statistics, saved as ``kind``; returns the live net."""
    torch.manual_seed(0)
    net = _Tiny().eval()
    with torch.no_grad():
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 1.5)
    x = torch.zeros(2, 3, 6, 6)
    if kind == "pt2":
        torch.export.save(torch.export.export(net, (x,)), path)
    else:
        torch.jit.save(torch.jit.trace(net, (x,)), path)
    return net


@pytest.mark.parametrize("kind", ["pt2", "torchscript"])
def test_saved_forms_to_onnx(kind, tiny_saved):
    """Through the format functions: to_onnx, then one reference worker serving two runs (and
    a bad request answered with one line, the worker still serving after it)."""
    from converters.errors import ConversionError
    from converters.pytorch.plugin import reference, to_onnx

    path, net = tiny_saved(kind)
    files = {kind: path}
    model = to_onnx(files, {"x": [2, 3, 6, 6]}, ["prob", "feat"])
    assert_exported_by_torchscript(model)
    rng = np.random.default_rng(2)
    sets = [{"x": rng.standard_normal((2, 3, 6, 6)).astype(np.float32)} for _ in range(2)]
    with reference(files, ["prob", "feat"]) as ref:
        assert ref.outputs == ["prob", "feat"]
        runs = [ref.run(feeds) for feeds in sets[:1]]
        with pytest.raises(ConversionError) as err:
            ref.run({"x": sets[0]["x"], "y": sets[0]["x"]})
        assert str(err.value).startswith("pytorch reference: ") and "\n" not in str(err.value)
        runs.append(ref.run(sets[1]))
    for feeds, want in zip(sets, runs, strict=True):
        with torch.no_grad():
            direct = [t.numpy() for t in net(torch.from_numpy(feeds["x"]))]
        got = run_ort(model, feeds)
        for i, out in enumerate(["prob", "feat"]):
            np.testing.assert_allclose(want[out], direct[i], atol=1e-6, rtol=0)
            np.testing.assert_allclose(got[out], want[out], atol=1e-5, rtol=0, err_msg=out)
    assert not np.allclose(runs[0]["feat"], runs[1]["feat"])  # two runs, two answers


def test_bad_sources_are_one_line(models_dir, tiny_saved):
    from converters.errors import ConversionError
    from converters.pytorch.plugin import to_onnx, torch_source
    from converters.pytorch.source import torch_to_onnx

    def one_line(call, *want):
        with pytest.raises(ConversionError) as err:
            call()
        msg = str(err.value)
        assert "\n" not in msg and all(w in msg for w in want), msg

    # Roles: decided before any worker starts.
    one_line(lambda: torch_source({"pt2": "a.pt2", "torchscript": "b.pt"}), "exactly one")
    one_line(lambda: torch_source({"pt2": "a.pt2", "checkpoint": "c.pth"}), "checkpoint")
    one_line(lambda: torch_source({"entry": "m:f", "weights": "c.pth"}), "'weights'")
    one_line(lambda: to_onnx({"torchscript": "a.pt"}, {"x": [1]}, []), "outputs")
    one_line(lambda: to_onnx({"torchscript": "a.pt"}, {}, ["y"]), "input shapes")
    # The worker's errors: a missing factory, a checkpoint of another network, a .pt2 archive
    # asked for another shape than it was exported with.
    src = ultraface_source(models_dir, "RFB-320")
    src.entry = "vision.ssd.mb_tiny_RFB_fd:no_such_factory"
    shapes = {"input": [1, 3, 240, 320]}
    one_line(lambda: torch_to_onnx(src, shapes, ["scores", "boxes"]), "no_such_factory")
    src = ultraface_source(models_dir, "slim-320")
    src.checkpoint = str(models_dir / "ultraface" / "pytorch" / "version-RFB-320.pth")
    one_line(lambda: torch_to_onnx(src, shapes, ["scores", "boxes"]), "does not fit")
    pt2 = tiny_saved("pt2")[0]
    one_line(
        lambda: to_onnx({"pt2": pt2}, {"x": [1, 3, 6, 6]}, ["prob", "feat"]),
        "m.pt2: input 'x' was exported with shape [2, 3, 6, 6], the recipe asks [1, 3, 6, 6]",
    )
