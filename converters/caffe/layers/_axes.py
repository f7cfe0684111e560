"""Axis arithmetic shared by the shape-op handlers (Caffe's ``Blob::CanonicalAxisIndex``)."""

from __future__ import annotations


def canonical_axis(layer, axis: int, ndim: int, field: str) -> int:
    """``axis`` in ``[-ndim, ndim)`` mapped to ``[0, ndim)``; anything else is the layer's error."""
    if not -ndim <= axis < ndim:
        raise layer.error(
            f"{field} {axis} is out of range for a {ndim}-D bottom (expected {-ndim}..{ndim - 1})"
        )
    return axis % ndim


def legacy_axis(layer, param, legacy_field: str, field_name: str, ndim: int) -> int:
    """Concat/Slice axis: ``axis`` or the old ``concat_dim``/``slice_dim``; real Caffe refuses a
    layer that sets both ("Either axis or concat_dim should be specified; not both")."""
    if param.HasField(legacy_field) and param.HasField(field_name):
        raise layer.error(
            f"sets both {field_name} and the legacy {legacy_field}; Caffe refuses that, keep one"
        )
    if param.HasField(legacy_field):
        return canonical_axis(layer, int(getattr(param, legacy_field)), ndim, legacy_field)
    return canonical_axis(layer, int(param.axis), ndim, field_name)


def same_shapes(layer, shapes: list[tuple[int, ...]], skip_axis: int | None = None) -> None:
    """All bottoms have the first bottom's rank and dims (except ``skip_axis``)."""
    first = shapes[0]
    for i, s in enumerate(shapes[1:], start=1):
        bad = len(s) != len(first) or any(
            a != b for k, (a, b) in enumerate(zip(s, first, strict=True)) if k != skip_axis
        )
        if bad:
            where = "" if skip_axis is None else f" outside axis {skip_axis}"
            raise layer.error(
                f"bottom {i} '{layer.bottoms[i]}' has shape {list(s)}, expected the shape of "
                f"bottom 0 '{layer.bottoms[0]}' {list(first)}{where}"
            )
