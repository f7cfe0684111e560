"""Kernel/stride/pad/dilation parameters shared by Convolution and Pooling (Caffe rules)."""

from __future__ import annotations


def spatial_pair(
    layer, param, name: str, default: int, h_field: str, w_field: str, minimum: int | None = None
):
    """Caffe's (h, w) for a geometry field: explicit ``*_h``/``*_w`` win over the repeated field.

    Convolution's ``kernel_size``/``stride``/``pad``/``dilation`` are repeated (one value for all
    spatial dims, or one per dim); Pooling's are scalars. ``minimum`` is checked here, once for
    every layer: Caffe CHECKs ``stride > 0`` and ``dilation > 0`` at setup; output-size
    arithmetic would divide by a zero stride.
    """
    h, w = _pair(layer, param, name, default, h_field, w_field)
    if minimum is not None and min(h, w) < minimum:
        raise layer.error(f"{name} must be at least {minimum}, got {h}x{w}")
    return h, w


def _pair(layer, param, name: str, default: int, h_field: str, w_field: str):
    has_h = param.HasField(h_field) if h_field else False
    has_w = param.HasField(w_field) if w_field else False
    if has_h or has_w:
        if not (has_h and has_w):
            raise layer.error(f"{h_field} and {w_field} must be given together")
        return int(getattr(param, h_field)), int(getattr(param, w_field))
    field = getattr(param, name)
    if hasattr(field, "__len__") and not isinstance(field, (str, bytes)):
        values = list(field)
        if not values:
            return default, default
        if len(values) == 1:
            return int(values[0]), int(values[0])
        if len(values) == 2:
            return int(values[0]), int(values[1])
        raise layer.error(f"{name} has {len(values)} values; only 2-D (1 or 2 values) is supported")
    if param.HasField(name):
        return int(field), int(field)
    return default, default
