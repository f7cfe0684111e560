"""SSD-Caffe's DetectionOutput in plain torch, copied verbatim into a generated ``model.py``.

The functions below import nothing but ``torch`` (``detection_output_source`` puts their source
into the generated file, so ``model.py`` stays self-contained). They compute what the ONNX
decomposition of ``converters/caffe/layers/detection_output.py`` computes (docs/detection.md):
decode, per (image, class) the candidates with score above ``confidence_threshold`` in a
*stable* descending sort (ties: lower prior index first) cut to ``top_k``, Caffe's greedy NMS
(``ApplyNMSFast`` with ``eta`` 1: a candidate is kept iff its Jaccard overlap with every kept
box is ``<= nms_threshold``), ``keep_top_k`` per image (ties: lower label, then NMS order), and
the rows ``(image, label, score, xmin, ymin, xmax, ymax)`` in (image, label, NMS) order, or one
``(i, -1, ..., -1)`` row per image when the batch has no detection.

Shapes for ``torch.export``: every step works on a fixed ``K = min(top_k, priors)`` candidates
per (image, class) (the ones below the threshold are padding that is never kept), the NMS scan
is ``K`` unrolled steps, and the only data-dependent shape is the last one: the rows chosen by
one boolean mask, so the output has Caffe's row count R (not ``keep_top_k``).
"""

from __future__ import annotations

import inspect

import torch

CORNER, CENTER_SIZE, CORNER_SIZE = 1, 2, 3
MAX_CANDIDATES = 1024  # K above this: refused (the scan is unrolled, one step per candidate)


def ssd_decode(loc4, prior, code_type: int, variance_encoded: bool, normalized: bool):
    """Caffe's DecodeBBox: offsets (N, P, L, 4), prior (2, P, 4) -> corners (N, P, L, 4)."""
    pb = prior[0][None, :, None, :]
    var = prior[1][None, :, None, :]
    off = loc4 if variance_encoded else var * loc4
    if code_type == 1:  # CORNER
        return pb + off
    lo, hi = pb[..., 0:2], pb[..., 2:4]
    wh = hi - lo
    if not normalized:  # OpenCV's pixel-coordinate prior size
        wh = wh + 1.0
    if code_type == 3:  # CORNER_SIZE
        return pb + off * torch.cat([wh, wh], dim=3)
    # CENTER_SIZE
    centre = (lo + hi) * 0.5 if normalized else lo + wh * 0.5
    c = off[..., 0:2] * wh + centre
    half = torch.exp(off[..., 2:4]) * wh * 0.5
    return torch.cat([c - half, c + half], dim=3)


def ssd_overlaps(boxes, normalized: bool):
    """Caffe's JaccardOverlap(current, kept) of all pairs: (N, C, K, 4) -> (N, C, K, K) with
    element [.., j, i] = overlap of candidate i (bbox1) with candidate j (bbox2)."""
    x0, y0, x1, y1 = boxes.unbind(-1)
    w, h = x1 - x0, y1 - y0
    if not normalized:
        w, h = w + 1.0, h + 1.0
    size = torch.where((x1 < x0) | (y1 < y0), torch.zeros_like(w), w * h)
    a = [v[..., None, :] for v in (x0, y0, x1, y1, size)]  # current, along the last axis
    b = [v[..., :, None] for v in (x0, y0, x1, y1, size)]  # kept, along the one before
    apart = (b[0] > a[2]) | (b[2] < a[0]) | (b[1] > a[3]) | (b[3] < a[1])
    zero = torch.zeros((), dtype=boxes.dtype)
    iw = torch.where(apart, zero, torch.minimum(a[2], b[2]) - torch.maximum(a[0], b[0]))
    ih = torch.where(apart, zero, torch.minimum(a[3], b[3]) - torch.maximum(a[1], b[1]))
    if not normalized:
        iw, ih = iw + 1.0, ih + 1.0
    inter = iw * ih
    ratio = inter / (a[4] + b[4] - inter)
    return torch.where((iw > 0) & (ih > 0), ratio, zero)


def ssd_greedy_nms(boxes, valid, nms_threshold: float, normalized: bool):
    """ApplyNMSFast (eta 1) on candidates sorted by score: boxes (N, C, K, 4), valid (N, C, K)
    -> kept (N, C, K). Candidate i is kept iff valid and no kept j < i overlaps it by more
    than ``nms_threshold`` (a NaN overlap suppresses, as Caffe's ``overlap <= t`` is false)."""
    suppress = ~(ssd_overlaps(boxes, normalized) <= nms_threshold)
    keep = torch.zeros_like(valid)
    positions = torch.arange(valid.shape[-1])
    for i in range(valid.shape[-1]):  # static K: unrolled by torch.export
        hit = (suppress[..., :, i] & keep).any(dim=-1)
        keep = keep | ((valid[..., i] & ~hit)[..., None] & (positions == i))
    return keep


def ssd_detection_output(
    loc,
    conf,
    prior,
    num_classes: int,
    labels: list[int],
    share_location: bool,
    code_type: int,
    variance_encoded: bool,
    normalized: bool,
    threshold: float,
    nms_threshold: float,
    top_k: int,
    keep_top_k: int,
):
    """SSD-Caffe's DetectionOutput forward: rows (1, 1, R, 7). ``threshold``: candidates need
    a score strictly above it (``-FLT_MAX`` when the layer sets none); ``top_k`` and
    ``keep_top_k``: -1 for none."""
    n = loc.shape[0]
    priors = prior.shape[-1] // 4
    prior = prior.reshape(-1)[: 2 * priors * 4].reshape(2, priors, 4)
    loc_classes = 1 if share_location else num_classes
    boxes = ssd_decode(loc.reshape(n, priors, loc_classes, 4), prior, code_type,
                       variance_encoded, normalized).transpose(1, 2)  # fmt: skip
    if not share_location:
        boxes = boxes[:, labels]
    m = len(labels)
    boxes = boxes.expand(n, m, priors, 4)
    scores = conf.reshape(n, priors, num_classes).transpose(1, 2)[:, labels]
    above = scores > threshold
    masked = torch.where(above, scores, torch.full_like(scores, float("-inf")))
    k = priors if top_k < 0 else min(top_k, priors)
    # stable: equal scores keep the lower prior index first, as Caffe's std::stable_sort
    vals, order = torch.sort(masked, dim=-1, descending=True, stable=True)
    vals, order = vals[..., :k], order[..., :k]
    valid = vals > threshold
    cand = torch.gather(boxes, 2, order[..., None].expand(n, m, k, 4))
    kept = ssd_greedy_nms(cand, valid, nms_threshold, normalized)
    if keep_top_k > -1:
        flat = kept.reshape(n, m * k)
        ranked = torch.where(flat, vals.reshape(n, m * k), torch.full_like(flat, float("-inf"),
                                                                           dtype=vals.dtype))  # fmt: skip
        kk = min(keep_top_k, m * k)
        best, best_i = torch.sort(ranked, dim=1, descending=True, stable=True)
        chosen = torch.zeros_like(flat).scatter(1, best_i[:, :kk], best[:, :kk] > float("-inf"))
        kept = (chosen & flat).reshape(n, m, k)
    # every candidate as a row, in (image, label, NMS) order, then one -1 row per image
    image = torch.arange(n, dtype=vals.dtype)[:, None, None].expand(n, m, k)
    label = torch.tensor(labels, dtype=vals.dtype)[None, :, None].expand(n, m, k)
    table = torch.cat([image[..., None], label[..., None], vals[..., None], cand], dim=3)
    empty = torch.full((n, 7), -1.0, dtype=vals.dtype)
    empty[:, 0] = torch.arange(n, dtype=vals.dtype)
    table = torch.cat([table.reshape(n * m * k, 7), empty], dim=0)
    none = ~kept.any()
    mask = torch.cat([kept.reshape(-1), none.expand(n)])
    return table[mask][None, None]  # the one data-dependent shape: R rows


FUNCTIONS = (ssd_decode, ssd_overlaps, ssd_greedy_nms, ssd_detection_output)


def detection_output_source() -> str:
    """The functions' source, for the generated ``model.py`` (module level, after imports)."""
    return "\n\n".join(inspect.getsource(f) for f in FUNCTIONS)
