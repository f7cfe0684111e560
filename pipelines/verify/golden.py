"""Golden data in the ONNX model zoo layout: ``test_data_set_N/input_K.pb`` / ``output_K.pb``.

Each file is one serialized ``onnx.TensorProto`` carrying its tensor's name (``onnx_test_runner``
and the model zoo's own checkers read them as is). Inputs are the DEPLOYED model's inputs in its
order, outputs the artifact's outputs in its order. ``reference_K.pb`` beside them hold what the
source model's reference runtime gave for the expected outputs (the checkers only read
``input_*``/``output_*``), so the ``verify`` gate can redo the comparison from files alone. A
new set of directories is written beside the old ones under a temporary name and swapped in by
renames, so a reader never sees a mix.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from converters.io import durable_replace, temp_prefix
from pipelines.errors import ZoomakeError

GOLDEN = "golden"  # the name the staging directory's temporaries are derived from
_SET = re.compile(r"test_data_set_(\d+)")
Tensors = list[tuple[str, np.ndarray]]


# onnx's own TensorProto writer and reader. An earlier codec of ours avoided importing onnx,
# then ~1 s of a measure process's start-up; with ml_dtypes < 0.7 (pyproject.toml) the import
# costs ~0.05 s in a process that has numpy and the runtimes loaded, not worth a second codec.
def import_codec() -> None:
    """Import onnx's TensorProto codec now (~0.2 s in a fresh process): the reference task
    does it while a real Caffe runner starts, instead of after the reference's runs."""
    from onnx import numpy_helper  # noqa: F401


def _write_tensor(path: Path, name: str, array: np.ndarray) -> None:
    from onnx import numpy_helper

    # ascontiguousarray as ever: a 0-d array is stored with shape (1,), as it always was.
    path.write_bytes(numpy_helper.from_array(np.ascontiguousarray(array), name).SerializeToString())


def write_golden(out_dir: Path, sets: list[tuple[Tensors, ...]]) -> list[Path]:
    """Replace ``out_dir``'s golden sets by ``sets`` (``[(inputs, outputs[, references])]``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    # Named like every temporary (converters.io), so a run killed mid-write is swept next time.
    staging = Path(tempfile.mkdtemp(prefix=temp_prefix(out_dir / GOLDEN), dir=out_dir))
    try:
        for n, tensor_lists in enumerate(sets):
            d = staging / f"test_data_set_{n}"
            d.mkdir()
            for kind, tensors in zip(("input", "output", "reference"), tensor_lists, strict=False):
                for k, (name, array) in enumerate(tensors):
                    _write_tensor(d / f"{kind}_{k}.pb", name, array)
        trash = staging / ".old"
        trash.mkdir()
        for old in golden_sets(out_dir):
            old.rename(trash / old.name)
        final = []
        for n in range(len(sets)):
            durable_replace(staging / f"test_data_set_{n}", out_dir / f"test_data_set_{n}")
            final.append(out_dir / f"test_data_set_{n}")
        return final
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def golden_sets(out_dir: Path) -> list[Path]:
    """The ``test_data_set_N`` directories of ``out_dir``, by N."""
    if not out_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in out_dir.iterdir() if (m := _SET.fullmatch(p.name))]
    return [p for _, p in sorted(found) if p.is_dir()]


def _read_tensor(path: Path) -> tuple[str, np.ndarray]:
    import onnx
    from google.protobuf.message import DecodeError
    from onnx import numpy_helper

    tensor = onnx.TensorProto()
    try:
        tensor.ParseFromString(path.read_bytes())
        array = numpy_helper.to_array(tensor)
        return tensor.name, array if array.flags.writeable else array.copy()  # as it always was
    except (OSError, DecodeError, ValueError) as exc:
        raise ZoomakeError(f"{path}: not a readable ONNX TensorProto ({exc})") from None


def read_tensors(set_dir: Path, kind: str) -> dict[str, np.ndarray]:
    """The ``<kind>_K.pb`` tensors of one golden set (kind: input, output, reference), by K."""
    pattern = re.compile(rf"{kind}_(\d+)\.pb")
    found = [(int(m.group(1)), p) for p in set_dir.iterdir() if (m := pattern.fullmatch(p.name))]
    return dict(_read_tensor(p) for _, p in sorted(found))


def read_set(set_dir: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(inputs, outputs)`` of one golden set, each ``{name: array}`` in file order."""
    return read_tensors(set_dir, "input"), read_tensors(set_dir, "output")
