"""Pooling (converters/caffe/layers/pooling.py): MAX, AVE, global; Caffe's sizes and divisors.

Every case is compared with OpenCV DNN at atol 1e-5, whose pooling follows Caffe's output size
(ceil, then "the last window must start inside image + pad") and AVE divisor (window clipped to
``H + p``) for every non-degenerate geometry of the sweep below, and with ``caffe_pool``, a
float64 numpy transcription of Caffe's ``PoolingLayer::Forward_cpu`` written here. BVLC's
``round_mode: FLOOR`` / ``round_mode: CEIL`` are checked against ``caffe_pool`` only: OpenCV
4.14 cannot read ``round_mode`` (its schema has the fork's ``ceil_mode`` at that number and
``readNetFromCaffe`` fails), while it does read the fork's ``ceil_mode: false``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.caffe.helpers import convert_and_compare
from tests.caffe.layer_checks import convert_and_run, expect_error, op_types

FLT_MAX = float(np.finfo(np.float32).max)


def caffe_size(size: int, k: int, s: int, p: int, ceil: bool) -> int:
    """``PoolingLayer::Reshape``: rounded window count, minus a last window starting in the pad."""
    rounded = math.ceil((size + 2 * p - k) / s) if ceil else math.floor((size + 2 * p - k) / s)
    out = rounded + 1
    if p > 0 and (out - 1) * s >= size + p:
        out -= 1
    return out


def caffe_pool(x, pool: str, k, s, p, ceil: bool) -> np.ndarray:
    """``PoolingLayer::Forward_cpu`` for MAX and AVE on NCHW ``x`` (float64 accumulation)."""
    n, c, h, w = x.shape
    oh, ow = caffe_size(h, k[0], s[0], p[0], ceil), caffe_size(w, k[1], s[1], p[1], ceil)
    x = x.astype(np.float64)
    y = np.empty((n, c, oh, ow))
    for ph in range(oh):
        for pw in range(ow):
            hstart, wstart = ph * s[0] - p[0], pw * s[1] - p[1]
            if pool == "MAX":
                hend, wend = min(hstart + k[0], h), min(wstart + k[1], w)
                hstart, wstart = max(hstart, 0), max(wstart, 0)
                window = x[:, :, hstart:hend, wstart:wend].reshape(n, c, -1)
                # Caffe starts from -FLT_MAX: an empty window stays there.
                y[:, :, ph, pw] = np.max(window, axis=2, initial=-FLT_MAX)
            else:
                # The divisor counts real padding (end clipped to h + p), not the ceil overhang.
                hend, wend = min(hstart + k[0], h + p[0]), min(wstart + k[1], w + p[1])
                pool_size = (hend - hstart) * (wend - wstart)
                hstart, wstart = max(hstart, 0), max(wstart, 0)
                hend, wend = min(hend, h), min(wend, w)
                with np.errstate(invalid="ignore"):  # an empty window is 0/0 in Caffe too
                    y[:, :, ph, pw] = x[:, :, hstart:hend, wstart:wend].sum((2, 3)) / pool_size
    return y


def _input(shape) -> str:
    return f'input: "data"\ninput_shape {{ {" ".join(f"dim: {d}" for d in shape)} }}\n'


def _pool(name: str, param: str, bottom: str = "data") -> str:
    return (
        f'layer {{ name: "{name}" type: "Pooling" bottom: "{bottom}" top: "{name}" '
        f"pooling_param {{ {param} }} }}\n"
    )


def _feeds(shape, seed: int = 0) -> dict[str, np.ndarray]:
    return {"data": np.random.default_rng(seed).standard_normal(shape).astype(np.float32)}


def _check(tmp_path, shape, param, pool, k, s, p, ceil, opencv=True, seed=0):
    """Convert one Pooling layer, compare with OpenCV (if it reads the net) and ``caffe_pool``."""
    net = _input(shape) + _pool("pool", param)
    feeds = _feeds(shape, seed)
    if opencv:
        model, got, _ = convert_and_compare(tmp_path, net, feeds=feeds)
    else:
        model, got, _ = convert_and_run(tmp_path, net, feeds=feeds)
    ref = caffe_pool(feeds["data"], pool, k, s, p, ceil)
    assert got["pool"].shape == ref.shape
    np.testing.assert_allclose(got["pool"], ref, atol=1e-5, rtol=0)
    return model, got["pool"], feeds["data"]


# id: (H, k, s, p, expected output height with ceil) -- W = H + 1 takes the other path.
BORDER = {
    "H7-k3-s2-p0": (7, 3, 2, 0, 3),  # exact fit in H, clipped last window in W = 8
    "H7-k3-s2-p1": (7, 3, 2, 1, 4),  # last window: 1 real row, 1 pad row, 1 overhang row
    "H6-k3-s2-p1": (6, 3, 2, 1, 4),  # last window: row 5 and the pad row 6; row 7 is overhang
    "H8-k2-s2-p0": (8, 2, 2, 0, 4),
    "H9-k3-s3-p1": (9, 3, 3, 1, 4),
    "H5-k3-s1-p2": (5, 3, 1, 2, 7),
}


@pytest.mark.parametrize("pool", ["MAX", "AVE"])
@pytest.mark.parametrize("case", list(BORDER))
def test_ceil_windows_clipped_at_the_border(tmp_path, case, pool):
    h, k, s, p, oh = BORDER[case]
    param = f"pool: {pool} kernel_size: {k} stride: {s} pad: {p}"
    _, got, _ = _check(tmp_path, (2, 3, h, h + 1), param, pool, (k, k), (s, s), (p, p), True)
    assert got.shape[2] == oh


def test_ave_divisor_counts_padding_but_not_the_overhang(tmp_path):
    # H = W = 6, k 3, s 2, p 1, ceil: 4 x 4 outputs. The bottom-right window spans rows/cols
    # 5..7 in image coordinates: 5 is real, 6 is padding (counted), 7 is ceil overhang (not
    # counted), so Caffe divides x[5, 5] by 2 * 2. A top-left corner window (-1..1) holds 2 x 2
    # real values and is divided by 3 * 3.
    model, got, x = _check(
        tmp_path, (1, 2, 6, 6), "pool: AVE kernel_size: 3 stride: 2 pad: 1", "AVE",
        (3, 3), (2, 2), (1, 1), True,
    )  # fmt: skip
    assert got.shape == (1, 2, 4, 4)
    np.testing.assert_allclose(got[0, :, 3, 3], x[0, :, 5, 5] / 4, rtol=1e-6)
    np.testing.assert_allclose(got[0, :, 0, 0], x[0, :, :2, :2].sum((1, 2)) / 9, rtol=1e-5)
    # Window 1 along W: cols 1..3, all real, divided by 9 with the top pad row counted.
    np.testing.assert_allclose(got[0, :, 0, 1], x[0, :, :2, 1:4].sum((1, 2)) / 9, rtol=1e-5)
    assert op_types(model) == ["Pad", "AveragePool"]


def test_ave_padding_without_overhang_is_one_average_pool(tmp_path):
    # H 7, k 3, s 2, p 1: windows end exactly at the padded border; count_include_pad=1 is exact.
    model, _, _ = _check(
        tmp_path, (1, 2, 7, 7), "pool: AVE kernel_size: 3 stride: 2 pad: 1", "AVE",
        (3, 3), (2, 2), (1, 1), True,
    )  # fmt: skip
    assert op_types(model) == ["AveragePool"]


@pytest.mark.parametrize("pool", ["MAX", "AVE"])
def test_last_window_starting_in_the_padding_is_dropped(tmp_path, pool):
    # H 5, k 2, s 2, p 1: ceil((5 + 2 - 2) / 2) + 1 = 4, but window 3 would start at
    # 3 * 2 - 1 = 5 = H (inside the end padding), so Caffe keeps 3; ONNX ceil_mode would give 4.
    param = f"pool: {pool} kernel_size: 2 stride: 2 pad: 1"
    _, got, x = _check(tmp_path, (1, 3, 5, 5), param, pool, (2, 2), (2, 2), (1, 1), True)
    assert got.shape == (1, 3, 3, 3)
    if pool == "MAX":  # the last window holds the real row/col 4 and the pad row/col 5
        np.testing.assert_array_equal(got[0, :, 2, 2], x[0, :, 3:5, 3:5].max((1, 2)))


FLOOR_SPELLINGS = {"ceil_mode-false": ("ceil_mode: false", True),
                   "round_mode-FLOOR": ("round_mode: FLOOR", False)}  # fmt: skip


@pytest.mark.parametrize("pool", ["MAX", "AVE"])
@pytest.mark.parametrize("spelling", list(FLOOR_SPELLINGS))
def test_floor_rounding(tmp_path, spelling, pool):
    """``round_mode: FLOOR`` (BVLC) vs caffe_pool only: OpenCV cannot read it (docstring)."""
    text, opencv = FLOOR_SPELLINGS[spelling]
    param = f"pool: {pool} kernel_size: 3 stride: 2 pad: 1 {text}"
    _, got, _ = _check(
        tmp_path, (1, 2, 6, 9), param, pool, (3, 3), (2, 2), (1, 1), False, opencv=opencv
    )
    assert got.shape == (1, 2, 3, 5)  # ceil would give 4 x 5


def test_round_mode_ceil_is_the_default(tmp_path):
    param = "pool: AVE kernel_size: 3 stride: 2 pad: 1 round_mode: CEIL"
    _, got, _ = _check(
        tmp_path, (1, 2, 6, 6), param, "AVE", (3, 3), (2, 2), (1, 1), True, opencv=False
    )
    assert got.shape == (1, 2, 4, 4)


@pytest.mark.parametrize(
    ("param", "pool", "k", "s", "p", "out_hw"),
    [
        ("pool: MAX kernel_h: 3 kernel_w: 2 stride: 2", "MAX", (3, 2), (2, 2), (0, 0), (3, 4)),
        ("pool: AVE kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0", "AVE",
         (3, 2), (2, 1), (1, 0), (4, 7)),
        ("pool: MAX kernel_h: 2 kernel_w: 4 stride_h: 1 stride_w: 3 pad_h: 1 pad_w: 2", "MAX",
         (2, 4), (1, 3), (1, 2), (8, 4)),
        ("pool: AVE kernel_h: 1 kernel_w: 3 stride_h: 1 stride_w: 2 pad_w: 1 pad_h: 0", "AVE",
         (1, 3), (1, 2), (0, 1), (7, 5)),
    ],
    ids=["max-k3x2", "ave-k3x2-s2x1-p1x0", "max-k2x4-s1x3-p1x2", "ave-k1x3"],
)  # fmt: skip
def test_separate_h_and_w(tmp_path, param, pool, k, s, p, out_hw):
    _, got, _ = _check(tmp_path, (1, 2, 7, 8), param, pool, k, s, p, True)
    assert got.shape[2:] == out_hw


@pytest.mark.parametrize("pool", ["MAX", "AVE"])
def test_global_pooling(tmp_path, pool):
    # The window is the whole 5 x 7 plane (Caffe and OpenCV refuse a kernel_size with it).
    net = _input((2, 3, 5, 7)) + _pool("pool", f"pool: {pool} global_pooling: true")
    feeds = _feeds((2, 3, 5, 7))
    model, got, _ = convert_and_compare(tmp_path, net, feeds=feeds)
    reduce = np.max if pool == "MAX" else np.mean
    np.testing.assert_allclose(
        got["pool"], reduce(feeds["data"], axis=(2, 3), keepdims=True), atol=1e-6
    )
    assert op_types(model) == [f"Global{'Max' if pool == 'MAX' else 'Average'}Pool"]


def test_in_place_chain_and_stacked_pools(tmp_path):
    # Two ceil pools in a row (each clipping) behind an in-place ReLU: the second reads the
    # first's Caffe-sized output, not ONNX's.
    net = (
        _input((1, 2, 11, 11))
        + 'layer { name: "relu" type: "ReLU" bottom: "data" top: "data" }\n'
        + _pool("p1", "pool: MAX kernel_size: 3 stride: 2")
        + _pool("p2", "pool: AVE kernel_size: 3 stride: 2 pad: 1", bottom="p1")
    )
    feeds = _feeds((1, 2, 11, 11))
    _, got, _ = convert_and_compare(tmp_path, net, feeds=feeds)
    p1 = caffe_pool(np.maximum(feeds["data"], 0), "MAX", (3, 3), (2, 2), (0, 0), True)
    p2 = caffe_pool(p1, "AVE", (3, 3), (2, 2), (1, 1), True)
    assert p1.shape == (1, 2, 5, 5) and list(got) == ["p2"]
    np.testing.assert_allclose(got["p2"], p2, atol=1e-5)


@pytest.mark.parametrize(
    ("param", "fragment"),
    [
        ("pool: STOCHASTIC kernel_size: 2", "STOCHASTIC pooling is not supported"),
        ("pool: MAX kernel_size: 2 pad: 2", "pad (2, 2) must be smaller than kernel (2, 2)"),
        ("pool: AVE kernel_h: 3 kernel_w: 2 pad_h: 1 pad_w: 2",
         "pad (1, 2) must be smaller than kernel (3, 2)"),
        ("pool: MAX", "kernel size must be positive, got 0x0"),
        ("pool: MAX kernel_size: 2 kernel_h: 3", "kernel_h and kernel_w must be given together"),
    ],
    ids=["stochastic", "pad-eq-kernel", "pad-w-gt-kernel", "no-kernel", "kernel-h-alone"],
)  # fmt: skip
def test_refused(tmp_path, param, fragment):
    expect_error(tmp_path, _input((1, 2, 6, 6)) + _pool("pool", param), None, "pool",
                 "(Pooling)", fragment)  # fmt: skip


# --- the sweep: H in 5..12, k in 2..4, s in 1..3, p in 0..k-1, MAX/AVE, CEIL/FLOOR ----------
GEOMETRIES = [(k, s, p) for k in (2, 3, 4) for s in (1, 2, 3) for p in range(k)]
# spelling id -> (pooling_param text, ceil, OpenCV reads it)
SPELLINGS = {
    "ceil-default": ("", True, True),
    "ceil_mode-false": ("ceil_mode: false", False, True),
    "round_mode-FLOOR": ("round_mode: FLOOR", False, False),
    "round_mode-CEIL": ("round_mode: CEIL", True, False),
}


def _degenerate(size: int, k: int, s: int, p: int, ceil: bool) -> bool:
    """Caffe keeps a last window covering no input (pad 0, stride > kernel, ceil): refused."""
    return (caffe_size(size, k, s, p, ceil) - 1) * s - p >= size


@pytest.mark.parametrize("spelling", list(SPELLINGS))
@pytest.mark.parametrize("pool", ["MAX", "AVE"])
@pytest.mark.parametrize("h", range(5, 13))
def test_sweep(tmp_path, h, pool, spelling):
    """One net per (H, pool, rounding) with a Pooling layer per (k, s, p) read from the input."""
    text, ceil, opencv = SPELLINGS[spelling]
    w = 17 - h  # 12..5: H and W take different paths through the size rules
    layers, expected = [], {}
    for k, s, p in GEOMETRIES:
        if _degenerate(h, k, s, p, ceil) or _degenerate(w, k, s, p, ceil):
            continue
        name = f"k{k}s{s}p{p}"
        layers.append(_pool(name, f"pool: {pool} kernel_size: {k} stride: {s} pad: {p} {text}"))
        expected[name] = (k, s, p)
    assert len(expected) >= len(GEOMETRIES) - 1
    feeds = _feeds((2, 3, h, w), seed=h)
    net = _input((2, 3, h, w)) + "".join(layers)
    if opencv:
        _, got, _ = convert_and_compare(tmp_path, net, feeds=feeds)
    else:
        _, got, _ = convert_and_run(tmp_path, net, feeds=feeds)
    assert sorted(got) == sorted(expected)
    for name, (k, s, p) in expected.items():
        ref = caffe_pool(feeds["data"], pool, (k, k), (s, s), (p, p), ceil)
        assert got[name].shape == ref.shape, name
        assert ref.shape[2:] == (caffe_size(h, k, s, p, ceil), caffe_size(w, k, s, p, ceil))
        np.testing.assert_allclose(got[name], ref, atol=1e-5, rtol=0, err_msg=name)


DEGENERATE = sorted(
    {
        (size, k, s)
        for size in range(5, 13)
        for k, s, p in GEOMETRIES
        if _degenerate(size, k, s, p, True)
    }
)


def test_sweep_degenerate_cases_exist():
    # k 2, s 3, p 0 with ceil: the last window starts at H whenever (H - 2) % 3 == 1.
    assert DEGENERATE == [(6, 2, 3), (9, 2, 3), (12, 2, 3)]
    assert not any(_degenerate(size, k, s, p, False) for size in range(5, 13)
                   for k, s, p in GEOMETRIES)  # fmt: skip


@pytest.mark.parametrize("pool", ["MAX", "AVE"])
@pytest.mark.parametrize(("size", "k", "s"), [*DEGENERATE, (8, 1, 2)])
def test_window_covering_no_input_is_refused(tmp_path, size, k, s, pool):
    # Caffe writes -FLT_MAX (MAX) or 0/0 (AVE) there and OpenCV writes 0 (MAX): no value to match.
    net = _input((1, 2, size, 5)) + _pool("pool", f"pool: {pool} kernel_size: {k} stride: {s}")
    expect_error(
        tmp_path, net, None, "pool",
        f"last window along height starts at {size}, outside the input (size {size};",
        "pools no input value",
    )  # fmt: skip
    # caffe_pool shows what Caffe would compute for that row.
    x = _feeds((1, 2, size, 5))["data"]
    last = caffe_pool(x, pool, (k, k), (s, s), (0, 0), True)[:, :, -1]
    assert (last == -FLT_MAX).all() if pool == "MAX" else np.isnan(last).all()


@pytest.mark.parametrize("opset", [13, 17])
def test_opsets(tmp_path, opset):
    net = (
        _input((1, 2, 6, 7))
        + _pool("a", "pool: AVE kernel_size: 3 stride: 2 pad: 1")
        + _pool("b", "pool: MAX kernel_size: 3 stride: 2", bottom="a")
    )
    convert_and_compare(tmp_path, net, opset=opset)


def test_v1_pooling_layers(tmp_path):
    net = (
        'input: "data"\ninput_dim: 1\ninput_dim: 2\ninput_dim: 6\ninput_dim: 6\n'
        'layers { name: "pool" type: POOLING bottom: "data" top: "pool" '
        "pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }"
    )
    feeds = _feeds((1, 2, 6, 6))
    _, got, _ = convert_and_compare(tmp_path, net, feeds=feeds)
    ref = caffe_pool(feeds["data"], "AVE", (3, 3), (2, 2), (1, 1), True)
    np.testing.assert_allclose(got["pool"], ref, atol=1e-5)
