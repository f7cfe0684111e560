"""Caffe -> MXNet (the caffe_converter's job) on the six real Caffe models, through ONNX:
the written checkpoint run by MXNet 1.9.1 against OpenCV's run of the Caffe source, within
1e-4 (absolute; outputs are probabilities and box offsets of magnitude <= ~10). The same files
also load with MXNet's own ``mx.model.load_checkpoint`` and ``SymbolBlock.imports``."""

from __future__ import annotations

import numpy as np
import pytest

from tests.caffe.helpers import final_blobs, run_opencv, uniform_feeds
from tests.mxnet.helpers import mx_jobs, require_mxnet, run_mxnet
from tests.pytorch.test_real_models import MODELS


@pytest.fixture(scope="module")
def converted(models_dir, tmp_path_factory):
    """name -> (symbol, params, feeds, OpenCV outputs)."""
    from converters.caffe.convert import caffe_to_onnx
    from converters.mxnet.export import from_onnx

    out = {}
    for name, (stem, outputs) in MODELS.items():
        proto, weights = models_dir / f"{stem}.prototxt", models_dir / f"{stem}.caffemodel"
        model = caffe_to_onnx(proto, weights, outputs=outputs)
        d = tmp_path_factory.mktemp(name)
        files = from_onnx(model, d)
        assert [p.name for p in files] == ["model-symbol.json", "model-0000.params"]
        feeds = uniform_feeds(model, seed=7)
        expected = list(outputs) if outputs else final_blobs(proto)
        out[name] = (*files, feeds, run_opencv(proto, weights, feeds, expected))
    return out


@pytest.mark.parametrize("name", sorted(MODELS))
def test_caffe_to_mxnet_matches_opencv(name, converted):
    symbol, params, feeds, want = converted[name]
    got = run_mxnet(symbol, params, feeds)
    assert list(got) == list(want)
    for out in want:
        assert got[out].shape == want[out].shape, (out, got[out].shape, want[out].shape)
        np.testing.assert_allclose(got[out], want[out], atol=1e-4, rtol=0, err_msg=f"{name} {out}")


def test_mxnet_own_loaders_read_the_checkpoints(converted, tmp_path):
    """load_checkpoint + Module and SymbolBlock.imports (all six in one MXNet process)."""
    require_mxnet()
    jobs = []
    for name, (symbol, _params, feeds, _want) in converted.items():
        (input_name,) = feeds
        np.save(tmp_path / f"{name}.npy", feeds[input_name])
        prefix = str(symbol).removesuffix("-symbol.json")
        jobs.append({"kind": "checkpoint", "prefix": prefix, "data_name": input_name,
                     "input": str(tmp_path / f"{name}.npy"),
                     "out_module": str(tmp_path / f"{name}-module.npz"),
                     "out_block": str(tmp_path / f"{name}-block.npz")})  # fmt: skip
    mx_jobs(jobs, tmp_path)
    for job in jobs:
        name = job["out_module"].rsplit("/", 1)[1].removesuffix("-module.npz")
        want = list(converted[name][3].values())
        for kind in ("module", "block"):
            with np.load(job[f"out_{kind}"]) as got:
                assert len(got.files) == len(want)
                for i, ref in enumerate(want):
                    np.testing.assert_allclose(got[f"a{i}"], ref, atol=1e-4, rtol=0,
                                               err_msg=f"{name} {kind} output {i}")  # fmt: skip
