"""The latency measure records: the median's confidence interval and when timing stops.

The interval's ranks are checked against published tables and by simulation (the fraction of
random samples whose interval holds the true median), not against the formula they come from;
the stopping rule against a candidate whose run times come from a fake clock.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.verify import measure
from pipelines.verify.measure import median_ci


# Distribution-free 95% intervals for the median, 1-based ranks (r, n + 1 - r): Conover,
# Practical Nonparametric Statistics (3rd ed.), Table A3 / the binomial table at p = 1/2.
@pytest.mark.parametrize(
    ("n", "rank"), [(6, 1), (7, 1), (8, 1), (9, 2), (10, 2), (15, 4), (20, 6), (30, 10), (50, 18)]
)
def test_median_interval_ranks_match_the_tables(n, rank):
    assert median_ci(n) == (rank - 1, n - rank)


@pytest.mark.parametrize("n", [1, 2, 5])
def test_no_95_percent_interval_below_six_runs(n):
    assert median_ci(n) is None


@pytest.mark.parametrize("n", [6, 10, 20, 50])
def test_median_interval_covers_the_true_median_95_percent_of_the_time(n):
    """Simulated: exponential timings (skewed, like latencies), true median ln 2."""
    rng = np.random.default_rng(n)
    draws = np.sort(rng.exponential(size=(40_000, n)), axis=1)
    lo, hi = median_ci(n)
    covered = np.mean((draws[:, lo] <= np.log(2)) & (np.log(2) <= draws[:, hi]))
    assert covered >= 0.95 - 0.005  # sampling error of 40,000 draws ~0.001
    if lo + 1 <= hi - 1:  # the next narrower interval no longer reaches 95%
        narrower = np.mean((draws[:, lo + 1] <= np.log(2)) & (np.log(2) <= draws[:, hi - 1]))
        assert narrower < 0.95


class _Clocked:
    """A candidate whose every run takes the next of ``durations`` seconds on a fake clock."""

    def __init__(self, durations, monkeypatch):
        self.now, self.durations, self.runs = 0.0, list(durations), 0
        monkeypatch.setattr(measure.time, "perf_counter", lambda: self.now)

    def run(self, feeds):
        self.now += self.durations[self.runs % len(self.durations)]
        self.runs += 1
        return {}


def test_steady_timings_stop_at_six_runs(monkeypatch):
    c = _Clocked([0.002], monkeypatch)
    lat = measure._latency(c, {})
    assert c.runs == lat["runs"] == 6
    assert lat["median"] == pytest.approx(2.0) and lat["ci95"] == pytest.approx([2.0, 2.0])


def test_scattered_timings_run_to_the_cap(monkeypatch):
    c = _Clocked([0.001, 0.003], monkeypatch)  # the interval spans 1-3 ms around a 2 ms median
    lat = measure._latency(c, {})
    assert lat["runs"] == measure.LATENCY_RUNS[1] == 50
    assert lat["ci95"] == pytest.approx([1.0, 3.0]) and lat["min"] == pytest.approx(1.0)


@pytest.mark.parametrize(("slow", "runs"), [(1, 9), (2, 12)])
def test_timing_stops_once_the_interval_is_within_five_percent(monkeypatch, slow, runs):
    """Slow first runs, then steady ones: timing goes on until the interval leaves out every
    slow run (from 9 runs on it drops the extremes, from 12 on the two outermost)."""
    c = _Clocked([0.0030, 0.0025][:slow] + [0.0020] * 100, monkeypatch)
    lat = measure._latency(c, {})
    assert lat["runs"] == runs and lat["median"] == pytest.approx(2.0)
    assert lat["ci95"] == pytest.approx([2.0, 2.0])


def test_a_slow_model_gets_the_minimum_runs_within_the_budget(monkeypatch):
    c = _Clocked([0.3, 0.9], monkeypatch)  # 1 s is spent before the 5th run; 5 runs anyway
    lat = measure._latency(c, {})
    assert lat["runs"] == measure.LATENCY_RUNS[0] == 5 and lat["ci95"] is None
    c = _Clocked([0.05, 0.15], monkeypatch)  # scattered, 0.1 s each: the 1 s budget stops it
    assert measure._latency(c, {})["runs"] == 10


def test_onnxruntime_pools_spin_in_a_run_and_stop_when_it_returns():
    """Spinning as onnxruntime deploys by default while a run waits on its pool, none once the
    run returns: an idle session beside another task (doit -n 2) burns no core."""
    import time

    from onnx import TensorProto, helper, numpy_helper

    from pipelines.runtimes.onnxruntime import OrtRunner

    w = numpy_helper.from_array(
        np.random.default_rng(0).normal(size=(512, 512)).astype(np.float32), "w"
    )
    nodes = [helper.make_node("MatMul", [f"x{i}", "w"], [f"x{i + 1}"]) for i in range(8)]
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("x0", TensorProto.FLOAT, [512, 512])],
        [helper.make_tensor_value_info("x8", TensorProto.FLOAT, [512, 512])], [w],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    runner = OrtRunner(model.SerializeToString())
    options = runner.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert options.get_session_config_entry("session.force_spinning_stop") == "1"
    x = np.full((512, 512), 1e-3, np.float32)
    for _ in range(3):
        runner.run({"x0": x})
    cpu = time.process_time()
    time.sleep(0.3)
    assert time.process_time() - cpu < 0.03  # idle threads asleep, not spinning
