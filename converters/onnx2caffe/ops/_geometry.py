"""Window geometry shared by Conv and pooling: ONNX pads, output counts, Caffe equivalents.

All arithmetic is per spatial axis, in the coordinates of the *original* input (before any
merged ``Pad``): ONNX output ``j`` reads the window starting at ``j * s - t``; a Caffe layer
with symmetric pad ``p`` reads window ``i`` at ``i * s - p``. With ``p = t + f * s`` Caffe's
window ``i = j + f`` is ONNX's window ``j``: Caffe computes ``f`` extra leading windows (and
possibly extra trailing ones), which a crop removes. Conv pads are zeros on both sides, so any
``f`` works; pooling must also agree on which windows exist and, for AVE, on every divisor.

Caffe facts (caffe-semantics.md): pooling output is ``ceil((H + 2p - k) / s) + 1`` (CEIL),
minus one if that last window would start at or after ``H + p``; the AVE divisor is the window
clipped to ``[-p, H + p)``; Caffe refuses ``p >= k`` for pooling.
onnxruntime: ``ceil_mode`` drops a last window starting at or after ``H + pad_begin``;
``count_include_pad=1`` divides by the window clipped to ``[-pad_begin, H + pad_end)``, ``0``
by the number of real input positions.
"""

from __future__ import annotations

import math

from converters.caffe_geometry import caffe_pool_size

UINT32_MAX = 2**32 - 1  # Caffe's geometry fields are uint32


def window_ints(node, name: str, values, minimum: int) -> list[int]:
    """An ONNX window attribute (kernel_shape, strides, dilations) checked for a 2-D Caffe layer:
    two values, each ``minimum``..uint32 (a stride of 0 divides by zero; protobuf refuses
    anything beyond uint32)."""
    values = [int(v) for v in values]
    if len(values) != 2 or not all(minimum <= v <= UINT32_MAX for v in values):
        raise node.error(f"{name} must be 2 integers in {minimum}..{UINT32_MAX}, got {values}")
    return values


def onnx_pads(node, sizes, kernels, strides) -> tuple[list[int], list[int]]:
    """(begin, end) pads per spatial axis from ``pads`` or ``auto_pad`` (ONNX spec)."""
    n = len(sizes)
    auto = node.attr("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        pads = list(node.attr("pads", [0] * 2 * n))
        if any(p < 0 for p in pads):
            raise node.error(f"negative pads {pads} (a crop) are not supported")
        if len(pads) != 2 * n or any(p > UINT32_MAX for p in pads):
            raise node.error(f"pads must be {2 * n} integers in 0..{UINT32_MAX}, got {pads}")
        return pads[:n], pads[n:]
    if auto == "VALID":
        return [0] * n, [0] * n
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise node.error(f"unknown auto_pad '{auto}'")
    begin, end = [], []
    for size, k, s in zip(sizes, kernels, strides, strict=True):
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        small, big = total // 2, total - total // 2
        begin.append(small if auto == "SAME_UPPER" else big)
        end.append(big if auto == "SAME_UPPER" else small)
    return begin, end


def onnx_pool_count(size: int, k: int, s: int, pb: int, pe: int, ceil: bool) -> int:
    span = size + pb + pe - k
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + pb:
        out -= 1
    return out


def match_pool_axis(size, k, s, t, count, divisor, exact=True):
    """Caffe ``(p, f, caffe_count, ratios)`` reproducing ONNX's windows on one axis, or ``None``.

    ``t``: ONNX begin pad; ``count``: ONNX window count; ``divisor``: ``(lo, hi)`` interval an
    AVE window is clipped to for its divisor, ``None`` for MAX. ``ratios[j]`` is Caffe's divisor
    over ONNX's for window ``j`` (all 1 when ``exact``; else a per-position rescale is needed).
    """
    f = 0
    while (p := t + f * s) < k:
        n_c = caffe_pool_size(size, k, s, p)  # the prototxt we write keeps CEIL rounding
        if n_c >= f + count:
            ratios = [_divisor_ratio(j * s - t, size, k, p, divisor) for j in range(count)]
            if all(r is not None for r in ratios) and (not exact or set(ratios) <= {1.0}):
                return p, f, n_c, ratios
        f += 1
    return None


def _divisor_ratio(start, size, k, p, divisor) -> float | None:
    """Caffe's divisor / ONNX's for the window at ``start``; None if they cannot agree."""
    if start >= size or start + k <= 0:
        return None  # no real value in the window: Caffe and ONNX disagree on what it holds
    if divisor is None:
        return 1.0  # MAX: both take the max over the real values of the same window
    lo, hi = divisor
    onnx_div = min(start + k, hi) - max(start, lo)
    if onnx_div <= 0:
        return None
    caffe_div = min(start + k, size + p) - max(start, -p)
    return caffe_div / onnx_div


def match_conv_axis(size, ke, s, t, count):
    """Caffe ``(p, f, caffe_count)`` for a conv axis (effective kernel ``ke``); always exists."""
    f = 0
    while True:
        p = t + f * s
        n_c = (size + 2 * p - ke) // s + 1
        if n_c >= f + count:
            return p, f, n_c
        f += 1


def set_pair(param, name: str, values, default: int | None = None) -> None:
    """``name: v`` when both axes agree, else the 2-D ``*_h`` / ``*_w`` fields.

    ``name`` is ``kernel_size``, ``stride`` or ``pad`` (their 2-D fields are ``kernel_h``,
    ``stride_h``, ``pad_h``); Convolution's single fields are repeated, Pooling's scalar.
    """
    h, w = (int(v) for v in values)
    if h != w:
        prefix = name.removesuffix("_size")
        setattr(param, f"{prefix}_h", h)
        setattr(param, f"{prefix}_w", w)
    elif h != default:
        field = getattr(param, name)
        if hasattr(field, "append"):
            field.append(h)
        else:
            setattr(param, name, h)
