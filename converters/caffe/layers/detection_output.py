"""DetectionOutput (SSD fork, weiliu89/caffe branch ssd: ``detection_output_layer.cpp`` and
``util/bbox_util.cpp``), decomposed into standard ONNX ops so that every target runs it.

Bottoms: ``loc`` (N, P * L * 4; L = 1 with ``share_location``, else ``num_classes``),
``conf`` (N, P * num_classes, already softmaxed), ``prior`` (1, 2, P * 4: boxes, variances).
Top: (1, 1, R, 7) rows ``(image, label, score, xmin, ymin, xmax, ymax)``; R depends on the data.

SSD-Caffe's forward, which the graph reproduces step by step:
- decode (``DecodeBBox``, float32 like Caffe): CORNER ``p + v * l``; CORNER_SIZE
  ``p + v * l * (pw | ph)``; CENTER_SIZE centre ``v0 * l0 * pw + pcx``, size ``exp(v2 * l2) * pw``,
  corners ``centre -/+ size / 2``; ``variance_encoded_in_target`` drops ``v``. No clipping:
  SSD-Caffe's layer passes ``clip_bbox = false``;
- per image and per class except ``background_label_id``: the candidates with score strictly
  above ``confidence_threshold`` (unset: every score), stably sorted by score (ties: lower prior
  index first), cut to ``nms_param.top_k`` *before* NMS, then greedy NMS (``ApplyNMSFast``): a
  candidate is kept unless its Jaccard overlap with an already kept box is not ``<=
  nms_threshold``. The overlap is Caffe's: an inverted box (xmax < xmin) has size 0 and never
  overlaps; touching boxes overlap 0;
- ``keep_top_k``: when an image has more detections, the ``keep_top_k`` best scores survive;
- rows: image by image, label ascending, within a label in NMS order (score descending). They
  are *not* globally sorted by score;
- no detection in the whole batch: one row per image ``(i, -1, -1, -1, -1, -1, -1)``.

ONNX ``NonMaxSuppression`` is not used: it swaps inverted corners (so it suppresses boxes Caffe
keeps), cannot add the ``+1`` of pixel coordinates, applies its limit after suppression (Caffe's
``top_k`` cuts before) and runtimes differ in tie order. Instead the pairwise overlaps of the
(at most ``top_k``) sorted candidates are computed with Caffe's formula and a ``Loop`` keeps them
greedily in Caffe's order. Differences left: ``keep_top_k`` ties at the cut are broken by lower
label, then NMS order (Caffe's ``std::sort`` is unstable there), and ``exp`` may differ from
Caffe's libm in the last bit. ``normalized_bbox: false`` (OpenCV's extension, pixel
coordinates) adds 1 to widths and heights as OpenCV does. ``eta`` < 1 (adaptive NMS) is refused.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from converters.caffe.registry import register

f32 = np.float32
CORNER, CENTER_SIZE, CORNER_SIZE = 1, 2, 3
CODE_NAMES = {CORNER: "CORNER", CENTER_SIZE: "CENTER_SIZE", CORNER_SIZE: "CORNER_SIZE"}


def _check(layer, ctx, p):
    if len(layer.bottoms) < 3 or len(layer.tops) != 1:
        raise layer.error(f"expected 3 bottoms (loc, conf, prior) and 1 top, "
                          f"got {len(layer.bottoms)} and {len(layer.tops)}")  # fmt: skip
    if not p.HasField("num_classes") or p.num_classes < 1:
        raise layer.error("detection_output_param.num_classes must be given (at least 1)")
    eta = p.nms_param.eta
    if eta != 1.0:
        raise layer.error(f"nms_param.eta {eta:g} (adaptive NMS) is not supported; only eta: 1")
    if not p.nms_param.nms_threshold >= 0:
        raise layer.error(
            f"nms_param.nms_threshold must be >= 0, got {p.nms_param.nms_threshold:g}"
        )
    if p.code_type not in CODE_NAMES:
        raise layer.error(f"unknown code_type {p.code_type}")
    loc, conf, prior = (ctx.in_shape(layer, i) for i in range(3))
    if len(prior) < 3 or prior[2] % 4:
        raise layer.error(f"prior bottom must be (1, 2, P * 4), got shape {list(prior)}")
    priors = prior[2] // 4
    if int(np.prod(prior)) < 2 * priors * 4:
        raise layer.error(f"prior bottom {list(prior)} holds no variances; expected (1, 2, P * 4)")
    classes = p.num_classes
    loc_classes = 1 if p.share_location else classes
    for what, shape, want in (
        ("loc", loc, priors * loc_classes * 4),
        ("conf", conf, priors * classes),
    ):
        if len(shape) < 2 or shape[1] != want or int(np.prod(shape[2:])) != 1:
            raise layer.error(f"{what} bottom has shape {list(shape)}, expected "
                              f"({shape[0] if shape else 'N'}, {want}) for {priors} priors")  # fmt: skip
    if loc[0] != conf[0]:
        raise layer.error(f"loc and conf have different batch sizes ({loc[0]} and {conf[0]})")
    return loc[0], priors, classes, loc_classes


def _decode(ctx, name, loc4, prior, p, normalized):
    """Caffe's DecodeBBox for all priors: (N, P, L, 4) offsets -> (N, P, L, 4) corners."""
    pb = ctx.node("Gather", [prior, ctx.ints(f"{name}/i0", 0)], hint=f"{name}/prior_boxes")
    var = ctx.node("Gather", [prior, ctx.ints(f"{name}/i1", 1)], hint=f"{name}/prior_var")
    # (P, 4) -> (1, P, 1, 4) to broadcast over images and location classes
    pb = ctx.unsqueeze(pb, [0, 2], hint=f"{name}/pb")
    var = ctx.unsqueeze(var, [0, 2], hint=f"{name}/var")
    if p.variance_encoded_in_target:
        off = loc4
    else:
        off = ctx.node("Mul", [var, loc4], hint=f"{name}/var_loc")
    if p.code_type == CORNER:
        return ctx.node("Add", [pb, off], hint=f"{name}/decoded")
    lo = ctx.slice(pb, [0], [2], [3], hint=f"{name}/pmin")
    hi = ctx.slice(pb, [2], [4], [3], hint=f"{name}/pmax")
    wh = ctx.node("Sub", [hi, lo], hint=f"{name}/pwh")
    if not normalized:  # OpenCV's pixel-coordinate prior size
        wh = ctx.node("Add", [wh, ctx.const(f"{name}/one", f32(1))], hint=f"{name}/pwh1")
    if p.code_type == CORNER_SIZE:
        wh4 = ctx.node("Concat", [wh, wh], hint=f"{name}/pwh4", axis=3)
        scaled = ctx.node("Mul", [off, wh4], hint=f"{name}/scaled")
        return ctx.node("Add", [pb, scaled], hint=f"{name}/decoded")
    # CENTER_SIZE; Caffe: centre = (min + max) / 2. (exact), size = exp(v * l) * prior size
    half_c = ctx.const(f"{name}/half", f32(0.5))
    if normalized:
        centre = ctx.node("Mul", [ctx.node("Add", [lo, hi], hint=f"{name}/psum"), half_c],
                          hint=f"{name}/pc")  # fmt: skip
    else:  # OpenCV: min + (size + 1) / 2, half a pixel right of the normalized centre
        centre = ctx.node("Add", [lo, ctx.node("Mul", [wh, half_c], hint=f"{name}/pwh2")],
                          hint=f"{name}/pc")  # fmt: skip
    off_c = ctx.slice(off, [0], [2], [3], hint=f"{name}/off_c")
    off_s = ctx.slice(off, [2], [4], [3], hint=f"{name}/off_s")
    c = ctx.node("Add", [ctx.node("Mul", [off_c, wh], hint=f"{name}/dc"), centre],
                 hint=f"{name}/centre")  # fmt: skip
    size = ctx.node("Mul", [ctx.node("Exp", [off_s], hint=f"{name}/exp"), wh], hint=f"{name}/size")
    half = ctx.node("Mul", [size, ctx.const(f"{name}/half_size", f32(0.5))], hint=f"{name}/hs")
    return ctx.node("Concat", [ctx.node("Sub", [c, half], hint=f"{name}/min"),
                               ctx.node("Add", [c, half], hint=f"{name}/max")],
                    hint=f"{name}/decoded", axis=3)  # fmt: skip


def _overlaps(ctx, name, boxes, normalized):
    """Caffe's JaccardOverlap(current, kept) for all pairs: (N, C, K, 4) -> (N, C, K, K),
    element [.., j, i] = overlap of candidate i (bbox1) with candidate j (bbox2)."""
    parts = ctx.split(boxes, 3, [1, 1, 1, 1], [ctx.fresh(f"{name}/{c}") for c in "xyXY"])
    sq = [ctx.node("Squeeze", [v, ctx.ints(f"{name}/ax3", [3])], hint=f"{v}_sq") for v in parts]
    one = None if normalized else ctx.const(f"{name}/one", f32(1))
    zero = ctx.const(f"{name}/zero", f32(0))
    w = ctx.node("Sub", [sq[2], sq[0]], hint=f"{name}/w")
    h = ctx.node("Sub", [sq[3], sq[1]], hint=f"{name}/h")
    if not normalized:
        w = ctx.node("Add", [w, one], hint=f"{name}/w1")
        h = ctx.node("Add", [h, one], hint=f"{name}/h1")
    inverted = ctx.node("Or", [ctx.node("Less", [sq[2], sq[0]], hint=f"{name}/inv_x"),
                               ctx.node("Less", [sq[3], sq[1]], hint=f"{name}/inv_y")],
                        hint=f"{name}/inverted")  # fmt: skip
    size = ctx.node("Where", [inverted, zero, ctx.node("Mul", [w, h], hint=f"{name}/wh")],
                    hint=f"{name}/bbox_size")  # fmt: skip
    # bbox1 (current) varies along the last axis, bbox2 (kept) along the one before
    a = [ctx.unsqueeze(v, [2], hint=f"{v}_cur") for v in [*sq, size]]
    b = [ctx.unsqueeze(v, [3], hint=f"{v}_kept") for v in [*sq, size]]
    apart = ctx.node("Or", [ctx.node("Or", [ctx.node("Greater", [b[0], a[2]], hint=f"{name}/g0"),
                                            ctx.node("Less", [b[2], a[0]], hint=f"{name}/g1")],
                                     hint=f"{name}/gx"),
                            ctx.node("Or", [ctx.node("Greater", [b[1], a[3]], hint=f"{name}/g2"),
                                            ctx.node("Less", [b[3], a[1]], hint=f"{name}/g3")],
                                     hint=f"{name}/gy")], hint=f"{name}/apart")  # fmt: skip

    def extent(lo_a, lo_b, hi_a, hi_b, what):
        span = ctx.node("Sub", [ctx.node("Min", [hi_a, hi_b], hint=f"{name}/{what}_hi"),
                                ctx.node("Max", [lo_a, lo_b], hint=f"{name}/{what}_lo")],
                        hint=f"{name}/i{what}")  # fmt: skip
        # Caffe's IntersectBBox returns the box [0, 0, 0, 0] when the boxes are apart
        span = ctx.node("Where", [apart, zero, span], hint=f"{name}/i{what}_z")
        if not normalized:
            span = ctx.node("Add", [span, one], hint=f"{name}/i{what}_1")
        return span

    iw = extent(a[0], b[0], a[2], b[2], "w")
    ih = extent(a[1], b[1], a[3], b[3], "h")
    inter = ctx.node("Mul", [iw, ih], hint=f"{name}/inter")
    union = ctx.node("Sub", [ctx.node("Add", [a[4], b[4]], hint=f"{name}/sizes"), inter],
                     hint=f"{name}/union")  # fmt: skip
    ratio = ctx.node("Div", [inter, union], hint=f"{name}/ratio")
    meets = ctx.node("And", [ctx.node("Greater", [iw, zero], hint=f"{name}/iw_pos"),
                             ctx.node("Greater", [ih, zero], hint=f"{name}/ih_pos")],
                     hint=f"{name}/meets")  # fmt: skip
    return ctx.node("Where", [meets, ratio, zero], hint=f"{name}/overlap")


def _greedy_nms(ctx, name, suppress, valid, k):
    """Caffe's ApplyNMSFast scan: candidate i is kept iff valid and no kept j < i suppresses it.

    ``suppress`` (N, C, K, K) bool, [.., j, i]: kept j suppresses i; ``valid`` (N, C, K)."""
    positions = ctx.node("Range", [ctx.ints(f"{name}/r0", 0), k, ctx.ints(f"{name}/r1", 1)],
                         hint=f"{name}/positions")  # fmt: skip
    init = ctx.node("And", [valid, ctx.node("Not", [valid], hint=f"{name}/invalid")],
                    hint=f"{name}/keep0")  # all false, shaped like valid  # fmt: skip
    axis3 = ctx.ints(f"{name}/axis_last", [-1])
    it, cond_in, keep_in = (ctx.fresh(f"{name}/{v}") for v in ("i", "cond_in", "keep_in"))
    out = {
        v: ctx.fresh(f"{name}/{v}")
        for v in (
            "col",
            "hit",
            "hitf",
            "nhit",
            "any",
            "vi",
            "new",
            "newu",
            "at",
            "add",
            "keep",
            "cond",
        )
    }
    o = out
    body_nodes = [
        helper.make_node("Gather", [suppress, it], [o["col"]], axis=3),  # (N, C, K): j -> i
        helper.make_node("And", [o["col"], keep_in], [o["hit"]]),
        helper.make_node("Cast", [o["hit"]], [o["hitf"]], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", [o["hitf"], axis3], [o["nhit"]], keepdims=0),
        helper.make_node("Greater", [o["nhit"], ctx.const(f"{name}/zero_b", f32(0))], [o["any"]]),
        helper.make_node("Gather", [valid, it], [o["vi"]], axis=2),
        helper.make_node("Not", [o["any"]], [o["new"] + "_not"]),
        helper.make_node("And", [o["vi"], o["new"] + "_not"], [o["new"]]),
        helper.make_node("Unsqueeze", [o["new"], axis3], [o["newu"]]),
        helper.make_node("Equal", [positions, it], [o["at"]]),
        helper.make_node("And", [o["newu"], o["at"]], [o["add"]]),
        helper.make_node("Or", [keep_in, o["add"]], [o["keep"]]),
        helper.make_node("Identity", [cond_in], [o["cond"]]),
    ]
    body = helper.make_graph(
        body_nodes,
        f"{name}_nms_body",
        [helper.make_tensor_value_info(it, TensorProto.INT64, []),
         helper.make_tensor_value_info(cond_in, TensorProto.BOOL, []),
         helper.make_tensor_value_info(keep_in, TensorProto.BOOL, None)],
        [helper.make_tensor_value_info(o["cond"], TensorProto.BOOL, []),
         helper.make_tensor_value_info(o["keep"], TensorProto.BOOL, None)],
    )  # fmt: skip
    true = ctx.const(f"{name}/true", np.bool_(True), dtype=np.bool_)
    keep = ctx.fresh(f"{name}/kept")
    ctx.node_multi("Loop", [k, true, init], [keep], body=body)
    return keep


@register("DetectionOutput")
def detection_output(layer, ctx):
    """SSD decoding, per-class greedy NMS, keep_top_k: Caffe's rows (1, 1, R, 7), R data-dependent."""
    p = layer.param("detection_output_param")
    n, priors, classes, loc_classes = _check(layer, ctx, p)
    normalized = p.normalized_bbox
    name = layer.name
    loc, conf, prior = ctx.input(layer, 0), ctx.input(layer, 1), ctx.input(layer, 2)
    labels = [c for c in range(classes) if c != p.background_label_id]
    if not labels:
        raise layer.error("no class besides background_label_id: the layer can detect nothing")
    if p.share_location and p.background_label_id == -1:
        raise layer.error("background_label_id -1 with share_location: true makes SSD-Caffe "
                          "abort (it decodes no boxes); give share_location: false or a "
                          "background class")  # fmt: skip
    m = len(labels)
    loc4 = ctx.reshape(loc, [n, priors, loc_classes, 4], hint=f"{name}/loc4")
    flat_prior = ctx.reshape(prior, [-1], hint=f"{name}/prior_flat")
    prior = ctx.reshape(ctx.slice(flat_prior, [0], [2 * priors * 4], [0], hint=f"{name}/pri"),
                        [2, priors, 4], hint=f"{name}/prior")  # fmt: skip
    boxes = _decode(ctx, name, loc4, prior, p, normalized)  # (N, P, L, 4)
    boxes = ctx.node("Transpose", [boxes], hint=f"{name}/boxes_t", perm=[0, 2, 1, 3])
    if not p.share_location:
        boxes = ctx.node("Gather", [boxes, ctx.ints(f"{name}/labels", labels)],
                         hint=f"{name}/class_boxes", axis=1)  # fmt: skip
    boxes = ctx.node("Expand", [boxes, ctx.ints(f"{name}/bshape", [n, m, priors, 4])],
                     hint=f"{name}/boxes")  # fmt: skip
    scores = ctx.node("Transpose", [ctx.reshape(conf, [n, priors, classes], hint=f"{name}/c3")],
                      hint=f"{name}/conf_t", perm=[0, 2, 1])  # fmt: skip
    scores = ctx.node("Gather", [scores, ctx.ints(f"{name}/labels_s", labels)],
                      hint=f"{name}/scores", axis=1)  # fmt: skip
    # candidates: score > confidence_threshold (unset: > -FLT_MAX), sorted, cut to top_k
    thr = f32(p.confidence_threshold) if p.HasField("confidence_threshold") else -np.finfo(f32).max
    thr = ctx.const(f"{name}/threshold", thr)
    above = ctx.node("Greater", [scores, thr], hint=f"{name}/above")
    masked = ctx.node("Where", [above, scores, ctx.const(f"{name}/ninf", f32(-np.inf))],
                      hint=f"{name}/masked")  # fmt: skip
    # candidates per (image, class); K = the most any of them has (the others are padded)
    above_i = ctx.node("Cast", [above], hint=f"{name}/above_i", to=TensorProto.INT64)
    counts = ctx.reduce("ReduceSum", above_i, [2], keepdims=True, hint=f"{name}/count")
    counts = ctx.reduce("ReduceMax", counts, [0, 1, 2], keepdims=True, hint=f"{name}/count_max")
    k = ctx.reshape(counts, [1], hint=f"{name}/k_all")
    top_k = p.nms_param.top_k if p.nms_param.HasField("top_k") else -1
    if top_k > -1:
        k = ctx.node("Min", [k, ctx.ints(f"{name}/top_k", [top_k])], hint=f"{name}/k")
    vals, order = ctx.fresh(f"{name}/cand_scores"), ctx.fresh(f"{name}/cand_index")
    ctx.node_multi("TopK", [masked, k], [vals, order], axis=-1, largest=1, sorted=1)
    valid = ctx.node("Greater", [vals, thr], hint=f"{name}/valid")
    cand = ctx.node("GatherND", [boxes, ctx.unsqueeze(order, [3], hint=f"{name}/order4")],
                    hint=f"{name}/cand_boxes", batch_dims=2)  # fmt: skip
    overlap = _overlaps(ctx, name, cand, normalized)
    nms_thr = ctx.const(f"{name}/nms_threshold", f32(p.nms_param.nms_threshold))
    # Caffe keeps when overlap <= threshold; a NaN overlap suppresses
    suppress = ctx.node("Not", [ctx.node("LessOrEqual", [overlap, nms_thr], hint=f"{name}/le")],
                        hint=f"{name}/suppress")  # fmt: skip
    kept = _greedy_nms(ctx, name, suppress, valid, ctx.reshape(k, [], hint=f"{name}/trip"))
    if p.keep_top_k > -1:
        kept = _keep_top_k(ctx, name, kept, vals, n, p.keep_top_k)
    rows = _rows(ctx, name, kept, vals, cand, labels, n, layer)
    ctx.set_top(layer, 0, rows, (1, 1, f"{name}_rows", 7))


def _keep_top_k(ctx, name, kept, vals, n, keep_top_k):
    """Per image, only the ``keep_top_k`` best kept scores (lower label, then NMS order first)."""
    flat_kept = ctx.reshape(kept, [n, -1], hint=f"{name}/kept_flat")
    ranked = ctx.node("Where", [flat_kept, ctx.reshape(vals, [n, -1], hint=f"{name}/vals_flat"),
                                ctx.const(f"{name}/ninf2", f32(-np.inf))],
                      hint=f"{name}/ranked")  # fmt: skip
    width = ctx.node("Slice", [ctx.node("Shape", [ranked], hint=f"{name}/rshape"),
                               ctx.ints(f"{name}/s1", [1]), ctx.ints(f"{name}/s2", [2])],
                     hint=f"{name}/width")  # fmt: skip
    kk = ctx.node("Min", [width, ctx.ints(f"{name}/keep_top_k", [keep_top_k])], hint=f"{name}/kk")
    best, best_i = ctx.fresh(f"{name}/best"), ctx.fresh(f"{name}/best_index")
    ctx.node_multi("TopK", [ranked, kk], [best, best_i], axis=-1, largest=1, sorted=1)
    ones = ctx.node("Cast", [ctx.node("Greater", [best, ctx.const(f"{name}/ninf3", f32(-np.inf))],
                                      hint=f"{name}/best_real")],
                    hint=f"{name}/best_ones", to=TensorProto.FLOAT)  # fmt: skip
    zeros = ctx.node("Where", [flat_kept, ctx.const(f"{name}/z", f32(0)),
                               ctx.const(f"{name}/z2", f32(0))], hint=f"{name}/zeros")  # fmt: skip
    chosen = ctx.node("ScatterElements", [zeros, best_i, ones], hint=f"{name}/chosen", axis=1)
    chosen = ctx.node("Greater", [chosen, ctx.const(f"{name}/half_c", f32(0.5))],
                      hint=f"{name}/chosen_b")  # fmt: skip
    both = ctx.node("And", [chosen, flat_kept], hint=f"{name}/kept_top")
    return ctx.node("Reshape", [both, ctx.node("Shape", [kept], hint=f"{name}/kshape")],
                    hint=f"{name}/kept_k")  # fmt: skip


def _rows(ctx, name, kept, vals, cand, labels, n, layer_top):
    """Rows (image, label, score, box) in row-major (image, label, NMS) order; the -1 rows when
    the batch has no detection at all."""
    where = ctx.node(
        "Transpose",
        [ctx.node("NonZero", [kept], hint=f"{name}/nz")],
        hint=f"{name}/where",
        perm=[1, 0],
    )  # fmt: skip  (R, 3): image, class, rank
    score = ctx.node("GatherND", [vals, where], hint=f"{name}/row_score")
    box = ctx.node("GatherND", [cand, where], hint=f"{name}/row_box")
    image = ctx.slice(where, [0], [1], [1], hint=f"{name}/row_image")
    cls = ctx.reshape(ctx.slice(where, [1], [2], [1], hint=f"{name}/row_cls"), [-1],
                      hint=f"{name}/row_cls_flat")  # fmt: skip
    label = ctx.node("Gather", [ctx.const(f"{name}/label_ids", np.asarray(labels, f32)), cls],
                     hint=f"{name}/row_label")  # fmt: skip
    cols = [ctx.node("Cast", [image], hint=f"{name}/image_f", to=TensorProto.FLOAT),
            ctx.unsqueeze(label, [1], hint=f"{name}/label_col"),
            ctx.unsqueeze(score, [1], hint=f"{name}/score_col"), box]  # fmt: skip
    found = ctx.node("Concat", cols, hint=f"{name}/found", axis=1)
    # Caffe: nothing kept in the batch -> one (i, -1, ..., -1) row per image
    empty_rows = np.full((n, 7), -1, f32)
    empty_rows[:, 0] = np.arange(n)
    count = ctx.node("Shape", [found], hint=f"{name}/found_shape")
    count = ctx.slice(count, [0], [1], [0], hint=f"{name}/found_n")
    none = ctx.node("Cast", [ctx.node("Equal", [count, ctx.ints(f"{name}/z_i", [0])],
                                      hint=f"{name}/is_empty")],
                    hint=f"{name}/is_empty_i", to=TensorProto.INT64)  # fmt: skip
    fill = ctx.node("Mul", [none, ctx.ints(f"{name}/n_images", [n])], hint=f"{name}/fill_n")
    filler = ctx.node("Slice", [ctx.const(f"{name}/empty_rows", empty_rows),
                                ctx.ints(f"{name}/fz", [0]), fill, ctx.ints(f"{name}/fa", [0])],
                      hint=f"{name}/filler")  # fmt: skip
    rows = ctx.node("Concat", [found, filler], hint=f"{name}/rows", axis=0)
    return ctx.unsqueeze(rows, [0, 1], ctx.top_name(layer_top), hint=f"{name}/out")
