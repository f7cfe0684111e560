"""The source model's reference outputs, computed once per model and sample set.

``reference:<id>`` runs the SOURCE model in its own framework's runtime (as ``verify.reference``
says, see ``pipelines.runtimes.choose.open_reference``) on the recipe's verification samples and
stores, in ``build/<id>/reference/``, the golden reference of the model:

- ``test_data_set_N/input_K.pb``: the deployed inputs of sample N (the form every artifact
  takes them in, ``pipelines.verify.samples``), ``reference_K.pb``: what the source model gave for
  the expected outputs;
- ``reference.json``: the runtime (name, requested, version, build), the expected outputs and
  the source model's own, the deployed inputs, the sets (random seed or file), and the sha256 of
  every source file it read and of every golden file it wrote.

Every target's ``measure`` reads these instead of running the reference again; it uses a
stored set only when its own deployed inputs are byte-identical to the stored ones (else it
runs the reference itself), and records the sha256 of every reference file it read in its
verify.json, which the ``verify`` gate recomputes.

The deployed inputs are derived here from the recipe and the source model's declared inputs,
without the converted model (the reference shares no code or file with what it checks): each
source input, in the source model's order, with the recipe's shape, else the source's, laid
out as ``preprocess.layout`` says, ``uint8`` when ``preprocess.dtype`` says so, else float32.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from converters.io import atomic_output
from pipelines.errors import ZoomakeError
from pipelines.recipes.stages import format_files
from pipelines.runtimes.base import Port
from pipelines.runtimes.choose import open_reference, versions
from pipelines.verify import samples
from pipelines.verify.digests import sha256, sha256_once
from pipelines.verify.golden import golden_sets, import_codec, read_tensors, write_golden

DIR = "reference"  # build/<id>/reference/
INDEX = "reference.json"


def verify_default(*path: str):
    """A default of the recipe schema's verify block (the tolerance presets live there)."""
    from pipelines.recipes.load import schema

    node = schema()["$defs"]["verify"]
    for key in path:
        node = node["properties"][key]
    return node["default"]


def setting(recipe: dict, key: str):
    return (recipe.get("verify") or {}).get(key, verify_default(key))


def expected_outputs(recipe: dict, source_outputs: list[str]) -> tuple[list[str], str]:
    """The outputs every artifact must have, by name: the recipe's ``outputs`` (cut points),
    else the source model's outputs; and where that list comes from (for messages)."""
    if recipe.get("outputs"):
        return list(recipe["outputs"]), "the recipe's outputs"
    return list(source_outputs), "the source model's outputs"


def sample_files(recipe: dict, sources: dict[str, Path], out_dir: Path) -> list[Path]:
    """The recipe's ``verify.files``, as fetched into build/<id>/source/."""
    paths = []
    for i, ref in enumerate(setting(recipe, "files") or []):
        # build.layout.source_files puts every fetched file into build/<id>/source/<url basename>.
        path = sources.get(f"file:{i}") or out_dir.parent / "source" / ref["url"].rsplit("/", 1)[-1]
        if not Path(path).is_file():
            raise ZoomakeError(f"{path}: verify.files[{i}] sample file not found (not fetched?)")
        paths.append(Path(path))
    return paths


def sample_sets(
    recipe: dict, inputs: list[samples.DeployedInput], files: list[Path]
) -> list[tuple[dict[str, np.ndarray], dict]]:
    """``[(deployed feeds, set info)]``: the random samples, then the sample files."""
    seed, n_random = int(setting(recipe, "seed")), int(setting(recipe, "samples"))
    sets = [
        (samples.random_feeds(inputs, seed, i), {"kind": "random", "seed": [seed, i]})
        for i in range(n_random)
    ]
    for path in files:
        sets.append((samples.image_feeds(inputs, path), {"kind": "file", "file": path.name}))
    return sets


def _nhwc(shape):
    return [shape[0], shape[2], shape[3], shape[1]]


def reference_ports(recipe: dict, source_ports: list[Port]) -> list[Port]:
    """The deployed inputs as the recipe and the source model declare them (module docstring).
    A source whose runner declares no inputs (PyTorch code or TorchScript: ``forward`` takes
    positional tensors) has the recipe's, in the recipe's order, the order its ``to_onnx``
    exported them in."""
    listed = recipe.get("inputs") or {}
    if not source_ports:
        source_ports = [Port(name, None, np.dtype(np.float32)) for name in listed]
    ports = []
    for port in source_ports:
        rin = listed.get(port.name) or {}
        spec = rin.get("preprocess") or {}
        shape = rin.get("shape")
        if shape is not None:
            shape = list(shape)
            if rin.get("layout", "NCHW") == "NHWC":  # the recipe's shape is in its layout
                shape = [shape[0], shape[3], shape[1], shape[2]]
        elif port.shape is not None:
            shape = list(port.shape)
            if rin.get("layout", "NCHW") == "NHWC":
                shape = [shape[0], shape[3], shape[1], shape[2]]
        if shape is not None and spec.get("layout", "NCHW") == "NHWC":
            shape = _nhwc(shape)
        dtype = np.dtype(np.uint8) if spec.get("dtype") == "uint8" else np.dtype(np.float32)
        ports.append(Port(port.name, tuple(shape) if shape else None, dtype))
    return ports


def _rel(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path, base)).as_posix()


def _golden_files(ref_dir: Path) -> list[Path]:
    return sorted(f for d in golden_sets(ref_dir) for f in d.iterdir() if f.is_file())


def run_reference(model_id: str, recipe: dict, sources: dict[str, Path], ref_dir: Path) -> dict:
    """Run the source model's reference on every sample set; write ``ref_dir`` (see above)."""
    ref_dir = Path(ref_dir)
    sources = {k: Path(v) for k, v in sources.items()}
    (ref_dir / INDEX).unlink(missing_ok=True)  # never a stale index beside new sets
    framework = recipe["source"]["framework"]
    choice = setting(recipe, "reference")
    import_codec()  # while a real Caffe runner starts (act_reference started it first)
    reference = open_reference(
        framework, format_files(recipe, sources), recipe.get("outputs") or [], choice
    )
    expected, origin = expected_outputs(recipe, reference.outputs)
    inputs = samples.deployed_inputs(recipe, reference_ports(recipe, reference.inputs))
    means = samples.mean_images(sources)
    golden, sets_info = [], []
    for n, (feeds, info) in enumerate(
        sample_sets(recipe, inputs, sample_files(recipe, sources, ref_dir))
    ):
        want = reference.run(samples.reference_feeds(inputs, feeds, means), expected)
        sets_info.append({"set": f"test_data_set_{n}", **info})
        golden.append(
            (
                [(i.name, feeds[i.name]) for i in inputs],
                [],
                [(o, np.asarray(want[o])) for o in expected],
            )
        )
    write_golden(ref_dir, golden)
    index = {
        "model": model_id,
        "framework": framework,
        "runtime": reference.runtime,
        "requested": choice,
        "version": getattr(reference, "version", None) or versions().get(reference.runtime),
        "build": getattr(reference, "build", None) or None,
        "files": {role: p.name for role, p in sources.items()},
        "source_outputs": list(reference.outputs),
        "expected_outputs": {"names": expected, "from": origin},
        "inputs": [{"name": i.name, "shape": list(i.shape), "dtype": str(i.dtype)} for i in inputs],
        "sets": sets_info,
        "sha256": {
            "source": {
                role: {"path": _rel(p, ref_dir), "sha256": sha256_once(p)}
                for role, p in sorted(sources.items())
            },
            "golden": {_rel(p, ref_dir): sha256(p) for p in _golden_files(ref_dir)},
        },
    }
    with atomic_output(ref_dir / INDEX) as tmp:
        tmp.write_text(json.dumps(index, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return index


@dataclass
class StoredReference:
    """What ``reference:<id>`` stored, read back and checked against its own index."""

    index: dict
    sets: list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]  # (inputs, references)
    digests: dict[str, str]  # path relative to the reader's directory -> sha256, index included

    @property
    def outputs(self) -> list[str]:
        return list(self.index["source_outputs"])

    def outputs_for(self, n: int, feeds: dict[str, np.ndarray], info: dict):
        """The stored reference outputs of set ``n`` if it was computed from exactly ``feeds``
        (same set, names, dtypes, shapes and bytes), else None."""
        if (
            n >= len(self.sets)
            or {k: v for k, v in self.index["sets"][n].items() if k != "set"} != info
        ):
            return None
        stored, outputs = self.sets[n]
        if stored.keys() != feeds.keys():
            return None
        for name, x in feeds.items():
            y = stored[name]
            if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
                return None
        return outputs


def load_reference(ref_dir: Path, reader_dir: Path) -> StoredReference | None:
    """The stored reference in ``ref_dir`` (None when ``reference:<id>`` wrote none); every
    golden file must have the sha256 its index records."""
    ref_dir, index_path = Path(ref_dir), Path(ref_dir) / INDEX
    if not index_path.is_file():
        return None
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
        recorded = index["sha256"]["golden"]
        index["sets"], index["source_outputs"], index["expected_outputs"]["names"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ZoomakeError(f"{index_path}: unreadable reference index ({exc})") from None
    digests = {_rel(index_path, reader_dir): sha256_once(index_path)}
    found = {_rel(p, ref_dir): p for p in _golden_files(ref_dir)}
    if set(found) != set(recorded):
        raise ZoomakeError(
            f"{ref_dir}: the golden reference files are not those {INDEX} records "
            f"(rerun reference:{index.get('model')})"
        )
    for rel, path in found.items():
        got = sha256_once(path)
        if got != recorded[rel]:
            raise ZoomakeError(
                f"{path}: sha256 {got} differs from {recorded[rel]}, the one {INDEX} records"
            )
        digests[_rel(path, reader_dir)] = got
    sets = [(read_tensors(d, "input"), read_tensors(d, "reference")) for d in golden_sets(ref_dir)]
    return StoredReference(index, sets, digests)
