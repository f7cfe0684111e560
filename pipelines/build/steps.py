"""The build steps shared by the doit tasks and the one-shot ``zoomake convert`` CLI.

Each function is a pure transformation from files to files (atomic writes): the doit task for a
step and the CLI call the very same code, so a recipe build and a manual conversion of the same
model give byte-identical artifacts.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from converters.errors import ConversionError


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
    With ``lazy`` the big weights may stay in the source files as placeholders
    (``converters.lazy``: write it with ``save_streamed``; big models).
    """
    inputs = inputs or {}
    shapes = {name: list(spec["shape"]) for name, spec in inputs.items() if spec.get("shape")}
    from formats import source

    model = source(framework).to_onnx(files, shapes, outputs, opset, lazy=lazy)
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
    from formats import target as target_format

    fmt = target_format(target.get("format", "onnx"))
    out_dir.mkdir(parents=True, exist_ok=True)
    return fmt.from_onnx(Path(model_path), out_dir, target)


def output_format(out: Path, fmt: str | None = None) -> str:
    """The output format named by ``--to`` or implied by the output file's suffix."""
    from formats import by_suffix, targets

    fmt = fmt or by_suffix(out.suffix)
    if fmt is None:
        known = ", ".join(f"{f.target.suffix} ({f.name})" for f in targets())
        raise ConversionError(
            f"{out}: cannot tell the output format from the suffix '{out.suffix}'; "
            f"use {known}, or --to FORMAT"
        )
    return fmt


def output_files(out: Path, fmt: str) -> list[Path]:
    """The files ``write_model(model, out, fmt)`` writes."""
    from formats import target

    spec = target(fmt)
    return [spec.user_path(out, n, s) for n, s in reversed(spec.companion_suffixes())]


def write_model(model, out: Path, fmt: str, precision: str = "fp32") -> list[Path]:
    """Write ``model`` as ``fmt`` — the CLI's final step, into ``out``'s directory under the
    artifact's file names (``out`` is ``<dir>/<the format's main artifact file>``).

    ``model`` is an ``onnx.ModelProto``; its big weights may still be where the converter found
    them (placeholders, ``converters.lazy``), filled in here for the formats that need every
    value (``Target.takes_lazy`` false). ``precision`` matters for formats that convert it
    themselves (OpenVINO).
    """
    from formats import target

    spec = target(fmt)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.name != spec.files[0]:
        raise ConversionError(f"{out}: write_model writes {spec.files[0]} (format {fmt})")
    if not spec.takes_lazy:
        from converters.lazy import materialize

        model = materialize(model)
    return spec.from_onnx(model, out.parent, {"precision": precision, "cli": True})
