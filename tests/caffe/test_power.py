"""Power, Exp and Log (converters/caffe/layers/power.py).

Compared with real Caffe, and with OpenCV DNN (atol 1e-5) for Power, Exp and the default Log.
OpenCV's Log layer ignores ``log_param`` (it always computes ln(x): measured with base 2,
scale 0.5, shift 5 it returns ln(x)), so Log with parameters is compared with real Caffe only.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.caffe.helpers import convert_and_compare
from tests.caffe.layer_checks import convert_and_run, expect_error, op_types

f32 = np.float32
HEADER = 'input: "data"\ninput_shape { dim: 2 dim: 3 dim: 4 dim: 5 }\n'


def _net(type_name: str, param: str = "") -> str:
    return HEADER + f'layer {{ name: "op" type: "{type_name}" bottom: "data" top: "out" {param} }}'


def _positive(seed=0) -> dict[str, np.ndarray]:
    x = np.abs(np.random.default_rng(seed).standard_normal((2, 3, 4, 5))) + 0.1
    return {"data": x.astype(f32)}


@pytest.mark.parametrize(
    ("param", "ops"),
    [
        ("power_param { power: 2 scale: 0.5 shift: 1 }", ["Mul", "Add", "Pow"]),
        ("power_param { power: 0.5 scale: 0.5 shift: 3 }", ["Mul", "Add", "Pow"]),
        ("power_param { power: -1.5 shift: 4 }", ["Add", "Pow"]),
        ("power_param { scale: -2 }", ["Mul"]),
        ("power_param { shift: 0.25 }", ["Add"]),
        ("power_param { power: 3 }", ["Pow"]),
        ("", ["Identity"]),  # every step is the identity: the top aliases the input
    ],
    ids=["all", "sqrt", "neg-power", "scale-only", "shift-only", "power-only", "identity"],
)
def test_power_against_opencv(tmp_path, param, ops):
    model, got, _ = convert_and_compare(tmp_path, _net("Power", param))
    assert op_types(model) == ops
    assert got["out"].shape == (2, 3, 4, 5)


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("power_param { power: 0 scale: 0.5 shift: 3 }", 1.0),
        ("power_param { power: 2 scale: 0 shift: 3 }", 9.0),
        ("power_param { power: 0.5 scale: 0 shift: 2 }", float(f32(2) ** f32(0.5))),
    ],
    ids=["power0", "scale0", "scale0-sqrt"],
)
def test_power_constant_cases(tmp_path, param, value):
    # Caffe fills the constant without reading the input: a NaN input still gives the value.
    model, got, _ = convert_and_compare(tmp_path, _net("Power", param))
    assert op_types(model) == ["ConstantOfShape"]
    feeds = {"data": np.full((2, 3, 4, 5), np.nan, dtype=f32)}
    (tmp_path / "nan").mkdir()
    _, got, _ = convert_and_run(tmp_path / "nan", _net("Power", param), feeds=feeds)
    np.testing.assert_array_equal(got["out"], np.full((2, 3, 4, 5), value, dtype=f32))


@pytest.mark.parametrize(
    ("param", "ops"),
    [
        ("", ["Exp"]),
        ("exp_param { base: 2 scale: 0.5 shift: 1 }", ["Mul", "Exp", "Mul"]),
        ("exp_param { base: 10 }", ["Mul", "Exp"]),
        ("exp_param { scale: -1.5 shift: 0.5 }", ["Mul", "Exp", "Mul"]),
        # ln(float32(2.718281828)) rounds to exactly 1, so Caffe (and we) skip the inner Mul.
        ("exp_param { base: 2.718281828 shift: -1 }", ["Exp", "Mul"]),
    ],
    ids=["e", "base2-all", "base10", "e-scale-shift", "base-near-e"],
)
def test_exp_against_opencv(tmp_path, param, ops):
    model, _, _ = convert_and_compare(tmp_path, _net("Exp", param), rtol=1e-6)
    assert op_types(model) == ops


def test_log_default_against_opencv(tmp_path):
    model, _, _ = convert_and_compare(tmp_path, _net("Log"), feeds=_positive())
    assert op_types(model) == ["Log"]


@pytest.mark.parametrize(
    ("base", "scale", "shift", "ops"),
    [
        (2.0, 0.5, 5.0, ["Mul", "Add", "Log", "Mul"]),
        (10.0, 1.0, 0.0, ["Log", "Mul"]),
        (-1.0, 3.0, 0.0, ["Mul", "Log"]),
        (-1.0, 1.0, 2.0, ["Add", "Log"]),
    ],
    ids=["base2-all", "base10", "e-scale", "e-shift"],
)
def test_log_params_vs_caffe(tmp_path, base, scale, shift, ops):
    param = f"log_param {{ base: {base} scale: {scale} shift: {shift} }}"
    model, _, _ = convert_and_compare(
        tmp_path, _net("Log", param), feeds=_positive(), atol=1e-6, rtol=1e-6, opencv=False
    )
    assert op_types(model) == ops


@pytest.mark.parametrize(
    ("type_name", "param", "fragment"),
    [
        (
            "Exp",
            "exp_param { base: -2 }",
            "exp_param.base must be -1 (meaning e) or positive, got -2",
        ),
        (
            "Exp",
            "exp_param { base: 0 }",
            "exp_param.base must be -1 (meaning e) or positive, got 0",
        ),
        ("Log", "log_param { base: 1 }", "log_param.base 1 has no logarithm"),
        ("Log", "log_param { base: -3 }", "log_param.base must be -1 (meaning e) or positive"),
        ("Power", "power_param { power: nan }", "power_param.power must be a finite number"),
        ("Exp", "exp_param { base: 10 shift: 100 }", "overflows float32"),
    ],
    ids=["exp-neg-base", "exp-zero-base", "log-base1", "log-neg-base", "power-nan", "exp-overflow"],
)
def test_bad_params_are_refused(tmp_path, type_name, param, fragment):
    expect_error(tmp_path, _net(type_name, param), None, "op", f"({type_name})", fragment)


def test_legacy_v1_layers(tmp_path):
    net = (
        'input: "data"\ninput_dim: 2\ninput_dim: 3\ninput_dim: 4\ninput_dim: 5\n'
        'layers { name: "pw" type: POWER bottom: "data" top: "pw" '
        "power_param { power: 2 scale: 0.5 shift: 1 } }\n"
        'layers { name: "ex" type: EXP bottom: "pw" top: "ex" exp_param { base: 2 scale: -0.5 } }'
    )
    model, _, _ = convert_and_compare(tmp_path, net, rtol=1e-6)
    assert op_types(model) == ["Mul", "Add", "Pow", "Mul", "Exp"]
