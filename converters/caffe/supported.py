"""Write ``docs/supported_layers.md`` from the handler registry (run by ``doit docs``)."""

from __future__ import annotations

from pathlib import Path

from converters.caffe.registry import POSTPROCESSING_TYPES, supported_types
from converters.io import atomic_output

HEADER = """\
# Supported Caffe layers

Generated from the converter's layer registry by `doit docs:supported_layers`; do not edit.
Each layer type is converted by the handler module named in the second column
(`converters/caffe/layers/<module>.py`). Shapes are computed with Caffe's own rules and
cross-checked against ONNX shape inference on every conversion.

| Caffe type | module | notes |
|---|---|---|
"""


def render() -> str:
    rows = [f"| `{h.type_name}` | `{h.family}` | {h.notes} |" for h in supported_types()]
    cut = ", ".join(f"`{t}`" for t in sorted(POSTPROCESSING_TYPES))
    footer = (
        f"\n{len(rows)} layer types.\n\nPost-processing layers ({cut}) are not converted: "
        "cut the graph before them with the recipe's `outputs` or `--outputs`; the error "
        "message names the blobs to cut at.\n"
    )
    return HEADER + "\n".join(rows) + "\n" + footer


def write_support_table(path: str | Path) -> None:
    with atomic_output(path) as tmp:
        Path(tmp).write_text(render(), encoding="utf-8")
