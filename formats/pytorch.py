"""PyTorch: a source (a ``torch.export`` archive, a TorchScript file, or the model's code + a
checkpoint; exported to ONNX by ``torch.onnx.export`` in a worker process) and a target
(``model.pt2`` + a readable ``model.py`` and its ``model.pth`` state_dict). Reference runner: the
source model in eager PyTorch (eval, no_grad); artifact runner: ``model.pt2`` in torch, with
``model.py`` + ``model.pth`` as its companion (measure checks both). The
functions live in ``converters/pytorch/plugin.py``; this module only declares them.

Recipe roles: exactly one of ``pt2`` (file), ``torchscript`` (file) or ``entry`` (a value,
"package.module:callable"); with ``entry``: ``kwargs`` (a value), ``checkpoint`` (a file, a
state_dict loaded with ``weights_only=True``), ``code`` (a tree of files, each at its ``path``:
``build/<id>/source/code/`` goes on ``sys.path`` in the worker process only) and
``stub_modules`` (a value); with any of them ``softmax`` (a value). The build passes the
values, and the code tree's directory, to ``to_onnx`` and ``reference`` like the files
(``formats.base.Role.kind``); the one-shot CLI takes ``pt2``/``torchscript`` only."""

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


_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED = rf"{_NAME}(\.{_NAME})*"


def input_names(files) -> list[str]:
    return plugin.input_names(files)


FORMAT = register(
    Format(
        name="pytorch",
        title="PyTorch (torch.export .pt2, TorchScript, or model code + checkpoint)",
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
                Role(
                    "entry",
                    "The model's code: `package.module:callable` returning the `nn.Module` "
                    "(called with `kwargs`), imported from the `code` tree.",
                    required=False,
                    kind="value",
                    schema={
                        "type": "string",
                        "pattern": f"^{_DOTTED}:{_NAME}$",
                        "x-expected": "'package.module:callable'",
                    },
                ),
                Role(
                    "kwargs",
                    "Keyword arguments of the `entry` callable (plain YAML values).",
                    required=False,
                    kind="value",
                    schema={
                        "type": "object",
                        "propertyNames": {
                            "pattern": f"^{_NAME}$",
                            "x-expected": "a Python identifier",
                        },
                        "additionalProperties": True,  # any YAML value
                        "x-expected": "mapping of argument name to value",
                    },
                    needs=("entry",),
                ),
                Role(
                    "checkpoint",
                    "The network's weights for `entry`: a `state_dict` (`.pth`), loaded with "
                    "`torch.load(weights_only=True)` and `load_state_dict(strict=True)`.",
                    required=False,
                    needs=("entry",),
                    cli=False,
                ),
                Role(
                    "code",
                    "The model's code files (only those the network imports), each at its "
                    "`path` in the source tree: fetched to `build/<id>/source/code/<path>`, "
                    "whose directory goes on `sys.path` in the worker process that imports "
                    "`entry` (never in zoomake's own).",
                    required=False,
                    kind="tree",
                    needs=("entry",),
                ),
                Role(
                    "stub_modules",
                    "Modules the code imports but the network never calls (e.g. a predictor "
                    "that needs torchvision): served as stubs that raise when used.",
                    required=False,
                    kind="value",
                    schema={
                        "type": "array",
                        "items": {"type": "string", "pattern": f"^{_DOTTED}$"},
                        "uniqueItems": True,
                        "x-expected": "list of dotted module names",
                    },
                    needs=("entry",),
                ),
                Role(
                    "softmax",
                    "Outputs (names from the recipe's `outputs`) that get a softmax over their "
                    "last axis after `forward`, in the exported graph and in the reference "
                    "alike (a network that returns class scores before it).",
                    required=False,
                    kind="value",
                    schema={
                        "type": "array",
                        "items": {"type": "string", "minLength": 1},
                        "uniqueItems": True,
                        "x-expected": "list of output names",
                    },
                ),
            ),
            one_of=("pt2", "torchscript", "entry"),
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
