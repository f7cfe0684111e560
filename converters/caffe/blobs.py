"""Which layer writes a Caffe blob last.

Caffe reuses a blob name for in-place layers (``ReLU`` with ``top == bottom``): the blob a later
layer, a requested output or a comparison means is the value of its *last* writer; earlier
writers' values exist only between them. The converter's SSA naming, its output selection and
the bisect of a Caffe net all start from this one map.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def last_writers(tops: Iterable[Sequence[str]]) -> dict[str, tuple[int, int]]:
    """``{blob: (position of the layer that writes it last, index among its tops)}`` for the
    layers' ``tops`` in net order."""
    last: dict[str, tuple[int, int]] = {}
    for pos, layer_tops in enumerate(tops):
        for i, t in enumerate(layer_tops):
            last[t] = (pos, i)
    return last
