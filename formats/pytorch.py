"""PyTorch: a source (a ``torch.export`` archive, a TorchScript file, or the model's code + a
checkpoint; exported to ONNX by ``torch.onnx.export`` in a worker process) and a target
(``model.pt2`` + a readable ``model.py`` and its ``model.pth`` state_dict). Reference runner: the
source model in eager PyTorch (eval, no_grad); artifact runner: ``model.pt2`` in torch. The
functions live in ``converters/pytorch/plugin.py``; this module only declares them.

Recipe roles: ``pt2`` or ``torchscript`` (files). The code + checkpoint form (``entry``,
``kwargs``, a tree of ``code`` files, ``checkpoint``) works in ``converters.pytorch.plugin`` but
is not a recipe role yet: roles are single pinned files, and a source tree and plain values
(entry, kwargs) need the registry and the fetch stage to carry them."""

from __future__ import annotations

from pathlib import Path

from converters.pytorch import plugin
from formats import register
from formats.base import Format, Role, Source, Target


def cli_files(given: dict, input_model: Path | None = None) -> dict:
    """``--torch X``: a ``.pt2`` archive, else (``.pt``, ``.ts``, ``.torchscript``) TorchScript;
    Model Optimizer's ``--input_model X.pt2`` the same."""
    from converters.errors import ConversionError

    path = given.get("pt2") or given.get("torchscript") or input_model
    if path is None:
        raise ConversionError("a PyTorch model needs --torch FILE (.pt2 or TorchScript .pt)")
    role = "pt2" if Path(path).suffix.lower() == ".pt2" else "torchscript"
    return {role: Path(path)}


def input_names(files) -> list[str]:
    return plugin.input_names(files)


FORMAT = register(
    Format(
        name="pytorch",
        title="PyTorch (torch.export .pt2 or TorchScript)",
        short="PyTorch",
        source=Source(
            roles=(
                Role(
                    "pt2",
                    "A `torch.export` archive (`.pt2`, `torch.export.save`).",
                    required=False,
                    flags=("--torch", "--pt2"),
                    help="PyTorch model: a torch.export archive (.pt2) or TorchScript (.pt)",
                    noun="the archive",
                ),
                Role(
                    "torchscript",
                    "A TorchScript model (`.pt`, `torch.jit.save`).",
                    required=False,
                    flags=("--torchscript",),
                    help="PyTorch TorchScript model (.pt)",
                    noun="the TorchScript model",
                ),
            ),
            to_onnx=plugin.to_onnx,
            reference=plugin.reference,
            references=("auto", "torch"),
            reference_runtime="PyTorch eager",
            usage="--torch FILE.pt2|FILE.pt",
            model_suffix=".pt2",
            cli_files=cli_files,
            input_names=input_names,
        ),
        target=Target(
            files=plugin.TARGET_FILES,
            precisions=plugin.PRECISIONS,
            from_onnx=plugin.from_onnx,
            runner=plugin.artifact_runner,
            suffix=".pt2",
        ),
        packages=("torch",),
        extra="pytorch",
        purpose="PyTorch (framework: pytorch, format: pytorch, --torch, -o model.pt2)",
    )
)
