"""Bad Caffe input: one clear line naming file, layer and type; non-zero exit; no output file."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from converters.caffe.convert import caffe_to_onnx
from converters.errors import ConversionError
from tests.caffe.helpers import write_net

CONV_NET = """
name: "tiny"
input: "data"
input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
"""
W = {"conv1": [np.ones((4, 3, 3, 3), np.float32), np.zeros(4, np.float32)]}


def _one_line_error(fn) -> str:
    with pytest.raises(ConversionError) as err:
        fn()
    msg = str(err.value)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


def test_unsupported_layer_names_layer_type_and_file(tmp_path):
    net = CONV_NET + 'layer { name: "odd" type: "FancyNewLayer" bottom: "conv1" top: "odd" }\n'
    proto, model = write_net(tmp_path, net, W)
    msg = _one_line_error(lambda: caffe_to_onnx(proto, model))
    assert str(proto) in msg and "'odd'" in msg and "FancyNewLayer" in msg
    assert "supported:" in msg and "Convolution" in msg


def test_missing_weight_blob(tmp_path):
    proto, model = write_net(tmp_path, CONV_NET, {"conv1": [W["conv1"][0]]})
    msg = _one_line_error(lambda: caffe_to_onnx(proto, model))
    assert "'conv1' (Convolution)" in msg and "missing weight blob 1 (bias)" in msg


def test_wrong_blob_size(tmp_path):
    proto, model = write_net(tmp_path, CONV_NET, {"conv1": [np.ones((4, 3, 2, 2)), W["conv1"][1]]})
    msg = _one_line_error(lambda: caffe_to_onnx(proto, model))
    assert "'conv1' (Convolution)" in msg and "48 values" in msg and "108" in msg


@pytest.mark.parametrize("cut", [10, 100, -7])
def test_truncated_caffemodel(tmp_path, cut):
    proto, model = write_net(tmp_path, CONV_NET, W)
    data = model.read_bytes()
    model.write_bytes(data[:cut])
    msg = _one_line_error(lambda: caffe_to_onnx(proto, model))
    assert str(model) in msg and "truncated or corrupted" in msg


def test_garbage_caffemodel(tmp_path):
    proto, model = write_net(tmp_path, CONV_NET, W)
    model.write_bytes(bytes(range(7, 255)) * 10)
    msg = _one_line_error(lambda: caffe_to_onnx(proto, model))
    assert str(model) in msg


def test_unparsable_prototxt_has_line_and_column(tmp_path):
    proto, model = write_net(tmp_path, CONV_NET, W)
    proto.write_text(CONV_NET.replace("kernel_size: 3", "kernel_size: three"))
    msg = _one_line_error(lambda: caffe_to_onnx(proto, model))
    assert f"{proto}:6:56: Couldn't parse integer: three" in msg


def test_unknown_output_lists_blobs(tmp_path):
    proto, model = write_net(tmp_path, CONV_NET, W)
    msg = _one_line_error(lambda: caffe_to_onnx(proto, model, outputs=["nope"]))
    assert "'nope'" in msg and "conv1" in msg


def test_unknown_input_shape_name(tmp_path):
    proto, model = write_net(tmp_path, CONV_NET, W)
    msg = _one_line_error(lambda: caffe_to_onnx(proto, model, input_shapes={"img": [1, 3, 8, 8]}))
    assert "img" in msg and "data" in msg


def test_opset_out_of_range(tmp_path):
    proto, model = write_net(tmp_path, CONV_NET, W)
    msg = _one_line_error(lambda: caffe_to_onnx(proto, model, opset=12))
    assert "opset 12" in msg


def test_cli_error_exit_and_no_output(tmp_path):
    """The CLI prints one line, exits 1, and leaves no (partial) output behind."""
    net = CONV_NET + 'layer { name: "odd" type: "FancyNewLayer" bottom: "conv1" top: "odd" }\n'
    proto, model = write_net(tmp_path, net, W)
    out = tmp_path / "out.onnx"
    r = subprocess.run(
        [sys.executable, "-m", "pipelines", "convert", "--prototxt", str(proto),
         "--caffemodel", str(model), "-o", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert (
        len(lines) == 1 and lines[0].startswith("zoomake: error: ") and "FancyNewLayer" in lines[0]
    )
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.onnx")] == []
