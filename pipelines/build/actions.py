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

from pipelines.build.layout import REFERENCE_DIR, recipe_path, source_files, tree_dirs
from pipelines.errors import ZoomakeError


def runtime_ready(framework: str) -> bool:
    """doit ``uptodate`` of ``runtime:<fw>``: its environment is recorded (or given by
    ``ZOOMAKE_<FW>_PYTHON``); a broken one is the measure's to report, in one line."""
    from pipelines.runtimes.side import available

    try:
        return available(framework)
    except ZoomakeError:
        return False


def act_setup_runtime(framework: str) -> None:
    """Create the side runtime's environment (``zoomake setup-runtime <fw>``), saying so first:
    it downloads from the package registry once per machine (or per ``ZOOMAKE_CACHE``)."""
    import os

    from pipelines.runtimes.setup_runtime import setup_runtime
    from pipelines.runtimes.side import AUTO_ENV, runtime_dir, setup_command

    if os.environ.get(AUTO_ENV, "1") == "0":
        raise ZoomakeError(
            f"the {framework} runtime is not set up and {AUTO_ENV}=0: "
            f"run `{setup_command(framework)}`"
        )
    print(f"setting up the {framework} runtime in {runtime_dir(framework)} (once)", flush=True)
    setup_runtime(framework)


def act_fetch(model_id: str, recipe: dict) -> None:
    from pipelines.fetch.cache import PinMismatch, fetch_file, materialize
    from pipelines.recipes.stages import recipe_files

    dests = source_files(model_id, recipe)
    for role, ref in recipe_files(recipe).items():
        try:
            cached = fetch_file(ref["url"], ref["sha256"], ref["size"])
        except PinMismatch as exc:  # not the file the recipe pins: say so against the recipe
            field = f"/{exc.field}" if exc.field else ""
            raise ZoomakeError(f"{recipe_path(model_id)}#/{role}{field}: {exc}") from None
        materialize(cached, dests[role], ref["sha256"])
    _prune_trees(model_id, recipe, dests)


def _prune_trees(model_id: str, recipe: dict, dests: dict[str, Path]) -> None:
    """Remove what is not the recipe's from its source trees (build/<id>/source/code/): a file
    an earlier version of the recipe listed (or that a remote-cache hit of this fetch did not
    replace) must not be importable by the model's code."""
    import os
    import shutil

    keep = {str(p) for p in dests.values()}
    for tree in tree_dirs(model_id, recipe).values():
        for root, dirs, files in os.walk(tree):
            for d in [d for d in dirs if d == "__pycache__"]:
                shutil.rmtree(Path(root) / d, ignore_errors=True)
                dirs.remove(d)
            for name in files:
                if str(Path(root) / name) not in keep:
                    (Path(root) / name).unlink(missing_ok=True)


def _roles(model_id: str, recipe: dict, check: bool = True) -> dict[str, Path]:
    """The fetched files by short role: prototxt, caffemodel, onnx (the source), code/<path>
    (a file of the source tree ``code``), mean_file:<input> (a preprocessing mean image) and
    file:<N> (verify sample N), each re-hashed first (unless ``check`` is false: the caller
    does it, ``_FetchedCheck``): a byte flipped in build/<id>/source/ after the fetch fails
    here instead of being converted and then verified against itself (~1 s per GB, once per
    task that reads the sources). A source tree holds exactly the recipe's files
    (``_prune_trees``)."""
    from pipelines.fetch.cache import check_fetched
    from pipelines.recipes.stages import fetched_name, recipe_files

    refs = recipe_files(recipe)
    out = {}
    dests = source_files(model_id, recipe)
    for role, path in dests.items():
        if check:
            check_fetched(path, refs[role], f"fetch:{model_id}")
        parts = role.split("/")
        if parts[0] == "source":
            out[fetched_name(role, refs[role]) if "path" in refs[role] else parts[1]] = path
        elif parts[-1] == "mean_file":
            out[f"mean_file:{parts[1]}"] = path
        elif parts[:2] == ["verify", "files"]:
            out[f"file:{parts[2]}"] = path
    _prune_trees(model_id, recipe, dests)
    return out


class _FetchedCheck:
    """``_roles``' re-hash of the fetched files in a thread, so that it overlaps the imports,
    the parse and the output's writing (hashlib releases the GIL: on a 550 MB caffemodel the
    hash is ~0.4 s of a ~1.5 s convert). ``wait()`` raises its error (the file is removed, as
    by ``_roles``); the caller waits before its output is renamed into place, and on its own
    error (a changed file can fail the parse): the hash's line is then the one reported."""

    def __init__(self, model_id: str, recipe: dict):
        from pipelines.background import Background
        from pipelines.fetch.cache import check_fetched
        from pipelines.recipes.stages import recipe_files

        refs = recipe_files(recipe)
        files = [(p, refs[r]) for r, p in source_files(model_id, recipe).items()]
        task = f"fetch:{model_id}"

        def run() -> None:
            for path, ref in files:
                check_fetched(path, ref, task)

        self._check = Background(run, "fetched-check")
        self.roles = _roles(model_id, recipe, check=False)

    def wait(self) -> None:
        self._check.result()

    @contextlib.contextmanager
    def first(self):
        """A block whose exception gives way to the check's, if that fails too."""
        try:
            yield
        except BaseException:
            self.wait()
            raise


def _mismatch_line(model_id: str, exc) -> ZoomakeError:
    """A ``ModelMismatch`` (the recipe asked for what the model does not have) against the
    recipe: ``recipes/x.yaml#/outputs/1: ...``."""
    return ZoomakeError(f"{recipe_path(model_id)}#{exc.pointer()}: {exc.detail}")


def _timed(fn, stats_path: Path, *args) -> None:
    import json
    import time

    from converters.io import atomic_output

    t0 = time.perf_counter()
    fn(*args)
    with atomic_output(stats_path) as tmp:
        tmp.write_text(json.dumps({"seconds": round(time.perf_counter() - t0, 4)}))


def act_convert(model_id: str, recipe: dict, out: str) -> None:
    check = _FetchedCheck(model_id, recipe)  # first: it hashes while the rest imports
    from converters.errors import ModelMismatch
    from converters.lazy import save_streamed
    from pipelines.build.steps import convert_source
    from pipelines.recipes.stages import format_files

    def run():
        src = recipe["source"]
        try:
            model = convert_source(
                src["framework"],
                format_files(recipe, check.roles),
                recipe.get("inputs"),
                recipe.get("outputs"),
                src.get("opset", 17),
                lazy=True,  # big weights go file to file (converters.lazy), same bytes
            )
        except ModelMismatch as exc:  # the recipe asked for it: say so against the recipe
            raise _mismatch_line(model_id, exc) from None
        # renamed into place only once the sources' hashes are checked
        save_streamed(model, out, before_commit=check.wait)

    with check.first():
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
    from pipelines.runtimes.side import process, reference_config

    if reference_config(recipe).get("python"):  # real Caffe runs it (not OpenCV, no error)
        # First, before the imports and source hashing below: the runner then imports pycaffe
        # (~0.3 s in its own process) while this one does them, instead of after. A runner
        # that cannot start is reported where the reference opens it, in its context.
        with contextlib.suppress(ZoomakeError):
            process("caffe", wait=False)
    from converters.errors import ModelMismatch
    from pipelines.verify.reference import run_reference

    try:
        _timed(run_reference, Path(ref_dir) / "stats.json", model_id, recipe,
               _roles(model_id, recipe), Path(ref_dir))  # fmt: skip
    except ModelMismatch as exc:  # a source value the model refuses (PyTorch: entry, kwargs)
        raise _mismatch_line(model_id, exc) from None


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
