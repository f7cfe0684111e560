"""``deploy_net`` parses a prototxt once per file version: an edited file is parsed again, and
a caller's changes to the net it got never reach the next caller."""

from __future__ import annotations

import os

import numpy as np

from pipelines.runtimes.opencv import OpenCvCaffeRunner, deploy_net

NET = """name: "scale"
input: "data"
input_shape {{ dim: 1 dim: 2 dim: 3 dim: 3 }}
layer {{ name: "train_only" type: "Power" bottom: "data" top: "data"
        power_param {{ scale: 100 }} include {{ phase: TRAIN }} }}
layer {{ name: "p" type: "Power" bottom: "data" top: "out" power_param {{ scale: {scale} }} }}
"""


def _write(path, scale):
    path.write_text(NET.format(scale=scale))


def test_an_edited_prototxt_is_read_again(tmp_path):
    proto, weights = tmp_path / "net.prototxt", tmp_path / "net.caffemodel"
    weights.write_bytes(b"")  # a net without parameters: an empty NetParameter
    x = np.random.default_rng(0).uniform(-1, 1, (1, 2, 3, 3)).astype(np.float32)
    _write(proto, 2)
    # The TRAIN-only layer is dropped, so OpenCV is handed the parsed (cached) net, not the file.
    assert deploy_net(proto)[1] is True
    got = OpenCvCaffeRunner(proto, weights).run({"data": x})["out"]
    np.testing.assert_allclose(got, 2 * x, rtol=1e-6)
    stat = proto.stat()
    _write(proto, 3)  # same size; the same mtime too, as on a coarse-clock file system
    os.utime(proto, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert proto.stat().st_size == stat.st_size
    got = OpenCvCaffeRunner(proto, weights).run({"data": x})["out"]
    np.testing.assert_allclose(got, 3 * x, rtol=1e-6)


def test_a_callers_changes_stay_its_own(tmp_path):
    proto = tmp_path / "net.prototxt"
    _write(proto, 2)
    net, _ = deploy_net(proto)
    assert [layer.name for layer in net.layer] == ["p"]
    del net.layer[0]
    assert [layer.name for layer in deploy_net(proto)[0].layer] == ["p"]
