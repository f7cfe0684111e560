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


def test_streamed_save_equals_materialized_model(tmp_path):
    """Weights over 1 MiB are streamed after the proto; every reader merges them back."""
    rng = np.random.default_rng(0)
    weights = {"fc": [rng.normal(0, 0.05, (700, 4096)).astype(np.float32),
                      rng.normal(0, 0.1, 700).astype(np.float32)]}  # fmt: skip
    proto, model = write_net(tmp_path, BIG_FC, weights)
    split = convert_caffe(proto, model)
    assert [b[0] for b in split.big] == ["fc/W"]  # the 11 MB weight stays out of the proto
    streamed = tmp_path / "streamed.onnx"
    split.save(streamed)
    plain = tmp_path / "plain.onnx"
    save_onnx(convert_caffe(proto, model).materialize(), plain)

    onnx.checker.check_model(str(streamed), full_check=True)
    a, b = onnx.load(streamed), onnx.load(plain)
    assert {t.name for t in a.graph.initializer} == {t.name for t in b.graph.initializer}
    x = rng.standard_normal((2, 64, 8, 8)).astype(np.float32)
    got = run_ort(streamed.read_bytes(), {"data": x})["prob"]
    np.testing.assert_array_equal(got, run_ort(b, {"data": x})["prob"])
    want = run_opencv(proto, model, {"data": x}, ["prob"])["prob"]
    np.testing.assert_allclose(got, want, atol=1e-6)


def _big_fc(tmp_path):
    rng = np.random.default_rng(1)
    weights = {"fc": [rng.normal(0, 0.05, (700, 4096)).astype(np.float32),
                      rng.normal(0, 0.1, 700).astype(np.float32)]}  # fmt: skip
    return write_net(tmp_path, BIG_FC, weights), weights


def test_big_weights_are_copied_from_the_caffemodel_file(tmp_path, monkeypatch):
    """The 11 MB weight is a range of the caffemodel, copied file to file by the kernel; the
    saved file holds exactly the caffemodel's float32 values (read here with numpy), and the
    plain read/write fallback for file systems without copy_file_range writes the same bytes."""
    from converters.io import FileRange

    (proto, model), weights = _big_fc(tmp_path)
    split = convert_caffe(proto, model)
    (name, _, dims, raw), = split.big  # fmt: skip
    assert name == "fc/W" and dims == (700, 4096) and isinstance(raw, FileRange)
    assert raw.path == model and len(raw) == 700 * 4096 * 4
    fast = tmp_path / "fast.onnx"
    split.save(fast)
    loaded = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(fast).graph.initializer}
    np.testing.assert_array_equal(loaded["fc/W"], weights["fc"][0])

    def unsupported(*args, **kwargs):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", unsupported)
    slow = tmp_path / "slow.onnx"
    convert_caffe(proto, model).save(slow)
    assert slow.read_bytes() == fast.read_bytes()


def test_caffemodel_truncated_before_save_is_one_error_and_no_output(tmp_path):
    (proto, model), _ = _big_fc(tmp_path)
    split = convert_caffe(proto, model)
    with open(model, "r+b") as f:
        f.truncate(os.path.getsize(model) // 2)
    out = tmp_path / "out" / "model.onnx"
    with pytest.raises(ConversionError) as err:
        split.save(out)
    assert str(err.value) == f"{model}: file changed while being read"
    assert not out.exists() and list(out.parent.iterdir()) == []
    with pytest.raises(ConversionError) as err:
        split.materialize()
    assert str(err.value) == f"{model}: file changed while being read"


def test_caffemodel_replaced_before_save_is_an_error(tmp_path):
    """Same size, other bytes (a re-download renamed over it): never mixed into the output."""
    (proto, model), _ = _big_fc(tmp_path)
    split = convert_caffe(proto, model)
    data = bytearray(model.read_bytes())
    data[-100:] = bytes(100)
    fresh = model.with_name("fresh.caffemodel")
    fresh.write_bytes(bytes(data))
    os.replace(fresh, model)
    with pytest.raises(ConversionError, match=r"caffemodel: file changed while being read$"):
        split.save(tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()
