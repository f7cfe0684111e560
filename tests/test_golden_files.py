"""Golden tensors (pipelines.verify.golden): every dtype, name and shape a runner gives comes
back equal, onnx's own parser reads the files, other TensorProto forms read too, and a broken
file is one line."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from pipelines.errors import ZoomakeError
from pipelines.verify.golden import golden_sets, read_tensors, write_golden

rng = np.random.default_rng(7)

ARRAYS = [
    ("data", rng.standard_normal((1, 3, 240, 320)).astype(np.float32)),
    ("", np.array(2.5, np.float32)),  # 0-d, no name
    ("empty", np.zeros((0, 4), np.float32)),
    ("fp16", rng.standard_normal((2, 5)).astype(np.float16)),
    ("img", rng.integers(0, 256, (1, 8, 8, 3), dtype=np.uint8)),
    ("idx", np.array([-1, 0, 2**40, -(2**62)], np.int64)),
    ("i32", np.array([[-7, 3]], np.int32)),
    ("mask", np.array([True, False, True])),
    ("f64", rng.standard_normal(3)),
    ("naïve/名前", np.ones((200,), np.int8)),  # a non-ASCII name; a 2-byte dim varint
]


@pytest.mark.parametrize("name,array", ARRAYS, ids=[f"{a.dtype}{a.shape}" for _, a in ARRAYS])
def test_every_dtype_name_and_shape_reads_back_equal(tmp_path, name, array):
    write_golden(tmp_path, [([(name, array)], [])])
    ((got_name, got),) = read_tensors(golden_sets(tmp_path)[0], "input").items()
    want = array.reshape(1) if array.ndim == 0 else array  # 0-d is stored as (1,), as ever
    assert got_name == name and got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == want.tobytes()
    got[...] = 0 if got.size else got  # writable, as golden arrays always were


def test_a_0d_output_is_stored_with_shape_1_as_before(tmp_path):
    write_golden(tmp_path, [([("x", np.array(3.0, np.float32))], [])])
    f = golden_sets(tmp_path)[0] / "input_0.pb"
    old = numpy_helper.from_array(np.ascontiguousarray(np.array(3.0, np.float32)), "x")
    assert f.read_bytes() == old.SerializeToString()  # the bytes the onnx writer gave
    assert read_tensors(f.parent, "input")["x"].shape == (1,)


def test_golden_sets_written_and_read_equal_what_the_runner_gave(tmp_path):
    sets = [
        ([("data", a)], [("boxes", a[0, :2] * 2)], [("boxes", a[0, :2] * 2 + 1e-7)])
        for a in (rng.standard_normal((1, 3, 4, 5)).astype(np.float32) for _ in range(3))
    ]
    write_golden(tmp_path, sets)
    dirs = golden_sets(tmp_path)
    assert [d.name for d in dirs] == ["test_data_set_0", "test_data_set_1", "test_data_set_2"]
    for d, (inputs, outputs, refs) in zip(dirs, sets, strict=True):
        for kind, tensors in (("input", inputs), ("output", outputs), ("reference", refs)):
            got = read_tensors(d, kind)
            assert list(got) == [n for n, _ in tensors]
            for (n, want), onnx_file in zip(tensors, sorted(d.glob(f"{kind}_*.pb")), strict=True):
                np.testing.assert_array_equal(got[n], want, strict=True)
                parsed = TensorProto()
                parsed.ParseFromString(onnx_file.read_bytes())  # onnx reads the same file
                assert parsed.name == n
                np.testing.assert_array_equal(numpy_helper.to_array(parsed), want, strict=True)


def test_other_tensorproto_forms_still_read_through_onnx(tmp_path):
    d = tmp_path / "test_data_set_0"
    d.mkdir()
    typed = helper.make_tensor("x", TensorProto.FLOAT, [2, 2], [1.0, 2.0, 3.0, 4.0])  # float_data
    (d / "input_0.pb").write_bytes(typed.SerializeToString())
    got = read_tensors(d, "input")
    np.testing.assert_array_equal(got["x"], np.array([[1, 2], [3, 4]], np.float32), strict=True)


def test_a_broken_file_is_one_line(tmp_path):
    d = tmp_path / "test_data_set_0"
    d.mkdir()
    good = numpy_helper.from_array(np.ones((4, 4), np.float32), "x").SerializeToString()
    (d / "output_0.pb").write_bytes(good[:-5])  # cut: raw_data shorter than it says
    with pytest.raises(ZoomakeError) as err:
        read_tensors(d, "output")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(
        f"{d / 'output_0.pb'}: not a readable ONNX TensorProto"
    )
