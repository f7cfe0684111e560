"""The six real Caffe models: Caffe -> ONNX (converters.caffe) -> PyTorch through the format
functions (from_onnx); model.pt2 and model.py + model.pth, each in its runner, against OpenCV's
run of the Caffe model, within 1e-4."""

from __future__ import annotations

import numpy as np
import pytest

from tests.caffe.helpers import final_blobs, run_opencv, uniform_feeds
from tests.pytorch.helpers import torch  # noqa: F401  (skips without torch)

MODELS = {
    "det1": ("mtcnn/det1", None),
    "det2": ("mtcnn/det2", None),
    "det3": ("mtcnn/det3", None),
    "det4": ("mtcnn/det4", None),
    "RFB-320": ("ultraface/RFB-320", ["scores", "boxes"]),
    "slim-320": ("ultraface/slim-320", ["scores", "boxes"]),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_caffe_to_pytorch_matches_opencv(name, models_dir, tmp_path):
    from converters.caffe.convert import caffe_to_onnx
    from converters.pytorch.plugin import artifact_runner, from_onnx
    from converters.pytorch.runners import GeneratedRunner

    stem, outputs = MODELS[name]
    proto, weights = models_dir / f"{stem}.prototxt", models_dir / f"{stem}.caffemodel"
    model = caffe_to_onnx(proto, weights, outputs=outputs)
    written = from_onnx(model, tmp_path, {"precision": "fp32"})
    assert [p.name for p in written] == ["model.pt2", "model.py", "model.pth"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt2", "model.pth", "model.py"]
    feeds = uniform_feeds(model, seed=7)
    expected = list(outputs) if outputs else final_blobs(proto)
    want = run_opencv(proto, weights, feeds, expected)
    runners = [artifact_runner(tmp_path), GeneratedRunner(tmp_path / "model.py")]
    graph_inputs = [(vi.name, vi.type.tensor_type.shape.dim) for vi in model.graph.input]
    for runner in runners:
        assert runner.outputs == expected
        assert [(p.name, list(p.shape)) for p in runner.inputs] == [
            (n, [d.dim_value for d in dims]) for n, dims in graph_inputs
        ]
    for got in (r.run(feeds) for r in runners):
        for out in expected:
            assert got[out].shape == want[out].shape, (out, got[out].shape, want[out].shape)
            np.testing.assert_allclose(
                got[out], want[out], atol=1e-4, rtol=0, err_msg=f"{name} {out}"
            )


def test_generated_pt2_back_to_onnx(models_dir, tmp_path):
    """The pt2 artifact as a source again (what ``zoomake convert --torch model.pt2`` reads):
    with no shapes or names given, the archive's own are used, so Caffe -> PyTorch -> ONNX
    keeps the ONNX names; the round trip and the eager reference both agree with the first
    ONNX in onnxruntime (a different runtime from the torch that wrote the archive)."""
    from converters.caffe.convert import caffe_to_onnx
    from converters.pytorch.plugin import from_onnx, reference, to_onnx
    from tests.pytorch.helpers import run_ort

    stem = models_dir / "mtcnn" / "det1"  # PReLU, ceil-mode pooling, channel softmax; small
    model = caffe_to_onnx(stem.with_suffix(".prototxt"), stem.with_suffix(".caffemodel"))
    from_onnx(model, tmp_path, {})
    files = {"pt2": tmp_path / "model.pt2"}
    back = to_onnx(files, None, None)
    names = [o.name for o in model.graph.output]
    assert [i.name for i in back.graph.input] == [i.name for i in model.graph.input]
    assert [o.name for o in back.graph.output] == names
    feeds = uniform_feeds(model, seed=5)
    want = run_ort(model, feeds)
    with reference(files, None) as ref:
        assert ref.outputs == names
        eager = ref.run(feeds)
    for got in (run_ort(back, feeds), eager):
        for out in names:
            np.testing.assert_allclose(got[out], want[out], atol=1e-5, rtol=0, err_msg=out)


def test_pt2_bytes_depend_only_on_the_model(models_dir, tmp_path):
    """model.pt2 is reproducible: MTCNN det2 (ceil-mode pooling) written twice gives the same
    archive, whose graph names the generated module as ``model.Model`` and keeps only the
    ``model.py`` frames of each node's stack trace (no path of this machine, no process id),
    and which still runs as the first write does."""
    import json
    import os
    import sys
    import zipfile

    from converters.caffe.convert import caffe_to_onnx
    from converters.pytorch.plugin import artifact_runner, from_onnx

    stem = models_dir / "mtcnn" / "det2"
    model = caffe_to_onnx(stem.with_suffix(".prototxt"), stem.with_suffix(".caffemodel"))
    first, second = tmp_path / "a", tmp_path / "b"
    from_onnx(model, first, {})
    from_onnx(model, second, {})
    for name in ("model.pt2", "model.py", "model.pth"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    with zipfile.ZipFile(first / "model.pt2") as z:
        graph = z.read("model/models/model.json").decode()
    assert sys.prefix not in graph and str(os.getpid()) not in graph
    traces = [n["metadata"]["stack_trace"] for n in json.loads(graph)["graph_module"]["graph"]
              ["nodes"] if n.get("metadata", {}).get("stack_trace")]  # fmt: skip
    assert traces and all(t.startswith('File "model.py", line ') for t in traces)
    assert "model.Model" in graph
    feeds = uniform_feeds(model, seed=3)
    a, b = artifact_runner(first).run(feeds), artifact_runner(second).run(feeds)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
