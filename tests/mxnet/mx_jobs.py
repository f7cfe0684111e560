"""Run by MXNet 1.9.1's own Python (the side environment), never by zoomake's: the MXNet-side
half of the tests. ``python mx_jobs.py jobs.json``; each job is a dict with ``kind``:

- ``gluon``: build test model ``model`` (below; seeded weights, BN statistics away from 0/1),
  hybridize, run it on ``input`` (an .npy file), export ``prefix``-symbol.json/-0000.params
  with Gluon's own ``export``, save the outputs to ``out`` (.npz, a0, a1, ...).
- ``checkpoint``: load ``prefix`` epoch 0 (data input ``data_name``) with ``mx.model.load_checkpoint`` (run through a
  Module) and with ``mx.gluon.SymbolBlock.imports``; save both runs' outputs on ``input``.
- ``nd_load``: ``mx.nd.load(path)`` saved as an .npz of the named arrays.
"""

import json
import sys

import mxnet as mx
import numpy as np
from mxnet.gluon import nn


class Relu6(nn.HybridBlock):
    def hybrid_forward(self, F, x):
        return F.clip(x, 0, 6)


class ConvBnPool(nn.HybridBlock):
    """conv + BN + ReLU, max pool (valid), depthwise conv + BN + ReLU6, avg pool ceil
    (full, count_include_pad), FC."""

    def __init__(self):
        super().__init__()
        with self.name_scope():
            self.c1 = nn.Conv2D(8, 3, padding=1)
            self.b1 = nn.BatchNorm()
            self.p1 = nn.MaxPool2D(2, 2)
            self.dw = nn.Conv2D(8, 3, padding=1, groups=8, use_bias=False)
            self.b2 = nn.BatchNorm()
            self.r6 = Relu6()
            self.p2 = nn.AvgPool2D(3, 2, padding=1, ceil_mode=True)
            self.fc = nn.Dense(10)

    def hybrid_forward(self, F, x):
        x = self.p1(F.relu(self.b1(self.c1(x))))
        x = self.p2(self.r6(self.b2(self.dw(x))))
        return self.fc(x)


class Residual(nn.HybridBlock):
    """a residual add, a concat of two branches, max pool ceil (full) with padding, avg pool
    without count_include_pad, ReLU6, global pooling, FC on a flattened map."""

    def __init__(self):
        super().__init__()
        with self.name_scope():
            self.stem = nn.Conv2D(6, 3, strides=2, padding=1)
            self.bn = nn.BatchNorm()
            self.a = nn.Conv2D(6, 3, padding=1, use_bias=False)
            self.abn = nn.BatchNorm()
            self.b1 = nn.Conv2D(4, 1)
            self.b2 = nn.Conv2D(4, 3, padding=1)
            self.pool = nn.MaxPool2D(3, 2, padding=1, ceil_mode=True)
            self.avg = nn.AvgPool2D(3, 1, padding=1, count_include_pad=False)
            self.r6 = Relu6()
            self.gap = nn.GlobalAvgPool2D()
            self.fc = nn.Dense(5)
            self.fc2 = nn.Dense(3)

    def hybrid_forward(self, F, x):
        y = F.relu(self.bn(self.stem(x)))
        y = self.r6(y + self.abn(self.a(y)))
        y = F.concat(self.b1(y), self.b2(y), dim=1)
        y = self.avg(self.pool(y))
        return self.fc(self.gap(y)), self.fc2(y)


MODELS = {"convbnpool": ConvBnPool, "residual": Residual}


def _seed_params(net, seed):
    rng = np.random.RandomState(seed)
    for name, p in sorted(net.collect_params().items()):
        shape = p.shape
        if name.endswith(("running_var", "gamma")):
            value = rng.uniform(0.5, 1.5, shape)
        elif name.endswith(("running_mean", "beta", "bias")):
            value = rng.normal(0, 0.3, shape)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            value = rng.normal(0, np.sqrt(2.0 / fan_in), shape)
        p.set_data(mx.nd.array(value.astype("float32")))


def _save(path, outs):
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    np.savez(path, **{f"a{i}": o.asnumpy() for i, o in enumerate(outs)})


def gluon(job):
    mx.random.seed(job["seed"])
    net = MODELS[job["model"]]()
    x = mx.nd.array(np.load(job["input"]))
    net.initialize()
    net(x)  # deferred shapes
    _seed_params(net, job["seed"])
    net.hybridize()
    _save(job["out"], net(x))
    net.export(job["prefix"], epoch=0)


def checkpoint(job):
    x = mx.nd.array(np.load(job["input"]))
    sym, args, aux = mx.model.load_checkpoint(job["prefix"], 0)
    name = job.get("data_name", "data")
    mod = mx.mod.Module(sym, data_names=[name], label_names=None, context=mx.cpu())
    mod.bind(data_shapes=[(name, x.shape)], for_training=False)
    mod.set_params(args, aux, allow_missing=False)
    mod.forward(mx.io.DataBatch([x]), is_train=False)
    _save(job["out_module"], mod.get_outputs())
    block = mx.gluon.SymbolBlock.imports(
        job["prefix"] + "-symbol.json", [name], job["prefix"] + "-0000.params"
    )
    _save(job["out_block"], block(x))


def nd_load(job):
    loaded = mx.nd.load(job["path"])
    np.savez(job["out"], **{k: v.asnumpy() for k, v in loaded.items()})


if __name__ == "__main__":
    kinds = {"gluon": gluon, "checkpoint": checkpoint, "nd_load": nd_load}
    with open(sys.argv[1]) as f:
        jobs = json.load(f)
    for job in jobs:
        kinds[job["kind"]](job)
