"""Atomic outputs and the streamed ONNX writer."""

from __future__ import annotations

import os
import stat

import numpy as np
import onnx
import pytest

from converters.caffe.convert import convert_caffe
from converters.errors import ConversionError
from converters.io import atomic_output, save_onnx
from converters.lazy import materialize, placeholders, save_streamed
from tests.caffe.helpers import run_opencv, run_ort, write_net


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "sub" / "model.onnx"
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert not target.exists()
    assert list((tmp_path / "sub").iterdir()) == []


def test_atomic_output_replaces_and_uses_umask_permissions(tmp_path):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


BIG_FC = """
name: "big"
input: "data"
input_dim: 2 input_dim: 64 input_dim: 8 input_dim: 8
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
        inner_product_param { num_output: 700 } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
"""


def test_streamed_save_writes_the_materialized_models_bytes(tmp_path):
    """Weights over 1 MiB stay in the caffemodel (placeholders) and are streamed into their
    place: the file has the bytes of the model materialized in memory, and computes OpenCV's."""
    rng = np.random.default_rng(0)
    weights = {"fc": [rng.normal(0, 0.05, (700, 4096)).astype(np.float32),
                      rng.normal(0, 0.1, 700).astype(np.float32)]}  # fmt: skip
    proto, model = write_net(tmp_path, BIG_FC, weights)
    lazy = convert_caffe(proto, model).materialize(lazy=True)
    assert [t.name for t in placeholders(lazy)] == ["fc/W"]  # the 11 MB weight stays out
    streamed = tmp_path / "streamed.onnx"
    save_streamed(lazy, streamed)
    plain = tmp_path / "plain.onnx"
    save_onnx(convert_caffe(proto, model).materialize(), plain)
    assert streamed.read_bytes() == plain.read_bytes()

    onnx.checker.check_model(str(streamed), full_check=True)
    x = rng.standard_normal((2, 64, 8, 8)).astype(np.float32)
    got = run_ort(streamed.read_bytes(), {"data": x})["prob"]
    want = run_opencv(proto, model, {"data": x}, ["prob"])["prob"]
    np.testing.assert_allclose(got, want, atol=1e-6)


def _big_fc(tmp_path):
    rng = np.random.default_rng(1)
    weights = {"fc": [rng.normal(0, 0.05, (700, 4096)).astype(np.float32),
                      rng.normal(0, 0.1, 700).astype(np.float32)]}  # fmt: skip
    return write_net(tmp_path, BIG_FC, weights), weights


def test_big_weights_are_copied_from_the_caffemodel_file(tmp_path, monkeypatch):
    """The 11 MB weight is a range of the caffemodel, copied file to file in chunks (a small
    chunk size here: several reads); the saved file holds exactly the caffemodel's float32
    values (read here with numpy)."""
    from converters.io import FileRange
    from converters.lazy import file_range

    (proto, model), weights = _big_fc(tmp_path)
    (t,) = placeholders(convert_caffe(proto, model).materialize(lazy=True))
    where = file_range(t)
    assert (t.name, list(t.dims)) == ("fc/W", [700, 4096])
    assert where.path == model and len(where) == 700 * 4096 * 4
    out = tmp_path / "out.onnx"
    monkeypatch.setattr(FileRange, "CHUNK", 1 << 20)
    save_streamed(convert_caffe(proto, model).materialize(lazy=True), out)
    loaded = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(out).graph.initializer}
    np.testing.assert_array_equal(loaded["fc/W"], weights["fc"][0])


def test_caffemodel_truncated_before_save_is_one_error_and_no_output(tmp_path):
    (proto, model), _ = _big_fc(tmp_path)
    lazy = convert_caffe(proto, model).materialize(lazy=True)
    with open(model, "r+b") as f:
        f.truncate(os.path.getsize(model) // 2)
    out = tmp_path / "out" / "model.onnx"
    with pytest.raises(ConversionError) as err:
        save_streamed(lazy, out)
    assert str(err.value) == f"{model}: file changed while being read"
    assert not out.exists() and list(out.parent.iterdir()) == []
    with pytest.raises(ConversionError) as err:
        materialize(lazy)
    assert str(err.value) == f"{model}: file changed while being read"


def test_caffemodel_replaced_before_save_is_an_error(tmp_path):
    """Same size, other bytes (a re-download renamed over it): never mixed into the output."""
    (proto, model), _ = _big_fc(tmp_path)
    lazy = convert_caffe(proto, model).materialize(lazy=True)
    data = bytearray(model.read_bytes())
    data[-100:] = bytes(100)
    fresh = model.with_name("fresh.caffemodel")
    fresh.write_bytes(bytes(data))
    os.replace(fresh, model)
    with pytest.raises(ConversionError, match=r"caffemodel: file changed while being read$"):
        save_streamed(lazy, tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()
