"""Child process for PyTorch sources: ``python -m converters.pytorch.worker request.json``.

Loads the model (torch.export archive, TorchScript, or code + checkpoint), then either exports
it to ONNX or runs it eagerly. Errors are one ``zoomake-error:`` line on stderr and exit 2.

Exporter: the TorchScript-based ``torch.onnx.export(..., dynamo=False)``. The dynamo-based
exporter needs ``onnxscript``, which is not a dependency of zoomake (it installs here, but it
would be one more moving part, and its output graph changes with onnxscript's optimizer
releases); the TorchScript exporter ships inside torch 2.13, is deterministic for the
convolutional models of the zoo, and emits plain opset-N ONNX. The choice is recorded in the
ONNX ``metadata_props`` (``zoomake.exporter``).

A ``.pt2`` archive (``torch.export.save``) goes through the same exporter: its ``.module()`` is
an fx GraphModule of ATen ops, traced already in eval mode, whose ``train()`` raises in torch
2.13 (a program's mode is fixed at export). The TorchScript exporter calls ``train(False)`` on
the model it is given, and then traces ``forward``, which works on the ATen graph; so the worker
hands it ``_FixedMode``, a wrapper whose ``train`` leaves the program alone. The archive's own
input shapes are checked against the recipe's first, as one line (the program's guards would
fail later with an assertion).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import inspect
import json
import os
import sys
import types
import warnings
from pathlib import Path

ERROR_PREFIX = "zoomake-error: "


class SourceError(ValueError):
    """Bad input that one key of the source names (``entry``, ``kwargs``, ``checkpoint``,
    ``softmax``): the parent says it against that key (a recipe build: ``#/source/<role>``)."""

    def __init__(self, role: str, message: str):
        super().__init__(message)
        self.role = role


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


def _fixed_mode(module):
    import torch

    class _FixedMode(torch.nn.Module):
        """An exported program's module: its mode was fixed at export, ``train`` is a no-op."""

        def __init__(self, program):
            super().__init__()
            self.program = program

        def train(self, mode=True):
            return self

        def forward(self, *args):
            return self.program(*args)

    return _FixedMode(module)


def pt2_inputs(program) -> list[tuple[str, tuple]]:
    """``[(name, shape)]`` of an ExportedProgram's user inputs (a symbolic dim is None)."""
    user = list(program.graph_signature.user_inputs)
    found = {}
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in user:
            val = node.meta.get("val")
            shape = getattr(val, "shape", None)
            found[node.name] = (
                tuple(d if isinstance(d, int) else None for d in shape)
                if shape is not None
                else None
            )
    return [(name, found.get(name)) for name in user]


def _check_pt2_shapes(path, program, wanted: list[list[int]]) -> None:
    declared = pt2_inputs(program)
    if len(declared) != len(wanted):
        raise ValueError(
            f"{path}: the archive takes {len(declared)} input(s) "
            f"({', '.join(n for n, _ in declared)}), the recipe gives {len(wanted)}"
        )
    for (name, shape), want in zip(declared, wanted, strict=True):
        if shape is None:
            continue
        if len(shape) != len(want) or any(
            d is not None and d != w for d, w in zip(shape, want, strict=True)
        ):
            shown = [d if d is not None else "?" for d in shape]
            raise ValueError(
                f"{path}: input {name!r} was exported with shape {shown}, the recipe asks "
                f"{list(want)} (re-export the archive, or use its shape)"
            )


def load_pt2(path: str):
    """(program, input names, output names): the names a zoomake archive carries (the ONNX
    names of the model it was generated from), else the program's own."""
    import torch

    from converters.pytorch.convert import NAMES_FILE

    extra = {NAMES_FILE: ""}
    try:
        program = torch.export.load(path, extra_files=extra)
    except Exception as err:  # a damaged or foreign file: torch raises several kinds
        raise ValueError(f"{path}: torch cannot load the archive: {_one_line(err)}") from None
    names = json.loads(extra[NAMES_FILE]) if extra[NAMES_FILE] else {}
    inputs = names.get("inputs") or list(program.graph_signature.user_inputs)
    outputs = names.get("outputs") or list(program.graph_signature.user_outputs)
    return program, inputs, outputs


def _pt2_request(req: dict):
    """A .pt2 request: the recipe's input shapes checked against the archive's, and the names
    and shapes the request leaves out taken from the archive (the one-shot CLI gives none)."""
    program, in_names, out_names = load_pt2(req["source"]["model"])
    if req["action"] == "export":
        if not req["inputs"]:
            declared = pt2_inputs(program)
            dynamic = [n for n, shape in declared if shape is None or None in shape]
            if dynamic:
                raise ValueError(
                    f"{req['source']['model']}: input {dynamic[0]!r} has a dynamic shape in the "
                    "archive; give its shape"
                )
            req["inputs"] = {
                n: list(shape) for n, (_, shape) in zip(in_names, declared, strict=True)
            }
        _check_pt2_shapes(req["source"]["model"], program, list(req["inputs"].values()))
    if not req["outputs"]:
        req["outputs"] = out_names
    return _fixed_mode(program.module())  # already traced in eval mode


def load(source: dict):
    import torch

    kind = source["kind"]
    if kind == "pt2":
        return _fixed_mode(load_pt2(source["model"])[0].module())
    if kind == "torchscript":
        return torch.jit.load(source["model"], map_location="cpu").eval()
    if source.get("stub_modules"):
        sys.meta_path.insert(0, _StubFinder(source["stub_modules"]))
    if source.get("code_dir"):
        # The fetched code stays as fetched (no __pycache__ beside it): the build checks that
        # its tree holds the recipe's files and nothing else.
        sys.dont_write_bytecode = True
        sys.path.insert(0, str(Path(source["code_dir"]).resolve()))
    entry = source["entry"]
    mod_name, _, attr = entry.partition(":")
    if not attr:
        raise SourceError("entry", f"entry {entry!r}: expected 'package.module:callable'")
    try:
        factory = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError) as err:
        raise SourceError("entry", f"entry {entry!r}: {_one_line(err)}") from None
    except Exception as err:  # the user's module raised while importing
        raise SourceError("entry", f"entry {entry!r}: importing {mod_name} raised "
                          f"{_one_line(err)}") from None  # fmt: skip
    kwargs = source.get("kwargs") or {}
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError as err:
        raise SourceError("kwargs", f"kwargs of {entry}: {err}") from None
    except ValueError:  # no signature to read (a builtin): the call below tells
        pass
    try:
        net = factory(**kwargs)
    except Exception as err:  # the user's code can raise anything
        raise SourceError("entry", f"{entry}(**kwargs) raised {_one_line(err)}") from None
    if not isinstance(net, torch.nn.Module):
        raise SourceError(
            "entry", f"{entry} returned a {type(net).__name__}, expected a torch.nn.Module"
        )
    if source.get("checkpoint"):
        try:
            state = torch.load(source["checkpoint"], map_location="cpu", weights_only=True)
        except Exception as err:  # not a state_dict torch loads safely: several kinds
            raise SourceError(
                "checkpoint",
                f"checkpoint {Path(source['checkpoint']).name}: torch.load(weights_only=True) "
                f"refused it: {_one_line(err)}",
            ) from None
        problem = _misfit(net, state)
        if problem:
            raise SourceError(
                "checkpoint",
                f"checkpoint {Path(source['checkpoint']).name} does not fit {entry}: {problem}",
            )
        net.load_state_dict(state, strict=True)
    return net.eval()


def _misfit(net, state) -> str | None:
    """Why ``state`` is no state_dict of ``net`` (missing or unexpected keys, other shapes), in
    a few words; None when ``load_state_dict(strict=True)`` takes it."""
    import torch

    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        return f"it holds a {type(state).__name__}, not a state_dict of tensors"
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {list(state[k].shape)} vs {list(v.shape)}"
        for k, v in own.items()
        if k in state and state[k].shape != v.shape
    ]
    parts = [
        f"{len(found)} {what} ({', '.join(found[:3])}{', ...' if len(found) > 3 else ''})"
        for what, found in (("keys missing", missing), ("unexpected keys", unexpected),
                            ("tensors of another shape", shapes))
        if found
    ]  # fmt: skip
    return "; ".join(parts) or None


def _outputs(out):
    if isinstance(out, dict):
        out = tuple(out.values())
    if not isinstance(out, tuple | list):
        out = (out,)
    return out


def _one_line(err: BaseException) -> str:
    msg = " ".join(str(err).split()) or type(err).__name__
    return f"{type(err).__name__}: {msg}"


def _run(net, feeds_path: str, results_path: str, outputs: list[str]) -> None:
    """The model eagerly (eval, no_grad) on the feeds, positionally in the file's order."""
    import numpy as np
    import torch

    with np.load(feeds_path) as feeds:
        args = [torch.from_numpy(feeds[n]) for n in feeds.files]
    with torch.no_grad():
        out = _outputs(net(*args))
    if len(out) != len(outputs):
        raise ValueError(f"the model returns {len(out)} outputs, the recipe names {outputs}")
    np.savez(results_path, **{n: o.numpy() for n, o in zip(outputs, out, strict=True)})


def _serve(net, outputs: list[str]) -> None:
    """Reference runner loop: one JSON request per stdin line, one JSON reply per line on the
    original stdout; the model's own prints go to stderr, so they cannot break the protocol."""
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    reply.write(json.dumps({"ready": True, "outputs": outputs}) + "\n")
    for line in sys.stdin:
        req = json.loads(line)
        try:
            _run(net, req["feeds"], req["results"], outputs)
            reply.write(json.dumps({"ok": True}) + "\n")
        except Exception as err:  # the user's model can raise anything: one line back
            reply.write(json.dumps({"error": _one_line(err)}) + "\n")


def _export(net, req) -> None:
    import onnx
    import torch

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


def _with_softmax(net, outputs: list[str], names: list[str]):
    """``net`` with a softmax over the last axis of the outputs ``names`` (e.g. an SSD's class
    confidences, which the authors' forward returns before it): the exported graph and the
    reference then both end in it."""
    import torch

    unknown = [n for n in names if n not in outputs]
    if unknown:
        raise SourceError("softmax", f"softmax: {unknown[0]!r} is not one of the outputs {outputs}")
    picks = [outputs.index(n) for n in names]

    class _Softmax(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *args):
            out = list(_outputs(self.inner(*args)))
            for i in picks:
                out[i] = torch.softmax(out[i], dim=-1)
            return tuple(out)

    return _Softmax(net)


def main(argv):
    req = json.loads(Path(argv[0]).read_text())
    net = _pt2_request(req) if req["source"]["kind"] == "pt2" else load(req["source"])
    if req["source"].get("softmax"):
        net = _with_softmax(net, req["outputs"], req["source"]["softmax"])
    if req["action"] == "serve":
        _serve(net, req["outputs"])
    else:
        _export(net, req)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except SourceError as err:  # the key of the source it is about, for the parent to name
        print(ERROR_PREFIX + json.dumps({"role": err.role, "message": str(err)}), file=sys.stderr)
        sys.exit(2)
    except Exception as err:  # the one line the parent shows; the user's code can raise anything
        print(f"{ERROR_PREFIX}{_one_line(err)}", file=sys.stderr)
        sys.exit(2)
