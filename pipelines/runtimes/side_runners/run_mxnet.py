"""Side runner for MXNet 1.x: run by the MXNet environment's Python, never imported by zoomake.
Protocol: ``sideproto``; loop: ``runner_main``.

A model is a checkpoint: ``symbol`` (``<prefix>-symbol.json``) and, unless the symbol has no
weights, ``params`` (``<prefix>-0000.params``, keys ``arg:``/``aux:``). Arguments that are neither parameters nor
fed are loss labels (``SoftmaxOutput`` adds ``<name>_label``); they do not change the inference
result and are bound as zeros. Outputs may name any internal output (``sym.get_internals()``).
"""

from __future__ import annotations

import os
import sys

import mxnet as mx
import numpy as np
from runner_main import serve

_MODELS: dict[str, dict] = {}


def hello(header, arrays):
    return {
        "framework": "mxnet",
        "version": mx.__version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "module": os.path.dirname(mx.__file__),
    }, None


def load(header, arrays):
    files = header["files"]
    for role in ("symbol", "params"):
        if files.get(role) and not os.path.isfile(files[role]):
            raise FileNotFoundError(f"{files[role]}: MXNet {role} file not found")
    if not files.get("symbol"):
        raise ValueError("an MXNet model needs its symbol file")
    sym = mx.sym.load(files["symbol"])
    saved = mx.nd.load(files["params"]) if files.get("params") else {}
    args = {k.split(":", 1)[1]: v for k, v in saved.items() if k.startswith("arg:")}
    aux = {k.split(":", 1)[1]: v for k, v in saved.items() if k.startswith("aux:")}
    fed = [
        n for n in sym.list_arguments() if n not in args and not n.endswith("_label")
    ] + header.get("extra_inputs", [])
    key = str(max((int(k) for k in _MODELS), default=0) + 1)
    _MODELS[key] = {"sym": sym, "args": args, "aux": aux, "inputs": fed, "cache": {}}
    return {
        "model": key,
        "inputs": [{"name": n, "shape": None} for n in fed],
        "outputs": sym.list_outputs(),
        "blobs": sym.get_internals().list_outputs(),
    }, None


def _executor(model: dict, outputs: tuple[str, ...], shapes: dict):
    key = (outputs, tuple(sorted(shapes.items())))
    if key not in model["cache"]:
        sym = model["sym"]
        if outputs:
            internals = sym.get_internals()
            sym = mx.sym.Group([internals[n] for n in outputs])
        arg_shapes, _, aux_shapes = sym.infer_shape(**shapes)
        args = {}
        for name, shape in zip(sym.list_arguments(), arg_shapes, strict=True):
            args[name] = model["args"].get(name, mx.nd.zeros(shape))
        aux = {
            name: model["aux"].get(name, mx.nd.zeros(shape))
            for name, shape in zip(sym.list_auxiliary_states(), aux_shapes, strict=True)
        }
        exe = sym.bind(mx.cpu(), args, grad_req="null", aux_states=aux)
        model["cache"][key] = (exe, sym.list_outputs())
    return model["cache"][key]


def run(header, arrays):
    model = _MODELS[header["model"]]
    wanted = header.get("outputs")
    if wanted == "all":
        wanted = model["sym"].get_internals().list_outputs()
        wanted = [n for n in wanted if n.endswith("_output")]
    outputs = tuple(wanted or ())
    exe, names = _executor(model, outputs, {k: v.shape for k, v in arrays.items()})
    for name, value in arrays.items():
        exe.arg_dict[name][:] = value
    exe.forward(is_train=False)
    return {}, {n: o.asnumpy() for n, o in zip(names, exe.outputs, strict=True)}


def free(header, arrays):
    _MODELS.pop(header["model"], None)
    return {}, None


if __name__ == "__main__":
    serve("mxnet", {"hello": hello, "load": load, "run": run, "free": free})
