"""The NDArray list format (``.params``/``.nd``) written and read without mxnet: our encoder
reproduces MXNet's own files byte for byte, MXNet's ``mx.nd.load`` reads what we write
(``zoomake convert-mean``'s output included), bad files are one line."""

from __future__ import annotations

import numpy as np
import pytest

from converters.errors import ConversionError
from converters.mxnet import ndarray_file
from tests.mxnet.helpers import mx_jobs


@pytest.mark.parametrize("net", ["det2", "det3"])
def test_reencoding_mxnet_files_is_byte_identical(net, models_dir):
    path = models_dir / "mxnet" / f"mtcnn-{net}-0000.params"
    arrays = ndarray_file.load(path)
    assert all(k.startswith("arg:") for k in arrays)
    assert ndarray_file.encode(arrays) == path.read_bytes()


def test_truncated_and_foreign_files_are_one_line(tmp_path, models_dir):
    data = (models_dir / "mxnet" / "mtcnn-det2-0000.params").read_bytes()
    for name, blob, why in [
        ("short.params", data[:-3], "truncated at byte"),
        ("tail.params", data + b"x", "1 unexpected bytes after the names"),
        ("other.params", b"PK\x03\x04" + bytes(40), "expected the list magic 0x112"),
    ]:
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(ConversionError, match=f"{name}: not an MXNet NDArray file: {why}"):
            ndarray_file.load(tmp_path / name)


def _binaryproto(path, image: np.ndarray) -> None:
    from converters.caffe.proto import caffe_pb2

    blob = caffe_pb2.BlobProto(num=1, channels=image.shape[0], height=image.shape[1],
                               width=image.shape[2])  # fmt: skip
    blob.data.extend(image.ravel().tolist())
    path.write_bytes(blob.SerializeToString())


def test_convert_mean_is_read_by_mxnet(tmp_path, capsys):
    from pipelines.cli.main import main

    image = np.random.default_rng(1).uniform(0, 255, (3, 5, 7)).astype(np.float32)
    _binaryproto(tmp_path / "mean.binaryproto", image)
    assert main(["convert-mean", str(tmp_path / "mean.binaryproto"), "-o",
                 str(tmp_path / "mean.nd")]) == 0  # fmt: skip
    assert "mean_image [3, 5, 7]" in capsys.readouterr().out
    extra = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "i": np.arange(4, dtype=np.int32)}
    ndarray_file.save(tmp_path / "mixed.nd", extra)
    mx_jobs([{"kind": "nd_load", "path": str(tmp_path / "mean.nd"), "out": str(tmp_path / "a.npz")},
             {"kind": "nd_load", "path": str(tmp_path / "mixed.nd"), "out": str(tmp_path / "b.npz")}],
            tmp_path)  # fmt: skip
    with np.load(tmp_path / "a.npz") as got:
        assert got.files == ["mean_image"]
        # caffe_converter's convert_mean: (C, H, W), channels BGR -> RGB
        np.testing.assert_array_equal(got["mean_image"], image[::-1])
    with np.load(tmp_path / "b.npz") as got:
        for k, v in extra.items():
            assert got[k].dtype == v.dtype
            np.testing.assert_array_equal(got[k], v)


def test_convert_mean_bad_input_is_one_line(tmp_path, capsys):
    from pipelines.cli.main import main

    (tmp_path / "m.binaryproto").write_bytes(b"\xff\xff\xff")
    assert main(["convert-mean", str(tmp_path / "m.binaryproto"), "-o",
                 str(tmp_path / "m.nd")]) == 1  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert err.startswith("zoomake: error: ") and "m.binaryproto" in err and "\n" not in err
    assert not (tmp_path / "m.nd").exists()


def test_runner_without_the_runtime_says_how_to_create_it(tmp_path, monkeypatch):
    from formats.mxnet_runner import MxnetRunner
    from pipelines.errors import ZoomakeError

    monkeypatch.delenv("ZOOMAKE_MXNET_PYTHON", raising=False)
    monkeypatch.setenv("ZOOMAKE_CACHE", str(tmp_path / "cache"))
    (tmp_path / "m-symbol.json").write_text("{}")
    with pytest.raises(ZoomakeError, match=r"run `zoomake setup-runtime mxnet`$"):
        MxnetRunner(tmp_path / "m-symbol.json")
