"""One-shot ``zoomake convert`` with PyTorch on either side: Caffe -> model.pt2 (+ .py, .pth),
``--to pytorch``, and the archive back to Caffe (``--torch X.pt2 -o Y.prototxt``), each checked
against OpenCV's run of the original Caffe model within 1e-4."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from tests.caffe.helpers import run_opencv
from tests.pytorch.helpers import torch  # noqa: F401  (skips without torch)


def zoomake(*args):
    return subprocess.run([sys.executable, "-m", "pipelines", *map(str, args)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def test_caffe_to_pt2_and_back(models_dir, tmp_path):
    from converters.pytorch.runners import GeneratedRunner, Pt2Runner

    # UltraFace slim-320 (MTCNN's ceil-mode pooling does not come back: torch's TorchScript
    # exporter leaves that MaxPool's output shape unknown, and the Caffe writer refuses it).
    d = models_dir / "ultraface"
    proto, weights = d / "slim-320.prototxt", d / "slim-320.caffemodel"
    names = ["scores", "boxes"]
    x = np.random.default_rng(4).uniform(-1, 1, (1, 3, 240, 320)).astype(np.float32)
    feeds = {"input": x}
    want = run_opencv(proto, weights, feeds, names)

    out = tmp_path / "slim.pt2"
    r = zoomake("convert", "--prototxt", proto, "--caffemodel", weights, "-o", out)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["slim.pt2", "slim.pth", "slim.py"]
    for runner in (Pt2Runner(out), GeneratedRunner(tmp_path / "slim.py", tmp_path / "slim.pth")):
        got = runner.run(feeds)
        for name in names:
            np.testing.assert_allclose(got[name], want[name], atol=1e-4, rtol=0, err_msg=name)

    back = tmp_path / "back" / "slim.prototxt"
    r = zoomake("convert", "--torch", out, "-o", back)
    assert r.returncode == 0, r.stderr
    got = run_opencv(back, back.with_suffix(".caffemodel"), feeds, names)
    for name in names:
        np.testing.assert_allclose(
            got[name].reshape(want[name].shape), want[name], atol=1e-4, rtol=0, err_msg=name
        )


def test_to_pytorch_into_a_directory(models_dir, tmp_path):
    proto, weights = models_dir / "mtcnn/det1.prototxt", models_dir / "mtcnn/det1.caffemodel"
    r = zoomake("convert", "--prototxt", proto, "--caffemodel", weights, "--to", "pytorch",
                "--output_dir", tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["det1.pt2", "det1.pth", "det1.py"]


def test_bad_archive_is_one_line(tmp_path):
    bad = tmp_path / "m.pt2"
    bad.write_bytes(b"not a zip archive")
    r = zoomake("convert", "--torch", bad, "-o", tmp_path / "m.onnx")
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "m.pt2" in lines[0], r.stderr
    assert not (tmp_path / "m.onnx").exists()
