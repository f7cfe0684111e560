"""The build steps shared by the doit tasks and the one-shot ``zoomake convert`` CLI.

Each function is a pure transformation from files to files (atomic writes): the doit task for a
step and the CLI call the very same code, so a recipe build and a manual conversion of the same
model give byte-identical artifacts.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from converters.errors import ConversionError
from converters.io import SplitModel, load_onnx, save_onnx
from converters.onnx_utils import convert_opset, model_opset

FORMAT_SUFFIXES = {".onnx": "onnx", ".xml": "openvino", ".prototxt": "caffe"}


def convert_source(
    framework: str,
    files: dict[str, Path],
    inputs: dict[str, dict] | None = None,
    outputs: list[str] | None = None,
    opset: int = 17,
    *,
    lazy: bool = False,
):
    """Source model files -> ONNX with each input's preprocessing embedded.

    ``inputs`` maps input name -> ``{"shape": [...], "preprocess": {...}}`` (recipe form);
    ``files`` maps role (prototxt, caffemodel, onnx, mean_file) -> local path.
    With ``lazy`` and nothing to embed, a Caffe conversion comes back as a
    ``converters.io.SplitModel`` whose ``save`` streams the weights (big models).
    """
    inputs = inputs or {}
    shapes = {name: list(spec["shape"]) for name, spec in inputs.items() if spec.get("shape")}
    if framework == "caffe":
        from converters.caffe.convert import convert_caffe

        if "prototxt" not in files:
            raise ConversionError("a Caffe source needs a prototxt")
        split = convert_caffe(
            files["prototxt"],
            files.get("caffemodel"),
            input_shapes=shapes,
            outputs=outputs,
            opset=opset,
        )
        if lazy and not any(s.get("preprocess") for s in inputs.values()):
            return split
        model = split.materialize()
    elif framework == "onnx":
        from converters.onnx_source import load_onnx_source

        model = load_onnx_source(files["onnx"], shapes, outputs=outputs, opset=opset)
    else:
        raise ConversionError(f"source framework '{framework}' is not supported (caffe, onnx)")
    specs = {n: s["preprocess"] for n, s in inputs.items() if s.get("preprocess")}
    if specs:
        from converters.preprocess import embed_preprocessing

        layouts = {n: s.get("layout", "NCHW") for n, s in inputs.items()}
        model = embed_preprocessing(model, specs, files=files, original_layouts=layouts)
    return model


def optimize(model: onnx.ModelProto, passes: list[str] | None) -> onnx.ModelProto:
    """Run the named optimization passes (``None`` = the default list, ``[]`` = none)."""
    if passes is not None and not passes:
        return model
    from converters.passes import run_passes

    return run_passes(model, passes)


def export(model_path: Path, target: dict, out_dir: Path) -> list[Path]:
    """Write one target (``{"format", "precision", "opset"}``) into ``out_dir``; returns files."""
    fmt = target.get("format", "onnx")
    precision = target.get("precision", "fp32")
    out_dir.mkdir(parents=True, exist_ok=True)
    if fmt == "onnx":
        model = load_onnx(model_path)
        model = _retarget_opset(model, target.get("opset"))
        if precision == "fp16":
            from converters.fp16 import to_fp16

            model = to_fp16(model, keep_io_types=True, copy=False)  # loaded for this alone
        out = out_dir / "model.onnx"
        save_onnx(model, out)
        return [out]
    if fmt == "openvino":
        from converters.openvino_export import export_openvino

        xml = out_dir / "model.xml"
        export_openvino(model_path, xml, precision)
        return [xml, xml.with_suffix(".bin")]
    if fmt == "caffe":
        from converters.onnx2caffe import onnx_to_caffe

        if precision != "fp32":
            raise ConversionError("Caffe targets are float32 only (precision: fp32)")
        proto, weights = out_dir / "model.prototxt", out_dir / "model.caffemodel"
        onnx_to_caffe(load_onnx(model_path), proto, weights)
        return [proto, weights]
    raise ConversionError(f"target format '{fmt}' is not supported (onnx, openvino, caffe)")


def _retarget_opset(model: onnx.ModelProto, opset: int | None) -> onnx.ModelProto:
    current = model_opset(model)
    if opset is None or opset == current:
        return model
    return convert_opset(model, opset)


def output_format(out: Path, fmt: str | None = None) -> str:
    """The output format named by ``--to`` or implied by the output file's suffix."""
    fmt = fmt or FORMAT_SUFFIXES.get(out.suffix.lower())
    if fmt is None:
        raise ConversionError(
            f"{out}: cannot tell the output format from the suffix '{out.suffix}'; "
            f"use .onnx, .xml (OpenVINO IR) or .prototxt (Caffe), or --to FORMAT"
        )
    return fmt


def output_files(out: Path, fmt: str) -> list[Path]:
    """The files ``write_model(model, out, fmt)`` writes."""
    companion = {"openvino": ".bin", "caffe": ".caffemodel"}.get(fmt)
    return [out] + ([out.with_suffix(companion)] if companion else [])


def write_model(model, out: Path, fmt: str, precision: str = "fp32") -> list[Path]:
    """Write ``model`` as ``fmt`` — the CLI's final step. ``precision`` matters for OpenVINO.

    ``model`` is an ``onnx.ModelProto`` or, for ONNX and OpenVINO output, a ``SplitModel``
    whose big weights are still where the converter found them.
    """
    split = isinstance(model, SplitModel)
    if fmt == "onnx":
        model.save(out) if split else save_onnx(model, out)
        return [out]
    if fmt == "openvino":
        import tempfile

        from converters.openvino_export import export_openvino

        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "model.onnx"
            if split:  # weights as external data: OpenVINO maps them instead of parsing
                model.save_external(src)
            else:
                save_onnx(model, src)
            export_openvino(src, out, precision)
        return [out, out.with_suffix(".bin")]
    if fmt == "caffe":
        from converters.onnx2caffe import onnx_to_caffe

        weights = out.with_suffix(".caffemodel")
        onnx_to_caffe(model, out, weights)
        return [out, weights]
    raise ConversionError(f"unknown output format '{fmt}' (onnx, openvino, caffe)")
