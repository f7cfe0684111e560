"""Another exporter's SSD ONNX -> Caffe: UltraFace slim-320 as its authors run it for inference
(``is_test=True``: softmax scores and boxes decoded against the priors inside ``forward``),
exported here once per session by torch.onnx.export (TorchScript exporter, in zoomake's worker).

The decoding (``convert_locations_to_boxes`` + ``center_form_to_corner_form``) exports as
Slice / Mul / Add / Exp / Div / Sub / Concat with the priors folded into constants; the writer
puts it into plain Caffe layers (Slice, Power, Scale with the priors as blobs, Exp, Eltwise,
Concat) that real Caffe and OpenCV run, checked against onnxruntime on the ONNX at 1e-4 on the
real photo. A NonMaxSuppression another exporter adds is refused in one line with the cut, and
the cut it names converts.
"""

from __future__ import annotations

import cv2
import numpy as np
import onnx
import pytest
from google.protobuf import text_format
from onnx import TensorProto, helper, numpy_helper

from converters.caffe.proto import caffe_pb2
from converters.onnx2caffe import onnx_to_caffe
from converters.onnx_source import load_onnx_source
from converters.passes import run_passes
from tests.caffe.helpers import require_caffe, run_caffe, run_opencv, run_ort
from tests.onnx2caffe.helpers import assert_refused
from tests.pytorch.helpers import torch  # noqa: F401  (skips without torch)

OUTPUTS = ["scores", "boxes"]
# what the decoding and the heads become; nothing SSD-specific, nothing Caffe lacks
GENERIC = {"Input", "Convolution", "ReLU", "Permute", "Reshape", "Concat", "Softmax", "Slice",
           "Power", "Scale", "Exp", "Eltwise", "Silence"}  # fmt: skip


@pytest.fixture(scope="session")
def decoded_ssd(models_dir, tmp_path_factory) -> onnx.ModelProto:
    from converters.pytorch.source import TorchSource, torch_to_onnx

    code = models_dir / "ultraface" / "pytorch"
    src = TorchSource(
        kind="code",
        entry="tests.pytorch.ultraface_decoded:create_slim_320_decoded",
        code_dir=str(code),
        checkpoint=str(code / "version-slim-320.pth"),
        stub_modules=["torchvision"],  # imported by vision/ssd/predictor.py, never called
    )
    model = torch_to_onnx(src, {"input": [1, 3, 240, 320]}, OUTPUTS)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Exp") == 1 and ops.count("Slice") == 4  # the exporter's decoding
    return model


@pytest.fixture(scope="session")
def photo(models_dir) -> dict[str, np.ndarray]:
    """The real face photo with the authors' preprocessing: RGB, 320x240, (x - 127) / 128."""
    bgr = cv2.resize(cv2.imread(str(models_dir / "images" / "astronaut.png")), (320, 240))
    rgb = bgr[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32)
    return {"input": (rgb - 127) / 128}


def _types(prototxt) -> list[str]:
    net = text_format.Parse(prototxt.read_text(), caffe_pb2.NetParameter())
    return [layer.type for layer in net.layer]


@pytest.mark.parametrize("optimize", [False, True])
def test_decoded_ssd_runs_in_real_caffe_and_opencv(tmp_path, decoded_ssd, photo, optimize):
    require_caffe()
    model = run_passes(decoded_ssd) if optimize else decoded_ssd
    proto, weights = tmp_path / "ssd.prototxt", tmp_path / "ssd.caffemodel"
    onnx_to_caffe(model, proto, weights)
    types = _types(proto)
    assert set(types) <= GENERIC and types.count("Exp") == 1, sorted(set(types) - GENERIC)
    want = run_ort(decoded_ssd, photo)
    assert want["scores"].shape == (1, 4420, 2) and want["boxes"].shape == (1, 4420, 4)
    face = want["scores"][0, :, 1]
    assert face.max() > 0.9  # the photo gives a real detection, so the boxes carry meaning
    best = want["boxes"][0, face.argmax()]
    assert 0 < best[0] < best[2] < 1 and 0 < best[1] < best[3] < 1
    for who, got in (("real Caffe", run_caffe(proto, weights, photo, OUTPUTS)),
                     ("OpenCV", run_opencv(proto, weights, photo, OUTPUTS))):  # fmt: skip
        for name in OUTPUTS:
            assert got[name].shape == want[name].shape, (who, name)
            np.testing.assert_allclose(got[name], want[name], atol=1e-4, rtol=0,
                                       err_msg=f"{name} in {who}")  # fmt: skip


def _with_nms(model: onnx.ModelProto) -> onnx.ModelProto:
    """What an exporter with NMS in the graph appends (torchvision / mmdet style): class scores
    to (N, classes, boxes), ONNX NonMaxSuppression, the selected indices as the output."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    g.node.extend([
        helper.make_node("Transpose", ["scores"], ["scores_t"], name="to_nms", perm=[0, 2, 1]),
        helper.make_node("NonMaxSuppression", ["boxes", "scores_t", "max_out", "iou", "thr"],
                         ["selected"], name="nms"),
    ])  # fmt: skip
    g.initializer.extend([
        numpy_helper.from_array(np.array([200], np.int64), "max_out"),
        numpy_helper.from_array(np.array([0.3], np.float32), "iou"),
        numpy_helper.from_array(np.array([0.7], np.float32), "thr"),
    ])  # fmt: skip
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("selected", TensorProto.INT64, [None, 3]))
    onnx.checker.check_model(out)
    return out


CUT = "cut the graph before it with --outputs boxes,scores_t (recipe: outputs: [boxes, scores_t])"


def test_foreign_nms_is_refused_with_the_cut(tmp_path, decoded_ssd, photo):
    model = _with_nms(decoded_ssd)
    selected = run_ort(model, photo)["selected"]
    assert len(selected) >= 1  # the appended NMS really keeps the face
    out = tmp_path / "out"
    out.mkdir()
    assert_refused(out, model, (
        "Caffe export: node 'nms' (NonMaxSuppression): ONNX's NonMaxSuppression has no Caffe "
        "equivalent (Caffe's NMS is part of DetectionOutput, written back only from zoomake's "
        f"own records); {CUT}"
    ))  # fmt: skip
    # the cut it names converts, and OpenCV runs it like onnxruntime
    onnx.save(model, tmp_path / "nms.onnx")
    cut = load_onnx_source(tmp_path / "nms.onnx", outputs=["boxes", "scores_t"])
    onnx_to_caffe(cut, out / "m.prototxt", out / "m.caffemodel")
    want = run_ort(cut, photo)
    got = run_opencv(out / "m.prototxt", out / "m.caffemodel", photo, ["boxes", "scores_t"])
    for name in ("boxes", "scores_t"):
        np.testing.assert_allclose(got[name], want[name], atol=1e-4, rtol=0, err_msg=name)


def test_nms_inside_a_loop_is_refused_with_the_cut(tmp_path):
    # a per-image loop (TensorFlow exporters) whose body runs the NMS on the outer tensors
    body = helper.make_graph(
        [helper.make_node("NonMaxSuppression", ["boxes", "scores"], ["sel"], name="inner_nms"),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("sel", TensorProto.INT64, [None, 3])],
    )  # fmt: skip
    loop = helper.make_node("Loop", ["trips", ""], ["selected"], name="per_image", body=body)
    graph = helper.make_graph(
        [loop],
        "g",
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 8, 4]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 2, 8])],
        [helper.make_tensor_value_info("selected", TensorProto.INT64, None)],
        [numpy_helper.from_array(np.array(1, np.int64), "trips")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert_refused(tmp_path, model, (
        "Caffe export: node 'per_image' (Loop): its body's NonMaxSuppression 'inner_nms' has no "
        "Caffe equivalent (Caffe's NMS is part of DetectionOutput, written back only from "
        "zoomake's own records); cut the graph before it with --outputs boxes,scores (recipe: "
        "outputs: [boxes, scores])"
    ))  # fmt: skip
