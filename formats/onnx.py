"""ONNX: a source (any ONNX file, reshaped and brought to the recipe's opset) and a target (the
optimized graph, FP32 or FP16 with float32 I/O, at the target's opset). Reference runner and
artifact runner: onnxruntime (CPU, every graph optimization)."""

from __future__ import annotations

from pathlib import Path

from formats import register
from formats.base import Format, Role, Source, Target


def to_onnx(files, inputs, outputs=None, opset=17, *, lazy=False):
    from converters.onnx_source import load_onnx_source

    return load_onnx_source(files["onnx"], inputs, outputs=outputs, opset=opset, lazy=lazy)


def cli_files(given: dict, input_model: Path | None = None) -> dict:
    """The one-shot CLI's ONNX file: ``--onnx`` or Model Optimizer's ``--input_model X.onnx``."""
    return {"onnx": given.get("onnx") or input_model} if given or input_model else {}


def input_names(files) -> list[str]:
    from converters.io import load_onnx

    graph = load_onnx(files["onnx"]).graph
    weights = {t.name for t in graph.initializer}
    return [vi.name for vi in graph.input if vi.name not in weights]


def reference(files, outputs, choice="auto"):
    from pipelines.errors import ZoomakeError
    from pipelines.runtimes.base import need_files
    from pipelines.runtimes.onnxruntime import OrtRunner

    if choice != "auto":
        raise ZoomakeError(f"verify.reference '{choice}' applies to Caffe sources only")
    if "onnx" not in files:
        raise ZoomakeError("the ONNX reference needs the source onnx file (not fetched)")
    path = Path(files["onnx"])
    need_files(path)
    return OrtRunner(path, extra_outputs=outputs)


def from_onnx(model, out_dir: Path, options: dict) -> list[Path]:
    """The build hands a path (read with its big weights left in the file, re-targeted, FP16
    here); the CLI a model it already converted (written as it is). Either way the weights go
    file to file (``converters.lazy``): the bytes are those of the model held in memory."""
    from converters.lazy import load_lazy, save_streamed

    out = out_dir / "model.onnx"
    if not isinstance(model, Path):
        save_streamed(model, out)
        return [out]
    model = _retarget_opset(load_lazy(model), options.get("opset"))
    if options.get("precision", "fp32") == "fp16":
        from converters.fp16 import to_fp16

        model = to_fp16(model, keep_io_types=True, copy=False)  # loaded for this alone
    save_streamed(model, out)
    return [out]


def _retarget_opset(model, opset: int | None):
    from converters.lazy import materialize
    from converters.onnx_utils import convert_opset, model_opset

    if opset is None or opset == model_opset(model):
        return model
    return convert_opset(materialize(model), opset)  # onnx's converter needs every value


def artifact_runner(out_dir: Path, prefer=None):
    from pipelines.runtimes.onnxruntime import OrtRunner

    return OrtRunner(out_dir / "model.onnx")


FORMAT = register(
    Format(
        name="onnx",
        title="ONNX (one .onnx file)",
        short="ONNX",
        source=Source(
            roles=(
                Role(
                    "onnx",
                    "ONNX model file (`.onnx`).",
                    flags=("--onnx",),
                    help="an ONNX model as the source",
                ),
            ),
            to_onnx=to_onnx,
            reference=reference,
            reference_runtime="onnxruntime",
            usage="--onnx FILE",
            model_suffix=".onnx",
            cli_files=cli_files,
            input_names=input_names,
        ),
        target=Target(
            files=("model.onnx",),
            precisions=("fp32", "fp16"),
            from_onnx=from_onnx,
            runner=artifact_runner,
            suffix=".onnx",
            takes_lazy=True,
        ),
    )
)
