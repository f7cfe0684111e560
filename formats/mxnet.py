"""MXNet 1.x: a source (``<prefix>-symbol.json`` + ``<prefix>-NNNN.params``, MXNet -> ONNX in
``converters/mxnet/source.py``) and a float32 target (ONNX -> a checkpoint loadable by
``mx.model.load_checkpoint(prefix, 0)`` and ``SymbolBlock.imports``, ``converters/mxnet/export``).
Reference and artifact runner: MXNet 1.9.1 itself, in its side environment
(``zoomake setup-runtime mxnet``; missing, measure fails with one line saying so)."""

from __future__ import annotations

from pathlib import Path

from formats import register
from formats.base import Format, Role, Source, Target


def to_onnx(files, inputs, outputs=None, opset=17, *, lazy=False):
    from converters.mxnet.source import to_onnx as mxnet_to_onnx

    return mxnet_to_onnx(files, inputs, outputs, opset)


def reference(files, outputs, choice="auto"):
    from formats.mxnet_runner import MxnetRunner
    from pipelines.errors import ZoomakeError

    if choice != "auto":
        raise ZoomakeError(f"verify.reference '{choice}' applies to Caffe sources only")
    if "symbol" not in files:
        raise ZoomakeError("the MXNet reference needs the source symbol file (not fetched)")
    return MxnetRunner(files["symbol"], files.get("params"))


def from_onnx(model, out_dir: Path, options: dict) -> list[Path]:
    from converters.errors import ConversionError
    from converters.mxnet.export import from_onnx as onnx_to_mxnet

    if options.get("precision", "fp32") != "fp32":
        raise ConversionError("MXNet targets are float32 only (precision: fp32)")
    return onnx_to_mxnet(model, out_dir, {})


def artifact_runner(out_dir: Path, prefer=None):
    from formats.mxnet_runner import MxnetRunner

    return MxnetRunner(out_dir / "model-symbol.json", out_dir / "model-0000.params")


def input_names(files) -> list[str]:
    from converters.mxnet.source import input_names as data_inputs

    return data_inputs(files)


def companion_name(out: Path, name: str) -> Path:
    """``-o x-symbol.json`` -> ``x-0000.params`` (``load_checkpoint("x", 0)`` reads the pair)."""
    stem = out.name.removesuffix("-symbol.json").removesuffix(".json")
    return out.with_name(f"{stem}{name.removeprefix('model')}")


FORMAT = register(
    Format(
        name="mxnet",
        title="MXNet 1.x checkpoint (prefix-symbol.json + prefix-0000.params)",
        short="MXNet",
        source=Source(
            roles=(
                Role(
                    "symbol",
                    "MXNet symbol (`<prefix>-symbol.json`, as `HybridBlock.export` writes).",
                    flags=("--mxnet-symbol",),
                    help="MXNet symbol file (prefix-symbol.json)",
                    noun="the symbol",
                ),
                Role(
                    "params",
                    "MXNet parameters (`<prefix>-NNNN.params`, `arg:`/`aux:` keys).",
                    required=False,
                    flags=("--mxnet-params",),
                    help="MXNet parameters file (prefix-0000.params)",
                    noun="the parameters",
                ),
            ),
            to_onnx=to_onnx,
            reference=reference,
            reference_runtime="MXNet 1.9.1",
            side_runtime="mxnet",
            layouts=("NCHW",),
            usage="--mxnet-symbol S [--mxnet-params P]",
            input_names=input_names,
        ),
        target=Target(
            files=("model-symbol.json", "model-0000.params"),
            precisions=("fp32",),
            from_onnx=from_onnx,
            runner=artifact_runner,
            suffix=".json",
            companion_name=companion_name,
            side_runtime="mxnet",
        ),
    )
)
