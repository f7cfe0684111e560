"""A bounded, seeded fuzz run in the normal suite: a few hundred mutated inputs of the five
kinds through the real CLI (in this process), each one a clean result or a failure.

Long runs: ``python bench/fuzz.py`` (the same cases, more of them, in worker processes). A
failing case is named ``kind:index`` and kept under the run's ``failures/`` directory; rerun it
alone with ``python bench/fuzz.py --kind KIND --index N``.
"""

from __future__ import annotations

import collections

import pytest

from tests.fuzz.harness import KINDS, Seeds, run_case

CASES_PER_KIND = 60  # 300 cases; about 2 s on an idle machine (each converts MTCNN det1 or less)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return Seeds.load(tmp_path_factory.mktemp("fuzz-seeds"))


def test_unmutated_seeds_convert(seeds, tmp_path):
    """The harness's judge accepts a clean conversion of every seed (else it proves nothing)."""
    from pipelines.cli.main import main

    for name, text, weights in seeds.prototxts:
        src = tmp_path / f"{name}.prototxt"
        src.write_text(text)
        argv = ["convert", "--prototxt", str(src), "-o", str(tmp_path / f"{name}.onnx")]
        assert main(argv + (["--caffemodel", str(weights)] if weights else [])) == 0, name
    for i, data in enumerate(seeds.onnx_models):
        src = tmp_path / f"seed{i}.onnx"
        src.write_bytes(data)
        assert main(["convert", "--onnx", str(src), "-o", str(tmp_path / f"o{i}.onnx")]) == 0


@pytest.mark.parametrize("kind", KINDS)
def test_fuzz(kind, seeds, tmp_path):
    results = [run_case(kind, i, seeds, tmp_path, timeout=60) for i in range(CASES_PER_KIND)]
    verdicts = collections.Counter(r.verdict for r in results)
    failed = [f"{r.name} {r.verdict}: {r.detail}" for r in results if r.failed]
    assert not failed, f"{len(failed)} failing case(s) ({dict(verdicts)}):\n" + "\n".join(failed)
    # The mutations must reach both outcomes, or the run tests nothing.
    assert verdicts["error"] >= CASES_PER_KIND // 10, dict(verdicts)
    assert verdicts["ok"] >= 1 or kind == "recipe", dict(verdicts)
