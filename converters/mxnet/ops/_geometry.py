"""Spatial attributes shared by convolution and pooling: pads split into MXNet's symmetric pad
plus an explicit ``Pad`` node when ONNX's begin and end pads differ."""

from __future__ import annotations


def spatial(node, name: str, n: int, default: int) -> tuple[int, ...]:
    value = node.attr(name)
    return tuple(int(v) for v in value) if value else (default,) * n


def onnx_pads(node, n: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(begin, end) pads; ``auto_pad`` other than NOTSET/VALID is refused (shapes are static,
    but an exporter writing SAME_* here should say so explicitly)."""
    auto = node.attr("auto_pad", "NOTSET")
    if auto not in ("NOTSET", "VALID"):
        raise node.error(f"auto_pad {auto} is not supported; give explicit pads")
    pads = tuple(int(p) for p in (node.attr("pads") or ())) or (0,) * (2 * n)
    if auto == "VALID":
        pads = (0,) * (2 * n)
    if len(pads) != 2 * n or min(pads) < 0:
        raise node.error(f"pads {list(pads)}: expected {2 * n} non-negative values")
    return pads[:n], pads[n:]


def pad_attrs(node, begin, end, value: float = 0.0) -> dict:
    """An MXNet ``Pad`` of the spatial dims of an NCHW/NCDHW tensor (constant mode)."""
    if len(begin) not in (2, 3):
        raise node.error(f"padding a {len(begin)}-D spatial input: MXNet's Pad covers 4-D and "
                         "5-D tensors only")  # fmt: skip
    width = [0, 0, 0, 0]
    for b, e in zip(begin, end, strict=True):
        width += [b, e]
    return {"mode": "constant", "constant_value": float(value), "pad_width": tuple(width)}


def pad_node(node, ctx, data, begin, end):
    """Zero padding in front of a convolution."""
    return ctx.op("Pad", [data], pad_attrs(node, begin, end), hint=f"{node.name}/pad")
