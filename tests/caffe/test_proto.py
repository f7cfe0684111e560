"""Our Caffe schema (converters/caffe/proto) and prototxt reader (converters/caffe/prototxt.py).

Real prototxts are checked against an independent brace scanner, real .caffemodels against
their prototxts, and the wire format against OpenCV's own Caffe importer.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from google.protobuf import text_format

from converters.caffe.proto import caffe_pb2
from converters.caffe.proto._protoparse import ProtoSchemaError, parse_proto
from converters.caffe.prototxt import parse_prototxt, parse_prototxt_text, pooling_ceil_mode
from converters.errors import ConversionError
from tests.conftest import shared_path

# The conftest's location rule (shared_dir); needed at collection time for ids.
SHARED = shared_path()
MODELS = SHARED / "models"
assert MODELS.is_dir(), f"shared models not found at {MODELS}"
PROTOTXTS = sorted(MODELS.glob("*/*.prototxt"))
CAFFEMODELS = sorted(MODELS.glob("*/*.caffemodel"))
PARAMETRIC = {"Convolution", "InnerProduct", "PReLU", "Deconvolution", "BatchNorm"}

# Train-time settings (loss normalisation, augmentation) may differ from the deploy file.
LAYER_PARAMS = [
    f.name
    for f in caffe_pb2.LayerParameter.DESCRIPTOR.fields
    if f.name.endswith("_param") and f.name not in ("loss_param", "transform_param")
]

_SCAN = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|#[^\n]*|[{}:]|[^\s{}:#"\']+')


def scan_layers(text: str) -> list[dict[str, str]]:
    """Top-level ``layer``/``layers`` blocks with their ``name`` and ``type``, by brace depth.

    Deliberately independent of protobuf: it only counts braces and reads `key: value`.
    """
    tokens = [t for t in _SCAN.findall(text) if not t.startswith("#")]
    layers, depth, current = [], 0, None
    for i, tok in enumerate(tokens):
        if tok == "{":
            if depth == 0 and tokens[i - 1] in ("layer", "layers"):
                current = {}
                layers.append(current)
            depth += 1
        elif tok == "}":
            depth -= 1
        elif (
            depth == 1 and current is not None and tok in ("name", "type") and tokens[i + 1] == ":"
        ):
            current.setdefault(tok, tokens[i + 2].strip("\"'"))
    return layers


@pytest.mark.parametrize("path", PROTOTXTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_real_prototxt_parses_with_expected_layers(path):
    net = parse_prototxt(path)
    expected = scan_layers(path.read_text())
    layers = list(net.layer) or list(net.layers)
    assert len(expected) > 0
    assert [(layer.name, layer.type) for layer in layers] == [
        (e["name"], e["type"]) for e in expected
    ]


@pytest.mark.parametrize("path", CAFFEMODELS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_real_caffemodel_decodes_and_matches_prototxt(path):
    model = caffe_pb2.NetParameter.FromString(path.read_bytes())
    deploy = parse_prototxt(path.with_suffix(".prototxt"))
    trained = {layer.name: layer for layer in model.layer}
    checked = 0
    for layer in deploy.layer:
        if layer.type not in PARAMETRIC:
            continue
        assert layer.name in trained, f"{layer.name} missing from {path.name}"
        weights = trained[layer.name]
        assert weights.type == layer.type
        assert len(weights.blobs) >= 1
        for blob in weights.blobs:  # packed floats decode to exactly prod(shape) values
            assert len(blob.data) == int(np.prod(blob.shape.dim)) > 0
        if layer.type == "Convolution":
            assert weights.blobs[0].shape.dim[0] == layer.convolution_param.num_output
            assert len(weights.blobs) == (2 if layer.convolution_param.bias_term else 1)
        checked += 1
    assert checked > 0
    # Layer parameters stored in the binary must decode to what the prototxt says: this
    # pins the field numbers of every *_param these real files use.
    compared = 0
    for layer in deploy.layer:
        stored = trained.get(layer.name)
        for field in LAYER_PARAMS if stored is not None else ():
            if layer.HasField(field) or stored.HasField(field):
                assert getattr(stored, field) == getattr(layer, field), (layer.name, field)
                compared += 1
    assert compared > 0


V1_NET = """
name: "LeNetV1"
input: "data"
input_dim: 1 input_dim: 1 input_dim: 28 input_dim: 28
layers {
  name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1"
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
  convolution_param { num_output: 20 kernel_size: 5 stride: 1
    weight_filler { type: "xavier" } bias_filler { type: "constant" } }
}
layers { name: "pool1" type: POOLING bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layers { name: "ip1" type: INNER_PRODUCT bottom: "pool1" top: "ip1"
  inner_product_param { num_output: 10 } }
layers { name: "relu1" type: RELU bottom: "ip1" top: "ip1" }
layers { name: "prob" type: SOFTMAX bottom: "ip1" top: "prob" }
"""


def test_v1_layers_with_enum_types():
    net = parse_prototxt_text(V1_NET)
    v1 = caffe_pb2.V1LayerParameter
    assert not net.layer
    assert [layer.type for layer in net.layers] == [
        v1.CONVOLUTION,
        v1.POOLING,
        v1.INNER_PRODUCT,
        v1.RELU,
        v1.SOFTMAX,
    ]
    assert list(net.input_dim) == [1, 1, 28, 28]
    assert list(net.layers[0].blobs_lr) == [1.0, 2.0]
    assert net.layers[1].pooling_param.pool == caffe_pb2.PoolingParameter.MAX
    assert v1.LayerType.Name(net.layers[2].type) == "INNER_PRODUCT"


POOL = 'layer {{ name: "pool" type: "Pooling" pooling_param {{ kernel_size: 2 {} }} }}'


@pytest.mark.parametrize(
    ("spelling", "ceil"),
    [
        ("round_mode: FLOOR", False),
        ("ceil_mode: false", False),
        ("round_mode: CEIL", True),
        ("ceil_mode: true", True),
        ("", True),
        ("round_mode: FLOOR ceil_mode: false", False),
    ],
)
def test_pooling_round_mode_both_spellings(spelling, ceil):
    net = parse_prototxt_text(POOL.format(spelling))
    assert pooling_ceil_mode(net.layer[0].pooling_param) is ceil


def test_pooling_round_mode_conflict_is_one_line_error():
    with pytest.raises(ConversionError) as err:
        parse_prototxt_text(POOL.format("round_mode: FLOOR ceil_mode: true"), "net.prototxt")
    assert str(err.value).startswith("net.prototxt: layer 'pool': pooling_param")
    assert "\n" not in str(err.value)


# (text, line of the culprit, the culprit token, a word the message must contain)
BROKEN = [
    # Unknown fields inside a layer are kept for the converter (test_lenient.py); at net level
    # nothing could cut them away.
    ('input: "data"\n  kernal_size: 3\n', 2, "kernal_size", "kernal_size"),
    ('layer {\n  name: "a"\n  fork_param { x: 1 }\n  }\n}\n', 5, "}", "}"),
    ('layer {\n  name: "a"\n  pooling_param { pool: MAXX }\n}\n', 3, "MAXX", "MAXX"),
    ('input: "data"\ninput_dim: 1.5\n', 2, "1.5", "integer"),
    ('layer {\n  name: "a"\n  convolution_param { num_output: -4 }\n', 3, "-4", "range"),
    ('layer {\n  name: "a"\n  name: "b"\n}\n', 3, '"b"', "multiple"),
]


@pytest.mark.parametrize(("text", "line", "culprit", "word"), BROKEN)
def test_broken_prototxt_reports_file_line_col(tmp_path, text, line, culprit, word):
    path = tmp_path / "bad.prototxt"
    path.write_text(text)
    col = text.split("\n")[line - 1].index(culprit) + 1
    with pytest.raises(ConversionError) as err:
        parse_prototxt(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}:{line}:{col}: "), msg
    assert word in msg and "\n" not in msg and "Traceback" not in msg
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_missing_and_binary_files_are_one_line_errors(tmp_path):
    with pytest.raises(ConversionError, match=r"nope\.prototxt: prototxt file not found$"):
        parse_prototxt(tmp_path / "nope.prototxt")
    binary = tmp_path / "swapped.prototxt"
    binary.write_bytes(b"\x0a\x04PNet\xa2\x06\xff\xfe")
    with pytest.raises(ConversionError, match=r"swapped\.prototxt:\d+:\d+: not UTF-8 text"):
        parse_prototxt(binary)


def test_non_utf8_comments_are_skipped_like_caffe(tmp_path):
    path = tmp_path / "gbk.prototxt"
    path.write_bytes('name: "n" # 注释\nlayer { name: "a#b" } # 层\n'.encode("gbk"))
    net = parse_prototxt(path)
    assert (net.name, net.layer[0].name) == ("n", "a#b")


def test_repeated_numbers_are_packed_like_bvlc():
    # BVLC declares these [packed = true]; Caffe writes them packed (tag, length, payload).
    assert caffe_pb2.BlobShape(dim=[1, 300]).SerializeToString() == b"\x0a\x03\x01\xac\x02"
    assert caffe_pb2.BlobProto(data=[1.0]).SerializeToString() == b"\x2a\x04\x00\x00\x80\x3f"
    # ...and these are not packed (one tag per value), as in BVLC's proto2 default.
    assert caffe_pb2.ConvolutionParameter(pad=[1, 2]).SerializeToString() == b"\x18\x01\x18\x02"


def test_defaults_match_caffe():
    assert caffe_pb2.PoolingParameter().stride == 1
    assert caffe_pb2.PoolingParameter().round_mode == caffe_pb2.PoolingParameter.CEIL
    assert caffe_pb2.PoolingParameter().ceil_mode is True
    assert caffe_pb2.BatchNormParameter().eps == pytest.approx(1e-5, rel=1e-6)
    assert caffe_pb2.ConvolutionParameter().bias_term is True
    assert caffe_pb2.ConvolutionParameter().group == 1
    assert caffe_pb2.InnerProductParameter().axis == 1
    assert caffe_pb2.FlattenParameter().end_axis == -1
    assert caffe_pb2.ReshapeParameter().num_axes == -1
    assert caffe_pb2.ExpParameter().base == -1.0
    assert caffe_pb2.EltwiseParameter().operation == caffe_pb2.EltwiseParameter.SUM
    assert caffe_pb2.LRNParameter().beta == 0.75
    assert caffe_pb2.FillerParameter().type == "constant"
    assert caffe_pb2.CropParameter().axis == 2
    assert caffe_pb2.NetState().phase == caffe_pb2.TEST
    assert caffe_pb2.DropoutParameter().scale_train is True
    assert caffe_pb2.NormalizeBBoxParameter().eps == pytest.approx(1e-10, rel=1e-6)
    assert caffe_pb2.DetectionOutputParameter().keep_top_k == -1
    assert caffe_pb2.ShuffleChannelParameter().group == 1
    assert caffe_pb2.InterpParameter().zoom_factor == 1


def test_fork_layers_parse():
    net = parse_prototxt_text(
        """
        layer { name: "perm" type: "Permute" permute_param { order: 0 order: 2 order: 3 order: 1 } }
        layer { name: "pb" type: "PriorBox" prior_box_param { min_size: 30 min_size: 60
                max_size: 90 aspect_ratio: 2 flip: true clip: false variance: 0.1 step: 8 } }
        layer { name: "det" type: "DetectionOutput" detection_output_param { num_classes: 21
                nms_param { nms_threshold: 0.45 top_k: 100 } code_type: CENTER_SIZE } }
        layer { name: "l2" type: "Normalize" norm_param { across_spatial: false } }
        layer { name: "sc" type: "ShuffleChannel" shuffle_channel_param { group: 3 } }
        layer { name: "up" type: "Upsample" upsample_param { scale: 2 } }
        layer { name: "ip" type: "Interp" interp_param { height: 33 width: 65 } }
        layer { name: "dw" type: "ConvolutionDepthwise" convolution_param { num_output: 8 } }
        layer { name: "drop" type: "Dropout" dropout_param { dropout_ratio: 0.3 scale_train: false } }
        layer { name: "r6" type: "ReLU6" }
        layer { name: "r6b" type: "ReLU6" relu6_param { negative_slope: 0.1 } }
        """
    )
    assert list(net.layer[1].prior_box_param.min_size) == [30.0, 60.0]
    assert net.layer[2].detection_output_param.code_type == caffe_pb2.PriorBoxParameter.CENTER_SIZE
    assert net.layer[4].shuffle_channel_param.group == 3
    assert net.layer[8].dropout_param.scale_train is False
    assert net.layer[10].relu6_param.negative_slope == pytest.approx(0.1)


def _conv_reference(x, w, b, stride, pad, group):
    n, _, h, wd = x.shape
    out_c, cg, kh, kw = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    out = np.zeros((n, out_c, oh, ow))
    og = out_c // group
    for g in range(group):
        xs, ws = xp[:, g * cg : (g + 1) * cg], w[g * og : (g + 1) * og].astype(np.float64)
        for i in range(oh):
            for j in range(ow):
                patch = xs[:, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
                out[:, g * og : (g + 1) * og, i, j] = np.einsum("nckl,ockl->no", patch, ws)
    return out + b[None, :, None, None]


@pytest.mark.parametrize("encoding", ["shape", "legacy_4d", "raw_fp16"])
def test_opencv_reads_our_encoding(tmp_path, encoding):
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    x = rng.standard_normal((1, 6, 7, 9)).astype(np.float32)
    if encoding == "raw_fp16":  # OpenCV widens FLOAT16 raw_data on load
        w = w.astype(np.float16).astype(np.float32)
        b = b.astype(np.float16).astype(np.float32)

    net = caffe_pb2.NetParameter(name="tiny")
    net.input.append("data")
    net.input_shape.add().dim.extend(x.shape)
    conv = net.layer.add(name="conv", type="Convolution", bottom=["data"], top=["conv"])
    conv.convolution_param.num_output = 4
    conv.convolution_param.kernel_size.append(3)
    conv.convolution_param.stride.append(2)
    conv.convolution_param.pad.append(1)
    conv.convolution_param.group = 2
    prototxt = tmp_path / "tiny.prototxt"
    prototxt.write_text(text_format.MessageToString(net))
    for arr in (w, b):
        blob = conv.blobs.add()
        if encoding == "legacy_4d":
            blob.num, blob.channels, blob.height, blob.width = [1] * (4 - arr.ndim) + [*arr.shape]
        else:
            blob.shape.dim.extend(arr.shape)
        if encoding == "raw_fp16":
            blob.raw_data_type = caffe_pb2.FLOAT16
            blob.raw_data = arr.astype("<f2").tobytes()
        else:
            blob.data.extend(arr.ravel())
    caffemodel = tmp_path / "tiny.caffemodel"
    caffemodel.write_bytes(net.SerializeToString())

    cv_net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    cv_net.setInput(x)
    got = cv_net.forward()
    want = _conv_reference(x, w, b, stride=2, pad=1, group=2)
    assert got.shape == want.shape == (1, 4, 4, 5)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_opencv_agrees_on_fork_ceil_mode(tmp_path):
    cv2 = pytest.importorskip("cv2")
    head = 'input: "data" input_shape { dim: 1 dim: 1 dim: 5 dim: 5 }\n'
    pool = 'layer { name: "pool" type: "Pooling" bottom: "data" top: "pool"\n'
    shapes = {}
    for spelling in ("ceil_mode: false", ""):
        net = parse_prototxt_text(
            f"{head}{pool} pooling_param {{ kernel_size: 2 stride: 2 {spelling} }} }}"
        )
        path = tmp_path / "pool.prototxt"
        # Written back with our schema: OpenCV must read the fork field by name.
        path.write_text(text_format.MessageToString(net))
        cv_net = cv2.dnn.readNetFromCaffe(str(path))
        cv_net.setInput(np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5))
        out = cv_net.forward()
        ceil = pooling_ceil_mode(net.layer[0].pooling_param)
        size = (-(-3 // 2) if ceil else 3 // 2) + 1  # Caffe: round((5 - 2) / 2) + 1
        shapes[spelling] = out.shape
        assert out.shape == (1, 1, size, size)
    assert shapes["ceil_mode: false"] != shapes[""]


SCHEMA = """
syntax = "proto2";
package t;
enum Top { A = 0; B = 1; }
message M {
  enum E { X = -1; Y = 2; }
  optional float f = 1 [default = -inf];
  optional double d = 2 [default = .5e-3];
  optional int64 i = 3 [default = -0x10];
  optional E e = 4 [default = Y];         // nested enum, relative name
  optional string s = 5 [default = 'a#b'];
  optional .t.Top top = 6 [default = B];  /* fully qualified */
  optional N n = 7;                       // declared later in the file
  repeated M.E es = 8 [packed = true];
}
message N { optional M.E e = 1 [default = X]; }
"""


def test_schema_parser_builds_working_classes():
    from google.protobuf import descriptor_pool, message_factory

    pool = descriptor_pool.DescriptorPool()
    desc = pool.AddSerializedFile(parse_proto(SCHEMA, "t.proto").SerializeToString())
    m = message_factory.GetMessageClass(desc.message_types_by_name["M"])()
    assert (m.f, m.d, m.i, m.e, m.s, m.top, m.n.e) == (-np.inf, 0.5e-3, -16, 2, "a#b", 1, -1)
    m.es.extend([2, 2])
    assert m.SerializeToString() == b"\x42\x02\x02\x02"  # packed: one tag for both


@pytest.mark.parametrize(
    ("source", "where", "what"),
    [
        ("message M { optional Foo x = 1; }", "1:22", "unknown type 'Foo'"),
        ("message M {\n optional int32 x = 1;\n optional int32 y = 1; }", "3:21", "already used"),
        ("message M { optional uint32 x = 1 [default = -1]; }", "1:47", "does not fit uint32"),
        ("message M { optional int32 x = 1 [deprecated = true]; }", "1:35", "unsupported"),
        ("message M { optional int32 x = 1 }", "1:34", "expected ';'"),
        ('import "other.proto";', "1:1", "found 'import'"),
    ],
)
def test_schema_parser_errors_name_position(source, where, what):
    with pytest.raises(ProtoSchemaError) as err:
        parse_proto(source, "bad.proto")
    assert str(err.value).startswith(f"bad.proto:{where}: ") and what in str(err.value)
