"""ONNX -> OpenVINO IR (``model.xml`` + ``model.bin``).

The ONNX file already contains the recipe's preprocessing, so nothing is added here: OpenVINO's
own preprocessing options would apply it a second time.

``openvino.save_model`` compresses float weights to FP16 *by default*; ``compress_to_fp16`` is
therefore always passed explicitly so that a ``precision: fp32`` target really stores float32.

The conversion runs in a fresh child process by default: OpenVINO names the nodes it creates
from a process-wide counter, so the same model converted after others in one process (a serial
``doit`` run) would get different names than in a worker of a parallel build, and the ``.xml``
would differ byte for byte. A fresh process makes the artifact reproducible.

The pair is written atomically: both files are saved into a temporary directory beside the
destination, any stale ``.xml`` is removed, then the ``.bin`` is renamed into place and the
``.xml`` last. An ``.xml`` on disk therefore always has its complete ``.bin`` beside it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from converters.errors import ConversionError

PRECISIONS = ("fp32", "fp16")


def export_openvino(
    onnx_path: str | os.PathLike,
    xml_path: str | os.PathLike,
    precision: str,
    *,
    isolate: bool = True,
) -> None:
    """Convert ``onnx_path`` to IR at ``xml_path`` (the ``.bin`` goes beside it).

    ``isolate=False`` converts in this process (faster, but see the module docstring).
    """
    src, xml = Path(onnx_path), Path(xml_path)
    if precision not in PRECISIONS:
        raise ConversionError(
            f"{xml}: OpenVINO precision must be one of {', '.join(PRECISIONS)}, got '{precision}'"
        )
    if xml.suffix != ".xml":
        raise ConversionError(f"{xml}: an OpenVINO IR file name must end in .xml")
    if not src.is_file():
        raise ConversionError(f"{src}: ONNX file not found")

    created = not xml.parent.exists()
    xml.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{xml.stem}.", suffix=".tmp", dir=xml.parent))
    done = False
    try:
        # Same base name inside the temporary directory: the IR's .bin is found by name.
        tmp_xml = tmp_dir / xml.name
        if isolate:
            _convert_in_child(src, tmp_xml, precision)
        else:
            convert_and_save(src, tmp_xml, precision)
        tmp_bin = tmp_xml.with_suffix(".bin")
        if not tmp_xml.is_file() or not tmp_bin.is_file():
            raise ConversionError(f"{xml}: OpenVINO wrote no .xml/.bin pair")
        with contextlib.suppress(FileNotFoundError):
            xml.unlink()  # never leave an old .xml next to a new .bin
        os.replace(tmp_bin, xml.with_suffix(".bin"))
        os.replace(tmp_xml, xml)
        done = True
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        if created and not done:
            with contextlib.suppress(OSError):
                xml.parent.rmdir()  # leave no trace of a failed export


def convert_and_save(src: Path, xml: Path, precision: str) -> None:
    """``openvino.convert_model`` + ``save_model`` in this process (errors: ConversionError)."""
    import openvino as ov

    try:
        model = ov.convert_model(str(src))
    except Exception as exc:  # OpenVINO raises many unrelated types
        _check_onnx(src)  # OpenVINO's words for a file that is not ONNX at all are misleading
        raise ConversionError(f"{src}: OpenVINO cannot convert the model: {_reason(exc)}") from None
    try:
        ov.save_model(model, str(xml), compress_to_fp16=(precision == "fp16"))
    except Exception as exc:
        raise ConversionError(f"{xml}: OpenVINO cannot save the IR: {_reason(exc)}") from None


def _convert_in_child(src: Path, xml: Path, precision: str) -> None:
    cmd = [sys.executable, "-m", "converters.openvino_export", str(src), str(xml), precision]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
        raise ConversionError(lines[-1] if lines else f"{src}: OpenVINO conversion failed")


def _check_onnx(src: Path) -> None:
    from converters.io import load_onnx

    model = load_onnx(src)
    if model.ir_version <= 0 or not model.graph.node:
        raise ConversionError(f"{src}: not an ONNX model (no IR version or no graph)")


def _reason(exc: BaseException) -> str:
    """OpenVINO's message on one line, without its source-location preamble."""
    noise = ("Check '", "FrontEnd API failed", "Summary:")
    lines = [ln.strip().lstrip("- ").strip() for ln in str(exc).splitlines()]
    kept = [ln for ln in lines if ln and not ln.startswith(noise)]
    text = " ".join(kept) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


if __name__ == "__main__":  # the child of export_openvino(isolate=True)
    try:
        convert_and_save(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
    except ConversionError as err:
        print(err, file=sys.stderr)
        sys.exit(1)
