"""Compare one output of a candidate with its reference over several samples (Polygraphy-style).

Pass rule, element-wise (``numpy.isclose`` with the reference as ``b``)::

    |candidate - reference| <= atol + rtol * |reference|

so an element fails only when its error exceeds both the absolute and the relative allowance
(together). A NaN passes only where the reference is NaN too, an infinity only where the
reference holds the same infinity; any other non-finite value fails. For classifier outputs
(shape (N, C) or (N, C, 1, 1)) the candidate's top-k classes of every row must also agree with
the reference's, up to ties: each class the candidate ranks in its top k must have a reference
score within tolerance of the reference's k-th best score.

Every result carries its ``margin``: the largest ``|candidate - reference| / (atol + rtol *
|reference|)`` over the elements (over matched detections for ``compare: detections``), so 0.3
passes with room and 0.97 barely; a value above 1 fails.
"""

from __future__ import annotations

import math

import numpy as np

RULE = "|candidate - reference| <= atol + rtol * |reference| (element-wise)"


def num(x: float) -> float | str:
    """A JSON-safe number: non-finite values become the strings 'nan', 'inf', '-inf'."""
    x = float(x)
    return x if math.isfinite(x) else str(x)


def fmt(x) -> str:
    return f"{float(x):.4g}" if isinstance(x, int | float | np.floating) else str(x)


class OutputCheck:
    """Accumulates the comparison of one output over samples; ``result()`` gives the metrics."""

    def __init__(self, name: str, atol: float, rtol: float, topk: int | None = None):
        self.name, self.atol, self.rtol, self.topk = name, atol, rtol, topk
        self.elements = self.failing = 0
        self.max_abs = self.max_rel = self.sum_abs = 0.0
        self.cosine = 1.0
        self.margin = 0.0  # max over elements of |candidate - reference| / allowed
        self.nan = {"candidate": 0, "reference": 0}
        self.inf = {"candidate": 0, "reference": 0}
        self.worst: dict | None = None
        self.shape_error: str | None = None
        self.topk_rows = self.topk_exact = self.topk_top1 = 0
        self.topk_bad: list[str] = []
        self.shape = self.dtype = None

    def add(self, sample: int, got: np.ndarray, ref: np.ndarray) -> None:
        self.shape, self.dtype = list(got.shape), str(got.dtype)
        if got.shape != ref.shape:
            self.shape_error = (
                f"shape {list(got.shape)} differs from the reference's {list(ref.shape)}"
            )
            return
        a, b = got.astype(np.float64), ref.astype(np.float64)
        for key, arr in (("candidate", a), ("reference", b)):
            self.nan[key] += int(np.isnan(arr).sum())
            self.inf[key] += int(np.isinf(arr).sum())
        with np.errstate(invalid="ignore", over="ignore"):
            diff = np.abs(a - b)
        same_special = (np.isnan(a) & np.isnan(b)) | (np.isinf(a) & (a == b))
        diff[same_special] = 0.0
        diff[~np.isfinite(diff)] = np.inf
        allowed = self.atol + self.rtol * np.abs(b)
        fail = (diff > allowed) | np.isinf(diff)
        if diff.size:
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(diff == 0.0, 0.0, diff / allowed)  # allowed 0: any error is inf
            self.margin = max(self.margin, float(np.nan_to_num(ratio, nan=np.inf).max()))
        n_fail = int(fail.sum())
        self.elements += diff.size
        self.failing += n_fail
        self.max_abs = max(self.max_abs, float(diff.max(initial=0.0)))
        self.sum_abs += float(diff.sum())
        nonzero = np.isfinite(b) & (b != 0)
        if nonzero.any():
            self.max_rel = max(self.max_rel, float((diff[nonzero] / np.abs(b[nonzero])).max()))
        cos = _cosine(a, b)
        if math.isnan(cos) or cos < self.cosine:  # once NaN, stays NaN
            self.cosine = cos
        if diff.size:
            self._note_worst(sample, a, b, diff, allowed, fail, n_fail)
        if self.topk:
            self._check_topk(sample, a, b)

    def _note_worst(self, sample, a, b, diff, allowed, fail, n_fail) -> None:
        flat = int(np.argmax(np.where(fail, diff, -1.0)) if n_fail else np.argmax(diff))
        failing = n_fail > 0
        if self.worst and (self.worst["failing"], self.worst["diff"]) >= (failing, diff.flat[flat]):
            return
        idx = tuple(int(i) for i in np.unravel_index(flat, diff.shape))
        self.worst = {
            "failing": failing,
            "diff": float(diff.flat[flat]),
            "sample": sample,
            "index": list(idx),
            "candidate": num(a.flat[flat]),
            "reference": num(b.flat[flat]),
            "allowed": num(allowed.flat[flat]),
        }

    def _check_topk(self, sample: int, a: np.ndarray, b: np.ndarray) -> None:
        if a.ndim < 2 or int(np.prod(a.shape[2:])) != 1 or a.shape[1] < 2:
            return
        a2, b2 = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
        k = min(self.topk, a2.shape[1])
        for row, (ra, rb) in enumerate(zip(a2, b2, strict=True)):
            top_a = np.argsort(-ra, kind="stable")[:k]
            top_b = np.argsort(-rb, kind="stable")[:k]
            kth = rb[top_b[-1]]
            self.topk_rows += 1
            self.topk_exact += set(top_a) == set(top_b)
            self.topk_top1 += top_a[0] == top_b[0]
            if np.any(rb[top_a] < kth - (self.atol + self.rtol * abs(kth))):
                self.topk_bad.append(
                    f"sample {sample} row {row}: got {top_a.tolist()}, reference {top_b.tolist()}"
                )

    def result(self) -> dict:
        out: dict = {
            "passed": True,
            "message": None,
            "shape": self.shape,
            "dtype": self.dtype,
            "atol": self.atol,
            "rtol": self.rtol,
        }
        if self.shape_error:
            out.update(passed=False, message=f"FAILED output '{self.name}': {self.shape_error}")
            return out
        out.update(
            {
                "elements": self.elements,
                "failing_elements": self.failing,
                "max_abs_error": num(self.max_abs),
                "mean_abs_error": num(self.sum_abs / self.elements) if self.elements else 0.0,
                "max_rel_error": num(self.max_rel),
                "cosine_similarity": num(self.cosine),
                # worst error / what was allowed there: < 1 passes; how close to failing
                "margin": num(round(self.margin, 6)),
                "nan": self.nan,
                "inf": self.inf,
            }
        )
        if self.worst:
            out["worst"] = {k: v for k, v in self.worst.items() if k not in ("failing", "diff")}
        if self.topk and self.topk_rows:
            out["topk"] = {
                "k": self.topk,
                "rows": self.topk_rows,
                "exact_agreement": self.topk_exact / self.topk_rows,
                "top1_agreement": self.topk_top1 / self.topk_rows,
                "disagreements": self.topk_bad[:5],
                "passed": not self.topk_bad,
            }
        if self.failing:
            w = self.worst
            out["passed"] = False
            out["message"] = (
                f"FAILED output '{self.name}': max abs error {fmt(abs_error(w))} > atol "
                f"{fmt(self.atol)} + rtol {fmt(self.rtol)} * |reference| at index "
                f"{tuple(w['index'])} of sample {w['sample']}: got {fmt(w['candidate'])}, "
                f"reference {fmt(w['reference'])} ({self.failing} of {self.elements} elements "
                "out of tolerance)"
            )
        elif self.topk_bad:
            out["passed"] = False
            out["message"] = (
                f"FAILED output '{self.name}': top-{self.topk} classes disagree with the reference "
                f"in {len(self.topk_bad)} of {self.topk_rows} rows ({self.topk_bad[0]})"
            )
        return out


def abs_error(worst: dict) -> float:
    """|candidate - reference| of a recorded element (nan when either value is not finite)."""
    try:
        return abs(float(worst["candidate"]) - float(worst["reference"]))
    except (TypeError, ValueError):
        return math.nan


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return math.nan
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return 1.0 if na == nb else 0.0
    return float(np.dot(a.ravel(), b.ravel()) / (na * nb))


DETECTION_RULE = (
    "detections (rows: image, label, score, xmin, ymin, xmax, ymax; a row counts when "
    "label >= 0 and score > 0): same count per sample, matched one-to-one by image, label "
    "and box IoU >= {iou}; score and coordinates |candidate - reference| <= atol + rtol * "
    "|reference|; a swap at a cut (keep_top_k, top_k, confidence_threshold) between "
    "detections whose scores are within that tolerance of the cut score is a tie (cut_ties)"
)
CUTS = ("keep_top_k", "top_k", "confidence_threshold")


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (n, 4) and (m, 4) corner boxes (inverted boxes have area 0)."""
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    # two identical points or lines are the same box, though their IoU is 0/0
    same = np.all(a[:, None, :] == b[None, :, :], axis=2)
    return np.where(same, 1.0, iou)


class DetectionCheck:
    """``compare: detections`` for (1, 1, R, 7) DetectionOutput rows: the same detections, in
    any order. Padding (OpenCV fills up to keep_top_k with zero rows) and Caffe's empty-result
    row (label -1) are not detections.

    ``cuts`` (the source's DetectionOutput parameters, ``keep_top_k``, ``top_k``,
    ``confidence_threshold``) allow *ties at a cut*: two candidates whose scores are equal
    within tolerance may come out in either order (float16 reorders them), so at a cut one
    falls out and the other in. Accepted, and listed in ``cut_ties``, only where the scores of
    both are within ``atol + rtol * |cut|`` of the cut score:

    - ``keep_top_k``: an image with exactly ``keep_top_k`` detections on both sides; the cut
      score is the reference's lowest in that image; one unmatched detection on each side;
    - ``top_k`` (the per-class cut before NMS, whose candidates the output does not show): one
      unmatched on each side with the same image and label, both within tolerance of the
      reference's lowest score of that label in that image;
    - ``confidence_threshold``: an unmatched detection on one side only, its score within
      tolerance of the threshold (it is in on one side, out on the other; the count differs).

    Every other unmatched detection, and a count difference these do not explain, fails."""

    def __init__(
        self, name: str, atol: float, rtol: float, iou: float = 0.99, cuts: dict | None = None
    ):
        self.name, self.atol, self.rtol, self.iou = name, atol, rtol, iou
        self.cuts = {k: (int(v) if k != "confidence_threshold" else float(v))
                     for k, v in (cuts or {}).items() if k in CUTS and v is not None}  # fmt: skip
        self.samples = self.matched = 0
        self.max_abs = self.margin = 0.0
        self.problems: list[str] = []
        self.cut_ties: list[dict] = []
        self.shape = self.dtype = None

    @staticmethod
    def _rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        if x.shape[-1:] != (7,) or x.ndim < 2:
            return None
        rows = x.reshape(-1, 7).astype(np.float64)
        index = np.flatnonzero((rows[:, 1] >= 0) & (rows[:, 2] > 0))
        return rows[index], index

    def add(self, sample: int, got: np.ndarray, ref: np.ndarray) -> None:
        self.shape, self.dtype = list(got.shape), str(got.dtype)
        self.samples += 1
        g, r = self._rows(got), self._rows(ref)
        if g is None or r is None:
            self.problems.append(
                f"sample {sample}: shapes {list(got.shape)} / {list(ref.shape)} are not "
                "detection rows (..., 7)"
            )
            return
        (ga, gi), (ra, ri) = g, r
        if not (np.all(np.isfinite(ga)) and np.all(np.isfinite(ra))):
            self.problems.append(f"sample {sample}: non-finite values in the detections")
            return
        iou = _iou(ga[:, 3:], ra[:, 3:])
        same_class = (ga[:, None, 0] == ra[None, :, 0]) & (ga[:, None, 1] == ra[None, :, 1])
        iou = np.where(same_class, iou, -1.0)
        free_g, free_r = set(range(len(ga))), set(range(len(ra)))
        for flat in np.argsort(-iou, axis=None, kind="stable"):
            a, b = divmod(int(flat), len(ra))
            if iou[a, b] < self.iou:
                break
            if a not in free_g or b not in free_r:
                continue
            free_g.discard(a)
            free_r.discard(b)
            self.matched += 1
            diff = np.abs(ga[a, 2:] - ra[b, 2:])
            self.max_abs = max(self.max_abs, float(diff.max()))
            allowed = self.atol + self.rtol * np.abs(ra[b, 2:])
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(diff == 0.0, 0.0, diff / allowed)
            self.margin = max(self.margin, float(ratio.max()))
            if np.any(diff > allowed):
                self.problems.append(
                    f"sample {sample}: detection {gi[a]} (reference {ri[b]}) differs by "
                    f"{fmt(diff.max())}: got {np.round(ga[a, 1:], 6).tolist()}, "
                    f"reference {np.round(ra[b, 1:], 6).tolist()}"
                )
        one_sided = self._cut_ties(sample, ga, gi, ra, ri, free_g, free_r)
        if len(ga) - one_sided[0] != len(ra) - one_sided[1]:
            self.problems.append(
                f"sample {sample}: {len(ga)} detections, the reference has {len(ra)}"
            )
        if free_g:
            self.problems.append(
                f"sample {sample}: unmatched detections {sorted(int(gi[i]) for i in free_g)}"
            )
        if free_r:
            self.problems.append(
                f"sample {sample}: unmatched reference detections "
                f"{sorted(int(ri[i]) for i in free_r)}"
            )

    def _tie(self, score: float, cut: float) -> bool:
        return abs(score - cut) <= self.atol + self.rtol * abs(cut)

    def _cut_ties(self, sample, ga, gi, ra, ri, free_g: set, free_r: set) -> tuple[int, int]:
        """Accept the ties at cuts among the unmatched (removed from ``free_g``/``free_r``);
        returns how many one-sided ties (confidence_threshold) each side had."""

        def note(cut, cut_score, a=None, b=None):
            entry = {"sample": sample, "cut": cut, "value": self.cuts[cut],
                     "cut_score": num(cut_score)}  # fmt: skip
            if a is not None:
                free_g.discard(a)
                entry["candidate"] = {"row": int(gi[a]), "score": num(ga[a, 2])}
            if b is not None:
                free_r.discard(b)
                entry["reference"] = {"row": int(ri[b]), "score": num(ra[b, 2])}
            self.cut_ties.append(entry)

        def swaps(cut, cut_score, same):
            """Pair unmatched candidate/reference detections (``same(a, b)``) at a cut."""
            near_g = sorted((a for a in free_g if self._tie(ga[a, 2], cut_score)),
                            key=lambda a: -ga[a, 2])  # fmt: skip
            for a in near_g:
                b = next((b for b in sorted(free_r, key=lambda b: -ra[b, 2])
                          if same(a, b) and self._tie(ra[b, 2], cut_score)), None)  # fmt: skip
                if b is not None:
                    note(cut, cut_score, a, b)

        if "keep_top_k" in self.cuts:
            k = int(self.cuts["keep_top_k"])
            for image in np.unique(ra[:, 0]):
                in_r, in_g = ra[:, 0] == image, ga[:, 0] == image
                if k > 0 and in_r.sum() == k == in_g.sum():
                    swaps("keep_top_k", float(ra[in_r, 2].min()),
                          lambda a, b, i=image: ga[a, 0] == ra[b, 0] == i)  # fmt: skip
        if "top_k" in self.cuts:
            for image, label in sorted({(ra[b, 0], ra[b, 1]) for b in free_r}):
                same_class = (ra[:, 0] == image) & (ra[:, 1] == label)

                def same(a, b, key=(image, label)):
                    return tuple(ga[a, :2]) == key == tuple(ra[b, :2])

                swaps("top_k", float(ra[same_class, 2].min()), same)
        one_sided = [0, 0]
        if "confidence_threshold" in self.cuts:
            thr = float(self.cuts["confidence_threshold"])
            for a in [a for a in free_g if self._tie(ga[a, 2], thr)]:
                note("confidence_threshold", thr, a=a)
                one_sided[0] += 1
            for b in [b for b in free_r if self._tie(ra[b, 2], thr)]:
                note("confidence_threshold", thr, b=b)
                one_sided[1] += 1
        return one_sided[0], one_sided[1]

    def result(self) -> dict:
        passed = not self.problems
        return {
            "passed": passed,
            "message": None
            if passed
            else f"FAILED output '{self.name}' (compare: detections): {self.problems[0]}"
            + (f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""),
            "shape": self.shape,
            "dtype": self.dtype,
            "atol": self.atol,
            "rtol": self.rtol,
            "compare": "detections",
            "iou": self.iou,
            "matched_detections": self.matched,
            "cuts": self.cuts,
            "cut_ties": self.cut_ties[:20],
            "max_abs_error": num(self.max_abs),
            "margin": num(round(self.margin, 6)),
            "problems": self.problems[:10],
        }
