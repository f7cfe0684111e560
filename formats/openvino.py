"""OpenVINO IR: a target only (model.xml + model.bin, FP32 or FP16-compressed weights), written
by OpenVINO's own converter from the ONNX file; artifact runner: the OpenVINO runtime on CPU."""

from __future__ import annotations

from pathlib import Path

from formats import register
from formats.base import Format, Target


def from_onnx(model, out_dir: Path, options: dict) -> list[Path]:
    """From a path (the build) or an in-memory model (the CLI; a ``SplitModel`` is saved with
    external data, which OpenVINO maps instead of parsing)."""
    from converters.openvino_export import export_openvino

    precision = options.get("precision", "fp32")
    xml = out_dir / "model.xml"
    if isinstance(model, Path):
        export_openvino(model, xml, precision)
        return [xml, xml.with_suffix(".bin")]
    import tempfile

    from converters.io import save_onnx

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "model.onnx"
        if hasattr(model, "save_external"):  # a SplitModel
            model.save_external(src)
        else:
            save_onnx(model, src)
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
            takes_split=True,
        ),
        packages=("openvino",),
        extra="openvino",
        purpose="OpenVINO IR (format: openvino, -o model.xml)",
    )
)
