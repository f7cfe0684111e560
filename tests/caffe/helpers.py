"""Build tiny Caffe nets in code, run them in real Caffe, OpenCV DNN and onnxruntime, compare.

References: real Caffe (pycaffe in its own environment, driven through zoomake's side runtime;
one runner process per test worker serves every test) and OpenCV's DNN module (4.x), a
reimplementation. ``write_net`` writes the prototxt text as given and a ``.caffemodel``
serialized with our own schema, so every layer test also proves our schema is wire-compatible
with what Caffe and OpenCV read.

Real-Caffe API (stable, other test modules use it)::

    caffe_available() -> bool              # the side runtime is set up
    require_caffe()                        # skip (fail under CI=true) when it is not
    caffe_layer_types() -> frozenset[str]  # layer types this Caffe build registers
    caffe_can_run(prototxt) -> bool        # set up, and it knows every layer type and field
    run_caffe(prototxt, caffemodel, feeds, outputs=None) -> {blob: array}
        # outputs: blob names (any blob, also intermediate ones), None = the net's outputs,
        # "all" = every blob; requires the runtime (skips like require_caffe)
    convert_and_compare(..., opencv=True, caffe=True)  # see below

Without the runtime, tests that need it skip with the setup command as the reason; with
``CI`` set they fail instead (CI sets the runtime up: ``.ci/run``).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pytest

from converters.caffe.proto import caffe_pb2


def write_net(
    tmp_path: Path,
    prototxt: str,
    weights: dict[str, list[np.ndarray]] | None = None,
    name: str = "net",
    legacy_blobs: bool = False,
) -> tuple[Path, Path]:
    """Write ``<name>.prototxt`` and ``<name>.caffemodel``; weights keyed by layer name.

    The prototxt is read with our lenient parser (fork fields the schema lacks do not matter:
    the caffemodel holds names, types and blobs only). A V0 layer's blobs go inside its
    nested ``layer`` (field 50), where V0 files and Caffe's V0 upgrade have them, and also on
    the V1 wrapper, the only place OpenCV's importer takes them from.
    """
    from converters.caffe.prototxt import parse_prototxt_text

    tmp_path.mkdir(parents=True, exist_ok=True)
    proto_path = tmp_path / f"{name}.prototxt"
    proto_path.write_text(prototxt)
    net = parse_prototxt_text(prototxt)
    out = caffe_pb2.NetParameter(name=net.name)
    weights = weights or {}
    v1 = bool(net.layers)
    if any(layer.HasField("layer") for layer in net.layers):
        # Caffe's V0 upgrade of the weights file resolves every bottom (padding layers).
        out.input.extend(net.input)
        out.input_dim.extend(net.input_dim)
    for layer in net.layers if v1 else net.layer:
        # Name, type and blobs only: runtimes take the parameters from the prototxt, and fork
        # parameters that share a field number with another fork's (this Caffe's
        # psroi_pooling_param is 149, our upsample_param) would make the binary unreadable.
        dst = out.layers.add() if v1 else out.layer.add()
        v0 = v1 and layer.HasField("layer")
        if v0:  # the V0 upgrade of the weights file needs the whole connection (padding)
            dst.CopyFrom(layer)
        else:
            dst.name, dst.type = layer.name, layer.type
        for arr in weights.get(layer.layer.name if v0 else layer.name, []):
            blob = dst.blobs.add()
            arr = np.asarray(arr, dtype=np.float32)
            if legacy_blobs:
                dims = [1] * (4 - arr.ndim) + list(arr.shape)
                blob.num, blob.channels, blob.height, blob.width = dims
            else:
                blob.shape.SetInParent()  # a 0-d blob (channel-shared slopes) has an empty shape
                blob.shape.dim.extend(arr.shape)
            blob.data.extend(arr.ravel().tolist())
            if v0:  # where V0 files keep them; OpenCV reads the V1 wrapper's copy
                dst.layer.blobs.add().CopyFrom(blob)
    model_path = tmp_path / f"{name}.caffemodel"
    model_path.write_bytes(out.SerializeToString())
    return proto_path, model_path


def _net(prototxt: Path):
    """The prototxt as plain protobuf text (not the converter's reader: this is the reference)."""
    from google.protobuf import text_format

    return text_format.Parse(Path(prototxt).read_text(), caffe_pb2.NetParameter())


def last_writers(prototxt: Path) -> dict[str, str]:
    """Blob name -> name of the layer that writes it last (what OpenCV's forward() takes)."""
    net = _net(prototxt)
    writers: dict[str, str] = {}
    for layer in list(net.layer) + list(net.layers):
        # A V0 layer keeps its name in the nested `layer`.
        v0 = layer.DESCRIPTOR.name == "V1LayerParameter" and layer.HasField("layer")
        name = layer.layer.name if v0 else layer.name
        for i, top in enumerate(layer.top):
            writers[top] = name if i == 0 else f"{name}.{i}"
    return writers


def final_blobs(prototxt: Path) -> list[str]:
    """The tops no later layer reads, in order: a converted net's outputs when there is no cut
    (in-place layers read and rewrite their blob, which stays final). Nets here carry no phase
    rules (OpenCV, the reference, does not apply them)."""
    net = _net(prototxt)
    final: dict[str, None] = {}
    for layer in list(net.layer) + list(net.layers):
        for b in layer.bottom:
            final.pop(b, None)
        for top in layer.top:
            final.pop(top, None)
            final[top] = None
    return list(final)


def assert_same_outputs(got, expected: list[str]) -> None:
    """The candidate has exactly the ``expected`` outputs, by name: none missing or extra."""
    missing = [n for n in expected if n not in got]
    extra = [n for n in got if n not in expected]
    assert not missing and not extra, f"outputs missing {missing}, unexpected {extra}"


def assert_caffe_outputs(prototxt: Path, expected: list[str]) -> None:
    """A Caffe candidate gives exactly ``expected``: each is a blob of the net (a cut point may
    be one later layers read) and every final blob is expected."""
    blobs = last_writers(prototxt)
    missing = [n for n in expected if n not in blobs]
    extra = [n for n in final_blobs(prototxt) if n not in expected]
    assert not missing and not extra, f"outputs missing {missing}, unexpected {extra}"


def run_opencv(
    prototxt: Path, caffemodel: Path, feeds: dict[str, np.ndarray], outputs: list[str]
) -> dict[str, np.ndarray]:
    import cv2

    net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    for name, value in feeds.items():
        net.setInput(value, name)
    writers = last_writers(prototxt)
    results = net.forward([writers[o] for o in outputs])
    return {o: np.asarray(r) for o, r in zip(outputs, results, strict=True)}


def caffe_available() -> bool:
    from pipelines.runtimes.side import available

    return available("caffe")


def require_caffe() -> None:
    if caffe_available():
        return
    reason = "real Caffe is not set up: run `zoomake setup-runtime caffe`"
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must set it up, see .ci/run)", pytrace=False)
    pytest.skip(reason)


@functools.cache
def caffe_layer_types() -> frozenset[str]:
    from pipelines.runtimes.side import process

    require_caffe()
    return frozenset(process("caffe").info["layers"])


def caffe_can_run(prototxt: Path) -> bool:
    """Whether real Caffe is set up and this build can run the net: it has every layer type
    and knows every field (fork layers and fork fields are what it lacks; for those the tests'
    numpy transcriptions stay the reference)."""
    from pipelines.errors import ZoomakeError
    from pipelines.runtimes.side import process

    if not caffe_available():
        return False
    try:
        process("caffe").request({"op": "check", "files": {"prototxt": str(prototxt)}})
    except ZoomakeError as exc:
        if "this Caffe" in str(exc):
            return False
        raise
    return True


def run_caffe(
    prototxt: Path,
    caffemodel: Path | None,
    feeds: dict[str, np.ndarray],
    outputs: list[str] | str | None = None,
) -> dict[str, np.ndarray]:
    """The net in real Caffe (TEST phase, CPU); inputs reshaped to the feeds' shapes."""
    from pipelines.runtimes.side import SideModel

    require_caffe()
    files = {"prototxt": prototxt, **({"caffemodel": caffemodel} if caffemodel else {})}
    return SideModel("caffe", files).run(feeds, outputs)


def _assert_close(got, want, atol, rtol, who: str) -> None:
    for name in got:
        assert got[name].shape == want[name].shape, (who, name, got[name].shape, want[name].shape)
        np.testing.assert_allclose(
            got[name], want[name], atol=atol, rtol=rtol, err_msg=f"{name} vs {who}"
        )


def uniform_feeds(model, seed: int) -> dict[str, np.ndarray]:
    """Seeded inputs uniform in [-1, 1]: about the range image networks see after their
    authors' preprocessing."""
    rng = np.random.default_rng(seed)
    return {
        vi.name: rng.uniform(-1, 1, [d.dim_value for d in vi.type.tensor_type.shape.dim]).astype(
            np.float32
        )
        for vi in model.graph.input
    }


def run_ort(model, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    data = model if isinstance(model, bytes) else model.SerializeToString()
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds), strict=True))


def convert_and_compare(
    tmp_path: Path,
    prototxt: str,
    weights: dict[str, list[np.ndarray]] | None = None,
    *,
    shapes: dict[str, tuple[int, ...]] | None = None,
    feeds: dict[str, np.ndarray] | None = None,
    atol: float = 1e-5,
    rtol: float = 0.0,
    seed: int = 0,
    opset: int = 17,
    outputs: list[str] | None = None,
    legacy_blobs: bool = False,
    opencv: bool = True,
    caffe: bool = True,
):
    """Convert the net, run it in onnxruntime and in the references on the same seeded input,
    assert allclose against each: real Caffe (when set up; ``caffe=False`` for a net this Caffe
    cannot run) and OpenCV (``opencv=False`` where OpenCV is known to be wrong, e.g.
    InnerProduct ``transpose``). A test that turns OpenCV off needs real Caffe.

    Returns ``(model, onnx_results, reference_results)`` (OpenCV's when it ran, else Caffe's).
    """
    import onnx

    from converters.caffe.convert import caffe_to_onnx

    proto_path, model_path = write_net(tmp_path, prototxt, weights, legacy_blobs=legacy_blobs)
    model = caffe_to_onnx(proto_path, model_path, opset=opset, outputs=outputs)
    onnx.checker.check_model(model, full_check=True)
    if feeds is None:
        rng = np.random.default_rng(seed)
        feeds = {}
        for vi in model.graph.input:
            shp = [d.dim_value for d in vi.type.tensor_type.shape.dim]
            if shapes and vi.name in shapes:
                assert tuple(shp) == tuple(shapes[vi.name])
            feeds[vi.name] = rng.standard_normal(shp).astype(np.float32)
    got = run_ort(model, feeds)
    expected = list(outputs) if outputs else final_blobs(proto_path)
    assert_same_outputs(got, expected)
    want = None
    if caffe and (caffe_can_run(proto_path) or not opencv):
        want = run_caffe(proto_path, model_path, feeds, expected)
        _assert_close(got, want, atol, rtol, "real Caffe")
    if opencv:
        want = run_opencv(proto_path, model_path, feeds, expected)
        _assert_close(got, want, atol, rtol, "OpenCV")
    assert want is not None, "convert_and_compare: no reference runtime asked for"
    return model, got, want
