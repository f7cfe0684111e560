"""OpenVINO IR: a target only (model.xml + model.bin, FP32 or FP16-compressed weights), written
by OpenVINO's own converter from the ONNX file; artifact runner: the OpenVINO runtime on CPU."""

from __future__ import annotations

from pathlib import Path

from formats import register
from formats.base import Format, Target


def from_onnx(model, out_dir: Path, options: dict) -> list[Path]:
    """From a path (the build) or an in-memory model (the CLI). A model with big weights left
    in their files (``converters.lazy``) reaches OpenVINO as ONNX with external data pointing
    at them, which OpenVINO maps instead of parsing; the IR is the same."""
    from converters.openvino_export import export_openvino

    precision = options.get("precision", "fp32")
    xml = out_dir / "model.xml"
    if isinstance(model, Path):
        from converters.lazy import BIG, load_lazy, placeholders

        if not model.is_file() or model.stat().st_size < BIG:  # nothing to leave in the file
            export_openvino(model, xml, precision)
            return [xml, xml.with_suffix(".bin")]
        src, model = model, load_lazy(model)
        if not placeholders(model):
            export_openvino(src, xml, precision)
            return [xml, xml.with_suffix(".bin")]
    from converters.io import temp_dir_beside
    from converters.lazy import save_external

    # Beside the output: on its file system (hard links), swept with it if killed.
    with temp_dir_beside(xml) as tmp:
        src = tmp / "model.onnx"  # the IR records this name (rt_info input_model)
        save_external(model, src)
        export_openvino(src, xml, precision)
    return [xml, xml.with_suffix(".bin")]


def artifact_runner(out_dir: Path, prefer=None):
    from pipelines.runtimes.openvino import OpenVinoRunner

    return OpenVinoRunner(out_dir / "model.xml", prefer)


FORMAT = register(
    Format(
        name="openvino",
        title="OpenVINO IR (model.xml + model.bin)",
        short="OpenVINO IR",
        target=Target(
            files=("model.xml", "model.bin"),
            precisions=("fp32", "fp16"),
            from_onnx=from_onnx,
            runner=artifact_runner,
            suffix=".xml",
            takes_lazy=True,
        ),
        packages=("openvino",),
        extra="openvino",
        purpose="OpenVINO IR (format: openvino, -o model.xml)",
    )
)
