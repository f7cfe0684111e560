"""Fields our caffe.proto lacks (fork dialects, issue 18): kept, and fatal only where it matters.

A field unknown inside a layer is recorded with its text and position and left out of the
parse. Converting fails only if a handler reads the message holding it (a typo in
``convolution_param`` still fails) or the layer stays in the graph and is unsupported; the
line then names the layer, the field and the ``--outputs`` cut. With the cut, the net converts
and matches OpenCV and real Caffe running the same net without the fork layer (their strict
parsers reject the fork fields themselves). Binary caffemodels with unknown fields are read as well.
"""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest

from converters.caffe.convert import caffe_to_onnx
from converters.caffe.prototxt import parse_prototxt_text
from converters.caffe.weights import read_caffemodel
from converters.errors import ConversionError
from tests.caffe.helpers import caffe_can_run, run_caffe, run_opencv, run_ort, write_net

f32 = np.float32

BODY = """name: "yolo-ish"
input: "data"
input_dim: 1 input_dim: 3 input_dim: 12 input_dim: 10
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
        convolution_param { num_output: 6 kernel_size: 1 } }
"""
HEAD = """layer { name: "det" type: "Yolov5DetectionOutput" bottom: "conv2" bottom: "conv1" top: "det"
        yolov5_detection_output_param { num_classes: 1 biases: [10, 14, 23, 27]
                                        nms { threshold: 0.45 } } }
"""
rng = np.random.default_rng(0)
W = {
    "conv1": [rng.standard_normal((4, 3, 3, 3)).astype(f32), rng.standard_normal(4).astype(f32)],
    "conv2": [rng.standard_normal((6, 4, 1, 1)).astype(f32), rng.standard_normal(6).astype(f32)],
}


def _error(fn) -> str:
    with pytest.raises(ConversionError) as err:
        fn()
    msg = str(err.value)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


def test_unknown_fields_are_recorded_with_text_and_position():
    text = BODY.replace("kernel_size: 1", "kernel_size: 1 fork_flag: true") + HEAD
    unknown = []
    net = parse_prototxt_text(text, "n.prototxt", unknown)
    assert [(f.owner, f.path, f.line) for f in unknown] == [
        (("layer", 2), "convolution_param.fork_flag", 8),
        (("layer", 3), "yolov5_detection_output_param", 10),
    ]
    assert unknown[1].text.startswith("yolov5_detection_output_param { num_classes: 1 biases:")
    assert unknown[0].col == text.split("\n")[7].index("fork_flag") + 1
    # Everything else parses as usual.
    assert [lyr.name for lyr in net.layer] == ["conv1", "relu1", "conv2", "det"]
    assert list(net.layer[2].convolution_param.kernel_size) == [1]


def test_unknown_fork_layer_before_the_outputs_names_layer_field_and_cut(tmp_path):
    proto, model = write_net(tmp_path, BODY + HEAD, W)
    msg = _error(lambda: caffe_to_onnx(proto, model))
    assert msg.startswith(f"{proto}: layer 'det' (Yolov5DetectionOutput): unsupported layer type")
    assert "yolov5_detection_output_param (line 10)" in msg
    assert "--outputs conv2,conv1 (recipe: outputs: [conv2, conv1])" in msg


def test_with_the_cut_it_converts_and_matches_opencv(tmp_path):
    proto, model = write_net(tmp_path, BODY + HEAD, W)
    onnx_model = caffe_to_onnx(proto, model, outputs=["conv2", "conv1"])
    feeds = {"data": rng.standard_normal((1, 3, 12, 10)).astype(f32)}
    got = run_ort(onnx_model, feeds)
    (tmp_path / "ref").mkdir()
    ref_proto, ref_model = write_net(tmp_path / "ref", BODY, W)  # what OpenCV can read
    want = run_opencv(ref_proto, ref_model, feeds, ["conv2", "conv1"])
    for name in ("conv1", "conv2"):
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-5)
    if caffe_can_run(ref_proto):
        want = run_caffe(ref_proto, ref_model, feeds, ["conv2", "conv1"])
        for name in ("conv1", "conv2"):
            np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("layer_type", "param"),
    [("Yolov3DetectionOutput", "yolov3_detection_output_param { num_classes: 2 mask: [0, 1] }"),
     ("YoloDetectionOutput", "yolo_detection_output_param { side: 13 num_box: 5 }"),
     ("Region", "region_param { classes: 20 coords: 4 num: 5 softmax: true }")],
    ids=["yolov3", "yolov2", "region"],  # DetectionOutput itself converts now (detection_output.py)
)  # fmt: skip
def test_detection_heads_are_offered_as_cuts(tmp_path, layer_type, param):
    head = f'layer {{ name: "det" type: "{layer_type}" bottom: "conv2" top: "det" {param} }}\n'
    proto, model = write_net(tmp_path, BODY + head, W)
    msg = _error(lambda: caffe_to_onnx(proto, model))
    assert f"layer 'det' ({layer_type}) is post-processing" in msg
    assert "--outputs conv2 (recipe: outputs: [conv2])" in msg
    onnx_model = caffe_to_onnx(proto, model, outputs=["conv2"])
    assert [o.name for o in onnx_model.graph.output] == ["conv2"]


def test_unknown_field_in_a_message_the_handler_reads_is_an_error(tmp_path):
    # The typo the strict parser used to catch: it would silently change the kernel.
    net = BODY.replace("kernel_size: 1", "kernal_size: 1 kernel_size: 1")
    proto, model = write_net(tmp_path, net, W)
    msg = _error(lambda: caffe_to_onnx(proto, model))
    assert msg.startswith(f"{proto}: layer 'conv2' (Convolution): ")
    assert (
        "convolution_param.kernal_size (line 8) is not a field zoomake's caffe.proto knows" in msg
    )
    assert "--outputs conv1" in msg


def test_unknown_field_outside_what_the_handler_reads_is_a_warning(tmp_path, caplog):
    # A layer-level fork field on conv1, and a message conv1's handler never reads on relu1.
    net = BODY.replace('top: "conv1"\n', 'top: "conv1" quantize: true\n', 1).replace(
        'top: "conv1" }', 'top: "conv1" engine_hint: FAST relu6_param { fork_only: 1 } }'
    )
    (tmp_path / "ref").mkdir()
    ref_proto, ref_model = write_net(tmp_path / "ref", BODY, W)
    proto, model = write_net(tmp_path, net, W)
    with caplog.at_level(logging.WARNING, logger="zoomake.caffe"):
        onnx_model = caffe_to_onnx(proto, model)
    warnings = [r.getMessage() for r in caplog.records]
    assert any("layer 'relu1' (ReLU): ignoring field(s) unknown" in w and "engine_hint" in w
               and "relu6_param.fork_only" in w for w in warnings), warnings  # fmt: skip
    assert any("'conv1'" in w and "quantize (line 4)" in w for w in warnings), warnings
    feeds = {"data": rng.standard_normal((1, 3, 12, 10)).astype(f32)}
    got = run_ort(onnx_model, feeds)
    want = run_opencv(ref_proto, ref_model, feeds, ["conv2"])
    np.testing.assert_allclose(got["conv2"], want["conv2"], rtol=0, atol=1e-5)


def test_net_level_unknown_field_and_syntax_errors_keep_line_and_column(tmp_path):
    proto, model = write_net(tmp_path, BODY, W)
    proto.write_text(BODY.replace("input_dim: 1 input", "fork_net_flag: 1\ninput_dim: 1 input", 1))
    msg = _error(lambda: caffe_to_onnx(proto, model))
    assert msg.startswith(f"{proto}:3:1: 'fork_net_flag' is not a NetParameter field")
    # A syntax error after an unknown field: protobuf's position, unchanged by the blanking.
    broken = BODY + HEAD.replace("nms {", "nms {{")
    proto.write_text(broken)
    msg = _error(lambda: caffe_to_onnx(proto, model))
    line = broken.count("\n", 0, broken.index("{{")) + 1
    assert msg.startswith(f"{proto}:{line}:"), msg


def _varint(v: int) -> bytes:
    out = b""
    while True:
        b, v = v & 0x7F, v >> 7
        out += bytes([b | (0x80 if v else 0)])
        if not v:
            return out


def _field(number: int, wire: int, payload: bytes) -> bytes:
    key = _varint(number << 3 | wire)
    return key + (_varint(len(payload)) + payload if wire == 2 else payload)


def test_binary_caffemodel_with_unknown_fields_still_reads(tmp_path):
    """Fork caffemodels carry fields (bn_param's fillers, yolo params, NVCaffe extras) our
    schema may not have: the wire reader skips every field it does not use, of any wire type."""
    proto, model = write_net(tmp_path, BODY, W)
    data = model.read_bytes()
    extra = (
        _field(1111, 2, _field(1, 2, b"\x0d\x00\x00\x80\x3f"))  # a message field (filler)
        + _field(602, 0, _varint(300))  # varint
        + _field(603, 5, b"\x00\x00\x80\x3f")  # fixed32
        + _field(604, 1, b"\x00" * 8)  # fixed64
    )
    # Inject into every LayerParameter (field 100) and at net level; lengths re-encoded.
    from converters.caffe.proto import caffe_pb2

    net = caffe_pb2.NetParameter.FromString(data)
    out = _field(1, 2, net.name.encode()) + _field(9999, 2, b"net-level fork data")
    for layer in net.layer:
        out += _field(100, 2, layer.SerializeToString() + extra)
    model.write_bytes(out)
    blobs = read_caffemodel(model)
    np.testing.assert_array_equal(blobs["conv1"][0].array(), W["conv1"][0])
    np.testing.assert_array_equal(blobs["conv2"][1].array(), W["conv2"][1])
    onnx_model = caffe_to_onnx(proto, model)
    feeds = {"data": rng.standard_normal((1, 3, 12, 10)).astype(f32)}
    (tmp_path / "ref").mkdir()
    ref_proto, ref_model = write_net(tmp_path / "ref", BODY, W)
    want = run_opencv(ref_proto, ref_model, feeds, ["conv2"])
    np.testing.assert_allclose(run_ort(onnx_model, feeds)["conv2"], want["conv2"], atol=1e-5)


def test_cli_names_layer_and_cut_then_converts_with_it(tmp_path):
    proto, model = write_net(tmp_path, BODY + HEAD, W)
    out = tmp_path / "out.onnx"
    cmd = [sys.executable, "-m", "pipelines", "convert", "--prototxt", str(proto),
           "--caffemodel", str(model), "-o", str(out)]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and not out.exists()
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zoomake: error: "), r.stderr
    assert "'det' (Yolov5DetectionOutput)" in lines[0] and "--outputs conv2,conv1" in lines[0]
    # --no-verify: the CLI's own check runs the reference on the original file, which real
    # Caffe and OpenCV cannot parse (the fork field); this test checks the numbers itself below.
    r = subprocess.run([*cmd, "--outputs", "conv2,conv1", "--no-verify"], capture_output=True,
                       text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    import onnx

    feeds = {"data": rng.standard_normal((1, 3, 12, 10)).astype(f32)}
    got = run_ort(onnx.load(out), feeds)
    (tmp_path / "ref").mkdir()
    ref_proto, ref_model = write_net(tmp_path / "ref", BODY, W)
    want = run_opencv(ref_proto, ref_model, feeds, ["conv2", "conv1"])
    for name in ("conv1", "conv2"):
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-5)


def _real_prototxts():
    import os
    from pathlib import Path

    root = Path(os.environ.get("ZOOMAKE_SHARED", Path(__file__).parents[3] / "shared")) / "models"
    return sorted(root.rglob("*.prototxt"))


def test_fork_fields_added_to_real_prototxts_are_found_and_the_rest_parses_unchanged():
    """Into every real prototxt, a fork field at layer level and one inside a parameter block
    of each layer: the scan must find exactly those, in the right layers, and the remaining
    text must parse to the same net as the original (comments, strings, V1 nets included)."""
    import re

    files = _real_prototxts()
    if not files:
        pytest.skip("no shared models")
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        original = parse_prototxt_text(text, str(path))
        kind = "layers" if original.layers else "layer"
        count = len(original.layers) + len(original.layer)
        # After each list entry's opening brace and each `*_param {`, a field nobody has
        # (outside comment lines).
        lines = []
        for line in text.split("\n"):
            if not line.lstrip().startswith("#"):
                line = re.sub(rf"^(\s*{kind}\s*\{{)", r"\1 fork_a: 1", line)
                line = re.sub(r"(\b[a-z_0-9]+_param\s*\{)", r'\1 fork_b: "x#y" ', line)
            lines.append(line)
        edited = "\n".join(lines)
        unknown = []
        net = parse_prototxt_text(edited, str(path), unknown)
        assert net == original, path
        a = [f.owner for f in unknown if f.path == "fork_a"]
        assert a == [(kind, i) for i in range(count)], path
        b = [f for f in unknown if f.path.endswith(".fork_b")]
        assert len(b) == edited.count("fork_b"), path
        assert all(f.text == 'fork_b: "x#y"' for f in b), path


def test_v0_and_v1_layers_keep_their_unknown_fields(tmp_path):
    """The record follows a layer through the V0 -> V1 -> V2 upgrade (padding layers vanish)."""
    v0 = (
        'input: "data"\ninput_dim: 1 input_dim: 3 input_dim: 6 input_dim: 6\n'
        'layers { layer { name: "pad" type: "padding" pad: 1 } bottom: "data" top: "p" }\n'
        'layers { layer { name: "c" type: "conv" num_output: 2 kernelsize: 3 fork_v0: 1 }\n'
        '         bottom: "p" top: "c" }\n'
    )
    proto, model = write_net(tmp_path, v0.replace(" fork_v0: 1", ""))
    proto.write_text(v0)
    msg = _error(lambda: caffe_to_onnx(proto, model))
    # A V0 layer keeps every parameter in its nested `layer`: any handler reads it.
    assert msg.startswith(f"{proto}: layer 'c' (Convolution): layer.fork_v0 (line 4)"), msg
    v1 = (
        'input: "data"\ninput_dim: 1 input_dim: 3 input_dim: 6 input_dim: 6\n'
        'layers { name: "c" type: CONVOLUTION bottom: "data" top: "c"\n'
        "         convolution_param { num_output: 2 kernel_size: 3 } }\n"
        'layers { name: "r" type: RELU bottom: "c" top: "c" fork_v1: true }\n'
        'layers { name: "h" type: NONE bottom: "c" top: "h" region_param { classes: 2 } }\n'
    )
    unknown = []
    parse_prototxt_text(v1, "v1", unknown)
    assert [(f.owner, f.path) for f in unknown] == [
        (("layers", 1), "fork_v1"),
        (("layers", 2), "region_param"),
    ]
