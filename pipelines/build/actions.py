"""The actions of the zoo's doit tasks: module-level functions called with plain arguments in
doit's workers (``doit -n N -P process``). Each stage's code fingerprint is the import closure
of its action here (``pipelines.build.run.STAGE_ACTIONS``, ``pipelines.build.fingerprints``),
so editing a task creator reruns nothing.
"""

from __future__ import annotations

import contextlib
import functools
import gc
from pathlib import Path

from pipelines.build.layout import REFERENCE_DIR, recipe_path, source_files
from pipelines.errors import ZoomakeError


def act_fetch(model_id: str, recipe: dict) -> None:
    from pipelines.fetch.cache import fetch_file, materialize
    from pipelines.recipes.stages import recipe_files

    dests = source_files(model_id, recipe)
    for role, ref in recipe_files(recipe).items():
        cached = fetch_file(ref["url"], ref["sha256"], ref["size"])
        materialize(cached, dests[role], ref["sha256"])


def _roles(model_id: str, recipe: dict) -> dict[str, Path]:
    """The fetched files by short role: prototxt, caffemodel, onnx (the source), mean_file:<input>
    (a preprocessing mean image) and file:<N> (verify sample N), each re-hashed first: a byte
    flipped in build/<id>/source/ after the fetch fails here instead of being converted and then
    verified against itself (~1 s per GB, once per task that reads the sources)."""
    from pipelines.fetch.cache import check_fetched
    from pipelines.recipes.stages import recipe_files

    refs = recipe_files(recipe)
    out = {}
    for role, path in source_files(model_id, recipe).items():
        check_fetched(path, refs[role], f"fetch:{model_id}")
        parts = role.split("/")
        if parts[0] == "source":
            out[parts[1]] = path
        elif parts[-1] == "mean_file":
            out[f"mean_file:{parts[1]}"] = path
        elif parts[:2] == ["verify", "files"]:
            out[f"file:{parts[2]}"] = path
    return out


def _timed(fn, stats_path: Path, *args) -> None:
    import json
    import time

    from converters.io import atomic_output

    t0 = time.perf_counter()
    fn(*args)
    with atomic_output(stats_path) as tmp:
        tmp.write_text(json.dumps({"seconds": round(time.perf_counter() - t0, 4)}))


def act_convert(model_id: str, recipe: dict, out: str) -> None:
    from converters.errors import ModelMismatch
    from converters.lazy import save_streamed
    from pipelines.build.steps import convert_source

    def run():
        src = recipe["source"]
        try:
            model = convert_source(
                src["framework"],
                _roles(model_id, recipe),
                recipe.get("inputs"),
                recipe.get("outputs"),
                src.get("opset", 17),
                lazy=True,  # big weights go file to file (converters.lazy), same bytes
            )
        except ModelMismatch as exc:  # the recipe asked for it: say so against the recipe
            raise ZoomakeError(f"{recipe_path(model_id)}#{exc.pointer()}: {exc.detail}") from None
        save_streamed(model, out)

    _timed(run, Path(out).with_name("stats.json"))


def act_optimize(recipe: dict, src: str, out: str) -> None:
    from converters.lazy import load_lazy, save_streamed
    from pipelines.build.steps import optimize

    _timed(  # the big weights stay in src until written (converters.lazy), same bytes
        lambda: save_streamed(optimize(load_lazy(src), recipe.get("optimize")), out),
        Path(out).with_name("stats.json"),
    )


def act_export(target: dict, src: str, out_dir: str) -> None:
    from pipelines.build.steps import export

    _timed(export, Path(out_dir) / "export-stats.json", Path(src), target, Path(out_dir))


def act_reference(model_id: str, recipe: dict, ref_dir: str) -> None:
    from pipelines.verify.reference import run_reference

    _timed(run_reference, Path(ref_dir) / "stats.json", model_id, recipe,
           _roles(model_id, recipe), Path(ref_dir))  # fmt: skip


def act_measure(model_id: str, recipe: dict, target_name: str, out_dir: str) -> None:
    from pipelines.verify.measure import measure

    ref_dir = Path(out_dir).parent / REFERENCE_DIR
    measure(model_id, recipe, target_name, _roles(model_id, recipe), Path(out_dir),
            reference_dir=ref_dir)  # fmt: skip


def act_verify(model_id: str, recipe: dict, target_name: str, verify_json: str):
    import io

    from doit.exceptions import TaskFailed

    from pipelines.verify.measure import gate

    said = io.StringIO()  # the gate's lines become the task's failure (printed once, by tag)
    with contextlib.redirect_stderr(said):
        passed = gate(model_id, target_name, Path(verify_json), recipe, _roles(model_id, recipe))
    if passed:
        return True
    tag = f"verify:{model_id}:{target_name}: "
    lines = [ln.removeprefix(tag) for ln in said.getvalue().splitlines() if ln.strip()]
    return TaskFailed("\n".join(lines) or f"{verify_json} records no passing result")


def guarded(fn):
    """Wrap an action so any failure fails the task with one line (no traceback; the reporter
    prints it as ``<task> failed: <line>``): bad input and environment errors (disk full) as
    such, bugs as ``internal error`` lines (pipelines.errors.describe)."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        resume_gc()
        from doit.exceptions import TaskFailed

        from pipelines.errors import describe

        try:
            result = fn(*args, **kwargs)
        except Exception as exc:  # describe() tells bad input from bugs; see pipelines.errors
            return TaskFailed(describe(exc)[1])
        return result if isinstance(result, TaskFailed) else result is not False

    return run


def sweep(paths: list[str]) -> None:
    """First action of every task: remove what a killed earlier run left beside its outputs."""
    from converters.io import sweep_temporaries

    resume_gc()
    for path in paths:
        sweep_temporaries(path)


def resume_gc() -> None:
    """The cyclic collector back on (``pipelines.build.run`` turns it off while doit loads the
    tasks): at the first action of a process and at the end of the run."""
    if not gc.isenabled():
        gc.enable()
