"""PyTorch as a format, as plain functions with the format registry's signatures (the
registry's ``formats/pytorch.py`` declares them; nothing here imports ``pipelines``).

Source files (``files``: role -> value), one of:
- ``pt2``: a ``torch.export`` archive (``torch.export.save``);
- ``torchscript``: a TorchScript file (``torch.jit.save``);
- ``entry`` ("package.module:callable") with ``kwargs`` (a dict), ``code`` (the directory the
  fetched code files landed in, ``build/<id>/source/code`` for a recipe, put on ``sys.path``
  in the worker only), ``checkpoint`` (a
  state_dict, loaded with ``weights_only=True``) and ``stub_modules`` (modules the code's
  import chain imports but never calls, served as stubs in the worker: torchvision).
Any form may add ``softmax``: output names that get a softmax over their last axis after
``forward`` (UltraFace's forward returns its class confidences before it), in the exported
graph and in the reference alike.
Target files: ``model.py``, ``model.pth``, ``model.pt2`` (see ``converters.pytorch.convert``).
"""

from __future__ import annotations

from pathlib import Path

from converters.errors import ConversionError

SOURCE_ROLES = (
    "pt2", "torchscript", "entry", "kwargs", "code", "checkpoint", "stub_modules", "softmax",
)  # fmt: skip
TARGET_FILES = ("model.pt2", "model.py", "model.pth")  # the main one (what deploys) first
PRECISIONS = ("fp32",)


def torch_source(files: dict):
    """The ``TorchSource`` the roles describe; a wrong combination is one line."""
    from converters.pytorch.source import TorchSource

    # A recipe build also passes the recipe's other files (mean_file:<input>, file:<N>).
    unknown = sorted(k for k in set(files) - set(SOURCE_ROLES) if ":" not in k)
    if unknown:
        raise ConversionError(
            f"pytorch source: unknown key {unknown[0]!r} (expected {', '.join(SOURCE_ROLES)})"
        )
    given = [k for k in ("pt2", "torchscript", "entry") if files.get(k)]
    if len(given) != 1:
        raise ConversionError(
            "pytorch source: give exactly one of pt2, torchscript or entry (+ checkpoint), "
            f"found {', '.join(given) or 'none'}"
        )
    kind = given[0]
    if kind != "entry":
        extra = [k for k in ("kwargs", "code", "checkpoint", "stub_modules") if files.get(k)]
        if extra:
            raise ConversionError(f"pytorch source: {extra[0]} goes with entry, not with {kind}")
        return TorchSource(
            kind=kind, model=str(files[kind]), softmax=list(files.get("softmax") or [])
        )
    kwargs = files.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise ConversionError(f"pytorch source: kwargs must be a mapping, found {kwargs!r}")
    return TorchSource(
        kind="code",
        entry=str(files["entry"]),
        kwargs=dict(kwargs),
        code_dir=str(files["code"]) if files.get("code") else None,
        checkpoint=str(files["checkpoint"]) if files.get("checkpoint") else None,
        stub_modules=list(files.get("stub_modules") or []),
        softmax=list(files.get("softmax") or []),
    )


def to_onnx(files: dict, inputs: dict, outputs=None, opset: int = 17, *, lazy=False):
    """Export the model to ONNX (``torch.onnx.export(dynamo=False)`` in a worker process).
    ``inputs``: ONNX input name -> static shape, in ``forward``'s argument order; a ``.pt2``
    archive may leave ``inputs``/``outputs`` out (its own names and static shapes are used)."""
    from converters.pytorch.source import torch_to_onnx

    src = torch_source(files)
    if src.kind != "pt2":  # an archive knows its inputs' shapes and its outputs
        if not inputs:
            raise ConversionError("a PyTorch source needs its input shapes (inputs.<name>.shape)")
        if not outputs:
            raise ConversionError(
                "a PyTorch source needs the recipe's outputs: names for what forward returns"
            )
    return torch_to_onnx(src, dict(inputs or {}), list(outputs or []), opset)


def reference(files: dict, outputs, choice: str = "auto"):
    """The source model in eager torch (eval, no_grad), one worker for all its runs."""
    from converters.pytorch.source import TorchReference

    if choice not in ("auto", "torch"):
        raise ConversionError(f"verify.reference: expected auto or torch, got {choice!r}")
    return TorchReference(torch_source(files), list(outputs or []))


def from_onnx(model, out_dir: Path, options: dict) -> list[Path]:
    """Write model.py, model.pth and model.pt2 into ``out_dir`` (a path or an in-memory model)."""
    from converters.io import load_onnx
    from converters.pytorch.convert import onnx_to_pytorch

    precision = (options or {}).get("precision", "fp32")
    if precision not in PRECISIONS:
        raise ConversionError(
            f"PyTorch targets are float32 only (precision: fp32), not {precision}"
        )
    if isinstance(model, str | Path):
        model = load_onnx(model)
    # Named after the graph, not the file: the CLI (in memory) and the build (a file) agree.
    name = f"ONNX graph {model.graph.name or 'model'}"
    py, pth, pt2 = onnx_to_pytorch(model, Path(out_dir), source=name)
    return [pt2, py, pth]


def artifact_runner(out_dir: Path, prefer=None):
    """``model.pt2`` in torch (what a deployment loads)."""
    from converters.pytorch.runners import Pt2Runner

    return Pt2Runner(Path(out_dir) / "model.pt2")


def input_names(files: dict) -> list[str]:
    """The model's inputs in order, before any conversion: a ``.pt2`` archive's own names;
    TorchScript and code have none beyond ``forward``'s arguments, which the caller names."""
    if files.get("pt2"):
        from converters.pytorch.worker import load_pt2

        try:
            return list(load_pt2(str(files["pt2"]))[1])
        except ValueError as exc:  # load_pt2's one line, naming the file
            raise ConversionError(str(exc)) from None
    return []
