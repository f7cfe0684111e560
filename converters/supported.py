"""Write ``docs/supported_layers.md`` from the handler registries (run by ``doit docs``).

Both directions are listed: Caffe layer types the Caffe -> ONNX converter reads, and ONNX ops
the ONNX -> Caffe writer (``format: caffe`` targets) can express. This module sits above both
converters and imports both registries, so neither converter imports the other for its docs.
"""

from __future__ import annotations

from pathlib import Path

from converters.caffe.registry import POSTPROCESSING_TYPES, supported_types
from converters.io import atomic_output
from converters.onnx2caffe.registry import supported_ops

HEADER = """\
# Supported layers and ops

## Caffe layers read (Caffe -> ONNX)

Generated from the converters' registries by `doit docs:supported_layers`; do not edit.
Each layer type is converted by the handler module named in the second column
(`converters/caffe/layers/<module>.py`). Shapes are computed with Caffe's own rules and
cross-checked against ONNX shape inference on every conversion.

| Caffe type | module | notes |
|---|---|---|
"""


ONNX_HEADER = """
## ONNX ops written as Caffe (`format: caffe` targets, `zoomake convert -o x.prototxt`)

Each op is written by the module named in the second column
(`converters/onnx2caffe/ops/<module>.py`). An op or attribute Caffe cannot express is refused
with one line naming the node and the reason; nothing is written then.

| ONNX op | module | notes |
|---|---|---|
"""


def render(formats_table: str = "") -> str:
    """The page; ``formats_table`` (the format registry's, ``formats.markdown()``) closes it:
    this module sits below ``formats/`` and does not import it."""
    rows = [f"| `{h.type_name}` | `{h.family}` | {h.notes} |" for h in supported_types()]
    cut = ", ".join(f"`{t}`" for t in sorted(POSTPROCESSING_TYPES))
    footer = (
        f"\n{len(rows)} layer types.\n\nPost-processing layers ({cut}) are not converted: "
        "cut the graph before them with the recipe's `outputs` or `--outputs`; the error "
        "message names the blobs to cut at. Detection layers (DetectionOutput, PriorBox, "
        "ROIPooling, Proposal; the empty-result rows; writing SSD back to Caffe): "
        "[detection.md](detection.md).\n"
    )
    ops = [f"| `{h.op_type}` | `{h.family}` | {h.notes} |" for h in supported_ops()]
    return (
        HEADER
        + "\n".join(rows)
        + "\n"
        + footer
        + ONNX_HEADER
        + "\n".join(ops)
        + f"\n\n{len(ops)} ONNX ops.\n"
        + (f"\n{formats_table}" if formats_table else "")
    )


def write_support_table(path: str | Path, formats_table: str = "") -> None:
    with atomic_output(path) as tmp:
        Path(tmp).write_text(render(formats_table), encoding="utf-8")
