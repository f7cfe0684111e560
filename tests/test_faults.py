"""Faults and bad input (issue 9): every root cause the fuzzing found gives one line, never a
traceback, exits non-zero and leaves no output behind.

Each test drives the real entry point (``pipelines.cli.main.main`` in this process, or ``doit`` as a
subprocess for the build directory) on a minimal input for one root cause; on the code before
these fixes each of them escaped as a Python exception (noted per test).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from converters.caffe.proto import caffe_pb2
from converters.errors import ConversionError
from pipelines.cli.main import main

REPO = Path(__file__).resolve().parents[1]


def one_line(argv, capsys, code: int = 1) -> str:
    """Run the CLI; assert it exits ``code`` with exactly one ``zoomake: error:`` line."""
    got = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert got == code, err
    assert len(lines) == 1 and lines[0].startswith("zoomake: error: "), err
    assert "internal error" not in err and "Traceback" not in err, err
    return lines[0]


def only(directory: Path, *names: str) -> None:
    """Nothing but ``names`` in ``directory``: no partial output, no temporary."""
    assert sorted(p.name for p in directory.iterdir()) == sorted(names)


# -- Caffe -----------------------------------------------------------------------------------------
CONV_PRELU = """
name: "t"
input: "data"
input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 STRIDE } }
layer { name: "prelu1" type: "PReLU" bottom: "conv1" top: "conv1" }
"""


def _caffemodel(path: Path, blobs: dict[str, list[tuple[list[int], int]]]) -> Path:
    """A caffemodel whose blobs declare ``shape`` and hold ``count`` values (may disagree)."""
    net = caffe_pb2.NetParameter(name="t")
    for name, specs in blobs.items():
        layer = net.layer.add(name=name)
        for shape, count in specs:
            blob = layer.blobs.add()
            blob.shape.dim.extend(shape)
            blob.data.extend(np.linspace(-1, 1, count, dtype=np.float32).tolist())
    path.write_bytes(net.SerializeToString())
    return path


GOOD_CONV = [([4, 3, 3, 3], 108), ([4], 4)]


def test_blob_data_length_not_matching_its_shape(tmp_path, capsys):
    # Was: ValueError "cannot reshape array of size 3 into shape (4,)" from weights.Blob.array.
    proto = tmp_path / "t.prototxt"
    proto.write_text(CONV_PRELU.replace("STRIDE", ""))
    weights = _caffemodel(tmp_path / "t.caffemodel", {"conv1": GOOD_CONV, "prelu1": [([4], 3)]})
    out = tmp_path / "out"
    out.mkdir()
    line = one_line(["convert", "--prototxt", proto, "--caffemodel", weights, "-o",
                     out / "m.onnx"], capsys)  # fmt: skip
    assert "layer 'prelu1' (PReLU)" in line and "declares shape [4]" in line
    assert "holds 3 values" in line
    only(out)


def test_the_same_net_with_consistent_blobs_converts(tmp_path, capsys):
    proto = tmp_path / "t.prototxt"
    proto.write_text(CONV_PRELU.replace("STRIDE", ""))
    weights = _caffemodel(tmp_path / "t.caffemodel", {"conv1": GOOD_CONV, "prelu1": [([4], 4)]})
    assert main(["convert", "--prototxt", str(proto), "--caffemodel", str(weights), "-o",
                 str(tmp_path / "m.onnx")]) == 0  # fmt: skip
    onnx.checker.check_model(onnx.load(tmp_path / "m.onnx"))


def test_layer_without_a_top(tmp_path, capsys):
    # Was: KeyError (layer index, 0) from Context.top_name.
    proto = tmp_path / "t.prototxt"
    proto.write_text(
        'input: "data" input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }\n'
        'layer { name: "pool" type: "Pooling" bottom: "data" top: "pool"\n'
        "        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n"
        'layer { name: "act" type: "ReLU" bottom: "pool" }\n'
    )
    line = one_line(["convert", "--prototxt", proto, "-o", tmp_path / "m.onnx"], capsys)
    assert "layer 'act' (ReLU)" in line and "expected at least 1 top blob(s), got 0" in line
    only(tmp_path, "t.prototxt")


@pytest.mark.parametrize(
    "stride, where",
    [("stride: 0", "'conv1' (Convolution)"), ("stride_h: 0 stride_w: 1", "'conv1' (Convolution)")],
)
def test_convolution_stride_zero(tmp_path, capsys, stride, where):
    # Was: ZeroDivisionError in the output-size arithmetic of converters/caffe/layers/conv.py.
    proto = tmp_path / "t.prototxt"
    proto.write_text(CONV_PRELU.replace("STRIDE", stride))
    weights = _caffemodel(tmp_path / "t.caffemodel", {"conv1": GOOD_CONV, "prelu1": [([4], 4)]})
    line = one_line(["convert", "--prototxt", proto, "--caffemodel", weights, "-o",
                     tmp_path / "m.onnx"], capsys)  # fmt: skip
    assert where in line and "stride must be at least 1" in line


def test_convolution_group_zero(tmp_path, capsys):
    # Found by bench/fuzz.py (seed 1): ZeroDivisionError from `c % group`.
    proto = tmp_path / "t.prototxt"
    proto.write_text(CONV_PRELU.replace("STRIDE", "group: 0"))
    weights = _caffemodel(tmp_path / "t.caffemodel", {"conv1": GOOD_CONV, "prelu1": [([4], 4)]})
    line = one_line(["convert", "--prototxt", proto, "--caffemodel", weights, "-o",
                     tmp_path / "m.onnx"], capsys)  # fmt: skip
    assert "'conv1' (Convolution): group must be at least 1, got 0" in line


def test_pooling_stride_zero(tmp_path, capsys):
    # Was: ZeroDivisionError in caffe_pool_size (converters/caffe/layers/pooling.py).
    proto = tmp_path / "t.prototxt"
    proto.write_text(
        'input: "data" input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }\n'
        'layer { name: "pool" type: "Pooling" bottom: "data" top: "pool"\n'
        "        pooling_param { pool: AVE kernel_size: 2 stride: 0 } }\n"
    )
    line = one_line(["convert", "--prototxt", proto, "-o", tmp_path / "m.onnx"], capsys)
    assert "layer 'pool' (Pooling)" in line and "stride must be at least 1, got 0x0" in line


@pytest.mark.parametrize("shape", ["data=1,3,12", "data=1,3,12,12,1", "data=12"])
def test_non_4d_input_shape_for_conv_and_pooling(models_dir, tmp_path, capsys, shape):
    # Was: ValueError "not enough values to unpack (expected 4, got 3)" in the conv handler.
    mtcnn = models_dir / "mtcnn"
    line = one_line(["convert", "--prototxt", mtcnn / "det1.prototxt", "--caffemodel",
                     mtcnn / "det1.caffemodel", "--input-shape", shape, "-o",
                     tmp_path / "m.onnx"], capsys)  # fmt: skip
    dims = [int(d) for d in shape.split("=")[1].split(",")]
    assert "layer 'conv1' (Convolution)" in line
    assert f"expected a 4-D (N, C, H, W) bottom, got 'data' with shape {dims}" in line
    only(tmp_path)


def test_pooling_on_a_2d_blob(tmp_path, capsys):
    proto = tmp_path / "t.prototxt"
    proto.write_text(
        'input: "data" input_shape { dim: 2 dim: 6 }\n'
        'layer { name: "pool" type: "Pooling" bottom: "data" top: "pool"\n'
        "        pooling_param { pool: MAX kernel_size: 2 } }\n"
    )
    line = one_line(["convert", "--prototxt", proto, "-o", tmp_path / "m.onnx"], capsys)
    assert "'pool' (Pooling)" in line and "shape [2, 6]" in line


def test_prior_box_of_a_runaway_input_shape(tmp_path, capsys):
    # A mutated input shape made PriorBox allocate 28.8 G float32 values (MemoryError or the
    # OOM killer) while folding its constant.
    proto = tmp_path / "t.prototxt"
    proto.write_text(
        'input: "data" input_shape { dim: 1 dim: 4 dim: 60000 dim: 60000 }\n'
        'layer { name: "pool" type: "Pooling" bottom: "data" top: "pool"\n'
        "        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n"
        'layer { name: "prior" type: "PriorBox" bottom: "pool" bottom: "data" top: "prior"\n'
        "        prior_box_param { min_size: 4 max_size: 8 aspect_ratio: 2 } }\n"
    )
    line = one_line(["convert", "--prototxt", proto, "-o", tmp_path / "m.onnx"], capsys)
    assert "layer 'prior' (PriorBox)" in line and "28800000000 values" in line


@pytest.mark.parametrize("source", ["caffe", "onnx"])
def test_input_shape_beyond_any_runtime(models_dir, tmp_path, capsys, source):
    # bench/fuzz.py seed 2: an input dim of 2**63-1 overflowed int64 in a handler's Reshape
    # constant (OverflowError); for an ONNX source protobuf refused the dim (ValueError).
    mtcnn = models_dir / "mtcnn"
    src = ["--prototxt", mtcnn / "det1.prototxt", "--caffemodel", mtcnn / "det1.caffemodel"]
    if source == "onnx":
        assert main(["convert", *map(str, src), "-o", str(tmp_path / "d1.onnx")]) == 0
        src = ["--onnx", tmp_path / "d1.onnx"]
    big = 2**63 + 7
    line = one_line(["convert", *src, "--input-shape", f"data=1,3,{big},12", "-o",
                     tmp_path / "m.onnx"], capsys)  # fmt: skip
    assert f"input 'data': shape [1, 3, {big}, 12] has" in line
    assert "more than the 1099511627776 any runtime can hold" in line


def test_preprocessing_that_overflows_float32(models_dir, tmp_path, capfd):
    # bench/fuzz.py seed 2: mean 1e30 and std 1e-30 are finite, their folded product is not a
    # float32: numpy printed an overflow warning (a second stderr line) and, without --fp16,
    # the model was written with inf weights.
    mtcnn = models_dir / "mtcnn"
    code = main(["convert", "--prototxt", str(mtcnn / "det1.prototxt"), "--caffemodel",
                 str(mtcnn / "det1.caffemodel"), "--mean", "1e30", "--std", "1e-30", "-o",
                 str(tmp_path / "m.onnx")])  # fmt: skip
    lines = capfd.readouterr().err.strip().splitlines()
    assert code == 1 and len(lines) == 1, lines
    assert "preprocess of 'data'" in lines[0] and "does not fit in float32" in lines[0]
    only(tmp_path)


# -- ONNX --------------------------------------------------------------------------------------------
def _add_model(path: Path) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    w = numpy_helper.from_array(np.arange(4, dtype=np.float32), "w")
    g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"], name="add")], "g",
                          [x], [y], [w])  # fmt: skip
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _external(model: onnx.ModelProto, location: str) -> onnx.ModelProto:
    t = model.graph.initializer[0]
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    entry = t.external_data.add()
    entry.key, entry.value = "location", location
    return model


@pytest.mark.parametrize("location, needle", [
    ("../secret.bin", "points outside the directory"),
    ("/etc/hostname", "should be a relative path"),
])  # fmt: skip
@pytest.mark.parametrize("suffix", [".onnx", ".prototxt"])
def test_onnx_external_data_outside_the_model_directory(tmp_path, capsys, location, needle,
                                                        suffix):  # fmt: skip
    # Was: onnx.checker.ValidationError raised by onnx.load (converters/io.py load_onnx).
    (tmp_path / "secret.bin").write_bytes(np.arange(4, dtype=np.float32).tobytes())
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    src = model_dir / "model.onnx"
    src.write_bytes(_external(_add_model(src), location).SerializeToString())
    line = one_line(["convert", "--onnx", src, "-o", model_dir / f"out{suffix}"], capsys)
    assert f"{src}: external data refused" in line and needle in line
    only(model_dir, "model.onnx")


def test_onnx_external_data_inside_the_directory_still_loads(tmp_path, capsys):
    (tmp_path / "w.bin").write_bytes(np.arange(4, dtype=np.float32).tobytes())
    src = tmp_path / "model.onnx"
    src.write_bytes(_external(_add_model(src), "w.bin").SerializeToString())
    assert main(["convert", "--onnx", str(src), "-o", str(tmp_path / "out.onnx")]) == 0
    out = onnx.load(tmp_path / "out.onnx")
    np.testing.assert_array_equal(numpy_helper.to_array(out.graph.initializer[0]),
                                  np.arange(4, dtype=np.float32))  # fmt: skip


def test_onnx_checker_validation_error_on_load(tmp_path, capsys):
    # A tensor whose raw data is shorter than its dims say: the checker's ValidationError.
    model = _add_model(tmp_path / "m.onnx")
    model.graph.initializer[0].raw_data = np.ones(3, np.float32).tobytes()
    src = tmp_path / "m.onnx"
    src.write_bytes(model.SerializeToString())
    line = one_line(["convert", "--onnx", src, "-o", tmp_path / "o.onnx"], capsys)
    assert "fails the ONNX checker" in line and "tensor name: w" in line
    only(tmp_path, "m.onnx")


@pytest.mark.parametrize("field", [b"Add", b"the_add", b"y"])  # op_type, node name, a value
def test_onnx_non_utf8_strings(tmp_path, capsys, field):
    # Was: UnicodeDecodeError from onnx.checker.check_model (the C++ -> Python hand-over).
    model = _add_model(tmp_path / "m.onnx")
    model.graph.node[0].name = "the_add"
    data = bytearray(model.SerializeToString())
    at = data.find(b"\x12\x01y") + 2 if field == b"y" else data.find(field)
    assert at >= 0
    data[at] = 0xFF
    src = tmp_path / "m.onnx"
    src.write_bytes(bytes(data))
    for suffix in (".onnx", ".prototxt"):
        line = one_line(["convert", "--onnx", src, "-o", tmp_path / f"o{suffix}"], capsys)
        assert f"{src}:" in line and "not valid UTF-8" in line
    only(tmp_path, "m.onnx")


def _grouped_conv(group: int) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 5, 5])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    w = numpy_helper.from_array(np.ones((4, 1, 3, 3), np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", group=group)
    model = helper.make_model(helper.make_graph([node], "g", [x], [y], [w]),
                              opset_imports=[helper.make_opsetid("", 17)])  # fmt: skip
    model.ir_version = 8
    return model


@pytest.mark.parametrize("group", [2**33, 2**31, 0, 3])
def test_onnx_to_caffe_group_beyond_int32_or_not_dividing(tmp_path, capsys, group):
    # Was: ValueError "Value out of range" assigning convolution_param.group (uint32).
    src = tmp_path / "m.onnx"
    src.write_bytes(_grouped_conv(group).SerializeToString())
    line = one_line(["convert", "--onnx", src, "-o", tmp_path / "o.prototxt"], capsys)
    assert "node 'conv' (Conv)" in line and f"group {group}" in line
    only(tmp_path, "m.onnx")


def test_onnx_to_caffe_depthwise_group_still_converts(tmp_path):
    from converters.caffe.prototxt import parse_prototxt
    from converters.onnx2caffe import onnx_to_caffe

    onnx_to_caffe(_grouped_conv(4), tmp_path / "m.prototxt", tmp_path / "m.caffemodel")
    net = parse_prototxt(tmp_path / "m.prototxt")
    assert [lyr.convolution_param.group for lyr in net.layer if lyr.type == "Convolution"] == [4]


def test_onnx_to_caffe_initializer_data_disagrees_with_dims(tmp_path):
    # Was: ValueError "cannot reshape array" from numpy_helper.to_array in onnx2caffe.prepare.
    from converters.onnx2caffe import onnx_to_caffe

    model = _grouped_conv(4)
    model.graph.initializer[0].raw_data = np.ones(30, np.float32).tobytes()  # dims say 36
    with pytest.raises(ConversionError) as err:
        onnx_to_caffe(model, tmp_path / "m.prototxt", tmp_path / "m.caffemodel")
    assert "initializer 'w' (dims [4, 1, 3, 3])" in str(err.value)
    assert "\n" not in str(err.value)
    only(tmp_path)


@pytest.mark.parametrize("attr, value", [("strides", [0, 1]), ("strides", [2**32, 1]),
                                         ("dilations", [1, 0]),
                                         ("pads", [0, 0, 0, 2**33])])  # fmt: skip
def test_onnx_to_caffe_window_attributes(tmp_path, attr, value):
    # The export API takes any in-memory model (no checker before it): a zero stride divided
    # by zero, one beyond uint32 was refused by protobuf with a ValueError, and a pad of 2**33
    # made the pad search loop for minutes (bench/fuzz.py: a hang).
    from converters.onnx2caffe import onnx_to_caffe

    model = _grouped_conv(4)
    model.graph.node[0].attribute.append(helper.make_attribute(attr, value))
    with pytest.raises(ConversionError) as err:
        onnx_to_caffe(model, tmp_path / "m.prototxt", tmp_path / "m.caffemodel")
    assert "node 'conv' (Conv)" in str(err.value) and attr in str(err.value)
    only(tmp_path)


# -- outputs and the environment ----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["m.onnx", "m.prototxt", "m.caffemodel"])
def test_output_naming_an_existing_directory(models_dir, tmp_path, capsys, name):
    # Was: IsADirectoryError from os.replace, after the whole conversion had run.
    (tmp_path / name).mkdir()
    out = tmp_path / (name if name != "m.caffemodel" else "m.prototxt")
    line = one_line(["convert", "--prototxt", models_dir / "mtcnn/det1.prototxt",
                     "--caffemodel", models_dir / "mtcnn/det1.caffemodel", "-o", out],
                    capsys)  # fmt: skip
    # -o itself is refused by the convert CLI's own check; the companion .caffemodel by ours
    assert f"{tmp_path / name}: is an existing directory" in line or (
        name != "m.caffemodel" and f"{out}: -o names the output file" in line
    )
    only(tmp_path, name)


def _disk_full_for(module, monkeypatch, match: str) -> None:
    """Make writes through ``module``'s ``open`` to files matching ``match`` fail with ENOSPC."""
    import builtins

    real_open = builtins.open

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, _data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def fake_open(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        return Full(f) if "w" in mode and match in str(path) else f

    monkeypatch.setattr(module, "open", fake_open, raising=False)


def test_disk_full_writing_the_output(models_dir, tmp_path, capsys, monkeypatch):
    # Was: OSError [Errno 28] traceback out of converters.io.
    import converters.io

    _disk_full_for(converters.io, monkeypatch, str(tmp_path))
    line = one_line(["convert", "--prototxt", models_dir / "mtcnn/det1.prototxt",
                     "--caffemodel", models_dir / "mtcnn/det1.caffemodel", "--mean", "127.5",
                     "-o", tmp_path / "m.onnx"], capsys)  # fmt: skip
    assert "No space left on device" in line and "free some space" in line
    only(tmp_path)


def test_disk_full_in_a_doit_action_is_one_line(capsys):
    # Was: _guarded caught only ConversionError/ZoomakeError; OSError escaped to doit.
    from doit.exceptions import TaskFailed

    from pipelines.build.actions import guarded

    def act():
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "build/x/convert/model.onnx")

    # The task fails with the line; the build's reporter prints it as "<task> failed: <line>".
    failed = guarded(act)()
    assert isinstance(failed, TaskFailed)
    assert failed.message.splitlines() == [
        "build/x/convert/model.onnx: No space left on device (free some space, or point "
        "ZOOMAKE_BUILD / ZOOMAKE_CACHE / -o elsewhere)"
    ]


def test_a_bug_in_a_doit_action_is_labelled_internal(capsys):
    from doit.exceptions import TaskFailed

    from pipelines.build.actions import guarded

    def act():
        return {}["missing"]

    failed = guarded(act)()
    assert isinstance(failed, TaskFailed)
    err = failed.message.splitlines()
    assert len(err) == 1 and err[0].startswith("internal error (please report): KeyError")
    assert "tests/test_faults.py" in err[0]


def test_a_bug_in_the_cli_is_labelled_internal_and_exits_70(monkeypatch, capsys):
    from pipelines.cli import cmd_layers

    monkeypatch.setattr(cmd_layers, "run", lambda args: 1 // 0)
    assert main(["layers"]) == 70
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("zoomake: error: internal error (please report): ZeroDivisionError")
    monkeypatch.setenv("ZOOMAKE_TRACEBACK", "1")
    with pytest.raises(ZeroDivisionError):
        main(["layers"])


MIRROR_NAME = "det1.prototxt"


def _ref(models_dir):
    import hashlib

    path = models_dir / "mtcnn" / MIRROR_NAME
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return f"https://example.invalid/{MIRROR_NAME}", sha, path.stat().st_size


def test_disk_full_filling_the_cache_from_the_mirror(models_dir, tmp_path, monkeypatch):
    # Was: the OSError was swallowed as "unreadable mirror file", the .tmp file stayed in
    # <cache>/tmp, and the error said the file is "not in the cache or in ZOOMAKE_MIRROR".
    from pipelines import safe_read
    from pipelines.errors import ZoomakeError
    from pipelines.fetch import cache as fetch

    url, sha, size = _ref(models_dir)
    cache = tmp_path / "cache"
    _disk_full_for(safe_read, monkeypatch, str(cache))  # where fetch copies into the cache
    with pytest.raises(ZoomakeError) as err:
        fetch.fetch_file(url, sha, size, cache_dir=cache, mirrors=[models_dir], offline=True)
    msg = str(err.value)
    assert "No space left on device" in msg and str(cache / "tmp") in msg
    assert "not in the cache" not in msg and "\n" not in msg
    assert [p.name for p in (cache / "tmp").iterdir() if not p.name.endswith(".lock")] == []
    assert not fetch.cache_path(cache, sha).exists()


def test_disk_full_copying_a_file_url_into_the_cache(models_dir, tmp_path, monkeypatch):
    # Was reported as "cannot read" the source.
    from pipelines import safe_read
    from pipelines.errors import ZoomakeError
    from pipelines.fetch import cache as fetch

    _, sha, size = _ref(models_dir)
    url = (models_dir / "mtcnn" / MIRROR_NAME).as_uri()
    cache = tmp_path / "cache"
    _disk_full_for(safe_read, monkeypatch, str(cache))  # where fetch copies into the cache
    with pytest.raises(ZoomakeError) as err:
        fetch.fetch_file(url, sha, size, cache_dir=cache, mirrors=[], offline=True)
    assert "No space left on device" in str(err.value) and "cannot read" not in str(err.value)
    assert [p.name for p in (cache / "tmp").iterdir() if not p.name.endswith(".lock")] == []


def test_zoomake_cache_naming_a_file(models_dir, tmp_path, monkeypatch):
    # Was: NotADirectoryError traceback from the cache lookup.
    from pipelines.errors import ZoomakeError
    from pipelines.fetch import cache as fetch

    url, sha, size = _ref(models_dir)
    afile = tmp_path / "cache"
    afile.write_text("not a directory")
    monkeypatch.setenv("ZOOMAKE_CACHE", str(afile))
    with pytest.raises(ZoomakeError) as err:
        fetch.fetch_file(url, sha, size, mirrors=[models_dir], offline=True)
    assert f"cannot create cache directory {afile} (Not a directory)" in str(err.value)


# -- the build directory (doit opens its sqlite state there while dodo.py loads) --------------
@pytest.fixture
def one_recipe(tmp_path):
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    shutil.copy(REPO / "recipes" / "mtcnn-det1.yaml", recipes)
    return recipes


def _doit(recipes: Path, build: Path, *args: str, prefix=()) -> subprocess.CompletedProcess:
    env = {**os.environ, "ZOOMAKE_RECIPES": str(recipes), "ZOOMAKE_BUILD": str(build),
           "ZOOMAKE_OFFLINE": "1"}  # fmt: skip
    return subprocess.run([*prefix, sys.executable, "-m", "doit", "-f", str(REPO / "dodo.py"),
                           *args], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=120)  # fmt: skip


def _refused(r: subprocess.CompletedProcess, needle: str) -> None:
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("doit: error: "), r.stderr
    assert needle in lines[0]


def test_build_dir_under_a_regular_file(one_recipe, tmp_path):
    # Was: NotADirectoryError traceback from BUILD.mkdir while dodo.py loads.
    (tmp_path / "afile").write_text("")
    build = tmp_path / "afile" / "build"
    _refused(_doit(one_recipe, build, "list"),
             f"ZOOMAKE_BUILD={build}: cannot use as the build directory")  # fmt: skip


def test_build_dir_whose_state_database_is_a_directory(one_recipe, tmp_path):
    # Was: sqlite3.OperationalError "unable to open database file" traceback (the same error
    # a read-only build directory gives).
    build = tmp_path / "build"
    (build / ".doit.db").mkdir(parents=True)
    _refused(_doit(one_recipe, build, "list"), "doit's state database is a directory")


def test_build_dir_with_a_corrupt_state_database(one_recipe, tmp_path):
    # Was: doit.dependency.DatabaseException traceback.
    build = tmp_path / "build"
    build.mkdir()
    (build / ".doit.db").write_bytes(b"this is not sqlite" * 10)
    _refused(_doit(one_recipe, build, "list"), "doit's state database is unreadable")


def test_read_only_build_dir_probe(tmp_path, monkeypatch):
    """The write probe turns a read-only build directory into one line (the root-free twin of
    the mount test below, which needs user namespaces)."""
    import tempfile

    from pipelines.builddir import check_build_dir
    from pipelines.errors import ZoomakeError

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path / ".write-probe.x"))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(ZoomakeError) as err:
        check_build_dir(tmp_path)
    assert "Read-only file system" in str(err.value) and "the file system is read-only" in str(
        err.value
    )


def _can_mount_read_only() -> bool:
    if not shutil.which("unshare"):
        return False
    import tempfile

    script = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" && ! touch "$1/x" 2>/dev/null'
    with tempfile.TemporaryDirectory() as d:
        probe = subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", d],
                               capture_output=True, timeout=30)  # fmt: skip
    return probe.returncode == 0


@pytest.mark.skipif(not _can_mount_read_only(), reason="needs unprivileged user namespaces")
def test_read_only_build_dir_even_for_a_no_op(one_recipe, tmp_path):
    # Was: sqlite3.OperationalError traceback, even for `doit list` (tests run as root, so the
    # directory is made read-only by a read-only bind mount in a private mount namespace).
    build = tmp_path / "build"
    build.mkdir()
    script = f'mount --bind "{build}" "{build}" && mount -o remount,ro,bind "{build}" && exec "$@"'
    r = _doit(one_recipe, build, "list", prefix=["unshare", "-rm", "sh", "-c", script, "sh"])
    _refused(r, "Read-only file system")
