"""converters/caffe/blobs.py: an in-place blob means its last writer's value, as in OpenCV."""

from __future__ import annotations

import cv2
import numpy as np
import onnxruntime as ort

from converters.caffe.blobs import last_writers
from converters.caffe.convert import caffe_to_onnx
from converters.caffe.prototxt import parse_prototxt


def test_last_writers_of_mtcnn_pnet(models_dir):
    net = parse_prototxt(models_dir / "mtcnn/det1.prototxt")
    names = [layer.name for layer in net.layer]
    last = last_writers(list(layer.top) for layer in net.layer)
    assert names[last["conv1"][0]] == "PReLU1"  # conv1 writes it first, PReLU1 in place after
    assert names[last["conv2"][0]] == "PReLU2" and names[last["pool1"][0]] == "pool1"


def test_a_cut_at_an_in_place_blob_is_opencvs_last_writer(models_dir):
    """Asking the converter for blob ``conv1`` gives PReLU1's output (OpenCV's value of the
    layer that wrote it last), not the convolution's."""
    proto, weights = models_dir / "mtcnn/det1.prototxt", models_dir / "mtcnn/det1.caffemodel"
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 24, 24)).astype(np.float32)
    model = caffe_to_onnx(proto, weights, input_shapes={"data": [1, 3, 24, 24]}, outputs=["conv1"])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {"data": x})
    ref = cv2.dnn.readNetFromCaffe(str(proto), str(weights))
    ref.setInput(x)
    prelu, conv = ref.forward(["PReLU1", "conv1"])
    assert np.abs(conv - prelu).max() > 0.1  # the two writers really differ here
    np.testing.assert_allclose(got, prelu, rtol=0, atol=1e-4)  # float32 conv sums, |x| ~ 3
