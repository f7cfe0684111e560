"""Caffe models in OpenCV DNN 4.x (``DNN_BACKEND_OPENCV``, CPU): the reference runtime for
Caffe sources and the deployment runtime of Caffe targets.

OpenCV addresses outputs by the LAYER that last writes a blob, not by the blob name the ONNX
graph (and the golden data) carries; a layer with several tops is asked for all of them with
``forwardAndRetrieve`` (``forward`` only returns each layer's first top).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from converters.caffe.blobs import last_writers
from pipelines.errors import ZoomakeError
from pipelines.runtimes.base import Port, Runner, need_files, static_shape

# Caffe's deploy state (caffe.proto ``NetState`` defaults: what ``caffe test`` and pycaffe's
# ``caffe.TEST`` build): phase TEST, level 0, no stages. OpenCV DNN 4.x ignores include/exclude
# rules altogether: it builds TRAIN-only layers too (an ``exclude { phase: TEST }`` layer runs)
# and refuses a TRAIN/TEST pair writing the same top. So the reference applies Caffe's rule
# itself, written here from caffe.proto and not taken from the converter under test, and hands
# OpenCV the net without the layers Caffe would not build.
_TEST_PHASE = 1  # caffe.proto: enum Phase { TRAIN = 0; TEST = 1; }
_LEVEL = 0


def _rule_holds(rule) -> bool:
    """Caffe's ``Net::StateMeetsRule`` for the deploy state."""
    if rule.HasField("phase") and rule.phase != _TEST_PHASE:
        return False
    if rule.HasField("min_level") and rule.min_level > _LEVEL:
        return False
    if rule.HasField("max_level") and rule.max_level < _LEVEL:
        return False
    # Every ``stage`` of the rule must be in the state (it has none); ``not_stage`` names
    # stages that must not be, which none are.
    return len(rule.stage) == 0


def _built(layer, where: str) -> bool:
    """Caffe's ``Net::FilterNet``: include rules, any one holding, or else no exclude holding."""
    if len(layer.include) and len(layer.exclude):
        raise ZoomakeError(
            f"{where}: layer '{layer.name}' has both include and exclude rules (Caffe refuses it)"
        )
    if len(layer.include):
        return any(_rule_holds(r) for r in layer.include)
    return not any(_rule_holds(r) for r in layer.exclude)


def deploy_net(prototxt: Path):
    """``(net, filtered)``: the prototxt as Caffe builds it for TEST, and whether that dropped
    layers (then OpenCV must be given the filtered net, not the file). A copy of the one parse
    per file version in this process (the reference and every Caffe target's measure of a model
    read the same prototxt; protobuf's text parser is pure Python, ~30 ms for a 200-layer net)."""
    path = Path(prototxt)
    try:
        st = path.stat()
    except OSError as exc:
        raise ZoomakeError(f"{prototxt}: cannot read the Caffe net ({exc})") from None
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
    net, filtered = _deploy_net(key, str(prototxt))
    copy = type(net)()
    copy.CopyFrom(net)
    return copy, filtered


@functools.lru_cache(maxsize=32)
def _deploy_net(key: tuple, prototxt: str):
    from google.protobuf import text_format

    from converters.caffe.proto import caffe_pb2  # the wire schema only

    try:
        text = Path(prototxt).read_bytes().decode("utf-8-sig", errors="replace")
    except OSError as exc:
        raise ZoomakeError(f"{prototxt}: cannot read the Caffe net ({exc})") from None
    net, lossy = caffe_pb2.NetParameter(), False
    try:
        text_format.Parse(text, net)
    except text_format.ParseError:
        # Fields our schema lacks (Caffe forks) do not matter for the layer graph read here;
        # OpenCV reads the file itself unless layers must be dropped (checked below).
        net, lossy = caffe_pb2.NetParameter(), True
        try:
            text_format.Parse(text, net, allow_unknown_field=True)
        except text_format.ParseError as exc:
            raise ZoomakeError(f"{prototxt}: cannot read the Caffe net ({exc})") from None
    filtered = False
    for layers in (net.layer, net.layers):
        dropped = [i for i, layer in enumerate(layers) if not _built(layer, str(prototxt))]
        for i in reversed(dropped):
            del layers[i]
        filtered = filtered or bool(dropped)
    if filtered and lossy:
        raise ZoomakeError(
            f"{prototxt}: has layers Caffe does not build in the TEST phase and fields unknown to "
            "caffe.proto, so the reference cannot hand OpenCV a faithful TEST-phase copy"
        )
    return net, filtered


def caffe_blob_writers(prototxt) -> tuple[dict[str, tuple[str, int]], list[str]]:
    """``{blob: (layer that writes it last, top index)}`` and the net's final blobs in order,
    of the TEST-phase net (a prototxt path, or a ``deploy_net``).

    Final blobs (what the converter makes graph outputs when no cut points are given) are the
    tops no later layer reads; in-place layers read and rewrite a blob, so it stays open.
    """
    net = deploy_net(prototxt)[0] if isinstance(prototxt, str | Path) else prototxt
    layers = [*net.layer, *net.layers]
    open_blobs: dict[str, None] = {}
    for layer in layers:
        for b in layer.bottom:
            open_blobs.pop(b, None)
        for top in layer.top:
            open_blobs.pop(top, None)
            open_blobs[top] = None
    names = [_layer_name(layer) for layer in layers]
    writers = {b: (names[pos], i) for b, (pos, i) in last_writers(lr.top for lr in layers).items()}
    return writers, list(open_blobs)


def _layer_name(layer) -> str:
    """A V0 layer (``layers { layer { name: ... } }``) keeps its name in the nested layer."""
    v0 = layer.DESCRIPTOR.name == "V1LayerParameter" and layer.HasField("layer")
    return layer.layer.name if v0 else layer.name


def caffe_inputs(prototxt) -> list[Port]:
    """The inputs a Caffe net (a prototxt path, or a ``deploy_net``) declares (``input`` +
    shapes, or Input layers), float32."""
    net = deploy_net(prototxt)[0] if isinstance(prototxt, str | Path) else prototxt
    ports = []
    dims = list(net.input_dim)
    for i, name in enumerate(net.input):
        if len(net.input_shape) > i:
            shape = static_shape(list(net.input_shape[i].dim))
        else:
            shape = static_shape(dims[4 * i : 4 * i + 4]) if len(dims) >= 4 * i + 4 else None
        ports.append(Port(name, shape, np.dtype(np.float32)))
    for layer in net.layer:
        if layer.type == "Input":
            shapes = list(layer.input_param.shape)
            for i, top in enumerate(layer.top):
                shape = shapes[min(i, len(shapes) - 1)].dim if shapes else []
                ports.append(Port(top, static_shape(list(shape)), np.dtype(np.float32)))
    return ports


class OpenCvCaffeRunner(Runner):
    runtime = "opencv"

    def __init__(self, prototxt: Path, caffemodel: Path):
        import cv2

        need_files(prototxt, caffemodel)
        net, filtered = deploy_net(prototxt)
        try:
            if filtered:
                from google.protobuf import text_format

                text = text_format.MessageToString(net).encode()
                self.net = cv2.dnn.readNetFromCaffe(
                    np.frombuffer(text, np.uint8), np.fromfile(caffemodel, np.uint8)
                )
            else:  # OpenCV reads the original files itself
                self.net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
        except cv2.error as exc:
            raise ZoomakeError(f"{prototxt}: OpenCV cannot read the Caffe model: {exc}") from None
        self.net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        self.net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        self.writers, self.outputs = caffe_blob_writers(net)
        self.inputs = caffe_inputs(net)

    def has_output(self, name: str) -> bool:
        return name in self.writers  # a cut point may be a blob later layers still read

    @property
    def threads(self) -> int:
        import cv2

        return cv2.getNumThreads()

    def run(self, feeds, outputs=None):
        import cv2

        names = list(outputs or self.outputs)
        missing = [n for n in names if n not in self.writers]
        if missing:
            raise ZoomakeError(f"Caffe net has no blob {', '.join(map(repr, missing))}")
        layers = list(dict.fromkeys(self.writers[n][0] for n in names))
        for name, value in feeds.items():
            self.net.setInput(np.ascontiguousarray(value, dtype=np.float32), name)
        try:
            # forwardAndRetrieve returns every top of each layer; forward() only the first.
            results = dict(zip(layers, self.net.forwardAndRetrieve(layers), strict=True))
        except cv2.error as exc:
            raise ZoomakeError(f"OpenCV DNN failed to run the Caffe model: {exc}") from None
        return {n: np.asarray(results[self.writers[n][0]][self.writers[n][1]]) for n in names}
