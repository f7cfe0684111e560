"""Side runner for real Caffe (pycaffe): run by the Caffe environment's Python, never imported
by zoomake. Protocol: ``sideproto``; loop: ``runner_main``.

Nets run in the TEST phase on the CPU. An input whose feed has another shape than the net
declares is reshaped first (Caffe's ``Blob::Reshape`` + ``Net::Reshape``), as a deployment does.
"""

from __future__ import annotations

import hashlib
import os
import sys

import numpy as np
from runner_main import serve

os.environ.setdefault("GLOG_minloglevel", "2")  # Caffe logs every layer it sets up otherwise
import caffe

caffe.set_mode_cpu()
_NETS: dict[str, caffe.Net] = {}


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def hello(header, arrays):
    core = os.path.join(os.path.dirname(caffe.__file__), "_caffe.so")
    return {
        "framework": "caffe",
        "version": getattr(caffe, "__version__", "unknown"),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "module": os.path.dirname(caffe.__file__),
        "core_sha256": _sha256(core) if os.path.isfile(core) else None,
        "layers": sorted(caffe.layer_type_list()),
    }, None


def _parse(prototxt: str):
    """The net with this Caffe's own schema; a field or layer it lacks is an error here, where
    ``caffe.Net`` would abort the whole process."""
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    net = caffe_pb2.NetParameter()
    with open(prototxt, encoding="utf-8") as f:
        try:
            text_format.Merge(f.read(), net)
        except text_format.ParseError as exc:
            raise ValueError(f"{prototxt}: this Caffe cannot parse the net: {exc}") from None
    known = set(caffe.layer_type_list())
    for layer in net.layer:
        if layer.type not in known:
            raise ValueError(
                f"{prototxt}: layer '{layer.name}': this Caffe has no layer type '{layer.type}'"
            )
    return net


def check(header, arrays):
    _parse(header["files"]["prototxt"])
    return {}, None


def load(header, arrays):
    files = header["files"]
    for role in ("prototxt", "caffemodel"):
        if files.get(role) and not os.path.isfile(files[role]):
            raise FileNotFoundError(f"{files[role]}: {role} not found")
    _parse(files["prototxt"])
    if files.get("caffemodel"):
        net = caffe.Net(files["prototxt"], caffe.TEST, weights=files["caffemodel"])
    else:
        net = caffe.Net(files["prototxt"], caffe.TEST)
    key = str(len(_NETS) + 1)
    while key in _NETS:
        key = str(int(key) + 1)
    _NETS[key] = net
    return {
        "model": key,
        "inputs": [{"name": n, "shape": list(net.blobs[n].data.shape)} for n in net.inputs],
        "outputs": list(net.outputs),
        "blobs": list(net.blobs.keys()),
    }, None


def run(header, arrays):
    net = _NETS[header["model"]]
    reshaped = False
    for name, value in arrays.items():
        if name not in net.blobs:
            raise KeyError(f"the net has no input blob '{name}'")
        blob = net.blobs[name]
        if tuple(blob.data.shape) != value.shape:
            blob.reshape(*value.shape)
            reshaped = True
    if reshaped:
        net.reshape()
    for name, value in arrays.items():
        net.blobs[name].data[...] = value
    net.forward()
    wanted = header.get("outputs")
    if wanted == "all":
        wanted = list(net.blobs.keys())
    elif not wanted:
        wanted = list(net.outputs)
    missing = [n for n in wanted if n not in net.blobs]
    if missing:
        raise KeyError(f"the net has no blob {', '.join(map(repr, missing))}")
    return {}, {n: np.array(net.blobs[n].data, dtype=np.float32) for n in wanted}


def free(header, arrays):
    _NETS.pop(header["model"], None)
    return {}, None


if __name__ == "__main__":
    serve("caffe", {"hello": hello, "check": check, "load": load, "run": run, "free": free})
