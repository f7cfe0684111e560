"""MXNet in the build: a recipe with ``framework: mxnet`` (the shared MXNet MTCNN det2 file, made by
MXNet's own caffe_converter) whose onnx, openvino and caffe targets are verified against MXNet
1.9.1 running the source; and the one-shot CLI both ways (Caffe -> MXNet checkpoint, MXNet
checkpoint -> ONNX), each checked against MXNet / OpenCV."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.mxnet.helpers import require_mxnet, run_mxnet
from tests.zoo_env import offline_zoo_env

REPO = Path(__file__).resolve().parents[2]


def _file(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return f"    url: {path.as_uri()}\n    sha256: {digest}\n    size: {path.stat().st_size}\n"


def test_mxnet_source_recipe_builds_and_verifies_against_mxnet(models_dir, tmp_path):
    require_mxnet()
    d = models_dir / "mxnet"
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "mtcnn-det2-mxnet.yaml").write_text(
        "description: MTCNN R-Net as converted by MXNet's caffe_converter (shared MXNet file).\n"
        "license: MIT\ntask: face_detection\nsource:\n  framework: mxnet\n  symbol:\n"
        + _file(d / "mtcnn-det2-symbol.json") + "  params:\n" + _file(d / "mtcnn-det2-0000.params")
        + "inputs:\n  data:\n    shape: [1, 3, 24, 24]\n"
        "    preprocess: {mean: 127.5, scale: 0.0078125}\n"
        "outputs: [conv5_2, prob1]\ntargets:\n"
        "  onnx: {format: onnx, precision: fp32, opset: 17}\n"
        "  openvino: {format: openvino, precision: fp32}\n"
        "  caffe: {format: caffe, precision: fp32}\n"
        "verify:\n  samples: 2\n  seed: 0\n  tolerances:\n    fp32: {atol: 1.0e-5, rtol: 1.0e-4}\n"
    )  # fmt: skip
    env = offline_zoo_env(tmp_path, recipes, models_dir)
    r = subprocess.run([sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py")],
                       capture_output=True, text=True, env=env, cwd=REPO)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    for target in ("onnx", "openvino", "caffe"):
        report = json.loads((tmp_path / "build" / "mtcnn-det2-mxnet" / target / "verify.json")
                            .read_text())  # fmt: skip
        assert report["passed"] is True, (target, report)
        assert report["reference"]["runtime"] == "mxnet", report["reference"]


def test_one_shot_caffe_to_mxnet_is_verified_by_mxnet(models_dir, tmp_path, capsys):
    from pipelines.cli.main import main

    require_mxnet()
    proto, weights = (
        models_dir / "mtcnn" / "det3.prototxt",
        models_dir / "mtcnn" / "det3.caffemodel",
    )
    out = tmp_path / "det3-symbol.json"
    rc = main(["convert", "--prototxt", str(proto), "--caffemodel", str(weights), "--to", "mxnet",
               "-o", str(out)])  # fmt: skip
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "verify   passed: mxnet vs caffe" in text or "verify   passed: mxnet vs opencv" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["det3-0000.params", "det3-symbol.json"]
    from tests.caffe.helpers import final_blobs, run_opencv

    x = np.random.default_rng(4).uniform(-1, 1, (1, 3, 48, 48)).astype(np.float32)
    got = run_mxnet(out, tmp_path / "det3-0000.params", {"data": x})
    want = run_opencv(proto, weights, {"data": x}, final_blobs(proto))
    for name, ref in want.items():
        np.testing.assert_allclose(got[name], ref, atol=1e-4, rtol=0, err_msg=name)


@pytest.mark.parametrize("suffix", [".onnx", ".xml", ".prototxt"])
def test_one_shot_mxnet_source_is_verified_against_mxnet(suffix, models_dir, tmp_path, capsys):
    from pipelines.cli.main import main

    require_mxnet()
    d = models_dir / "mxnet"
    out = tmp_path / f"det2{suffix}"
    rc = main(["convert", "--mxnet-symbol", str(d / "mtcnn-det2-symbol.json"),
               "--mxnet-params", str(d / "mtcnn-det2-0000.params"),
               "--input-shape", "data=1,3,24,24", "-o", str(out)])  # fmt: skip
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "vs mxnet (mxnet)" in text and "verify   passed" in text, text
    assert out.is_file()


def test_one_shot_mxnet_source_without_a_shape_is_one_line(models_dir, tmp_path, capsys):
    from pipelines.cli.main import main

    d = models_dir / "mxnet"
    rc = main(["convert", "--mxnet-symbol", str(d / "mtcnn-det2-symbol.json"),
               "--mxnet-params", str(d / "mtcnn-det2-0000.params"), "-o",
               str(tmp_path / "m.onnx")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert rc == 1 and "\n" not in err
    assert err.endswith("(recipe inputs.data.shape, or --input-shape data=N,C,H,W)"), err
    assert not list(tmp_path.iterdir())
