"""Child process for PyTorch sources: ``python -m converters.pytorch.worker request.json``.

Loads the model (torch.export archive, TorchScript, or code + checkpoint), then either exports
it to ONNX or runs it eagerly. Errors are one ``zoomake-error:`` line on stderr and exit 2.

Exporter: the TorchScript-based ``torch.onnx.export(..., dynamo=False)``. The dynamo-based
exporter needs ``onnxscript``, which is not a dependency of zoomake (it installs here, but it
would be one more moving part, and its output graph changes with onnxscript's optimizer
releases); the TorchScript exporter ships inside torch 2.13, is deterministic for the
convolutional models of the zoo, and emits plain opset-N ONNX. A ``.pt2`` archive is exported
through its ``.module()`` (an nn.Module) with the same exporter. The choice is recorded in the
ONNX ``metadata_props`` (``zoomake.exporter``).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import json
import sys
import types
import warnings
from pathlib import Path

ERROR_PREFIX = "zoomake-error: "


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves ``names`` (and their submodules) as stubs whose every attribute raises when called."""

    def __init__(self, names):
        self.names = tuple(names)

    def find_spec(self, fullname, path=None, target=None):
        if any(fullname == n or fullname.startswith(n + ".") for n in self.names):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []

        def __getattr__(attr, _mod=spec.name):
            if attr.startswith("__"):
                raise AttributeError(attr)
            return _Unusable(f"{_mod}.{attr}")

        module.__getattr__ = __getattr__
        return module

    def exec_module(self, module):
        pass


class _Unusable:
    def __init__(self, name):
        self._name = name

    def __getattr__(self, attr):
        return _Unusable(f"{self._name}.{attr}")

    def __call__(self, *a, **k):
        raise RuntimeError(f"{self._name} is a stub (stub_modules): the model must not call it")


def load(source: dict):
    import torch

    kind = source["kind"]
    if kind == "pt2":
        return torch.export.load(source["model"]).module()  # already traced in eval mode
    if kind == "torchscript":
        return torch.jit.load(source["model"], map_location="cpu").eval()
    if source.get("stub_modules"):
        sys.meta_path.insert(0, _StubFinder(source["stub_modules"]))
    if source.get("code_dir"):
        sys.path.insert(0, str(Path(source["code_dir"]).resolve()))
    mod_name, _, attr = source["entry"].partition(":")
    if not attr:
        raise ValueError(f"entry {source['entry']!r}: expected 'package.module:callable'")
    try:
        factory = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"entry {source['entry']!r}: {err}") from None
    net = factory(**source.get("kwargs", {}))
    if source.get("checkpoint"):
        state = torch.load(source["checkpoint"], map_location="cpu", weights_only=True)
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as err:
            first = str(err).strip().splitlines()
            raise ValueError(
                f"checkpoint {source['checkpoint']}: does not fit {source['entry']}: "
                + " ".join(s.strip() for s in first[:2])
            ) from None
    return net.eval()


def _outputs(out):
    if isinstance(out, dict):
        out = tuple(out.values())
    if not isinstance(out, tuple | list):
        out = (out,)
    return out


def main(argv):
    import numpy as np
    import onnx
    import torch

    req = json.loads(Path(argv[0]).read_text())
    net = load(req["source"])
    if req["action"] == "run":
        with np.load(req["feeds"]) as feeds:
            args = [torch.from_numpy(feeds[n]) for n in req["inputs"]]
        with torch.no_grad():
            out = _outputs(net(*args))
        if len(out) != len(req["outputs"]):
            raise ValueError(f"the model returns {len(out)} outputs, expected {req['outputs']}")
        np.savez(req["results"], **{n: o.numpy() for n, o in zip(req["outputs"], out, strict=True)})
        return
    inputs = req["inputs"]
    examples = tuple(torch.zeros(shape) for shape in inputs.values())
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy-exporter DeprecationWarning, see docstring
        torch.onnx.export(
            net,
            examples,
            req["onnx_out"],
            dynamo=False,
            opset_version=req["opset"],
            input_names=list(inputs),
            output_names=req["outputs"],
            do_constant_folding=True,
        )
    model = onnx.load(req["onnx_out"])
    meta = model.metadata_props.add()
    meta.key, meta.value = (
        "zoomake.exporter",
        f"torch.onnx.export(dynamo=False) torch {torch.__version__}",
    )
    onnx.save(model, req["onnx_out"])


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except Exception as err:  # the one line the parent shows; the user's code can raise anything
        msg = " ".join(str(err).split()) or type(err).__name__
        print(f"{ERROR_PREFIX}{type(err).__name__}: {msg}", file=sys.stderr)
        sys.exit(2)
